package fleet_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/memstore"
	"github.com/optoloop/optoloop/station"
	"github.com/optoloop/optoloop/telemetry"
)

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			switch v := kv.Value.Value.(type) {
			case *commonpb.AnyValue_StringValue:
				return v.StringValue
			case *commonpb.AnyValue_IntValue:
				return fmt.Sprint(v.IntValue)
			case *commonpb.AnyValue_BoolValue:
				return fmt.Sprint(v.BoolValue)
			}
		}
	}
	return ""
}

// TestRolesTrace runs a whole one-line experiment in this process (coordinator.Local,
// memstore) with tracing to a trace dir, the first collect episode's first lease lost by a
// holder that vanished, and checks the roles' spans: every attempt's span in its item's trace
// with its fixed id, replay.append children whose traceparent the chunks carry, the training
// span linked to the accepted attempt of every collect episode and to no abandoned one, a
// round and a publish span per version, and the acting evaluation episode linked to the
// publish span of its version (memstore keeps the traceparent beside the blob).
func TestRolesTrace(t *testing.T) {
	ctx := context.Background()
	tel, err := telemetry.New(ctx, telemetry.Config{Service: "run", Instance: "test", TraceDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	tp, mp := tel.TracerProvider(), tel.MeterProvider()
	lcfg := coordinator.DefaultLocalConfig()
	lcfg.TracerProvider = tp
	local, err := coordinator.NewLocal(lcfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := local.Submit(ctx, []byte(trainYAML))
	if err != nil {
		t.Fatal(err)
	}
	replayStore, params := memstore.NewReplay(), memstore.NewParams()

	// A holder that vanishes: its lease of the first collect episode expires.
	if err := local.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "ghost", ArenaID: "ghost", Line: "446"}); err != nil {
		t.Fatal(err)
	}
	ghost, err := local.Lease(ctx, api.LeaseRequest{Holder: "ghost", Type: plan.TypeEpisode, TTLSeconds: 1})
	if err != nil || ghost == nil {
		t.Fatalf("ghost lease: %v %v", ghost, err)
	}
	if err := local.Advance(time.Minute); err != nil {
		t.Fatal(err)
	}

	scfg := station.DefaultConfig()
	scfg.ArenaID, scfg.Catalogue, scfg.Line, scfg.NoRender = "sim-446", catalogue(t), "446", true
	scfg.Worker.ChunkFrames = chunkFrames
	scfg.TracerProvider, scfg.MeterProvider = tp, mp
	st, err := station.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	wcfg := fleet.DefaultWorkerConfig()
	wcfg.ID, wcfg.ArenaID, wcfg.Station, wcfg.Broker = "w", "arena-w", st, local
	wcfg.Replay, wcfg.Params, wcfg.Tracks = replayStore, params, memstore.NewTracks()
	wcfg.LeaseTTL, wcfg.ReportBackoff = testTTL, time.Millisecond
	wcfg.TracerProvider, wcfg.MeterProvider = tp, mp
	wk, err := fleet.NewWorker(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := local.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "arena-w", Line: "446"}); err != nil {
		t.Fatal(err)
	}
	lc := fleet.DefaultLearnerConfig()
	lc.ID, lc.Broker, lc.Replay, lc.Params, lc.Checkpoints = "l", local, replayStore, params, memstore.NewCheckpoints()
	lc.WorkDir, lc.LeaseTTL, lc.ReportBackoff = t.TempDir(), testTTL, time.Millisecond
	lc.TracerProvider, lc.MeterProvider = tp, mp
	ln, err := fleet.NewLearner(lc)
	if err != nil {
		t.Fatal(err)
	}
	if err := local.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l"}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		v, err := local.Experiment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !v.Experiment.Running() {
			break
		}
		if v.Experiment.Phase == plan.PhaseTrain {
			step(t, ln)
		} else {
			step(t, wk)
		}
	}
	view, err := local.Experiment(ctx, id)
	if err != nil || view.Experiment.Status != plan.StatusDone {
		t.Fatalf("experiment %v: %v", view.Experiment.Status, err)
	}
	if err := tel.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}

	var spans []*tracepb.Span
	f, err := os.Open(tel.TraceFile())
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		req, err := telemetry.UnmarshalJSONLine(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
	}
	f.Close()
	key := func(tid, sid []byte) string { return hex.EncodeToString(tid) + "/" + hex.EncodeToString(sid) }
	bySpan := map[string]*tracepb.Span{}
	for _, s := range spans {
		bySpan[key(s.TraceId, s.SpanId)] = s
	}
	attempt := func(item string, token uint64) string {
		return telemetry.EpisodeTraceID(item).String() + "/" + telemetry.AttemptSpanID(item, token).String()
	}

	var task api.Item
	var collect []api.Item
	acted := 0
	for _, it := range view.Items {
		if it.Type == plan.TypeTrain {
			task = it
			continue
		}
		ep := bySpan[attempt(it.ID, it.Result.Token)]
		if ep == nil || ep.Name != "worker.episode" || ep.Status.GetCode() != tracepb.Status_STATUS_CODE_OK {
			t.Fatalf("%s: accepted attempt's span %v", it.ID, ep)
		}
		if root := bySpan[telemetry.EpisodeTraceID(it.ID).String()+"/"+telemetry.EpisodeRootSpanID(it.ID).String()]; root == nil || root.Name != "episode "+it.ID {
			t.Errorf("%s: no root span from the local coordinator", it.ID)
		}
		if it.Kind == episode.KindCollect {
			collect = append(collect, it)
		}
		if it.Kind.Acts() {
			acted++
			version := fmt.Sprint(it.Result.Outcome.PolicyVersion)
			found := false
			for _, l := range ep.Links {
				if p := bySpan[key(l.TraceId, l.SpanId)]; p != nil && p.Name == "learner.publish" && spanAttr(p, telemetry.AttrPolicyVersion) == version {
					found = true
				}
			}
			if !found {
				t.Errorf("%s acted with version %s but links to no learner.publish of it: %v", it.ID, version, ep.Links)
			}
		}
	}
	if acted == 0 || len(collect) < 2 {
		t.Fatalf("%d acting episodes, %d collect", acted, len(collect))
	}
	// The chunks carry their replay.append span's traceparent, a child of their attempt's span.
	chunks, err := replayStore.Chunks(ctx, id, "446")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		sc, err := telemetry.ParseTraceParent(c.TraceParent)
		if err != nil {
			t.Fatalf("chunk %s/%d: %v", c.Episode, c.Seq, err)
		}
		a := bySpan[sc.TraceID().String()+"/"+sc.SpanID().String()]
		if a == nil || a.Name != "replay.append" || hex.EncodeToString(a.ParentSpanId) != telemetry.AttemptSpanID(c.Episode, c.Token).String() {
			t.Fatalf("chunk %s/%d's traceparent names %v", c.Episode, c.Seq, a)
		}
	}
	// The training span: links to the accepted attempts of the collect episodes only.
	ls := bySpan[attempt(task.ID, task.Result.Token)]
	if ls == nil || ls.Name != "learner.task" || ls.Status.GetCode() != tracepb.Status_STATUS_CODE_OK {
		t.Fatalf("learner.task span %v", ls)
	}
	var links, want []string
	for _, l := range ls.Links {
		links = append(links, key(l.TraceId, l.SpanId))
	}
	for _, it := range collect {
		want = append(want, attempt(it.ID, it.Result.Token))
	}
	slices.Sort(links)
	slices.Sort(want)
	if !slices.Equal(links, want) || slices.Contains(links, attempt(ghost.ID, ghost.Token)) {
		t.Fatalf("learner.task links %v, want %v (never the ghost's %s)", links, want, attempt(ghost.ID, ghost.Token))
	}
	rounds, publishes := 0, 0
	for _, s := range spans {
		if hex.EncodeToString(s.TraceId) != telemetry.EpisodeTraceID(task.ID).String() {
			continue
		}
		switch s.Name {
		case "learner.round":
			rounds++
		case "learner.publish":
			publishes++
		}
	}
	if rounds != 3 || publishes != 3 {
		t.Fatalf("%d learner.round and %d learner.publish spans, want 3 each", rounds, publishes)
	}

	// The roles' metrics, as Prometheus reads them.
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, name := range []string{
		"optoloop_worker_frames_total ", "optoloop_worker_frame_to_light_seconds_bucket{", "optoloop_worker_tracking_lost_frames_total ",
		"optoloop_worker_light_on_frames_total ", `optoloop_worker_episodes_total{result="done"} `, "optoloop_replay_chunk_write_seconds_bucket{",
		"optoloop_replay_buffer_frames 0", `optoloop_learner_updates_total{line="446"} 60`, `optoloop_learner_critic_loss{line="446"} `,
		`optoloop_learner_entropy{line="446"} `, `optoloop_learner_policy_version{line="446"} 3`,
	} {
		if !strings.Contains(body, name) {
			t.Errorf("metrics lack %q", name)
		}
	}
}
