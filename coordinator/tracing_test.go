package coordinator_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/telemetry"
)

// fileSpans reads every span of a trace dir file.
func fileSpans(t *testing.T, path string) []*tracepb.Span {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*tracepb.Span
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		req, err := telemetry.UnmarshalJSONLine(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				out = append(out, ss.Spans...)
			}
		}
	}
	return out
}

func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			if _, ok := kv.Value.Value.(*commonpb.AnyValue_StringValue); ok {
				return kv.Value.GetStringValue()
			}
			return kv.Value.String()
		}
	}
	return ""
}

// TestNodeTracesItems: every item's coordinator spans are in its own trace: a submit span per
// item, the root span ("episode ITEM", its id fixed) at the first lease, the lease under the
// root, a worker's report (sent inside its episode span through a follower, which forwards
// it) under the worker's span; and a lease that expires under a vanished worker gets a
// stand-in attempt span with the attempt's own id, failed. The node's metrics include the
// new instruments.
func TestNodeTracesItems(t *testing.T) {
	tel, err := telemetry.New(t.Context(), telemetry.Config{Service: "coordinator", Instance: "test", TraceDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	c := coordinatortest.New(t, 3, func(cfg *coordinator.Config) { cfg.TracerProvider = tel.TracerProvider() })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl := c.Client(t)
	id, err := cl.Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "a", ArenaID: "arena-a", Line: "446"}); err != nil {
		t.Fatal(err)
	}
	it, err := cl.Lease(ctx, api.LeaseRequest{Holder: "a", Type: plan.TypeEpisode, TTLSeconds: 30})
	if err != nil || it == nil {
		t.Fatalf("lease: %v %v", it, err)
	}
	// The worker's side: its episode span, and a traced client through a follower.
	wcfg := c.ClientConfig(c.Followers()[0].URL())
	wcfg.TracerProvider = tel.TracerProvider()
	wcl, err := api.NewClient(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := tel.TracerProvider().Tracer("test")
	ectx := telemetry.WithSpanIDs(telemetry.EpisodeContext(ctx, it.ID), telemetry.EpisodeTraceID(it.ID), telemetry.AttemptSpanID(it.ID, it.Token))
	ectx, ep := tr.Start(ectx, "worker.episode")
	if _, err := wcl.Report(ectx, api.ReportCmd{Holder: "a", ItemID: it.ID, Token: it.Token, Outcome: &episode.Outcome{Seconds: it.Seconds, ClosestCM: 1, Frames: 3}}); err != nil {
		t.Fatal(err)
	}
	ep.End()

	// A second lease whose holder vanishes: it expires.
	lost, err := cl.Lease(ctx, api.LeaseRequest{Holder: "a", Type: plan.TypeEpisode, TTLSeconds: 1})
	if err != nil || lost == nil {
		t.Fatalf("lease: %v %v", lost, err)
	}
	c.Clock().Advance(time.Minute)
	coordinatortest.WaitFor(t, 10*time.Second, "the lease to expire", func() bool {
		got, _ := c.Leader().FSM().Item(lost.ID)
		return got.State == api.StatePending
	})
	var spans []*tracepb.Span
	coordinatortest.WaitFor(t, 10*time.Second, "the stand-in span", func() bool {
		if err := tel.ForceFlush(ctx); err != nil {
			t.Fatal(err)
		}
		spans = fileSpans(t, tel.TraceFile())
		for _, s := range spans {
			if s.Name == "worker.episode" && attr(s, telemetry.AttrItem) == lost.ID {
				return true
			}
		}
		return false
	})

	byID := map[string]*tracepb.Span{}
	inTrace := func(item string) []*tracepb.Span {
		tid := telemetry.EpisodeTraceID(item)
		var out []*tracepb.Span
		for _, s := range spans {
			if hex.EncodeToString(s.TraceId) == tid.String() {
				out = append(out, s)
			}
		}
		return out
	}
	for _, s := range spans {
		byID[hex.EncodeToString(s.SpanId)] = s
	}
	find := func(item, name string) []*tracepb.Span {
		var out []*tracepb.Span
		for _, s := range inTrace(item) {
			if s.Name == name {
				out = append(out, s)
			}
		}
		return out
	}
	root := telemetry.EpisodeRootSpanID(it.ID).String()
	if r := find(it.ID, "episode "+it.ID); len(r) != 1 || hex.EncodeToString(r[0].SpanId) != root || len(r[0].ParentSpanId) != 0 {
		t.Fatalf("root span of %s: %v", it.ID, r)
	}
	if l := find(it.ID, "coordinator.lease"); len(l) != 1 || hex.EncodeToString(l[0].ParentSpanId) != root || attr(l[0], telemetry.AttrHolder) != "a" {
		t.Fatalf("lease span of %s: %v", it.ID, l)
	}
	if s := find(it.ID, "coordinator.submit"); len(s) != 1 || hex.EncodeToString(s[0].ParentSpanId) != root || attr(s[0], telemetry.AttrExperiment) != id {
		t.Fatalf("submit span of %s: %v", it.ID, s)
	}
	rep := find(it.ID, "coordinator.report")
	if len(rep) != 1 {
		t.Fatalf("report spans of %s: %v", it.ID, rep)
	}
	// report -> leader's server span -> follower's forward -> follower's server span -> the
	// worker's client span -> worker.episode.
	attempt := telemetry.AttemptSpanID(it.ID, it.Token).String()
	var chain []string
	for s := rep[0]; s != nil; s = byID[hex.EncodeToString(s.ParentSpanId)] {
		chain = append(chain, s.Name)
		if hex.EncodeToString(s.SpanId) == attempt {
			break
		}
	}
	if want := "coordinator.report < POST /v1/report < forward POST /v1/report < POST /v1/report < POST /v1/report < worker.episode"; strings.Join(chain, " < ") != want {
		t.Fatalf("report's ancestry:\n%s\nwant\n%s", strings.Join(chain, " < "), want)
	}
	st := find(lost.ID, "worker.episode")
	if len(st) != 1 || hex.EncodeToString(st[0].SpanId) != telemetry.AttemptSpanID(lost.ID, lost.Token).String() ||
		st[0].Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || !strings.Contains(st[0].Status.GetMessage(), "lease expired") ||
		hex.EncodeToString(st[0].ParentSpanId) != telemetry.EpisodeRootSpanID(lost.ID).String() {
		t.Fatalf("stand-in of the lost attempt: %v", st)
	}
	// Items never leased have their submit span but no root yet; untraced calls (polls, the
	// status the harness reads, /metrics) make no server span.
	for _, s := range spans {
		if s.Kind == tracepb.Span_SPAN_KIND_SERVER && !strings.Contains(s.Name, "/v1/report") {
			t.Errorf("server span %q for an untraced request", s.Name)
		}
	}

	resp, err := c.HTTPClient().Get(c.Leader().URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"optoloop_coordinator_leader_changes_total ", "optoloop_coordinator_applies_total ",
		"optoloop_coordinator_raft_commit_seconds_bucket{", `optoloop_coordinator_items{state="done",type="episode"} 1`,
		`optoloop_coordinator_raft_state{state="Leader"} 1`, "optoloop_coordinator_leases_expired_total 1\n",
		"optoloop_coordinator_leases_granted_total 2\n", `optoloop_coordinator_http_requests_total{code="200"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
}

// syncRecorder keeps the records of every node's logger.
type syncRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *syncRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *syncRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *syncRecorder) WithAttrs(as []slog.Attr) slog.Handler { return &withAttrs{r, as} }
func (r *syncRecorder) WithGroup(string) slog.Handler         { return r }

type withAttrs struct {
	*syncRecorder
	as []slog.Attr
}

func (w *withAttrs) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(w.as...)
	return w.syncRecorder.Handle(ctx, rec)
}
func (w *withAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return &withAttrs{w.syncRecorder, append(append([]slog.Attr{}, w.as...), as...)}
}

func (r *syncRecorder) has(f func(slog.Record) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if f(rec) {
			return true
		}
	}
	return false
}

func recAttr(rec slog.Record, key string) string {
	v := ""
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// TestRaftWarningsReachSlog: with a follower cut off, the leader's Raft warns that it cannot
// contact it, and the line reaches slog at WARN (not INFO); leadership gained is logged at
// INFO, and the follower that loses its leader warns.
func TestRaftWarningsReachSlog(t *testing.T) {
	rec := &syncRecorder{}
	c := coordinatortest.New(t, 3, func(cfg *coordinator.Config) { cfg.Logger = slog.New(rec) })
	if !rec.has(func(r slog.Record) bool { return r.Message == "raft: leadership gained" && r.Level == slog.LevelInfo }) {
		t.Fatal("no leadership gained line at INFO")
	}
	f := c.Followers()[0]
	c.SetPartitioned(f.ID(), true)
	coordinatortest.WaitFor(t, 20*time.Second, "a Raft warning at WARN", func() bool {
		return rec.has(func(r slog.Record) bool {
			return r.Level >= slog.LevelWarn && recAttr(r, "component") == "raft"
		})
	})
	coordinatortest.WaitFor(t, 20*time.Second, "the cut-off follower to warn that it lost its leader", func() bool {
		return rec.has(func(r slog.Record) bool {
			return r.Level == slog.LevelWarn && r.Message == "raft: leader lost" && recAttr(r, "node") == f.ID()
		})
	})
	c.SetPartitioned(f.ID(), false)
}
