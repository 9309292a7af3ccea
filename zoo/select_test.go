package zoo

import (
	"context"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/agentlib/nn"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/results"
)

// constant is an ensemble on arch that always chooses light on (on) or off, whatever it sees:
// zero weights, and an output bias that decides.
func constant(t *testing.T, arch policy.Arch, on bool) *policy.Ensemble {
	t.Helper()
	m := nn.New(arch.Sizes...)
	b := m.B(m.Layers() - 1)
	b[0], b[1] = 5, -5
	if on {
		b[0], b[1] = -5, 5
	}
	e, err := policy.NewEnsemble(arch, m)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestSelectChoosesOnItsOwnEpisodes: on a freeze line (light all but stops the worm) an agent
// that always lights and one that never does come to different distances; the selection
// chooses the closer on its episodes, and the evaluation episodes are the chosen agent's, on
// other animals than the selection's, with random light at its measured on-rate. Candidates may
// observe either observation. Select refuses lines whose candidates differ.
func TestSelectChoosesOnItsOwnEpisodes(t *testing.T) {
	z, cat := zooCatalogue(t, 24, 1)
	freeze := ""
	for _, e := range z.Entries {
		if e.Family == FreezeSteer {
			freeze = e.Line.Code
			break
		}
	}
	if freeze == "" {
		t.Fatal("no freeze-steer line in the zoo of 24 lines, seed 1")
	}
	ev := DefaultEvaluate()
	ev.EpisodesPerCondition, ev.EpisodeSeconds = 4, 120
	cfg := SelectConfig{
		BoundsConfig: BoundsConfig{Catalogue: cat, Lines: []string{freeze}, Evaluate: ev, Seed: 4, NoRender: true, Parallel: 2},
		Candidates: map[string][]Candidate{freeze: {
			{Name: "lit", Ensemble: constant(t, policy.ArchOn(policy.LightSpec()), true)},
			{Name: "dark", Ensemble: constant(t, policy.ReferenceArch(), false)},
		}},
	}
	sel, err := Select(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := sel[0]
	if len(s.Selection) != 2 || s.Selection[0].Policy != "lit" || s.Selection[1].Policy != "dark" {
		t.Fatalf("selection %+v", s.Selection)
	}
	if s.Selection[0].LightFraction < 0.9 || s.Selection[1].LightFraction != 0 {
		t.Fatalf("light fractions %v and %v: the constant agents did not act", s.Selection[0].LightFraction, s.Selection[1].LightFraction)
	}
	// The chosen agents are the ones closer on the selection episodes, and the evaluation is
	// theirs: an always-on agent's light fraction and random rate are near 1, a dark one's 0.
	best := 0
	if s.Selection[1].MeanCM < s.Selection[0].MeanCM {
		best = 1
	}
	if s.Chosen != s.Selection[best].Policy || s.Selection[0].MeanCM == s.Selection[1].MeanCM {
		t.Fatalf("chose %s with selection %v (lit) and %v (dark) cm", s.Chosen, s.Selection[0].MeanCM, s.Selection[1].MeanCM)
	}
	if lit := s.Chosen == "lit"; (s.Agent.LightFraction > 0.9) != lit || s.RandomRate != s.Agent.LightFraction {
		t.Fatalf("chose %s; its evaluation lit %v of frames, random light at %v", s.Chosen, s.Agent.LightFraction, s.RandomRate)
	}
	for i, c := range s.Agent.ClosestCM {
		if c == s.Selection[1].ClosestCM[i] {
			t.Fatalf("evaluation episode %d of the chosen agents repeats its selection episode (%v cm)", i, c)
		}
	}
	if s.Agent.N != 4 || s.None.N != 4 || s.Random.N != 4 {
		t.Fatalf("evaluation %+v", s)
	}
	rep, err := SelectionReport(sel)
	if err != nil {
		t.Fatal(err)
	}
	if lr := rep.Lines[0]; lr.Conditions[results.Agent].MeanClosest != s.Agent.Mean || lr.PAgentVsNone != s.PAgentVsNone {
		t.Fatalf("report %+v of selection %+v", lr, s)
	}

	cfg.Lines = append(cfg.Lines, z.Entries[0].Line.Code)
	cfg.Candidates[z.Entries[0].Line.Code] = []Candidate{{Name: "other", Ensemble: constant(t, policy.ReferenceArch(), false)}}
	if _, err := Select(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "candidates") {
		t.Fatalf("lines with different candidates: %v", err)
	}
}
