package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/optoloop/optoloop/telemetry"
)

// runTraceCmd runs `trace ARGS...` (the command alone, whether or not the root has it).
func runTraceCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newTraceCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// testSpan is one span of a hand-written trace file.
type testSpan struct {
	item, id, parent, name string
	start, end             time.Duration
	attrs                  map[string]string
	events                 []string
	links                  []string // item/id of the linked span
}

func traceBytes(t *testing.T, item string) []byte {
	id := telemetry.EpisodeTraceID(item)
	return id[:]
}

func spanBytes(name string) []byte {
	id := telemetry.AttemptSpanID(name, 0)
	return id[:]
}

// writeTraceFile writes spans of one process as an OTLP/JSON line of the trace dir (with the
// telemetry package's own encoder).
func writeTraceFile(t *testing.T, dir, service, instance string, spans ...testSpan) {
	t.Helper()
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	var ps []*tracepb.Span
	for _, s := range spans {
		p := &tracepb.Span{TraceId: traceBytes(t, s.item), SpanId: spanBytes(s.id), Name: s.name,
			StartTimeUnixNano: uint64(base.Add(s.start).UnixNano()), EndTimeUnixNano: uint64(base.Add(s.end).UnixNano()),
			Attributes: []*commonpb.KeyValue{str("optoloop.item", s.item)}}
		if s.parent != "" {
			p.ParentSpanId = spanBytes(s.parent)
		}
		for k, v := range s.attrs {
			p.Attributes = append(p.Attributes, str(k, v))
		}
		for i, e := range s.events {
			p.Events = append(p.Events, &tracepb.Span_Event{Name: e, TimeUnixNano: uint64(base.Add(s.start + time.Duration(i)*time.Millisecond).UnixNano())})
		}
		for _, l := range s.links {
			item, id, _ := strings.Cut(l, "/")
			p.Links = append(p.Links, &tracepb.Span_Link{TraceId: traceBytes(t, item), SpanId: spanBytes(id)})
		}
		ps = append(ps, p)
	}
	line, err := telemetry.MarshalJSONLine(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", service), str("service.instance.id", instance)}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: ps}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, telemetry.TraceFileName(service, instance, 1))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		t.Fatal(err)
	}
}

// testTraceDir: evaluation episode x-1.3, acting with the version that training task x-1.2
// published, which learnt from collect episode x-1.1.
func testTraceDir(t *testing.T) string {
	dir := t.TempDir()
	writeTraceFile(t, dir, "coordinator", "c1",
		testSpan{item: "x-1.3", id: "root3", name: "episode x-1.3", start: 0, end: 5 * time.Second},
		testSpan{item: "x-1.3", id: "lease3", parent: "root3", name: "coordinator.lease", start: time.Millisecond, end: 2 * time.Millisecond},
		testSpan{item: "x-1.1", id: "root1", name: "episode x-1.1", start: -time.Hour, end: -time.Hour + 20*time.Second},
	)
	writeTraceFile(t, dir, "worker", "w-73-0",
		testSpan{item: "x-1.3", id: "ep3", parent: "root3", name: "worker.episode", start: 10 * time.Millisecond, end: 4 * time.Second,
			attrs: map[string]string{"optoloop.token": "7"}, links: []string{"x-1.2/publish"}},
		testSpan{item: "x-1.3", id: "loop3", parent: "ep3", name: "worker.loop", start: 20 * time.Millisecond, end: 3 * time.Second,
			events: []string{"light.on", "light.off", "light.on"}},
		testSpan{item: "x-1.3", id: "chunk3", parent: "ep3", name: "replay.append", start: time.Second, end: time.Second + time.Millisecond,
			attrs: map[string]string{"optoloop.chunk.seq": "0"}},
		testSpan{item: "x-1.1", id: "ep1", parent: "root1", name: "worker.episode", start: -time.Hour, end: -time.Hour + 19*time.Second},
	)
	writeTraceFile(t, dir, "learner", "l0",
		testSpan{item: "x-1.2", id: "task", name: "learner.task", start: -50 * time.Minute, end: -40 * time.Minute,
			attrs: map[string]string{"optoloop.task": "x-1.2"}, links: []string{"x-1.1/ep1"}},
		testSpan{item: "x-1.2", id: "publish", parent: "task", name: "learner.publish", start: -41 * time.Minute, end: -41*time.Minute + time.Millisecond,
			attrs: map[string]string{"optoloop.policy_version": "4"}},
	)
	return dir
}

func TestTraceCommand(t *testing.T) {
	dir := testTraceDir(t)
	out, _, err := runTraceCmd(t, "x-1.3", "--trace-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out)
	for _, want := range []string{
		"trace " + telemetry.EpisodeTraceID("x-1.3").String() + " (item x-1.3): 5 spans",
		"  episode x-1.3 [coordinator/c1]",
		"    coordinator.lease [coordinator/c1]",
		"    worker.episode [worker/w-73-0]  token=7",
		"      worker.loop [worker/w-73-0]  events: light.on=2 light.off=1",
		"      replay.append [worker/w-73-0]  chunk.seq=0",
		"-> linked: learner.publish [learner/l0]  item=x-1.2 policy_version=4",
		"in learner.task  item=x-1.2 task=x-1.2 (1 links)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "ep1") || strings.Count(out, "worker.episode") != 1 {
		t.Error("spans of another trace in the waterfall")
	}

	// By trace id, with the links followed and an HTML page.
	page := filepath.Join(t.TempDir(), "trace.html")
	out, _, err = runTraceCmd(t, telemetry.EpisodeTraceID("x-1.3").String(), "--trace-dir", dir, "--links", "--html", page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  learner.task [learner/l0]  item=x-1.2 task=x-1.2 10m00.0s, 1 links",
		"    -> worker.episode [worker/w-73-0]  item=x-1.1 19.000s (trace " + telemetry.EpisodeTraceID("x-1.1").String(),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--links output lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "<!DOCTYPE html>") || !strings.Contains(string(b), "worker.loop") || !strings.Contains(string(b), "Followed links") {
		t.Errorf("--html page:\n%.400s", b)
	}
}

// TestTraceBadInput: one-line errors naming the problem.
func TestTraceBadInput(t *testing.T) {
	dir := testTraceDir(t)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no source", []string{"x-1.3"}, "give --trace-dir DIR or --jaeger URL"},
		{"both sources", []string{"x-1.3", "--trace-dir", dir, "--jaeger", "http://127.0.0.1:1"}, "not both"},
		{"missing dir", []string{"x-1.3", "--trace-dir", filepath.Join(dir, "nope")}, "nope"},
		{"empty dir", []string{"x-1.3", "--trace-dir", t.TempDir()}, "no *.jsonl trace files"},
		{"no such episode", []string{"x-1.99", "--trace-dir", dir}, "no trace of x-1.99 (trace id " + telemetry.EpisodeTraceID("x-1.99").String()},
		{"bad jaeger URL", []string{"x-1.3", "--jaeger", "127.0.0.1:16686"}, "want http(s)://host:port"},
		{"jaeger down", []string{"x-1.3", "--jaeger", "http://127.0.0.1:1", "--timeout", "2s"}, "jaeger"},
		{"no args", nil, "accepts 1 arg"},
		{"html in a missing dir", []string{"x-1.3", "--trace-dir", dir, "--html", filepath.Join(dir, "no", "x.html")}, "--html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runTraceCmd(t, tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line with %q", err, tt.wantErr)
			}
		})
	}
}

func TestTraceFromJaeger(t *testing.T) {
	tid := telemetry.EpisodeTraceID("x-1.3").String()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/traces/"+tid {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}`))
			return
		}
		w.Write([]byte(`{"data":[{"traceID":"` + tid + `","spans":[
{"traceID":"` + tid + `","spanID":"00000000000000a1","operationName":"episode x-1.3","references":[],"startTime":1764583200000000,"duration":5000000,
 "tags":[{"key":"optoloop.item","type":"string","value":"x-1.3"}],"logs":[],"processID":"p1","warnings":null},
{"traceID":"` + tid + `","spanID":"00000000000000a2","operationName":"worker.episode","references":[{"refType":"CHILD_OF","traceID":"` + tid + `","spanID":"00000000000000a1"}],
 "startTime":1764583200010000,"duration":3990000,"tags":[{"key":"optoloop.item","type":"string","value":"x-1.3"},{"key":"optoloop.token","type":"int64","value":7}],
 "logs":[{"timestamp":1764583200020000,"fields":[{"key":"event","type":"string","value":"light.on"}]}],"processID":"p2","warnings":null}],
"processes":{"p1":{"serviceName":"coordinator","tags":[{"key":"service.instance.id","type":"string","value":"c1"}]},
 "p2":{"serviceName":"worker","tags":[{"key":"service.instance.id","type":"string","value":"w-73-0"}]}},"warnings":null}],
"total":0,"limit":0,"offset":0,"errors":null}`))
	}))
	defer srv.Close()
	out, _, err := runTraceCmd(t, "x-1.3", "--jaeger", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "  worker.episode [worker/w-73-0]  token=7  events: light.on=1") || !strings.Contains(out, "episode x-1.3 [coordinator/c1]") {
		t.Errorf("output:\n%s", out)
	}
	if _, _, err := runTraceCmd(t, "x-1.4", "--jaeger", srv.URL); err == nil || !strings.Contains(err.Error(), "no trace of x-1.4") {
		t.Errorf("missing trace: %v", err)
	}
}

// tinyYAML is the smallest experiment of the whole protocol: one line, one arena, 3 collect
// episodes of 20 s, a training task of 300 updates, one episode per evaluation condition.
const tinyYAML = `
name: tiny
seed: 3
lines: ["446"]
arenas_per_line: 1
collect: { hours_per_line: 0.0112, episode_seconds: 20, light_probability: 0.3 }
train: { ensemble_size: 1, updates: 300, checkpoint_every: 100, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
`

// TestTraceOfClusterUp: `cluster up --trace-dir DIR` (separate processes: redis-server, 3
// coordinators, a worker, a learner) writes traces that `trace ID --trace-dir DIR` shows: an
// evaluation episode's whole path (the coordinator, the worker's episode, its replay writes and
// report) and, with --links, the training task it acted after, linking to the collect episodes.
func TestTraceOfClusterUp(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (make test installs it): ", err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "optoloop")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/optoloop/optoloop/cmd/optoloop").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	exp := filepath.Join(tmp, "tiny.yaml")
	if err := os.WriteFile(exp, []byte(tinyYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	traces, run := filepath.Join(tmp, "traces"), filepath.Join(tmp, "run")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	up := exec.CommandContext(ctx, bin, "cluster", "up", exp, "--no-render", "--trace-dir", traces, "--out", run,
		"--dir", filepath.Join(tmp, "cluster"), "--log-level", "warn")
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("cluster up: %v\n%s", err, out)
	}

	// The run folder names each episode's condition: one evaluation episode acted with the agent.
	var agent, collect []string
	files, _ := filepath.Glob(filepath.Join(run, "episodes", "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSuffix(filepath.Base(f), ".json")
		switch {
		case strings.Contains(string(b), `"condition": "agent"`):
			agent = append(agent, id)
		case strings.Contains(string(b), `"condition": "collect"`):
			collect = append(collect, id)
		}
	}
	if len(agent) != 1 || len(collect) != 3 {
		t.Fatalf("agent episodes %v, collect episodes %v: want 1 and 3", agent, collect)
	}

	out, _, err := runTraceCmd(t, agent[0], "--trace-dir", traces, "--links")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trace %s --links:\n%s", agent[0], out)
	waterfall, followed, _ := strings.Cut(out, "\n\n")
	for _, re := range []string{
		`^trace [0-9a-f]{32} \(item ` + regexp.QuoteMeta(agent[0]) + `\)`,
		`(?m)^ .* coordinator\.lease \[(optoloop-)?coordinator/.*token=`,
		`(?m)^ .* coordinator\.report \[(optoloop-)?coordinator/`,
		`(?m)^ .* worker\.episode \[(optoloop-)?worker/.*kind=agent .*token=`,
		`(?m)^ .* replay\.append \[(optoloop-)?worker/.*chunk\.seq=0`,
		`(?m)^ .* worker\.report \[(optoloop-)?worker/`,
		`(?m)-> linked: learner\.publish \[(optoloop-)?learner/.*policy_version=`,
	} {
		if !regexp.MustCompile(re).MatchString(waterfall) {
			t.Errorf("the waterfall has no line matching %s", re)
		}
	}
	if strings.Contains(waterfall, "not in the trace") {
		t.Error("a span of the episode's trace has a missing parent")
	}
	// --links: the learner.task above that version links to every collect episode.
	m := regexp.MustCompile(`(?m)^  learner\.task \[(optoloop-)?learner/.* (\d+) links \(trace`).FindStringSubmatch(followed)
	if m == nil || m[2] != "3" {
		t.Fatalf("--links: no learner.task with 3 links in\n%s", followed)
	}
	var linked []string
	for _, l := range regexp.MustCompile(`(?m)^    -> worker\.episode \[(optoloop-)?worker/\S+\]  item=(\S+)`).FindAllStringSubmatch(followed, -1) {
		linked = append(linked, l[2])
	}
	slices.Sort(linked)
	slices.Sort(collect)
	if !slices.Equal(linked, collect) {
		t.Errorf("the training task links to episodes %v, want the collect episodes %v", linked, collect)
	}
}
