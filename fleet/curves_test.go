package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/optoloop/optoloop/agentlib/learner"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/live"
	"github.com/optoloop/optoloop/live/livetest"
	"github.com/optoloop/optoloop/memstore"
)

// liveLearner is newLearner publishing its learning curves to lv.
func liveLearner(t *testing.T, w *world, id string, ck fleet.Checkpoints, lv live.Publisher) *fleet.Learner {
	t.Helper()
	return newLearner(t, w, id, ck, nil, func(c *fleet.LearnerConfig) { c.Live = lv })
}

// recordingLive is a live store that records the updates of every curve append, and how many
// points the task's curve holds after it.
type recordingLive struct {
	*memstore.Live
	mu      sync.Mutex
	appends [][]int64
	lengths []int
	fail    error // set: every append fails with it, and records its deadline
	within  []time.Duration
}

func (r *recordingLive) AppendCurve(ctx context.Context, experiment, task, line string, points []live.CurvePoint) error {
	var us []int64
	for _, p := range points {
		us = append(us, p.Update)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.appends = append(r.appends, us)
	if r.fail != nil {
		d, ok := ctx.Deadline()
		if !ok {
			d = time.Now().Add(time.Hour)
		}
		r.within = append(r.within, time.Until(d))
		return r.fail
	}
	if err := r.Live.AppendCurve(ctx, experiment, task, line, points); err != nil {
		return err
	}
	cs, err := r.Live.Curves(ctx, experiment)
	if err != nil || len(cs) != 1 {
		return errors.Join(err, errors.New("not one curve"))
	}
	r.lengths = append(r.lengths, len(cs[0].Points))
	return nil
}

// wantCurve is the live curve of a stored curves.jsonl: at each update, the means over the
// members, with the version published at it (one point per round in trainYAML).
func wantCurve(t *testing.T, jsonl []byte) []live.CurvePoint {
	t.Helper()
	type sum struct {
		critic, actor, entropy, alpha float64
		n                             int
	}
	by := map[int64]*sum{}
	for _, ln := range bytes.Split(bytes.TrimSpace(jsonl), []byte("\n")) {
		var p learner.CurvePoint
		if err := json.Unmarshal(ln, &p); err != nil {
			t.Fatal(err)
		}
		if by[p.Update] == nil {
			by[p.Update] = &sum{}
		}
		s := by[p.Update]
		s.critic += (p.Q1Loss + p.Q2Loss) / 2
		s.actor += p.ActorLoss
		s.entropy += p.Entropy
		s.alpha += p.Alpha
		s.n++
	}
	var out []live.CurvePoint
	for u, s := range by {
		if s.n != 2 {
			t.Fatalf("update %d: %d members in curves.jsonl, want 2", u, s.n)
		}
		out = append(out, live.CurvePoint{Update: u, Critic: s.critic / 2, Actor: s.actor / 2, Entropy: s.entropy / 2, Alpha: s.alpha / 2,
			Version: uint64(u / 10)})
	}
	slices.SortFunc(out, func(a, b live.CurvePoint) int { return int(a.Update - b.Update) })
	return out
}

// checkCurve checks the live curve of w's training task against the curves.jsonl of its
// stored checkpoint: one point per round, the members' means, versions rising to the one
// reported.
func checkCurve(t *testing.T, w *world, lv live.Reader, started time.Time) {
	t.Helper()
	ctx := context.Background()
	task := w.task(t)
	cs, err := lv.Curves(ctx, w.id)
	if err != nil || len(cs) != 1 {
		t.Fatalf("curves %+v, %v; want one", cs, err)
	}
	c := cs[0]
	if c.Experiment != w.id || c.Task != task.ID || c.Line != "446" {
		t.Errorf("curve of %s/%s line %s, want %s/%s line 446", c.Experiment, c.Task, c.Line, w.id, task.ID)
	}
	files, err := w.ckpts.Load(ctx, w.id, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := wantCurve(t, files["curves.jsonl"])
	if u := livetest.Updates(c); !slices.Equal(u, []int64{10, 20, 30}) {
		t.Fatalf("curve updates %v, want one point per round: 10 20 30", u)
	}
	for i, p := range c.Points {
		for _, x := range []float64{p.Critic, p.Actor, p.Entropy, p.Alpha} {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Errorf("point %+v is not finite", p)
			}
		}
		if p.At.Before(started) || p.At.After(time.Now()) {
			t.Errorf("point at update %d published at %v, not while the task trained", p.Update, p.At)
		}
		if w := want[i]; p.Update != w.Update || p.Critic != w.Critic || p.Actor != w.Actor || p.Entropy != w.Entropy || p.Alpha != w.Alpha || p.Version != w.Version {
			t.Errorf("point %+v, want %+v (the members' means in curves.jsonl)", p, w)
		}
		if i > 0 && p.Version < c.Points[i-1].Version {
			t.Errorf("versions %d then %d", c.Points[i-1].Version, p.Version)
		}
	}
	if last := c.Points[len(c.Points)-1]; last.Version != task.Result.PolicyVersion || last.Version != rounds {
		t.Errorf("last point at version %d, the task reported %d, want %d", last.Version, task.Result.PolicyVersion, rounds)
	}
}

// TestLearnerLiveCurve: a learner with a live store publishes the task's curve at every
// checkpoint, growing by a point per round, as the means over the members of the curves it
// checkpoints.
func TestLearnerLiveCurve(t *testing.T) {
	w := collected(t, trainYAML)
	lv := &recordingLive{Live: memstore.NewLive()}
	started := time.Now()
	step(t, liveLearner(t, w, "l", nil, lv))
	checkCurve(t, w, lv, started)
	if !slices.EqualFunc(lv.appends, [][]int64{{10}, {20}, {30}}, slices.Equal) || !slices.Equal(lv.lengths, []int{1, 2, 3}) {
		t.Errorf("appends %v, curve lengths %v; want a point per checkpoint", lv.appends, lv.lengths)
	}
}

// stoppingCheckpoints stores the first checkpoint, then cancels the attempt at the second,
// storing nothing: the live curve is then a round ahead of what a resume starts from.
type stoppingCheckpoints struct {
	fleet.Checkpoints
	cancel context.CancelFunc
	saves  int
}

func (c *stoppingCheckpoints) Save(ctx context.Context, experiment, task string, files map[string][]byte) error {
	if c.saves++; c.saves > 1 {
		c.cancel()
		return context.Canceled
	}
	return c.Checkpoints.Save(ctx, experiment, task, files)
}

// TestLearnerLiveCurveResumed: a learner is stopped after it published two rounds' points
// but stored the first round's checkpoint only; the learner that resumes the task publishes
// the second round again, which the store drops: the curve never folds back, and ends as an
// uninterrupted one.
func TestLearnerLiveCurveResumed(t *testing.T) {
	ctx := context.Background()
	base := collected(t, trainYAML)
	w := mirror(t, base, nil)
	lv := &recordingLive{Live: memstore.NewLive()}
	started := time.Now()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if worked, err := liveLearner(t, w, "l1", &stoppingCheckpoints{Checkpoints: w.ckpts, cancel: cancel}, lv).Step(cctx); !worked || !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped learner: worked %v, %v", worked, err)
	}
	cs, err := lv.Curves(ctx, w.id)
	if err != nil || len(cs) != 1 || !slices.Equal(livetest.Updates(cs[0]), []int64{10, 20}) {
		t.Fatalf("curve of the stopped attempt: %+v, %v; want updates 10 20", cs, err)
	}
	second := cs[0].Points[1]
	w.advance(t)
	step(t, liveLearner(t, w, "l2", nil, lv))
	if !slices.EqualFunc(lv.appends, [][]int64{{10}, {20}, {20}, {30}}, slices.Equal) || !slices.Equal(lv.lengths, []int{1, 2, 2, 3}) {
		t.Errorf("appends %v, curve lengths %v; want the resumed attempt to publish 20 again, and the store to keep the first", lv.appends, lv.lengths)
	}
	checkCurve(t, w, lv, started)
	again, _ := lv.Curves(ctx, w.id)
	if p := again[0].Points[1]; p != second {
		t.Errorf("the second point changed from %+v to %+v", second, p)
	}
}

// TestLearnerLiveCurveStoreFails: a live store that refuses every append costs the curve,
// never the training: the task is done with the parameters of a learner without one, every
// publish was bounded by LivePublishTimeout, and the points a failed publish left went again
// with the next round's.
func TestLearnerLiveCurveStoreFails(t *testing.T) {
	base := collected(t, trainYAML)
	step(t, newLearner(t, base, "l", nil, nil))
	want := outputs(t, base)

	w := mirror(t, base, nil)
	lv := &recordingLive{Live: memstore.NewLive(), fail: errors.New("live store away")}
	step(t, liveLearner(t, w, "l", nil, lv))
	got := outputs(t, w)
	for i := range want.versions {
		if !bytes.Equal(got.versions[i], want.versions[i]) {
			t.Errorf("version %d differs from the one of a learner without a live store", i+1)
		}
	}
	if !slices.EqualFunc(lv.appends, [][]int64{{10}, {10, 20}, {10, 20, 30}}, slices.Equal) {
		t.Errorf("appends %v; want each round's points with those not yet published", lv.appends)
	}
	for _, d := range lv.within {
		if d <= 0 || d > fleet.LivePublishTimeout {
			t.Errorf("a publish had %v to its deadline, want within (0, %v]", d, fleet.LivePublishTimeout)
		}
	}
}

// TestLearnerLiveCurveVersions: with curve points between checkpoints, a point carries the
// version published at or before it: 0 before the first checkpoint, the round's version at its
// end.
func TestLearnerLiveCurveVersions(t *testing.T) {
	// Rounds of 600 updates, a curve point every 500 (the reference interval): points at 500
	// (in round 1, before version 1) and 1000 (the end of round 2: version 2).
	const yaml = `
name: learn
seed: 9
lines: ["446"]
collect: { hours_per_line: 0.0166, episode_seconds: 20, light_probability: 0.3 }
train: { ensemble_size: 2, updates: 1000, checkpoint_every: 600, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
`
	w := collected(t, yaml)
	lv := &recordingLive{Live: memstore.NewLive()}
	step(t, liveLearner(t, w, "l", nil, lv))
	cs, err := lv.Curves(context.Background(), w.id)
	if err != nil || len(cs) != 1 {
		t.Fatalf("curves %+v, %v", cs, err)
	}
	var versions []uint64
	for _, p := range cs[0].Points {
		versions = append(versions, p.Version)
	}
	if u := livetest.Updates(cs[0]); !slices.Equal(u, []int64{500, 1000}) || !slices.Equal(versions, []uint64{0, 2}) {
		t.Errorf("updates %v at versions %v; want 500 1000 at 0 2", u, versions)
	}
	if task := w.task(t); task.Result.PolicyVersion != 2 {
		t.Errorf("task reported version %d, want 2", task.Result.PolicyVersion)
	}
}
