//go:build !race

package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/experiment"
)

// TestScienceSubset pins, at a scale that fits a test (about a minute without -race on two
// cores), the per-line part of experiments/science.yaml (runner/SCIENCE.md): the agents
// of 446, 301 and 281 beat no light and random light at their own on-rate (p < 0.05, two-sided
// Mann-Whitney, 20 episodes per condition), and the wild type's (73) do not beat no light. It
// runs the science file's training settings with 4 agents per line and no cross-evaluation.
// Measured on the one engine (coordinator.Local + fleet; 3 min 21 s with two other jobs on the
// 2 cores): 446 0.24 cm against no light 1.26 and random light 1.06 (p 1e-9, 6e-6), 301 0.26
// against 1.15 and 1.19 (p 1e-7, 2e-8), 281 0.06 against 1.16 and 0.54 (p 2e-11, 1e-4), 73 1.24
// against 1.21 (p 0.93). With gamma 0.99, the first round's setting, 446 failed at full scale on
// both seeds measured (runner/SCIENCE.md).
func TestScienceSubset(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "experiments", "science.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	yaml, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := experiment.Parse(yaml)
	if err != nil {
		t.Fatal(err)
	}
	spec.Name = "science-subset"
	spec.Lines = []string{"446", "301", "281", "73"}
	spec.CrossEvaluate = nil
	spec.Train.EnsembleSize = 4
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Spec: spec, Dir: filepath.Join(t.TempDir(), "run"), Catalogue: cat, NoRender: true})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	rep, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ran in %v", time.Since(t0).Round(time.Second))
	for _, l := range rep.Lines {
		a, n, rnd := l.Conditions["agent"], l.Conditions["none"], l.Conditions["random"]
		t.Logf("line %s: agent %.2f cm, none %.2f, random %.2f at %.2f; p %.2g, %.2g (n %d)",
			l.Line, a.MeanClosest, n.MeanClosest, rnd.MeanClosest, l.RandomRate, l.PAgentVsNone, l.PAgentVsRandom, a.N)
		if a.N < 20 || n.N < 20 || rnd.N < 20 {
			t.Fatalf("line %s: %d/%d/%d episodes, want at least 20 per condition", l.Line, a.N, n.N, rnd.N)
		}
		switch l.Line {
		case "446", "301", "281":
			if !(a.MeanClosest < n.MeanClosest && l.PAgentVsNone < 0.05) {
				t.Errorf("%s: agent %.2f cm vs no light %.2f (p %.2g): want lower, p < 0.05", l.Line, a.MeanClosest, n.MeanClosest, l.PAgentVsNone)
			}
			if !(a.MeanClosest < rnd.MeanClosest && l.PAgentVsRandom < 0.05) {
				t.Errorf("%s: agent %.2f cm vs random %.2f (p %.2g): want lower, p < 0.05", l.Line, a.MeanClosest, rnd.MeanClosest, l.PAgentVsRandom)
			}
		case "73":
			if a.MeanClosest < n.MeanClosest && l.PAgentVsNone < 0.05 {
				t.Errorf("73 (no opsin): agent %.2f cm significantly better than no light %.2f (p %.2g)", a.MeanClosest, n.MeanClosest, l.PAgentVsNone)
			}
		}
	}
}
