package cluster_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/optoloop/optoloop/cluster"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/telemetry"
)

// receivedSpan is a span as an OTLP receiver got it, with the service that sent it.
type receivedSpan struct {
	*tracepb.Span
	service string
}

func (s receivedSpan) attr(key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return anyString(kv.Value)
		}
	}
	return ""
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	}
	return v.String()
}

func (s receivedSpan) traceID() string { return hex.EncodeToString(s.TraceId) }
func (s receivedSpan) spanID() string  { return hex.EncodeToString(s.SpanId) }

// otlpReceiver is an OTLP/HTTP traces endpoint that decodes the real protocol
// (ExportTraceServiceRequest in protobuf on POST /v1/traces).
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []receivedSpan
	bad   []string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			http.NotFound(w, req)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		msg := &coltracepb.ExportTraceServiceRequest{}
		if err == nil {
			err = proto.Unmarshal(b, msg)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if ct := req.Header.Get("Content-Type"); err != nil || ct != "application/x-protobuf" {
			r.bad = append(r.bad, fmt.Sprintf("content type %q: %v", ct, err))
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		for _, rs := range msg.ResourceSpans {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					service = kv.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					r.spans = append(r.spans, receivedSpan{Span: s, service: service})
				}
			}
		}
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *otlpReceiver) all() []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// traceYAML: one line, two arenas; four collect episodes of 10 s (2.5 s at --pace 4), a short
// training task, one episode per evaluation condition.
const traceYAML = `
name: traced
seed: 11
lines: ["73"]
arenas_per_line: 2
collect: { hours_per_line: 0.00834, episode_seconds: 10, light_probability: 0.3 }
train: { ensemble_size: 1, updates: 300, checkpoint_every: 100, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
`

// TestClusterTraces runs a small experiment on a cluster of separate processes exporting over
// OTLP/HTTP to a receiver in the test, kills (-9) a worker in the middle of a collect
// episode, and checks the traces: one per episode (its id from the item id) holding the
// coordinator's spans, the worker's and its replay writes; the training span links to the
// accepted attempt of every collect episode of its line and to no abandoned one; an
// evaluation episode links to the learner.publish span of the version it acted with; and the
// killed episode's trace holds the lost attempt (failed) and the re-run (OK).
func TestClusterTraces(t *testing.T) {
	needCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rcv := newOTLPReceiver(t)
	c := up(t, ctx, cluster.Config{Lines: []string{"73"}, ArenasPerLine: 2, Workers: 2, Learners: 1, NoRender: true,
		Pace: 4, LeaseTTL: 2 * time.Second, OTLPEndpoint: rcv.srv.URL})
	t0 := time.Now()
	id, err := c.Submit(ctx, []byte(traceYAML))
	if err != nil {
		t.Fatal(err)
	}
	w := watcher{t: t, ctx: ctx, c: c, id: id}

	// A worker process killed (-9) while it holds a collect episode it has run for a second.
	victim := w.killWorkerMidEpisode(t0)
	view, err := c.Wait(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: experiment done", time.Since(t0).Round(time.Millisecond))
	// Every process flushes its spans as it exits.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	spans := rcv.all()
	rcv.mu.Lock()
	if len(rcv.bad) > 0 {
		t.Errorf("receiver refused %d requests: %v", len(rcv.bad), rcv.bad[0])
	}
	rcv.mu.Unlock()
	t.Logf("received %d spans", len(spans))

	byTrace := map[string][]receivedSpan{}
	bySpan := map[string]receivedSpan{}
	for _, s := range spans {
		byTrace[s.traceID()] = append(byTrace[s.traceID()], s)
		bySpan[s.traceID()+"/"+s.spanID()] = s
	}
	named := func(ss []receivedSpan, name string) []receivedSpan {
		var out []receivedSpan
		for _, s := range ss {
			if s.Name == name {
				out = append(out, s)
			}
		}
		return out
	}

	// One trace per episode; every span naming an item is in that item's trace.
	for _, s := range spans {
		if it := s.attr(telemetry.AttrItem); it != "" && s.traceID() != telemetry.EpisodeTraceID(it).String() {
			t.Errorf("span %s of %s (%s) is in trace %s, not the item's", s.Name, it, s.service, s.traceID())
		}
	}
	var task api.Item
	var collect, evals []api.Item
	for _, it := range view.Items {
		switch {
		case it.Type == plan.TypeTrain:
			task = it
		case it.Kind == episode.KindCollect:
			collect = append(collect, it)
		default:
			evals = append(evals, it)
		}
	}
	if task.ID == "" || len(collect) < 2 || len(evals) < 2 {
		t.Fatalf("items: task %q, %d collect, %d evaluation", task.ID, len(collect), len(evals))
	}
	for _, it := range append(slices.Clone(collect), evals...) {
		ss := byTrace[telemetry.EpisodeTraceID(it.ID).String()]
		services := map[string]bool{}
		for _, s := range ss {
			services[s.service] = true
		}
		root := named(ss, "episode "+it.ID)
		if len(root) != 1 || root[0].spanID() != telemetry.EpisodeRootSpanID(it.ID).String() || !services["optoloop-coordinator"] || !services["optoloop-worker"] {
			t.Errorf("trace of %s: root %d, services %v", it.ID, len(root), services)
		}
		for _, name := range []string{"coordinator.submit", "coordinator.lease", "coordinator.report", "worker.prepare", "worker.background", "worker.loop", "replay.append", "worker.report"} {
			if len(named(ss, name)) == 0 && !(name == "coordinator.submit" && it.Phase != plan.PhaseCollect) {
				t.Errorf("trace of %s (%s) has no %s span (%d spans)", it.ID, it.Kind, name, len(ss))
			}
		}
		// The accepted attempt's span ended OK, and its chunks' spans are its children.
		accepted := telemetry.AttemptSpanID(it.ID, it.Result.Token).String()
		ep, ok := bySpan[telemetry.EpisodeTraceID(it.ID).String()+"/"+accepted]
		if !ok || ep.Name != "worker.episode" || ep.Status.GetCode() != tracepb.Status_STATUS_CODE_OK {
			t.Errorf("%s: accepted attempt %d's worker.episode span: %v %v", it.ID, it.Result.Token, ok, ep.Span)
		}
		for _, a := range named(ss, "replay.append") {
			if a.attr(telemetry.AttrToken) == fmt.Sprint(it.Result.Token) && hex.EncodeToString(a.ParentSpanId) != accepted {
				t.Errorf("%s: replay.append %s is not a child of its attempt's span", it.ID, a.attr(telemetry.AttrChunkSeq))
			}
		}
	}

	// The killed episode: the lost attempt (the coordinator's stand-in, failed) and the
	// re-run (OK), both worker.episode spans of its trace.
	vt := byTrace[telemetry.EpisodeTraceID(victim.ID).String()]
	attempts := named(vt, "worker.episode")
	sort.Slice(attempts, func(i, j int) bool { return attempts[i].StartTimeUnixNano < attempts[j].StartTimeUnixNano })
	var final api.Item
	for _, it := range view.Items {
		if it.ID == victim.ID {
			final = it
		}
	}
	if len(attempts) != 2 {
		t.Fatalf("the killed episode %s has %d worker.episode spans, want 2", victim.ID, len(attempts))
	}
	lost, rerun := attempts[0], attempts[1]
	if lost.spanID() != telemetry.AttemptSpanID(victim.ID, victim.Token).String() || lost.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR ||
		lost.attr(telemetry.AttrFailed) != "true" || lost.attr(telemetry.AttrLost) != "true" {
		t.Errorf("lost attempt: %v", lost.Span)
	}
	if rerun.spanID() != telemetry.AttemptSpanID(victim.ID, final.Result.Token).String() || rerun.Status.GetCode() != tracepb.Status_STATUS_CODE_OK || rerun.service != "optoloop-worker" {
		t.Errorf("re-run attempt (want lease %d): %v", final.Result.Token, rerun.Span)
	}

	// The training span links to the accepted attempt of every collect episode, and to no
	// abandoned one (the killed attempt's chunks are in the replay too).
	tasks := named(byTrace[telemetry.EpisodeTraceID(task.ID).String()], "learner.task")
	var done *receivedSpan
	for i := range tasks {
		if tasks[i].spanID() == telemetry.AttemptSpanID(task.ID, task.Result.Token).String() {
			done = &tasks[i]
		}
	}
	if done == nil {
		t.Fatalf("no learner.task span of the accepted attempt (%d learner.task spans)", len(tasks))
	}
	var links, want []string
	for _, l := range done.Links {
		links = append(links, hex.EncodeToString(l.TraceId)+"/"+hex.EncodeToString(l.SpanId))
	}
	for _, it := range collect {
		want = append(want, telemetry.EpisodeTraceID(it.ID).String()+"/"+telemetry.AttemptSpanID(it.ID, it.Result.Token).String())
	}
	slices.Sort(links)
	slices.Sort(want)
	if !slices.Equal(links, want) {
		t.Errorf("learner.task links\n%v\nwant the accepted collect attempts\n%v", links, want)
	}
	abandoned := telemetry.EpisodeTraceID(victim.ID).String() + "/" + telemetry.AttemptSpanID(victim.ID, victim.Token).String()
	if slices.Contains(links, abandoned) {
		t.Errorf("learner.task links to the abandoned attempt %s", abandoned)
	}
	for _, l := range links {
		if s, ok := bySpan[l]; !ok || s.Name != "worker.episode" {
			t.Errorf("link %s names no worker.episode span received", l)
		}
	}
	if len(named(byTrace[telemetry.EpisodeTraceID(task.ID).String()], "learner.round")) == 0 {
		t.Error("no learner.round span")
	}

	// An evaluation episode that acted links to the learner.publish span of its version.
	acted := 0
	for _, it := range evals {
		if !it.Kind.Acts() {
			continue
		}
		acted++
		ep := bySpan[telemetry.EpisodeTraceID(it.ID).String()+"/"+telemetry.AttemptSpanID(it.ID, it.Result.Token).String()]
		if ep.Span == nil {
			t.Errorf("%s: no worker.episode span", it.ID)
			continue
		}
		version := fmt.Sprint(it.Result.Outcome.PolicyVersion)
		found := false
		for _, l := range ep.Links {
			p, ok := bySpan[hex.EncodeToString(l.TraceId)+"/"+hex.EncodeToString(l.SpanId)]
			if ok && p.Name == "learner.publish" && p.attr(telemetry.AttrPolicyVersion) == version && p.attr(telemetry.AttrTask) == task.ID {
				found = true
			}
		}
		if !found || ep.attr(telemetry.AttrPolicyVersion) != version {
			t.Errorf("%s (%s, version %s) links to no learner.publish span of its version: %v", it.ID, it.Kind, version, ep.Links)
		}
	}
	if acted == 0 {
		t.Error("no evaluation episode acted")
	}
}
