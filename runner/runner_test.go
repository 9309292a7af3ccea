package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/station"
)

const tinyYAML = `
name: tiny
seed: 3
lines: ["446", "73"]
arenas_per_line: 2
collect: { hours_per_line: 0.25, episode_seconds: 300, light_probability: 0.1 }
train: { ensemble_size: 2, updates: 60, checkpoint_every: 30 }
evaluate: { episodes_per_condition: 3, episode_seconds: 120 }
cross_evaluate: { lines: ["446", "73"], episodes: 2 }
`

func tinyConfig(t *testing.T, yaml string) Config {
	t.Helper()
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := experiment.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return Config{Spec: spec, SpecYAML: []byte(yaml), Dir: filepath.Join(t.TempDir(), "run"), Catalogue: cat, NoRender: true, Parallel: 2}
}

func run(t *testing.T, cfg Config) *results.Report {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRunWritesACompleteRunFolder(t *testing.T) {
	cfg := tinyConfig(t, tinyYAML)
	rep := run(t, cfg)
	run, err := results.Load(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Missing) != 0 {
		t.Fatalf("run folder misses %v", run.Missing)
	}
	if run.Report.Finished.IsZero() || run.Report.Name != "tiny" || run.Report.Status != plan.StatusDone {
		t.Fatalf("report header %+v", run.Report)
	}
	// 2 lines x (3 collect + 3 conditions x 3) episodes + 4 cross pairs x 2.
	if want := 2*(3+9) + 8; len(run.Episodes) != want {
		t.Fatalf("%d episodes in the folder, want %d", len(run.Episodes), want)
	}
	byID := map[string]results.Episode{}
	for _, e := range run.Episodes {
		byID[e.ID] = e
	}
	for _, l := range rep.Lines {
		for _, f := range []string{results.EnsembleDir, results.CurvesFile, results.PolicyMapFile} {
			if _, err := os.Stat(filepath.Join(results.LineDir(cfg.Dir, l.Line), f)); err != nil {
				t.Errorf("line %s: %v", l.Line, err)
			}
		}
		if l.Members != 2 || l.Updates != 60 || l.TransitionsUsed == 0 {
			t.Errorf("line %s trained %d members x %d updates on %d windows", l.Line, l.Members, l.Updates, l.TransitionsUsed)
		}
		for _, c := range []episode.Kind{results.Agent, results.None, results.Random} {
			cond := l.Conditions[c]
			if cond.N != 3 || len(cond.ClosestCM) != 3 || len(cond.EpisodeIDs) != 3 {
				t.Fatalf("line %s %s: %+v", l.Line, c, cond)
			}
			// The summary is the per-episode data's, and the data are the episodes'.
			m, sd, _ := results.Summarize(cond.ClosestCM)
			if m != cond.MeanClosest || sd != cond.SDClosest {
				t.Errorf("line %s %s: summary %v±%v, data say %v±%v", l.Line, c, cond.MeanClosest, cond.SDClosest, m, sd)
			}
			for i, id := range cond.EpisodeIDs {
				e, ok := byID[id]
				if !ok || e.ClosestCM != cond.ClosestCM[i] || e.Line != l.Line || e.Condition != c {
					t.Errorf("line %s %s episode %s does not match its file", l.Line, c, id)
				}
				if len(e.Frames) != 360 {
					t.Errorf("episode %s keeps %d frames, want 360", id, len(e.Frames))
				}
			}
		}
		// Random light runs at the agent's measured on-rate.
		rate, _, _ := results.Summarize(l.Conditions[results.Agent].LightFrac)
		if d := l.RandomRate - rate; d > 1e-12 || d < -1e-12 || l.AgentLightFraction != l.RandomRate {
			t.Errorf("line %s: random rate %v, agent light fraction %v, measured %v", l.Line, l.RandomRate, l.AgentLightFraction, rate)
		}
		for _, id := range l.Conditions[results.Random].EpisodeIDs {
			if byID[id].LightProbability != l.RandomRate {
				t.Errorf("random episode %s ran at P=%v, want %v", id, byID[id].LightProbability, l.RandomRate)
			}
		}
		_, p, err := results.MannWhitneyU(l.Conditions[results.Agent].ClosestCM, l.Conditions[results.None].ClosestCM)
		if err != nil || p != l.PAgentVsNone {
			t.Errorf("line %s: p(agent, none) = %v, recomputed %v (%v)", l.Line, l.PAgentVsNone, p, err)
		}
	}
	if rep.Cross == nil || len(rep.Cross.ClosestCM) != 2 || len(rep.Cross.ClosestCM[0]) != 2 || rep.Cross.N[1][0] != 2 {
		t.Fatalf("cross %+v", rep.Cross)
	}
	// A folder that holds a report is not overwritten.
	r3, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r3.Run(context.Background()); err == nil {
		t.Fatal("a second run into a finished run folder was accepted")
	}
}

// reportNumbers is report.json without its timestamps.
func reportNumbers(t *testing.T, dir string) []byte {
	t.Helper()
	m, err := results.ReportNumbers(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(m)
	return out
}

// TestResultsDoNotDependOnParallelism runs one experiment three times: twice with two arenas
// at once, once with one. Episodes finish in different orders, yet report.json and the trained
// ensembles must be the same: items, seeds and the replay order come from the plan, not from
// which arena finished first.
func TestResultsDoNotDependOnParallelism(t *testing.T) {
	const yaml = `
name: order
seed: 5
lines: ["301"]
arenas_per_line: 3
collect: { hours_per_line: 0.25, episode_seconds: 150, light_probability: 0.1 }
train: { ensemble_size: 2, updates: 200, checkpoint_every: 100, target_every: 1 }
evaluate: { episodes_per_condition: 3, episode_seconds: 60 }
`
	var reports [3][]byte
	var ens [3][]byte
	for i, parallel := range []int{2, 1, 2} {
		cfg := tinyConfig(t, yaml)
		cfg.Parallel = parallel
		run(t, cfg)
		reports[i] = reportNumbers(t, cfg.Dir)
		b, err := os.ReadFile(filepath.Join(results.LineDir(cfg.Dir, "301"), results.PolicyMapFile))
		if err != nil {
			t.Fatal(err)
		}
		ens[i] = b
	}
	for i := 1; i < 3; i++ {
		if !bytes.Equal(reports[0], reports[i]) {
			t.Errorf("run %d: report.json differs from run 0:\n%s\n%s", i, reports[0], reports[i])
		}
		if !bytes.Equal(ens[0], ens[i]) {
			t.Errorf("run %d trained a different ensemble (policy maps differ)", i)
		}
	}
}

// flaky fails chosen episodes: every attempt of those in always, the first attempt of those in
// once.
type flaky struct {
	fleet.Station
	mu     *sync.Mutex
	once   map[string]bool
	always map[string]bool
}

func (f flaky) Run(ctx context.Context, e station.Episode) (station.Result, error) {
	f.mu.Lock()
	fail := f.always[e.ID] || f.once[e.ID]
	delete(f.once, e.ID)
	f.mu.Unlock()
	if fail {
		return station.Result{}, fmt.Errorf("arena lost its camera during %s", e.ID)
	}
	return f.Station.Run(ctx, e)
}

// TestFailedEpisodesAreRetriedThenNamed injects arena failures: an episode whose first attempt
// fails is retried and counts once; one whose every attempt fails is failed for good with its
// reasons kept, left out of the results and named in the report.
func TestFailedEpisodesAreRetriedThenNamed(t *testing.T) {
	const yaml = `
name: faults
seed: 2
lines: ["301"]
arenas_per_line: 2
collect: { hours_per_line: 0.25, episode_seconds: 300, light_probability: 0.1 }
train: { ensemble_size: 1, updates: 20, checkpoint_every: 10 }
evaluate: { episodes_per_condition: 3, episode_seconds: 60 }
`
	cfg := tinyConfig(t, yaml)
	// Items: 0-2 collect, 3 train, 4-6 agent, 7-9 none.
	once := map[string]bool{"faults-1.1": true, "faults-1.5": true}
	always := map[string]bool{"faults-1.8": true}
	var mu sync.Mutex
	cfg.NewStation = func(c station.Config) (fleet.Station, error) {
		s, err := station.New(c)
		if err != nil {
			return nil, err
		}
		return flaky{Station: s, mu: &mu, once: once, always: always}, nil
	}
	rep := run(t, cfg)
	l := rep.Lines[0]
	if n := l.Conditions[results.Agent].N; n != 3 {
		t.Errorf("agent condition has %d episodes, want 3 (one retried)", n)
	}
	if n := l.Conditions[results.None].N; n != 2 {
		t.Errorf("none condition has %d episodes, want 2 (one failed for good)", n)
	}
	if len(rep.Failed) != 1 || rep.Failed[0].ID != "faults-1.8" || len(rep.Failed[0].Reasons) != 3 ||
		!strings.Contains(rep.Failed[0].Reasons[0], "lost its camera") {
		t.Fatalf("failed items %+v, want faults-1.8 with its 3 reasons", rep.Failed)
	}
	for _, id := range l.Conditions[results.None].EpisodeIDs {
		if id == "faults-1.8" {
			t.Fatal("the failed episode is counted in the results")
		}
	}
}

// TestFailedTrainingFailsTheRun checks that a run whose training cannot succeed ends with an
// error and a report that is not presented as finished.
func TestFailedTrainingFailsTheRun(t *testing.T) {
	const yaml = `
name: notrain
seed: 2
lines: ["301"]
arenas_per_line: 1
collect: { hours_per_line: 0.01, episode_seconds: 3, light_probability: 0.1 }
train: { ensemble_size: 1, updates: 20, checkpoint_every: 10 }
evaluate: { episodes_per_condition: 1, episode_seconds: 60 }
`
	// 3 s episodes have no 16-frame window to train on: every training attempt fails.
	cfg := tinyConfig(t, yaml)
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(context.Background())
	if err == nil {
		t.Fatal("a run whose training failed returned no error")
	}
	if rep == nil || rep.Status != plan.StatusFailed || !rep.Finished.IsZero() || len(rep.Failed) == 0 {
		t.Fatalf("report %+v", rep)
	}
	loaded, lerr := results.Load(cfg.Dir)
	if lerr != nil || loaded.Report == nil || loaded.Report.Status != plan.StatusFailed {
		t.Fatalf("run folder report %+v (%v)", loaded, lerr)
	}
}

func TestRunRefusesBadExperiments(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		noDir bool
	}{
		{name: "unknown line", yaml: `{name: x, lines: ["999"]}`},
		{name: "unknown line among known ones", yaml: `{name: x, lines: ["446", "73", "nope"]}`},
		{name: "no run folder", yaml: `{name: x, lines: ["446"]}`, noDir: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat, err := sim.DefaultCatalogue()
			if err != nil {
				t.Fatal(err)
			}
			spec, err := experiment.Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "run")
			cfg := Config{Spec: spec, Dir: dir, Catalogue: cat}
			if tt.noDir {
				cfg.Dir = ""
			}
			if _, err := New(cfg); err == nil {
				t.Fatal("accepted")
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a refused experiment created its run folder")
			}
		})
	}
}

func TestCancelledRunLeavesAPartialReport(t *testing.T) {
	cfg := tinyConfig(t, tinyYAML)
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	run, err := results.Load(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if run.Report == nil || !run.Report.Finished.IsZero() {
		t.Fatalf("partial report %+v", run.Report)
	}
}

func TestRunProgress(t *testing.T) {
	cfg := tinyConfig(t, tinyYAML)
	var mu sync.Mutex
	var phases []plan.Phase
	var last api.ExperimentView
	cfg.Progress = func(v api.ExperimentView) {
		mu.Lock()
		defer mu.Unlock()
		if n := len(phases); n == 0 || phases[n-1] != v.Experiment.Phase {
			phases = append(phases, v.Experiment.Phase)
		}
		last = v
	}
	run(t, cfg)
	mu.Lock()
	defer mu.Unlock()
	order := []plan.Phase{plan.PhaseCollect, plan.PhaseTrain, plan.PhaseEvaluate, plan.PhaseCrossEvaluate, plan.PhaseDone}
	if len(phases) < 2 || phases[0] != plan.PhaseCollect || phases[len(phases)-1] != plan.PhaseDone ||
		!slices.IsSortedFunc(phases, func(a, b plan.Phase) int { return slices.Index(order, a) - slices.Index(order, b) }) {
		t.Fatalf("phases seen %v", phases)
	}
	if last.Experiment.Status != plan.StatusDone || len(last.Items) == 0 {
		t.Fatalf("last view: %s, %d items", last.Experiment.Status, len(last.Items))
	}
	for _, it := range last.Items {
		if it.State != api.StateDone {
			t.Fatalf("item %s %s in the last view", it.ID, it.State)
		}
	}
}
