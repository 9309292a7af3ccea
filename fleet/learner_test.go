package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/results"
)

// trainYAML is one line, three collect episodes of 20 s and a tiny training: 2 members, 30
// updates in rounds of 10 (versions 1-3).
const trainYAML = `
name: learn
seed: 9
lines: ["446"]
collect: { hours_per_line: 0.0166, episode_seconds: 20, light_probability: 0.3 }
train: { ensemble_size: 2, updates: 30, checkpoint_every: 10, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
`

const rounds = 3

// collected returns a world whose collect phase a worker has run.
func collected(t *testing.T, yaml string) *world {
	t.Helper()
	w := newWorld(t, yaml)
	wk := newWorker(t, w, w.local, "w", simStation(t, "446"))
	for w.view(t).Experiment.Phase == plan.PhaseCollect {
		step(t, wk)
	}
	return w
}

// mirror is a second world of base's experiment whose collect episodes are done with base's
// outcomes, each after a first attempt that appended junk chunks and lost its lease; the
// replay then gets base's accepted chunks under the new tokens, in reverse append order,
// except those keep refuses.
func mirror(t *testing.T, base *world, keep func(c fleet.Chunk) bool) *world {
	t.Helper()
	ctx := context.Background()
	w := newWorld(t, base.yaml)
	for _, id := range []string{"ghost", "w"} {
		if err := w.local.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: id, ArenaID: id, Line: "446"}); err != nil {
			t.Fatal(err)
		}
	}
	lease := func(holder string) *api.Item {
		it, err := w.local.Lease(ctx, api.LeaseRequest{Holder: holder, Type: plan.TypeEpisode, TTLSeconds: testTTL.Seconds()})
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	baseItems := map[int]api.Item{}
	for _, it := range base.view(t).Items {
		baseItems[it.N] = it
	}
	collect := 0
	for _, it := range w.view(t).Items {
		if it.Kind == episode.KindCollect {
			collect++
		}
	}
	// First attempts: each appends two chunks of junk (records of the base episode, shifted
	// across the plate) and loses its lease.
	for range collect {
		it := lease("ghost")
		src := base.chunksOf(t, "446", it.ID, baseItems[it.N].Result.Token)
		for seq := range 2 {
			c := src[seq]
			c.Token = it.Token
			c.Records = slices.Clone(c.Records)
			for i := range c.Records {
				c.Records[i].X += 40
			}
			if err := w.replay.Append(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		w.advance(t)
	}
	// Second attempts report base's outcomes.
	var accepted []fleet.Chunk
	for it := lease("w"); it != nil; it = lease("w") {
		b := baseItems[it.N]
		for _, c := range base.chunksOf(t, "446", it.ID, b.Result.Token) {
			c.Token = it.Token
			accepted = append(accepted, c)
		}
		if _, err := w.local.Report(ctx, api.ReportCmd{Holder: "w", ItemID: it.ID, Token: it.Token, Outcome: b.Result.Outcome}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range slices.Backward(accepted) {
		if keep == nil || keep(c) {
			if err := w.replay.Append(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ph := w.view(t).Experiment.Phase; ph != plan.PhaseTrain {
		t.Fatalf("mirror in phase %s", ph)
	}
	return w
}

// newLearner returns a learner of w (with checkpoints ck and params p instead of w's when
// set, and its config changed by tune), registered under id.
func newLearner(t *testing.T, w *world, id string, ck fleet.Checkpoints, p fleet.Params, tune ...func(*fleet.LearnerConfig)) *fleet.Learner {
	t.Helper()
	cfg := fleet.DefaultLearnerConfig()
	cfg.ID = id
	cfg.Broker = w.local
	cfg.Replay, cfg.Params, cfg.Checkpoints = w.replay, w.params, w.ckpts
	if ck != nil {
		cfg.Checkpoints = ck
	}
	if p != nil {
		cfg.Params = p
	}
	cfg.WorkDir = t.TempDir()
	cfg.LeaseTTL = testTTL
	cfg.ReportBackoff = time.Millisecond
	for _, f := range tune {
		f(&cfg)
	}
	l, err := fleet.NewLearner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.local.RegisterLearner(context.Background(), api.RegisterLearnerCmd{ID: id}); err != nil {
		t.Fatal(err)
	}
	return l
}

// task returns w's training task.
func (w *world) task(t *testing.T) api.Item {
	t.Helper()
	for _, it := range w.view(t).Items {
		if it.Type == plan.TypeTrain {
			return it
		}
	}
	t.Fatal("no training task")
	return api.Item{}
}

// trained is what a done training task left: its summary, and every version's blob.
type trained struct {
	summary  results.TrainingSummary
	versions [][]byte // versions[v-1]
}

func outputs(t *testing.T, w *world) trained {
	t.Helper()
	task := w.task(t)
	if task.State != api.StateDone {
		t.Fatalf("training task %s, failures %q", task.State, task.Failures)
	}
	var out trained
	if err := json.Unmarshal(task.Result.Output, &out.summary); err != nil {
		t.Fatal(err)
	}
	latest, err := w.params.Latest(context.Background(), w.id, "446")
	if err != nil || latest != task.Result.PolicyVersion || latest != rounds {
		t.Fatalf("latest version %d (%v), reported %d, want %d", latest, err, task.Result.PolicyVersion, rounds)
	}
	for v := uint64(1); v <= latest; v++ {
		b, err := w.params.Fetch(context.Background(), w.id, "446", v)
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		out.versions = append(out.versions, b)
	}
	return out
}

// TestLearnerSnapshot trains on a replay that also holds the chunks of attempts that lost
// their leases, with the accepted chunks appended in reverse: it trains exactly as on a replay
// holding only the accepted chunks in order. A missing chunk, or fewer frames than the report
// says, fails the attempt with a reason naming the episode.
func TestLearnerSnapshot(t *testing.T) {
	base := collected(t, trainYAML)
	step(t, newLearner(t, base, "l", nil, nil))
	want := outputs(t, base)
	if s := want.summary; s.Episodes != 3 || s.Members != 2 || s.Updates != 30 || s.Transitions == 0 {
		t.Fatalf("summary %+v", s)
	}
	id0, id1 := base.id+".0", base.id+".1"
	tests := []struct {
		name   string
		keep   func(c fleet.Chunk) bool
		reason string // "": the task is done as on base
	}{
		{"accepted chunks only, by item number", nil, ""},
		{"missing chunk", func(c fleet.Chunk) bool { return c.Episode != id0 || c.Seq != 1 }, "replay of episode " + id0 + ": chunk 1 missing"},
		{"missing last chunk", func(c fleet.Chunk) bool { return c.Episode != id1 || c.Seq != 3 }, "replay of episode " + id1 + " holds 48 frames, its report says 60"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mirror(t, base, tt.keep)
			step(t, newLearner(t, w, "l", nil, nil))
			if tt.reason == "" {
				got := outputs(t, w)
				if got.summary != want.summary {
					t.Errorf("summary %+v, want %+v", got.summary, want.summary)
				}
				for i := range want.versions {
					if !bytes.Equal(got.versions[i], want.versions[i]) {
						t.Errorf("version %d differs from the one trained on the accepted chunks in order", i+1)
					}
				}
				return
			}
			task := w.task(t)
			if task.State != api.StatePending || len(task.Failures) != 1 || !strings.Contains(task.Failures[0], tt.reason) {
				t.Fatalf("task %s, failures %q; want one failed attempt saying %q", task.State, task.Failures, tt.reason)
			}
			if _, err := w.params.Latest(context.Background(), w.id, "446"); !errors.Is(err, fleet.ErrNotFound) {
				t.Errorf("a failed snapshot published parameters (%v)", err)
			}
		})
	}
}

// countingCheckpoints counts saves and, when cancel is set, calls it after the first.
type countingCheckpoints struct {
	fleet.Checkpoints
	mu     sync.Mutex
	saves  int
	cancel context.CancelFunc
}

func (c *countingCheckpoints) Save(ctx context.Context, experiment, task string, files map[string][]byte) error {
	err := c.Checkpoints.Save(ctx, experiment, task, files)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.saves++
	if c.cancel != nil && c.saves == 1 {
		c.cancel()
	}
	return err
}

// countingParams records the versions published.
type countingParams struct {
	fleet.Params
	mu        sync.Mutex
	published []uint64
}

func (p *countingParams) Publish(ctx context.Context, experiment, line string, version uint64, blob []byte) error {
	p.mu.Lock()
	p.published = append(p.published, version)
	p.mu.Unlock()
	return p.Params.Publish(ctx, experiment, line, version, blob)
}

// TestLearnerResumesFromItsCheckpoint cancels a learner after its first checkpoint; once the
// lease has expired a second learner takes the task, resumes from the stored checkpoint
// (training only the rounds left) and ends with exactly the parameters of an uninterrupted
// run. Both publish every version and checkpoint after every round.
func TestLearnerResumesFromItsCheckpoint(t *testing.T) {
	ctx := context.Background()
	base := collected(t, trainYAML)
	ck := &countingCheckpoints{Checkpoints: base.ckpts}
	pp := &countingParams{Params: base.params}
	step(t, newLearner(t, base, "l", ck, pp))
	want := outputs(t, base)
	if ck.saves != rounds || !slices.Equal(pp.published, []uint64{1, 2, 3}) {
		t.Fatalf("uninterrupted: %d checkpoints, versions %v published; want %d and 1-3", ck.saves, pp.published, rounds)
	}
	files, err := base.ckpts.Load(ctx, base.id, base.task(t).ID)
	if err != nil || files["checkpoint/manifest.json"] == nil || files["curves.jsonl"] == nil {
		t.Fatalf("stored checkpoint %v (%v)", keys(files), err)
	}

	w := mirror(t, base, nil)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ck1 := &countingCheckpoints{Checkpoints: w.ckpts, cancel: cancel}
	pp1 := &countingParams{Params: w.params}
	if worked, err := newLearner(t, w, "l1", ck1, pp1).Step(cctx); !worked || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled learner: worked %v, %v", worked, err)
	}
	if task := w.task(t); task.State != api.StateLeased || task.Holder != "l1" || len(task.Failures) != 0 {
		t.Fatalf("after the cancel the task is %s by %s, failures %q; want still leased by l1", task.State, task.Holder, task.Failures)
	}
	if ck1.saves != 1 || !slices.Equal(pp1.published, []uint64{1}) {
		t.Fatalf("cancelled learner: %d checkpoints, versions %v", ck1.saves, pp1.published)
	}
	w.advance(t)
	if task := w.task(t); task.State != api.StatePending {
		t.Fatalf("after the lease's deadline the task is %s", task.State)
	}
	ck2 := &countingCheckpoints{Checkpoints: w.ckpts}
	pp2 := &countingParams{Params: w.params}
	step(t, newLearner(t, w, "l2", ck2, pp2))
	if ck2.saves != rounds-1 || !slices.Equal(pp2.published, []uint64{2, 3}) {
		t.Errorf("resumed learner: %d checkpoints, versions %v published; want %d and 2-3 (a resume, not a restart)", ck2.saves, pp2.published, rounds-1)
	}
	got := outputs(t, w)
	if got.summary != want.summary {
		t.Errorf("summary %+v, want %+v", got.summary, want.summary)
	}
	for i := range want.versions {
		if !bytes.Equal(got.versions[i], want.versions[i]) {
			t.Errorf("version %d of the resumed task differs from the uninterrupted run's", i+1)
		}
	}
	if task := w.task(t); task.Result.By != "l2" || task.Attempts != 2 || len(task.Failures) != 1 {
		t.Errorf("task done by %s after %d attempts, failures %q", task.Result.By, task.Attempts, task.Failures)
	}
	// The stored checkpoint is the last round's, with the whole learning curve.
	got2, err := w.ckpts.Load(ctx, w.id, w.task(t).ID)
	if err != nil || !bytes.Equal(got2["curves.jsonl"], files["curves.jsonl"]) || !bytes.Equal(got2["checkpoint/manifest.json"], files["checkpoint/manifest.json"]) {
		t.Errorf("the resumed task's checkpoint differs from the uninterrupted one's (%v)", err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
