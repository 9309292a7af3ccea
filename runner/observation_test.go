package runner

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/agentlib/obs"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/results"
)

// With train.observation: light the whole engine follows: the learner trains 105-input actors,
// the run folder keeps them as such, and the workers act with them (the agents' episodes ran
// and their light shows in the results).
func TestLightObservationRunsThrough(t *testing.T) {
	yaml := strings.Replace(tinyYAML, "train: { ensemble_size: 2, updates: 60, checkpoint_every: 30 }",
		"train: { ensemble_size: 2, updates: 60, checkpoint_every: 30, observation: light }", 1)
	if yaml == tinyYAML {
		t.Fatal("tiny experiment's train section not found")
	}
	cfg := tinyConfig(t, yaml)
	rep := run(t, cfg)
	for _, l := range rep.Lines {
		e, err := results.LoadEnsemble(filepath.Join(results.LineDir(cfg.Dir, l.Line), results.EnsembleDir))
		if err != nil {
			t.Fatalf("line %s: %v", l.Line, err)
		}
		if e.Arch().Spec != policy.LightSpec() || e.ObservationSize() != obs.LightSize {
			t.Fatalf("line %s: ensemble observes %+v (%d numbers)", l.Line, e.Arch().Spec, e.ObservationSize())
		}
		if a := l.Conditions[results.Agent]; a.N != 3 {
			t.Fatalf("line %s: %d agent episodes", l.Line, a.N)
		}
	}
	if rep.Cross == nil || rep.Cross.N[0][1] != 2 {
		t.Fatalf("cross-evaluation with light-observing agents: %+v", rep.Cross)
	}
}
