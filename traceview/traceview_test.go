package traceview_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/optoloop/optoloop/telemetry"
	"github.com/optoloop/optoloop/traceview"
)

func episodeTraceID(item string) string { return telemetry.EpisodeTraceID(item).String() }

// spanID makes a distinct span id from a name.
func spanID(name string) string {
	sum := sha256.Sum256([]byte("span " + name))
	return hex.EncodeToString(sum[:8])
}

// t0 is the start of the test traces.
var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// tspan describes one span of a hand-written trace file.
type tspan struct {
	trace, id, parent, name string
	start, end              time.Duration // from t0
	attrs                   map[string]any
	events                  []string // names; at start+1ms each
	links                   [][2]string
	failed                  bool
}

// request builds an OTLP ExportTraceServiceRequest of spans of one resource with the OTLP
// proto types.
func request(t *testing.T, service, instance string, spans ...tspan) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	id := func(h string) []byte {
		if h == "" {
			return nil
		}
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ns := func(d time.Duration) uint64 { return uint64(t0.Add(d).UnixNano()) }
	kv := func(m map[string]any) []*commonpb.KeyValue {
		var out []*commonpb.KeyValue
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v := &commonpb.AnyValue{}
			switch x := m[k].(type) {
			case string:
				v.Value = &commonpb.AnyValue_StringValue{StringValue: x}
			case int:
				v.Value = &commonpb.AnyValue_IntValue{IntValue: int64(x)}
			case bool:
				v.Value = &commonpb.AnyValue_BoolValue{BoolValue: x}
			}
			out = append(out, &commonpb.KeyValue{Key: k, Value: v})
		}
		return out
	}
	var ps []*tracepb.Span
	for _, s := range spans {
		p := &tracepb.Span{
			TraceId: id(s.trace), SpanId: id(s.id), ParentSpanId: id(s.parent), Name: s.name,
			Kind:              tracepb.Span_SPAN_KIND_INTERNAL,
			StartTimeUnixNano: ns(s.start), EndTimeUnixNano: ns(s.end),
			Attributes: kv(s.attrs), Status: &tracepb.Status{},
		}
		for i, e := range s.events {
			p.Events = append(p.Events, &tracepb.Span_Event{Name: e, TimeUnixNano: ns(s.start + time.Duration(i+1)*time.Millisecond)})
		}
		for _, l := range s.links {
			p.Links = append(p.Links, &tracepb.Span_Link{TraceId: id(l[0]), SpanId: id(l[1])})
		}
		if s.failed {
			p.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "lease lost"}
		}
		ps = append(ps, p)
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: kv(map[string]any{"service.name": service, "service.instance.id": instance})},
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "optoloop"}, Spans: ps}},
	}}}
}

// protoLine encodes req with protojson as it is (ids in base64, enums by name), on one line.
func protoLine(t *testing.T, req *coltracepb.ExportTraceServiceRequest) []byte {
	t.Helper()
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		t.Fatal(err)
	}
	return append(c.Bytes(), '\n')
}

// otlpLine encodes req as the trace dir's writer does (OTLP/JSON: hex ids, enums as numbers).
func otlpLine(t *testing.T, req *coltracepb.ExportTraceServiceRequest) []byte {
	t.Helper()
	b, err := telemetry.MarshalJSONLine(req)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// The test cluster's traces: evaluation episode demo-1.40 (attempt 1 failed, attempt 2 done,
// acting with the policy version published by training task demo-1.20), training task
// demo-1.20 (linking to collect episodes demo-1.1, in the dir, and demo-1.2, not in it) and
// collect episode demo-1.1.
var (
	evalTrace    = episodeTraceID("demo-1.40")
	taskTrace    = episodeTraceID("demo-1.20")
	collectTrace = episodeTraceID("demo-1.1")
	missingTrace = episodeTraceID("demo-1.2")
)

func writeTraceDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	item := func(id string, more map[string]any) map[string]any {
		m := map[string]any{"optoloop.item": id}
		for k, v := range more {
			m[k] = v
		}
		return m
	}
	files := map[string][]byte{
		"coordinator-c1-100.jsonl": append(
			protoLine(t, request(t, "coordinator", "c1",
				tspan{trace: evalTrace, id: spanID("submit"), name: "coordinator.submit", start: 0, end: time.Millisecond, attrs: item("demo-1.40", nil)},
				tspan{trace: evalTrace, id: spanID("lease1"), parent: spanID("submit"), name: "coordinator.lease", start: 10 * time.Millisecond, end: 12 * time.Millisecond, attrs: item("demo-1.40", map[string]any{"optoloop.token": "tok-1"})},
			)),
			protoLine(t, request(t, "coordinator", "c1",
				tspan{trace: evalTrace, id: spanID("lease2"), parent: spanID("submit"), name: "coordinator.lease", start: 2 * time.Second, end: 2*time.Second + 2*time.Millisecond, attrs: item("demo-1.40", map[string]any{"optoloop.token": "tok-2"})},
				tspan{trace: evalTrace, id: spanID("report"), parent: spanID("wreport"), name: "coordinator.report", start: 3900 * time.Millisecond, end: 3950 * time.Millisecond, attrs: item("demo-1.40", nil)},
			))...),
		"worker-w1-200.jsonl": otlpLine(t, request(t, "worker", "w1",
			tspan{trace: evalTrace, id: spanID("ep1"), parent: spanID("lease1"), name: "worker.episode", start: 20 * time.Millisecond, end: 1500 * time.Millisecond,
				attrs: item("demo-1.40", map[string]any{"optoloop.token": "tok-1", "optoloop.attempt": 1, "optoloop.failed": true}), failed: true},
			tspan{trace: evalTrace, id: spanID("ep2"), parent: spanID("lease2"), name: "worker.episode", start: 2010 * time.Millisecond, end: 4 * time.Second,
				attrs: item("demo-1.40", map[string]any{"optoloop.token": "tok-2", "optoloop.attempt": 2}), links: [][2]string{{taskTrace, spanID("publish")}}},
			tspan{trace: evalTrace, id: spanID("loop2"), parent: spanID("ep2"), name: "worker.loop", start: 2100 * time.Millisecond, end: 3800 * time.Millisecond,
				attrs: item("demo-1.40", nil), events: []string{"light.on", "light.off", "light.on", "tracking.lost"}},
			tspan{trace: evalTrace, id: spanID("chunk0"), parent: spanID("ep2"), name: "replay.append", start: 2500 * time.Millisecond, end: 2510 * time.Millisecond, attrs: item("demo-1.40", map[string]any{"optoloop.chunk.seq": 0})},
			tspan{trace: evalTrace, id: spanID("wreport"), parent: spanID("ep2"), name: "worker.report", start: 3850 * time.Millisecond, end: 3990 * time.Millisecond, attrs: item("demo-1.40", nil)},
			tspan{trace: collectTrace, id: spanID("collect"), name: "worker.episode", start: -time.Hour, end: -time.Hour + 20*time.Second, attrs: item("demo-1.1", map[string]any{"optoloop.attempt": 1})},
		)),
		"learner-l1-300.jsonl": otlpLine(t, request(t, "learner", "l1",
			tspan{trace: taskTrace, id: spanID("task"), name: "learner.task", start: -30 * time.Minute, end: -10 * time.Minute,
				attrs: map[string]any{"optoloop.task": "demo-1.20"}, links: [][2]string{{collectTrace, spanID("collect")}, {missingTrace, spanID("gone")}}},
			tspan{trace: taskTrace, id: spanID("round"), parent: spanID("task"), name: "learner.round", start: -29 * time.Minute, end: -11 * time.Minute},
			tspan{trace: taskTrace, id: spanID("publish"), parent: spanID("round"), name: "learner.publish", start: -11 * time.Minute, end: -11*time.Minute + 5*time.Millisecond,
				attrs: map[string]any{"optoloop.policy_version": 3}},
		)),
		"notes.txt": []byte("not a trace file\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func render(t *testing.T, tree *traceview.Tree, follow bool) string {
	t.Helper()
	var b bytes.Buffer
	if err := tree.WriteText(&b, traceview.TextOptions{Follow: follow}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// lineWith returns the first line of out holding every part, or fails.
func lineWith(t *testing.T, out string, parts ...string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	t.Fatalf("no line with %q in\n%s", parts, out)
	return ""
}

func TestWaterfallFromTraceDir(t *testing.T) {
	ctx := context.Background()
	d, err := traceview.OpenDir(writeTraceDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Skipped) != 0 {
		t.Errorf("skipped %v", d.Skipped)
	}
	spans, err := d.Trace(ctx, evalTrace)
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 9 {
		t.Fatalf("%d spans of the evaluation trace, want 9", len(spans))
	}
	tree := traceview.Waterfall(spans, evalTrace)
	if tree.Item() != "demo-1.40" || tree.Len() != 9 || tree.Duration() != 4*time.Second {
		t.Errorf("item %q, %d spans, %v", tree.Item(), tree.Len(), tree.Duration())
	}
	var order []string
	for _, n := range tree.Walk() {
		order = append(order, strings.Repeat(".", n.Depth)+n.Span.Name)
	}
	want := []string{"coordinator.submit", ".coordinator.lease", "..worker.episode", ".coordinator.lease",
		"..worker.episode", "...worker.loop", "...replay.append", "...worker.report", "....coordinator.report"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("order\n%v, want\n%v", order, want)
	}

	out := render(t, tree, false)
	t.Logf("\n%s", out)
	lineWith(t, out, "trace "+evalTrace, "item demo-1.40", "9 spans", "coordinator, worker", "4.000s")
	first := lineWith(t, out, "worker.episode", "attempt=1")
	for _, p := range []string{"[worker/w1]", "token=tok-1", "FAILED: lease lost", "+20.0ms", "1.480s"} {
		if !strings.Contains(first, p) {
			t.Errorf("failed attempt line %q lacks %q", first, p)
		}
	}
	if strings.Contains(first, "item=") {
		t.Errorf("the trace's own item is repeated: %q", first)
	}
	lineWith(t, out, "    worker.episode [worker/w1]", "attempt=2", "token=tok-2")
	lineWith(t, out, "      worker.loop", "events: light.on=2 light.off=1 tracking.lost=1")
	lineWith(t, out, "replay.append", "chunk.seq=0")
	lineWith(t, out, "        coordinator.report [coordinator/c1]")
	// Not resolved: the link is shown by its ids.
	lineWith(t, out, "-> linked: (trace "+taskTrace+", span "+spanID("publish")+")")
	bar := lineWith(t, out, "coordinator.submit")
	if !strings.Contains(bar, "|=") || strings.Count(bar, "=") != 1 {
		t.Errorf("the 1ms root span of a 4s trace should have a one-character bar at the start: %q", bar)
	}
	full := lineWith(t, out, "attempt=2")
	if n := strings.Count(full, "="); n < 19 || n > 22 {
		t.Errorf("a span over half the trace should have a bar of about 20 of 40 characters: %d in %q", n, full)
	}

	if err := traceview.Resolve(ctx, d, tree, false); err != nil {
		t.Fatal(err)
	}
	out = render(t, tree, false)
	lineWith(t, out, "-> linked: learner.publish [learner/l1]", "policy_version=3", "(trace "+taskTrace+", span "+spanID("publish")+")", "in learner.task", "task=demo-1.20", "(2 links)")

	if err := traceview.Resolve(ctx, d, tree, true); err != nil {
		t.Fatal(err)
	}
	out = render(t, tree, true)
	t.Logf("\n%s", out)
	lineWith(t, out, "worker.episode [worker/w1] -> learner.publish")
	lineWith(t, out, "  learner.task [learner/l1]", "task=demo-1.20", "20m00.0s, 2 links", "trace "+taskTrace)
	lineWith(t, out, "    -> worker.episode [worker/w1]", "item=demo-1.1", "20.000s", "trace "+collectTrace)
	lineWith(t, out, "    -> span "+spanID("gone")+" of trace "+missingTrace+" (not in the source)")

	// The task's own trace: the task's links are listed under it.
	task, err := d.Trace(ctx, taskTrace)
	if err != nil {
		t.Fatal(err)
	}
	tt := traceview.Waterfall(task, taskTrace)
	if err := traceview.Resolve(ctx, d, tt, false); err != nil {
		t.Fatal(err)
	}
	out = render(t, tt, false)
	lineWith(t, out, "learner.task", "task=demo-1.20")
	lineWith(t, out, "-> linked: worker.episode [worker/w1]", "item=demo-1.1")
	lineWith(t, out, "-> linked: span "+spanID("gone")+" of trace "+missingTrace+" (not in the source)")
}

func TestTraceDirErrors(t *testing.T) {
	dir := writeTraceDir(t)
	d, err := traceview.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Trace(context.Background(), missingTrace); !errors.Is(err, traceview.ErrNotFound) {
		t.Errorf("missing trace: %v, want ErrNotFound", err)
	}
	if _, err := d.Trace(context.Background(), "xyz"); err == nil {
		t.Error("a trace id that is not hex was accepted")
	}
	if _, err := traceview.OpenDir(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing dir: %v", err)
	}
	if _, err := traceview.OpenDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no *.jsonl") {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := traceview.OpenDir(filepath.Join(dir, "notes.txt")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: %v", err)
	}

	// A killed writer's half line is skipped and listed; the whole lines before it are read.
	f, err := os.OpenFile(filepath.Join(dir, "worker-w1-200.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"`)
	f.Close()
	d, err = traceview.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Skipped) != 1 || !strings.Contains(d.Skipped[0], "worker-w1-200.jsonl:2") {
		t.Errorf("skipped %q, want the second line of the worker's file", d.Skipped)
	}
	if spans, err := d.Trace(context.Background(), evalTrace); err != nil || len(spans) != 9 {
		t.Errorf("after a half line: %d spans, %v", len(spans), err)
	}
}

// TestParseRequestEncodings: protojson's own encoding of the OTLP types (base64 ids, enum
// names, 64-bit numbers as strings) and snake_case field names are read as the OTLP/JSON one.
func TestParseRequestEncodings(t *testing.T) {
	tid, _ := hex.DecodeString(evalTrace)
	sid, _ := hex.DecodeString(spanID("a"))
	pid, _ := hex.DecodeString(spanID("b"))
	b64 := base64.StdEncoding.EncodeToString
	line := `{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"worker"}},
	{"key":"service.instance.id","value":{"string_value":"w9"}}]},
	"scope_spans":[{"spans":[{"trace_id":"` + b64(tid) + `","span_id":"` + b64(sid) + `","parent_span_id":"` + b64(pid) + `",
	"name":"worker.episode","kind":"SPAN_KIND_CLIENT","start_time_unix_nano":"1000000000","end_time_unix_nano":2500000000,
	"attributes":[{"key":"optoloop.attempt","value":{"intValue":"2"}},{"key":"x","value":{"doubleValue":0.5}},
	{"key":"l","value":{"arrayValue":{"values":[{"stringValue":"a"},{"boolValue":true}]}}}],
	"events":[{"time_unix_nano":"1500000000","name":"light.on"}],
	"links":[{"traceId":"` + b64(tid) + `","spanId":"` + spanID("c") + `"}],
	"status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}]}`
	spans, err := traceview.ParseRequest([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if s.TraceID != evalTrace || s.SpanID != spanID("a") || s.ParentID != spanID("b") {
		t.Errorf("ids %s %s %s", s.TraceID, s.SpanID, s.ParentID)
	}
	if s.Service != "worker" || s.Instance != "w9" || s.Kind != "client" || s.Duration() != 1500*time.Millisecond {
		t.Errorf("span %+v", s)
	}
	if v, _ := s.Attr("optoloop.attempt"); v != "2" {
		t.Errorf("attempt %q", v)
	}
	if v, _ := s.Attr("l"); v != "[a, true]" {
		t.Errorf("array %q", v)
	}
	if s.Status != traceview.StatusError || s.StatusMessage != "boom" || !s.Failed() {
		t.Errorf("status %v %q", s.Status, s.StatusMessage)
	}
	if len(s.Events) != 1 || s.Events[0].Name != "light.on" || len(s.Links) != 1 || s.Links[0].SpanID != spanID("c") {
		t.Errorf("events %v links %v", s.Events, s.Links)
	}
	for _, bad := range []string{`[1]`, `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"00"}]}]}]}`, `{}`, `nope`} {
		if _, err := traceview.ParseRequest([]byte(bad)); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}

func TestHTML(t *testing.T) {
	ctx := context.Background()
	d, err := traceview.OpenDir(writeTraceDir(t))
	if err != nil {
		t.Fatal(err)
	}
	spans, err := d.Trace(ctx, evalTrace)
	if err != nil {
		t.Fatal(err)
	}
	tree := traceview.Waterfall(spans, evalTrace)
	if err := traceview.Resolve(ctx, d, tree, true); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tree.WriteHTML(&b, true); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<!DOCTYPE html>", "item demo-1.40", "worker.episode", "replay.append", `class="bar failed"`,
		`class="tick"`, "light.on at &#43;2.101s", "linked: learner.publish", "learner.task [learner/l1]", "Followed links", "left:50.250%"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "src=", "href=", "@import", "ZgotmplZ"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q: not self-contained or not rendered", bad)
		}
	}
}

// TestWaterfallMissingParentsAndStandIns: spans whose parent never arrived (a killed worker's
// episode span) are roots marked as such; the coordinator's optoloop.lost stand-in for an
// attempt gives way to the attempt's own span when both are there.
func TestWaterfallMissingParentsAndStandIns(t *testing.T) {
	tr := evalTrace
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	root := traceview.Span{TraceID: tr, SpanID: spanID("root"), Name: "episode demo-1.40", Start: at(0), End: at(10 * time.Second)}
	standIn := traceview.Span{TraceID: tr, SpanID: spanID("attempt1"), ParentID: spanID("root"), Name: "worker.episode", Service: "coordinator",
		Start: at(time.Second), End: at(5 * time.Second), Attrs: []traceview.Attr{{Key: "optoloop.lost", Value: "true"}}, Status: traceview.StatusError}
	own := traceview.Span{TraceID: tr, SpanID: spanID("attempt1"), ParentID: spanID("root"), Name: "worker.episode", Service: "worker",
		Start: at(time.Second), End: at(4 * time.Second)}
	chunk := traceview.Span{TraceID: tr, SpanID: spanID("chunk"), ParentID: spanID("attempt1"), Name: "replay.append", Service: "worker",
		Start: at(2 * time.Second), End: at(2*time.Second + time.Millisecond)}
	orphan := traceview.Span{TraceID: tr, SpanID: spanID("orphan"), ParentID: spanID("never"), Name: "replay.append", Service: "worker",
		Start: at(6 * time.Second), End: at(6*time.Second + time.Millisecond)}
	other := traceview.Span{TraceID: taskTrace, SpanID: spanID("x"), Name: "learner.task"}

	tree := traceview.Waterfall([]traceview.Span{chunk, standIn, orphan, root, other}, tr)
	out := render(t, tree, false)
	t.Logf("\n%s", out)
	lineWith(t, out, "  worker.episode [coordinator]", "lost=true", "FAILED")
	lineWith(t, out, "    replay.append [worker]")
	lineWith(t, out, "  replay.append [worker]", "(parent "+spanID("never")+" not in the trace)")
	if tree.Len() != 4 || len(tree.Roots) != 2 {
		t.Errorf("%d spans, %d roots; want 4 and 2", tree.Len(), len(tree.Roots))
	}

	tree = traceview.Waterfall([]traceview.Span{standIn, chunk, own, root}, tr)
	out = render(t, tree, false)
	if strings.Contains(out, "lost=true") || !strings.Contains(out, "  worker.episode [worker]") || tree.Len() != 3 {
		t.Errorf("the stand-in was kept over the attempt's own span:\n%s", out)
	}
}
