package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/results"
)

const tinyYAML = `
name: tiny
seed: 3
lines: ["446", "73"]
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

func TestRunWritesACompleteRunFolder(t *testing.T) {
	cfg := tinyConfig(t, tinyYAML)
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	run, err := results.Load(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Missing) != 0 {
		t.Fatalf("run folder misses %v", run.Missing)
	}
	if run.Report.Finished.IsZero() || run.Report.Name != "tiny" {
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
		for _, c := range []string{results.Agent, results.None, results.Random} {
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
		if l.RandomRate != rate || l.AgentLightFraction != rate {
			t.Errorf("line %s: random rate %v, agent light fraction %v, measured %v", l.Line, l.RandomRate, l.AgentLightFraction, rate)
		}
		for _, id := range l.Conditions[results.Random].EpisodeIDs {
			if byID[id].LightProbability != rate {
				t.Errorf("random episode %s ran at P=%v, want %v", id, byID[id].LightProbability, rate)
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
	// Episodes of the same experiment and seed are the same animals: a second run reproduces
	// the first.
	cfg2 := cfg
	cfg2.Dir = filepath.Join(t.TempDir(), "again")
	r2, err := New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	rep2, err := r2.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range rep.Lines {
		a, b := rep.Lines[i].Conditions[results.None].ClosestCM, rep2.Lines[i].Conditions[results.None].ClosestCM
		for k := range a {
			if a[k] != b[k] {
				t.Fatalf("line %s none episode %d: %v then %v", rep.Lines[i].Line, k, a[k], b[k])
			}
		}
	}
	// A folder that holds a report is not overwritten.
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	r3, _ := New(cfg)
	if _, err := r3.Run(context.Background()); err == nil {
		t.Fatal("a second run into a finished run folder was accepted")
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
