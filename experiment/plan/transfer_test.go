package plan_test

import (
	"math"
	"testing"

	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

func withTransfer(lines []string, episodes, obstacles int, food ...float64) func(*experiment.Spec) {
	return func(s *experiment.Spec) {
		t := experiment.DefaultTransfer()
		t.Lines, t.Episodes, t.Obstacles, t.FoodDistancesCM, t.EpisodeSeconds = lines, episodes, obstacles, food, 60
		s.Transfer = &t
	}
}

// TestTransferPlan: after evaluation (and cross-evaluation when there is one) the transfer
// phase opens, per line, environment and episode, the agent's episode (with the version its
// training task reported) and its no-light control on the same seed, in the environment its
// name says, the targets in turn; it closes when all are terminal.
func TestTransferPlan(t *testing.T) {
	for _, cross := range []bool{false, true} {
		s := newSpec(t, func(s *experiment.Spec) {
			if cross {
				withCross([]string{"301", "446"}, 1)(s)
			}
			withTransfer([]string{"446"}, 2, 12, 0, 1)(s)
		})
		p, open := plan.Start(s)
		var transfer []plan.Item
		phases := []plan.Phase{}
		for len(open) > 0 {
			it := open[0]
			open = open[1:]
			if len(phases) == 0 || phases[len(phases)-1] != it.Phase {
				phases = append(phases, it.Phase)
			}
			if it.Phase == plan.PhaseTransfer {
				transfer = append(transfer, it)
			} else if it.Environment != nil || it.Kind.Transfers() {
				t.Fatalf("item %d of phase %s has a transfer environment or kind", it.N, it.Phase)
			}
			r := plan.Result{PolicyVersion: 9}
			if it.Type == plan.TypeEpisode {
				r.Outcome = &episode.Outcome{Seconds: 30, LightFraction: 0.2, Frames: 90}
			}
			open = append(open, p.Done(it, r)...)
		}
		want := []plan.Phase{plan.PhaseCollect, plan.PhaseTrain, plan.PhaseEvaluate}
		if cross {
			want = append(want, plan.PhaseCrossEvaluate)
		}
		want = append(want, plan.PhaseTransfer)
		if len(phases) != len(want) || phases[len(phases)-1] != plan.PhaseTransfer || p.Status != plan.StatusDone {
			t.Fatalf("cross %v: phases %v, status %s; want %v then done", cross, phases, p.Status, want)
		}
		if len(transfer) != 3*2*2 {
			t.Fatalf("cross %v: %d transfer items, want 12", cross, len(transfer))
		}
		envs := []string{"obstacles", "food_0mm", "food_10mm"}
		for j := 0; j < len(transfer); j += 2 {
			a, n := transfer[j], transfer[j+1]
			k, i := j/4, (j/2)%2
			name, x, y := s.Target(i)
			if a.Kind != episode.KindTransfer || a.AgentLine != "446" || a.PolicyVersion != 9 || a.MaxStaleness != s.Policy.MaxStaleness {
				t.Errorf("item %d: %+v is not line 446's agent at version 9", a.N, a.Spec)
			}
			if n.Kind != episode.KindTransferNone || n.AgentLine != "" || n.PolicyVersion != 0 || n.N != a.N+1 {
				t.Errorf("item %d: %+v is not the no-light control after item %d", n.N, n.Spec, a.N)
			}
			if a.Seed != n.Seed || a.Seed != plan.Seed(s.Seed, a.N) {
				t.Errorf("items %d and %d: seeds %d and %d, want both %d", a.N, n.N, a.Seed, n.Seed, plan.Seed(s.Seed, a.N))
			}
			for _, it := range []plan.Item{a, n} {
				if it.Line != "446" || it.Seconds != 60 || it.Target == nil || *it.Target != (episode.Place{Name: name, XCM: x, YCM: y}) {
					t.Errorf("item %d: line %s, %v s, target %+v", it.N, it.Line, it.Seconds, it.Target)
				}
				e := it.Environment
				if e == nil || e.Name != envs[k] {
					t.Fatalf("item %d: environment %+v, want %s", it.N, e, envs[k])
				}
				if err := it.Spec.Validate(); err != nil {
					t.Errorf("item %d: %v", it.N, err)
				}
				switch k {
				case 0:
					if e.Obstacles != 12 || e.ObstacleRadiusCM != 0.075 || e.Food != nil {
						t.Errorf("item %d: %+v", it.N, e)
					}
				default:
					d := []float64{0, 1}[k-1]
					fx, fy := s.FoodPlace(i, d)
					if e.Obstacles != 0 || e.Food == nil || e.Food.XCM != fx || e.Food.YCM != fy || e.FoodRadiusCM != 0.5 {
						t.Errorf("item %d: %+v", it.N, e)
					}
					if got := math.Hypot(e.Food.XCM-x, e.Food.YCM-y); math.Abs(got-d) > 1e-9 {
						t.Errorf("item %d: lawn %.3f cm from the target, want %v", it.N, got, d)
					}
				}
			}
		}
	}
}

// A spec without transfer makes no transfer item (old files plan as before).
func TestNoTransferWithoutSection(t *testing.T) {
	s := newSpec(t, nil)
	p, open := plan.Start(s)
	for len(open) > 0 {
		it := open[0]
		open = open[1:]
		if it.Phase == plan.PhaseTransfer {
			t.Fatalf("transfer item %d without a transfer section", it.N)
		}
		r := plan.Result{PolicyVersion: 1}
		if it.Type == plan.TypeEpisode {
			r.Outcome = &episode.Outcome{Seconds: 30, Frames: 90}
		}
		open = append(open, p.Done(it, r)...)
	}
	if p.Status != plan.StatusDone {
		t.Fatalf("status %s", p.Status)
	}
}
