package coordinator_test

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

// engineLines are engineSpec's lines.
var engineLines = []string{"301", "446", "281"}

// engineSpec is small but runs every phase: per line 3 collect episodes, a training task, 2
// agent, 2 no-light and 2 random-light episodes; then 2 x 2 cross episodes.
const engineSpec = `name: engine
seed: 7
lines: ["301", "446", "281"]
collect: {hours_per_line: 0.01, episode_seconds: 12, light_probability: 0.2}
train: {ensemble_size: 2, updates: 10, checkpoint_every: 5}
evaluate: {episodes_per_condition: 2, episode_seconds: 30}
cross_evaluate: {lines: ["301", "446"], episodes: 1}
`

// broker is what the engine test drives: coordinator.Local and api.Client both offer it.
type broker interface {
	Submit(ctx context.Context, spec []byte) (string, error)
	RegisterWorker(ctx context.Context, w api.RegisterWorkerCmd) error
	RegisterLearner(ctx context.Context, l api.RegisterLearnerCmd) error
	Lease(ctx context.Context, req api.LeaseRequest) (*api.Item, error)
	Report(ctx context.Context, req api.ReportCmd) (*api.Item, error)
	Experiment(ctx context.Context, id string) (api.ExperimentView, error)
}

var (
	_ broker = (*coordinator.Local)(nil)
	_ broker = (*api.Client)(nil)
)

// scriptedLight is the light fraction an episode reports: a function of its item number only.
func scriptedLight(n int) float64 { return float64((n*7)%10) / 10 }

// scriptedVersion is the final parameter version a training task reports.
func scriptedVersion(n int) uint64 { return 1000 + uint64(n) }

// scriptedOutcome is what a worker reports for an episode: deterministic in the item.
func scriptedOutcome(it *api.Item) *episode.Outcome {
	o := &episode.Outcome{
		Seconds:         it.Seconds,
		ClosestCM:       0.1 * float64(it.N%13),
		FinalDistanceCM: 0.2 * float64(it.N%11),
		MeanSpeedMMs:    0.05,
		LightFraction:   scriptedLight(it.N),
		Frames:          int(it.Seconds / 0.3),
	}
	if it.Kind.Acts() {
		o.PolicyVersion = it.PolicyVersion
	}
	return o
}

// run drives one experiment to its end with one worker per line and one learner, in a fixed
// order (each line's worker drains its queue in turn, in the order of lines, then the
// learner), reporting scripted outcomes. It returns the leased item ids in lease order and the
// final experiment.
func run(t *testing.T, ctx context.Context, b broker, lines []string) ([]string, api.ExperimentView) {
	t.Helper()
	spec, err := experiment.Parse([]byte(engineSpec))
	if err != nil {
		t.Fatal(err)
	}
	id, err := b.Submit(ctx, []byte(engineSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range spec.Lines {
		if err := b.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w" + line, ArenaID: "arena-" + line, Line: line}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "learner"}); err != nil {
		t.Fatal(err)
	}
	var leased []string
	drain := func(holder string, typ plan.ItemType) bool {
		got := false
		for {
			it, err := b.Lease(ctx, api.LeaseRequest{Holder: holder, Type: typ})
			if err != nil {
				t.Fatalf("%s: lease: %v", holder, err)
			}
			if it == nil {
				return got
			}
			got = true
			leased = append(leased, it.ID)
			rep := api.ReportCmd{Holder: holder, ItemID: it.ID, Token: it.Token}
			if typ == plan.TypeTrain {
				rep.PolicyVersion = scriptedVersion(it.N)
			} else {
				rep.Outcome = scriptedOutcome(it)
			}
			if _, err := b.Report(ctx, rep); err != nil {
				t.Fatalf("%s: report %s: %v", holder, it.ID, err)
			}
		}
	}
	for {
		worked := false
		for _, line := range lines {
			worked = drain("w"+line, plan.TypeEpisode) || worked
		}
		worked = drain("learner", plan.TypeTrain) || worked
		v, err := b.Experiment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !v.Experiment.Running() {
			return leased, v
		}
		if !worked {
			t.Fatalf("experiment %s is %s in %s with no work to lease", id, v.Experiment.Status, v.Experiment.Phase)
		}
	}
}

// suffix is an item id without its experiment id.
func suffix(it api.Item) string { return strings.TrimPrefix(it.ID, it.ExperimentID) }

// TestEngineLocalAndClusterAgree drives the same experiment with the same scripted outcomes
// through coordinator.Local and through a real 3-node Raft cluster: both must create the same
// items (number, kind, lines, target, seconds, seed, light probability, policy version) in the
// same order, lease them in the same order, measure the same random-light rates and end done.
func TestEngineLocalAndClusterAgree(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	local, err := coordinator.NewLocal(coordinator.DefaultLocalConfig())
	if err != nil {
		t.Fatal(err)
	}
	localLeased, lv := run(t, ctx, local, engineLines)
	c := coordinatortest.New(t, 3, nil)
	clusterLeased, cv := run(t, ctx, c.Client(t), engineLines)
	c.WaitConverged()

	// Both ran the whole protocol to the end.
	for name, v := range map[string]api.ExperimentView{"local": lv, "cluster": cv} {
		if v.Experiment.Status != plan.StatusDone || v.Experiment.Phase != plan.PhaseDone || v.Experiment.Reason != "" {
			t.Fatalf("%s: experiment %s in %s: %q", name, v.Experiment.Status, v.Experiment.Phase, v.Experiment.Reason)
		}
	}
	// 3 lines x (3 collect + 1 train + 3 conditions x 2) + 2 x 2 cross.
	const want = 3*(3+1+3*2) + 2*2
	if len(lv.Items) != want || len(cv.Items) != want {
		t.Fatalf("%d items locally, %d on the cluster, want %d", len(lv.Items), len(cv.Items), want)
	}
	for i := range lv.Items {
		l, r := lv.Items[i], cv.Items[i]
		if suffix(l) != suffix(r) || !reflect.DeepEqual(l.Item, r.Item) {
			t.Fatalf("item %d differs:\nlocal   %s %+v\ncluster %s %+v", i, l.ID, l.Item, r.ID, r.Item)
		}
		if l.State != api.StateDone || r.State != api.StateDone || l.Attempts != 1 || r.Attempts != 1 {
			t.Fatalf("item %d: local %s (%d attempts), cluster %s (%d attempts)", i, l.State, l.Attempts, r.State, r.Attempts)
		}
		if !reflect.DeepEqual(l.Result.Outcome, r.Result.Outcome) || l.Result.PolicyVersion != r.Result.PolicyVersion {
			t.Fatalf("item %d: results differ: %+v / %+v", i, l.Result, r.Result)
		}
	}
	if len(localLeased) != want || len(clusterLeased) != want {
		t.Fatalf("leased %d items locally, %d on the cluster, want %d each", len(localLeased), len(clusterLeased), want)
	}
	for i := range localLeased {
		if strings.TrimPrefix(localLeased[i], lv.Experiment.ID) != strings.TrimPrefix(clusterLeased[i], cv.Experiment.ID) {
			t.Fatalf("lease %d: %s locally, %s on the cluster", i, localLeased[i], clusterLeased[i])
		}
	}
	le, ce := lv.Experiment, cv.Experiment
	if !reflect.DeepEqual(le.RandomRates, ce.RandomRates) || !reflect.DeepEqual(le.PolicyVersions, ce.PolicyVersions) {
		t.Fatalf("random rates %v / %v, policy versions %v / %v", le.RandomRates, ce.RandomRates, le.PolicyVersions, ce.PolicyVersions)
	}

	// What they agree on is the protocol: every phase in order, one seed scheme, agents acting
	// with their line's trained version, random light at the agent's measured rate.
	// Items are listed in creation order and use each number below want once.
	seen := map[episode.Kind]int{}
	agentLight := map[string][]float64{}
	version := map[string]uint64{}
	used := map[int]bool{}
	for i, it := range lv.Items {
		if it.N < 0 || it.N >= want || used[it.N] || suffix(it) != fmt.Sprintf(".%d", it.N) || it.Seed != plan.Seed(7, it.N) {
			t.Fatalf("item %d: id %s n %d seed %d, want seed %d", i, it.ID, it.N, it.Seed, plan.Seed(7, it.N))
		}
		used[it.N] = true
		seen[it.Kind]++
		switch it.Kind {
		case episode.KindCollect:
			if it.Phase != plan.PhaseCollect || it.LightProbability != 0.2 || it.Seconds != 12 || it.Target != nil {
				t.Fatalf("collect item %+v", it.Item)
			}
		case episode.KindTrain:
			if it.Type != plan.TypeTrain || it.Train == nil || it.Train.EnsembleSize != 2 {
				t.Fatalf("training task %+v", it.Item)
			}
			version[it.Line] = scriptedVersion(it.N)
		case episode.KindAgent, episode.KindCross:
			if it.PolicyVersion == 0 || it.PolicyVersion != version[it.AgentLine] || it.Target == nil || it.Seconds != 30 {
				t.Fatalf("%s item %+v, want policy version %d", it.Kind, it.Item, version[it.AgentLine])
			}
			if it.Kind == episode.KindAgent {
				agentLight[it.Line] = append(agentLight[it.Line], scriptedLight(it.N))
			}
		case episode.KindRandom:
			lf := agentLight[it.Line]
			if len(lf) != 2 {
				t.Fatalf("random item %s of line %s created after %d agent episodes, want 2", it.ID, it.Line, len(lf))
			}
			if rate := (lf[0] + lf[1]) / 2; it.LightProbability != rate || le.RandomRates[it.Line] != rate {
				t.Fatalf("random item %s: light probability %v (rate %v), want the agents' mean light fraction %v", it.ID, it.LightProbability, le.RandomRates[it.Line], rate)
			}
		}
	}
	wantKinds := map[episode.Kind]int{episode.KindCollect: 9, episode.KindTrain: 3, episode.KindAgent: 6, episode.KindNone: 6, episode.KindRandom: 6, episode.KindCross: 4}
	if !reflect.DeepEqual(seen, wantKinds) {
		t.Fatalf("items by kind %v, want %v", seen, wantKinds)
	}
	for _, node := range c.Nodes() {
		if e, _, ok := node.FSM().Experiment(ce.ID); !ok || e.Status != plan.StatusDone {
			t.Fatalf("%s: experiment %v %s", node.ID(), ok, e.Status)
		}
	}
}

// TestEngineLineOrderKeepsAnimals runs the experiment twice in one process, the lines' workers
// taking turns in opposite orders, so that the lines' agent episodes end (and their random-light
// episodes are created) in another order: every item must still have the same number, id, seed
// and light probability, and report the same result.
func TestEngineLineOrderKeepsAnimals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reverse := slices.Clone(engineLines)
	slices.Reverse(reverse)
	views := map[string]api.ExperimentView{}
	created := map[string][]string{}
	for name, lines := range map[string][]string{"forward": engineLines, "reverse": reverse} {
		local, err := coordinator.NewLocal(coordinator.DefaultLocalConfig())
		if err != nil {
			t.Fatal(err)
		}
		_, v := run(t, ctx, local, lines)
		if v.Experiment.Status != plan.StatusDone {
			t.Fatalf("%s: experiment %s in %s: %q", name, v.Experiment.Status, v.Experiment.Phase, v.Experiment.Reason)
		}
		for _, it := range v.Items {
			created[name] = append(created[name], string(it.Kind)+" "+it.Line)
		}
		slices.SortFunc(v.Items, func(a, b api.Item) int { return cmp.Compare(a.N, b.N) })
		views[name] = v
	}
	if slices.Equal(created["forward"], created["reverse"]) {
		t.Fatalf("both runs created the items (kind and line) in the same order %v: the test shows nothing", created["forward"])
	}
	f, r := views["forward"], views["reverse"]
	if len(f.Items) != len(r.Items) {
		t.Fatalf("%d items forward, %d in reverse", len(f.Items), len(r.Items))
	}
	for i := range f.Items {
		a, b := f.Items[i], r.Items[i]
		if a.N != i || suffix(a) != suffix(b) || !reflect.DeepEqual(a.Item, b.Item) || !reflect.DeepEqual(a.Result.Outcome, b.Result.Outcome) || a.Result.PolicyVersion != b.Result.PolicyVersion {
			t.Errorf("item %d differs:\nforward %s %+v %+v\nreverse %s %+v %+v", i, a.ID, a.Item, a.Result, b.ID, b.Item, b.Result)
		}
	}
	if !reflect.DeepEqual(f.Experiment.RandomRates, r.Experiment.RandomRates) || !reflect.DeepEqual(f.Experiment.RandomFirst, r.Experiment.RandomFirst) {
		t.Errorf("random rates %v / %v, first numbers %v / %v", f.Experiment.RandomRates, r.Experiment.RandomRates, f.Experiment.RandomFirst, r.Experiment.RandomFirst)
	}
}
