package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optoloop/optoloop/agentlib/nn"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/memstore"
	"github.com/optoloop/optoloop/station"
)

// The tests of this file and learner_test.go run the roles against coordinator.Local (its
// logical clock expires leases by Advance, never by waiting) and the memstore stores, on
// simulated stations without rendering. Episodes are tens of simulated seconds at 3 Hz.

// testTTL is the lease the roles ask for: short on the wall clock, so that heartbeats (every
// TTL/3) come quickly; on Local's logical clock it only expires when a test advances it.
const testTTL = 30 * time.Millisecond

// world is one experiment submitted to a Local broker, with the stores of its roles.
type world struct {
	local  *coordinator.Local
	replay *memstore.Replay
	params *memstore.Params
	tracks *memstore.Tracks
	ckpts  *memstore.Checkpoints
	id     string
	yaml   string
}

func newWorld(t *testing.T, yaml string) *world {
	t.Helper()
	local, err := coordinator.NewLocal(coordinator.DefaultLocalConfig())
	if err != nil {
		t.Fatal(err)
	}
	id, err := local.Submit(context.Background(), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return &world{local: local, replay: memstore.NewReplay(), params: memstore.NewParams(), tracks: memstore.NewTracks(),
		ckpts: memstore.NewCheckpoints(), id: id, yaml: yaml}
}

func (w *world) stores() fleet.Stores {
	return fleet.Stores{Replay: w.replay, Params: w.params, Tracks: w.tracks, Checkpoints: w.ckpts}
}

func (w *world) view(t *testing.T) api.ExperimentView {
	t.Helper()
	v, err := w.local.Experiment(context.Background(), w.id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// item returns the experiment's item number n.
func (w *world) item(t *testing.T, n int) api.Item {
	t.Helper()
	it, ok := w.local.FSM().Item(fmt.Sprintf("%s.%d", w.id, n))
	if !ok {
		t.Fatalf("no item %d in %s", n, w.id)
	}
	return it
}

// chunksOf returns the chunks of episode id appended under token, in the replay's order.
func (w *world) chunksOf(t *testing.T, line, id string, token uint64) []fleet.Chunk {
	t.Helper()
	all, err := w.replay.Chunks(context.Background(), w.id, line)
	if err != nil {
		t.Fatal(err)
	}
	var out []fleet.Chunk
	for _, c := range all {
		if c.Episode == id && c.Token == token {
			out = append(out, c)
		}
	}
	return out
}

// advance moves the logical clock past every lease the roles ask for.
func (w *world) advance(t *testing.T) {
	t.Helper()
	if err := w.local.Advance(time.Second); err != nil {
		t.Fatal(err)
	}
}

func catalogue(t *testing.T) *sim.Catalogue {
	t.Helper()
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// chunkFrames is the station's chunk size: a 20 s episode (60 frames) is 4 chunks.
const chunkFrames = 16

// simStation opens a simulated station of line without rendering.
func simStation(t *testing.T, line string) *station.Station {
	t.Helper()
	cfg := station.DefaultConfig()
	cfg.ArenaID = "sim-" + line
	cfg.Catalogue = catalogue(t)
	cfg.Line = line
	cfg.NoRender = true
	cfg.Worker.ChunkFrames = chunkFrames
	s, err := station.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// plateStation is a station over one simulated plate the test holds (as a rig station holds
// its rig), so that the test can read the plate's light after an episode.
func plateStation(t *testing.T, line string) (*station.Station, *sim.Arena) {
	t.Helper()
	l, err := catalogue(t).Line(line)
	if err != nil {
		t.Fatal(err)
	}
	acfg := sim.DefaultConfig(l)
	acfg.Seed = 11
	acfg.NoRender = true
	a, err := sim.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := station.DefaultConfig()
	cfg.ArenaID = "plate-" + line
	cfg.Line = line
	cfg.Arena = a
	cfg.Worker.ChunkFrames = chunkFrames
	s, err := station.New(cfg)
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, a
}

// newWorker returns a worker of broker b on st, registered under id (Step does not register;
// Run does).
func newWorker(t *testing.T, w *world, b fleet.Broker, id string, st fleet.Station) *fleet.Worker {
	t.Helper()
	cfg := fleet.DefaultWorkerConfig()
	cfg.ID, cfg.ArenaID = id, "arena-"+id
	cfg.Station = st
	cfg.Broker = b
	cfg.Replay, cfg.Params, cfg.Tracks = w.replay, w.params, w.tracks
	cfg.LeaseTTL = testTTL
	cfg.Poll = 20 * time.Millisecond
	cfg.ReportBackoff = time.Millisecond
	wk, err := fleet.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.RegisterWorker(context.Background(), api.RegisterWorkerCmd{ID: id, ArenaID: cfg.ArenaID, Line: st.Line()}); err != nil {
		t.Fatal(err)
	}
	return wk
}

// step runs one Step of wk and fails the test when it found no work or failed.
func step(t *testing.T, wk interface {
	Step(context.Context) (bool, error)
}) {
	t.Helper()
	worked, err := wk.Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !worked {
		t.Fatal("step found no work")
	}
}

// hooked is a real station whose episodes call hook(ctx, step) at every control step: the
// tests' way to act while an episode runs (inject a fault, make its lease stale).
type hooked struct {
	*station.Station
	hook func(ctx context.Context, e station.Episode, s station.Step) error
}

func (h hooked) Run(ctx context.Context, e station.Episode) (station.Result, error) {
	e.OnStep = func(s station.Step) error { return h.hook(ctx, e, s) }
	return h.Station.Run(ctx, e)
}

// collectYAML is an experiment of collect episodes of 20 s (60 frames) per line.
func collectYAML(lines string, episodes int) string {
	return fmt.Sprintf(`
name: fleet
seed: 7
lines: [%s]
collect: { hours_per_line: %g, episode_seconds: 20, light_probability: 0.5 }
train: { ensemble_size: 1, updates: 20, checkpoint_every: 10, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
policy: { max_staleness: 1 }
`, lines, float64(episodes)*20/3600)
}

// TestWorkerRunsItsLinesEpisodes runs a worker of line 446 in an experiment of lines 446 and
// 73: it runs every 446 episode and no other, appends each as numbered chunks carrying the
// item id, the lease token and policy version 0, stores the track under the token and reports
// the station's typed outcome, whose Frames is the number of records appended.
func TestWorkerRunsItsLinesEpisodes(t *testing.T) {
	w := newWorld(t, collectYAML(`"446", "73"`, 2))
	cfg := fleet.DefaultWorkerConfig()
	cfg.ID, cfg.ArenaID = "w446", "arena-446"
	cfg.Station = simStation(t, "446")
	cfg.Broker = w.local
	cfg.Replay, cfg.Params, cfg.Tracks = w.replay, w.params, w.tracks
	wk, err := fleet.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- wk.Run(ctx) }()

	// Items are episode-major: 0 and 2 are 446's, 1 and 3 are 73's.
	mine, others := []int{0, 2}, []int{1, 3}
	for {
		changed := w.local.Changed()
		if w.item(t, 0).State == api.StateDone && w.item(t, 2).State == api.StateDone {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("the worker did not run its line's episodes")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}

	for _, n := range others {
		if it := w.item(t, n); it.State != api.StatePending || it.Attempts != 0 {
			t.Errorf("item %d of line %s: %s after %d attempts; a 446 worker must not lease it", n, it.Line, it.State, it.Attempts)
		}
	}
	if cs, _ := w.replay.Chunks(context.Background(), w.id, "73"); len(cs) != 0 {
		t.Errorf("%d chunks in line 73's replay", len(cs))
	}
	direct := simStation(t, "446")
	for _, n := range mine {
		it := w.item(t, n)
		res := it.Result
		if res == nil || res.Outcome == nil || res.By != "w446" {
			t.Fatalf("item %d: result %+v", n, res)
		}
		out := *res.Outcome
		if err := out.Validate(); err != nil || out.Frames != 60 || out.PolicyVersion != 0 {
			t.Errorf("item %d: outcome %+v (%v), want 60 frames of a fixed schedule", n, out, err)
		}
		// The outcome is the station's for the item's spec.
		want, err := direct.Run(context.Background(), station.Episode{ID: it.ID, Spec: it.Spec})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out, want.Outcome) {
			t.Errorf("item %d: reported %+v, the station gives %+v", n, out, want.Outcome)
		}
		chunks := w.chunksOf(t, "446", it.ID, res.Token)
		var recs int
		for i, c := range chunks {
			if c.Seq != i || c.Experiment != w.id || c.Line != "446" || c.PolicyVersion != 0 {
				t.Errorf("item %d chunk %d: %+v", n, i, c)
			}
			if c.Seq < len(chunks)-1 && len(c.Records) != chunkFrames {
				t.Errorf("item %d chunk %d holds %d records, want %d", n, i, len(c.Records), chunkFrames)
			}
			for _, r := range c.Records {
				if r.Episode != it.ID {
					t.Fatalf("item %d: a record of episode %q", n, r.Episode)
				}
			}
			recs += len(c.Records)
		}
		if len(chunks) != 4 || recs != out.Frames {
			t.Errorf("item %d: %d chunks of %d records, outcome says %d frames", n, len(chunks), recs, out.Frames)
		}
		if !slices.Equal(concat(chunks), want.Records) {
			t.Errorf("item %d: appended records are not the episode's", n)
		}
		tr, err := w.tracks.Get(context.Background(), w.id, it.ID, res.Token)
		if err != nil {
			t.Fatalf("item %d: track under token %d: %v", n, res.Token, err)
		}
		if tr.ID != it.ID || tr.Condition != episode.KindCollect || tr.ClosestCM != out.ClosestCM || tr.Seed != it.Seed {
			t.Errorf("item %d: track %s %s closest %v seed %d", n, tr.ID, tr.Condition, tr.ClosestCM, tr.Seed)
		}
	}
}

// TestWorkerStopsOnAStaleLease makes the lease of a running episode stale (the clock passes
// its deadline and another worker takes the item; or the heartbeat is answered with a stale
// lease) while the plate's light is on: the episode's context is cancelled at once, the
// worker reports nothing, and the light is off.
func TestWorkerStopsOnAStaleLease(t *testing.T) {
	tests := []struct {
		name string
		// stale makes the lease stale; check checks the item afterwards.
		stale func(t *testing.T, w *world, b *countingBroker)
		check func(t *testing.T, w *world, it api.Item)
	}{
		{"expired and re-leased", func(t *testing.T, w *world, b *countingBroker) {
			if err := w.local.Advance(time.Second); err != nil {
				t.Error(err)
			}
			ctx := context.Background()
			if err := w.local.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w2", ArenaID: "arena-w2", Line: "446"}); err != nil {
				t.Error(err)
			}
			if it, err := w.local.Lease(ctx, api.LeaseRequest{Holder: "w2", Type: plan.TypeEpisode}); err != nil || it == nil {
				t.Errorf("lease by w2: %v, %v", it, err)
			}
		}, func(t *testing.T, w *world, it api.Item) {
			if it.State != api.StateLeased || it.Holder != "w2" || it.Attempts != 2 || len(it.Failures) != 1 || !strings.Contains(it.Failures[0], "expired") {
				t.Errorf("item %s by %s after %d attempts, failures %q", it.State, it.Holder, it.Attempts, it.Failures)
			}
		}},
		{"heartbeat answers stale", func(t *testing.T, w *world, b *countingBroker) {
			b.staleHeartbeats.Store(true)
		}, func(t *testing.T, w *world, it api.Item) {
			if it.State != api.StateLeased || it.Holder != "w1" || len(it.Failures) != 0 {
				t.Errorf("item %s by %s, failures %q", it.State, it.Holder, it.Failures)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, collectYAML(`"446"`, 1))
			st, plate := plateStation(t, "446")
			b := &countingBroker{Broker: w.local}
			var (
				mu        sync.Mutex
				lit       bool // the light was on when the lease turned stale
				cancelled bool // the episode's context ended
				after     int  // steps run after the lease turned stale
				staleAt   = -1
			)
			hook := func(ctx context.Context, e station.Episode, s station.Step) error {
				mu.Lock()
				defer mu.Unlock()
				if staleAt >= 0 {
					after++
					return nil
				}
				if s.Index < 20 || !plate.LightState().On {
					return nil
				}
				staleAt, lit = s.Index, true
				tt.stale(t, w, b)
				select {
				case <-ctx.Done():
					cancelled = true
				case <-time.After(20 * time.Second):
					t.Error("the episode's context was not cancelled after its lease turned stale")
				}
				return nil
			}
			wk := newWorker(t, w, b, "w1", hooked{st, hook})
			step(t, wk)
			mu.Lock()
			defer mu.Unlock()
			if !lit || !cancelled {
				t.Fatalf("lit %v, cancelled %v (stale at step %d)", lit, cancelled, staleAt)
			}
			if after != 0 {
				t.Errorf("%d steps ran after the lease turned stale", after)
			}
			if plate.LightState().On {
				t.Error("the light is on after the episode stopped")
			}
			if n := b.reports.Load() + b.fails.Load(); n != 0 {
				t.Errorf("the worker sent %d reports or failures for a stale lease", n)
			}
			it := w.item(t, 0)
			if it.Result != nil || w.local.FSM().Stats().ReportsAccepted != 0 {
				t.Errorf("a report counted: %+v", it.Result)
			}
			tt.check(t, w, it)
			// What the stale attempt appended is under its own token: the records of the steps
			// before its lease turned stale, no more.
			all, err := w.replay.Chunks(context.Background(), w.id, "446")
			if err != nil {
				t.Fatal(err)
			}
			var recs int
			for _, c := range all {
				if c.Episode != it.ID || c.Token != b.leased[0] {
					t.Errorf("chunk %d of %s under token %d; the stale attempt's is %d", c.Seq, c.Episode, c.Token, b.leased[0])
				}
				recs += len(c.Records)
			}
			if recs < chunkFrames || recs > staleAt {
				t.Errorf("the stale attempt appended %d records; it ran %d steps before it turned stale", recs, staleAt)
			}
		})
	}
}

// TestWorkerFailsAttempts makes a station fail mid-episode: the attempt is failed with the
// station's reason and retried by another worker; when every attempt fails the item fails with
// every reason kept.
func TestWorkerFailsAttempts(t *testing.T) {
	tests := []struct {
		name  string
		fails int // attempts that fail
		state api.ItemState
	}{
		{"first attempt fails", 1, api.StateDone},
		{"every attempt fails", 3, api.StateFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, collectYAML(`"446"`, 1))
			var attempts atomic.Int32
			hook := func(_ context.Context, e station.Episode, s station.Step) error {
				if s.Index == 20 && int(attempts.Add(1)) <= tt.fails {
					return fmt.Errorf("injected fault %d", attempts.Load())
				}
				return nil
			}
			workers := []*fleet.Worker{
				newWorker(t, w, w.local, "w1", hooked{simStation(t, "446"), hook}),
				newWorker(t, w, w.local, "w2", hooked{simStation(t, "446"), hook}),
			}
			for a := 0; w.item(t, 0).State == api.StatePending; a++ {
				step(t, workers[a%2])
			}
			it := w.item(t, 0)
			if it.State != tt.state || len(it.Failures) != tt.fails {
				t.Fatalf("item %s after %d attempts, failures %q", it.State, it.Attempts, it.Failures)
			}
			for i, f := range it.Failures {
				holder := []string{"w1", "w2"}[i%2]
				if want := fmt.Sprintf("injected fault %d", i+1); !strings.Contains(f, want) || !strings.Contains(f, holder) {
					t.Errorf("failure %d %q: want the station's reason %q and holder %s", i, f, want, holder)
				}
			}
			if tt.state == api.StateDone {
				if it.Result.By != "w2" || it.Attempts != 2 {
					t.Errorf("done by %s after %d attempts, want w2 after 2", it.Result.By, it.Attempts)
				}
				var recs int
				for _, c := range w.chunksOf(t, "446", it.ID, it.Result.Token) {
					recs += len(c.Records)
				}
				if recs != it.Result.Outcome.Frames {
					t.Errorf("the accepted attempt appended %d records, outcome says %d", recs, it.Result.Outcome.Frames)
				}
			}
		})
	}
}

// TestWorkerReportRetryKeepsItsKey loses the answer to the first report (applied, but the
// worker is told the broker was unavailable): the worker retries with the same idempotency
// key and the item counts once.
func TestWorkerReportRetryKeepsItsKey(t *testing.T) {
	w := newWorld(t, collectYAML(`"446"`, 1))
	b := &countingBroker{Broker: w.local, loseReports: 1}
	wk := newWorker(t, w, b, "w1", simStation(t, "446"))
	step(t, wk)
	it := w.item(t, 0)
	if it.State != api.StateDone || it.Result.By != "w1" || it.Attempts != 1 {
		t.Fatalf("item %s by %v after %d attempts", it.State, it.Result, it.Attempts)
	}
	b.mu.Lock()
	keys := slices.Clone(b.reportKeys)
	b.mu.Unlock()
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Errorf("report keys %q, want one key sent twice", keys)
	}
	if st := w.local.FSM().Stats(); st.ReportsAccepted != 1 || st.ReportsRefused != 0 {
		t.Errorf("%d reports accepted, %d refused; want 1 and 0", st.ReportsAccepted, st.ReportsRefused)
	}
}

// countingBroker is a broker that records leases, counts reports and failures, can lose the answer to the
// first loseReports reports (applied, then answered "unavailable"), and can answer heartbeats
// with a stale lease.
type countingBroker struct {
	fleet.Broker
	loseReports     int
	staleHeartbeats atomic.Bool
	reports, fails  atomic.Int32

	mu         sync.Mutex
	reportKeys []string
	leased     []uint64 // tokens of the leases granted
}

func (b *countingBroker) Report(ctx context.Context, req api.ReportCmd) (*api.Item, error) {
	b.reports.Add(1)
	b.mu.Lock()
	b.reportKeys = append(b.reportKeys, api.IdempotencyKey(ctx))
	lose := len(b.reportKeys) <= b.loseReports
	b.mu.Unlock()
	it, err := b.Broker.Report(ctx, req)
	if lose && err == nil {
		return nil, fmt.Errorf("report: connection reset: %w", api.ErrUnavailable)
	}
	return it, err
}

func (b *countingBroker) Lease(ctx context.Context, req api.LeaseRequest) (*api.Item, error) {
	it, err := b.Broker.Lease(ctx, req)
	if it != nil {
		b.mu.Lock()
		b.leased = append(b.leased, it.Token)
		b.mu.Unlock()
	}
	return it, err
}

func (b *countingBroker) Fail(ctx context.Context, req api.FailCmd) (*api.Item, error) {
	b.fails.Add(1)
	return b.Broker.Fail(ctx, req)
}

func (b *countingBroker) Heartbeat(ctx context.Context, req api.HeartbeatRequest) (*api.Item, error) {
	if b.staleHeartbeats.Load() {
		return nil, fmt.Errorf("%w: item %s lease %d is not current", api.ErrStaleLease, req.ItemID, req.Token)
	}
	return b.Broker.Heartbeat(ctx, req)
}

// concat returns the records of chunks in order.
func concat(chunks []fleet.Chunk) []replay.Record {
	var out []replay.Record
	for _, c := range chunks {
		out = append(out, c.Records...)
	}
	return out
}

// ensembleBlob returns an encoded random ensemble of the reference architecture.
func ensembleBlob(t *testing.T, seed uint64) []byte {
	t.Helper()
	arch := policy.ReferenceArch()
	m := nn.New(arch.Sizes...)
	m.InitXavier(rand.New(rand.NewPCG(seed, 1)))
	e, err := policy.NewEnsemble(arch, m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWorkerParameters: an agent episode acts with the version its item names; with that
// version absent it acts with the newest when that is at most max_staleness (1) older, and says
// so; otherwise the attempt fails with a reason wrapping fleet.ErrStaleParams.
func TestWorkerParameters(t *testing.T) {
	const named = 3 // the version the training task reports, so the agent item names
	tests := []struct {
		name      string
		published []uint64
		want      uint64 // 0: the attempt fails
	}{
		{"named version", []uint64{2, 3, 4}, 3},
		{"named version too far behind the newest", []uint64{1, 2, 3, 4, 5}, 5},
		{"named version absent, a newer one published", []uint64{2, 4}, 4},
		{"newest within max staleness", []uint64{1, 2}, 2},
		{"newest too stale", []uint64{1}, 0},
		{"none published", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, collectYAML(`"446"`, 1))
			wk := newWorker(t, w, w.local, "w1", simStation(t, "446"))
			step(t, wk) // the collect episode
			// A learner reports the training task done at version named, without training.
			if err := w.local.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l1"}); err != nil {
				t.Fatal(err)
			}
			task, err := w.local.Lease(ctx, api.LeaseRequest{Holder: "l1", Type: plan.TypeTrain})
			if err != nil || task == nil {
				t.Fatalf("lease the training task: %v, %v", task, err)
			}
			if _, err := w.local.Report(ctx, api.ReportCmd{Holder: "l1", ItemID: task.ID, Token: task.Token, PolicyVersion: named}); err != nil {
				t.Fatal(err)
			}
			for _, v := range tt.published {
				if err := w.params.Publish(ctx, w.id, "446", v, ensembleBlob(t, v)); err != nil {
					t.Fatal(err)
				}
			}
			step(t, wk) // the agent episode
			var agent api.Item
			for _, it := range w.view(t).Items {
				if it.Kind == episode.KindAgent {
					agent = it
				}
			}
			if agent.PolicyVersion != named || agent.MaxStaleness != 1 || agent.Attempts != 1 {
				t.Fatalf("agent item %+v", agent)
			}
			if tt.want == 0 {
				if agent.State != api.StatePending || len(agent.Failures) != 1 || !strings.Contains(agent.Failures[0], fleet.ErrStaleParams.Error()) {
					t.Fatalf("agent item %s, failures %q; want a failed attempt for stale parameters", agent.State, agent.Failures)
				}
				if cs := w.chunksOf(t, "446", agent.ID, agent.Token); len(cs) != 0 {
					t.Errorf("a refused episode appended %d chunks", len(cs))
				}
				return
			}
			if agent.State != api.StateDone || agent.Result.Outcome.PolicyVersion != tt.want {
				t.Fatalf("agent item %s with %+v; want done acting with version %d", agent.State, agent.Result, tt.want)
			}
			chunks := w.chunksOf(t, "446", agent.ID, agent.Result.Token)
			if len(chunks) == 0 {
				t.Fatal("no chunks")
			}
			for _, c := range chunks {
				if c.PolicyVersion != tt.want {
					t.Errorf("chunk %d says version %d, want %d", c.Seq, c.PolicyVersion, tt.want)
				}
				for _, r := range c.Records {
					if r.PolicyVersion != tt.want {
						t.Fatalf("a record of chunk %d says version %d, want %d", c.Seq, r.PolicyVersion, tt.want)
					}
				}
			}
		})
	}
}

// TestWorkerRunRegisters: Run registers the worker, asking again while the broker is
// unavailable, and then runs episodes; a broker that refuses the worker's leases as from an
// unknown worker ends Run with that error instead of being asked forever.
func TestWorkerRunRegisters(t *testing.T) {
	tests := []struct {
		name string
		b    registrar
		want error // nil: Run runs the episode
	}{
		{"unavailable twice, then registered", registrar{unavailable: 2}, nil},
		{"not registered", registrar{forget: true}, api.ErrNotRegistered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, collectYAML(`"446"`, 1))
			b := tt.b
			b.Local = w.local
			cfg := fleet.DefaultWorkerConfig()
			cfg.ID, cfg.ArenaID = "w1", "a1"
			cfg.Station = simStation(t, "446")
			cfg.Broker = &b
			cfg.Replay, cfg.Params, cfg.Tracks = w.replay, w.params, w.tracks
			cfg.Poll = time.Millisecond
			wk, err := fleet.NewWorker(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- wk.Run(ctx) }()
			if tt.want != nil {
				if err := <-done; !errors.Is(err, tt.want) {
					t.Fatalf("Run: %v, want %v", err, tt.want)
				}
				return
			}
			for {
				changed := w.local.Changed()
				if w.item(t, 0).State == api.StateDone {
					break
				}
				select {
				case <-changed:
				case err := <-done:
					t.Fatalf("Run ended before the episode: %v", err)
				case <-ctx.Done():
					t.Fatal("the worker did not run the episode")
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if b.tries != 3 {
				t.Errorf("%d registrations tried, want 3", b.tries)
			}
		})
	}
}

// registrar is a broker whose first registrations fail as unavailable, or that forgets every
// registration (its leases are then refused as from an unknown worker).
type registrar struct {
	*coordinator.Local
	unavailable int
	forget      bool
	tries       int // used by Run's goroutine only, read after it ended
}

func (r *registrar) RegisterWorker(ctx context.Context, c api.RegisterWorkerCmd) error {
	r.tries++
	switch {
	case r.tries <= r.unavailable:
		return fmt.Errorf("register: no leader: %w", api.ErrUnavailable)
	case r.forget:
		return nil
	}
	return r.Local.RegisterWorker(ctx, c)
}
