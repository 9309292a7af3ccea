package sim

import (
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/optoloop/optoloop/arenas"
)

// TestLineResponses pins each line's light response in statistics: the same 40 seeded animals
// (300 s each) with the light always on against always off, compared with a Mann-Whitney U test.
// Responsive lines must differ in the literature's direction (p < 0.001); the wild type must
// not differ beyond noise (p > 0.05) in any measure.
func TestLineResponses(t *testing.T) {
	const n, secs = 40, 300
	type measure struct {
		name string
		f    func(fixedResult) float64
	}
	rev := measure{"reversals per min (not edge-triggered)", spontaneous}
	spd := measure{"mean speed", speed}
	omg := measure{"omega turns per min", omegas}
	tests := []struct {
		line string
		m    measure
		more bool // light raises the measure
	}{
		{"301", rev, true},
		{"301", omg, true},
		{"446", spd, false},
		{"446", rev, false},
		{"281", rev, false},
		{"281", spd, true},
		{"352", omg, true},
		{"336", spd, false},
		{"437", rev, true},
	}
	cache := map[string][2][]fixedResult{}
	run := func(code string) [2][]fixedResult {
		if r, ok := cache[code]; ok {
			return r
		}
		l := mustLine(t, code)
		r := [2][]fixedResult{episodes(t, l, "none", n, secs, 300), episodes(t, l, "always", n, secs, 300)}
		cache[code] = r
		return r
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s", tt.line, tt.m.name), func(t *testing.T) {
			r := run(tt.line)
			off, on := field(r[0], tt.m.f), field(r[1], tt.m.f)
			p, e := mannWhitney(on, off)
			mOff, _ := meanSD(off)
			mOn, _ := meanSD(on)
			t.Logf("line %s %s: off %.3f, on %.3f (p %.2g, P(on > off) %.2f)", tt.line, tt.m.name, mOff, mOn, p, e)
			if p > 0.001 || (e > 0.5) != tt.more {
				t.Errorf("line %s: light does not %s %s: off %.3f, on %.3f, p %.2g", tt.line,
					map[bool]string{true: "raise", false: "lower"}[tt.more], tt.m.name, mOff, mOn, p)
			}
		})
	}
	t.Run("73 wild type shows no response", func(t *testing.T) {
		r := run("73")
		for _, m := range []measure{rev, spd, omg, {"closest approach", closest}} {
			off, on := field(r[0], m.f), field(r[1], m.f)
			if p, _ := mannWhitney(on, off); p < 0.05 {
				t.Errorf("wild type differs under light in %s: p %.3g", m.name, p)
			}
		}
	})
}

// TestHeadSwingPhaseSteering checks the mechanism by which AIY-type sites steer: light given
// while the head swings to one side turns the worm toward that side. The light is switched from
// the model's true wave phase at the internal rate; the mean rotation of the travel direction
// must differ in sign between the two phase-locked schedules, and not at all for the wild type.
func TestHeadSwingPhaseSteering(t *testing.T) {
	for _, tt := range []struct {
		line  string
		steer bool
	}{{"281", true}, {"446", true}, {"73", false}} {
		t.Run(tt.line, func(t *testing.T) {
			var diff []float64
			for seed := uint64(1); seed <= 12; seed++ {
				var rot [2]float64
				for k, side := range []float64{1, -1} {
					cfg := DefaultConfig(mustLine(t, tt.line))
					cfg.Behaviour.BiasRadMM, cfg.Behaviour.BiasDriftRadMM = 0, 0 // isolate steering
					m, err := NewModel(cfg.Behaviour, cfg.Line, 17.9, seed, 0, 0, 0)
					if err != nil {
						t.Fatal(err)
					}
					m.resp.ReversalRateFactor, m.resp.ReversalAtOnset, m.resp.TurnRateFactor = 1, 0, 1
					th := m.theta
					for i := 0; i < 30*60; i++ {
						light := side*math.Sin(m.phase) > 0
						m.Advance(1.0/30, light)
						rot[k] += math.Remainder(m.theta-th, 2*math.Pi)
						th = m.theta
					}
				}
				diff = append(diff, rot[0]-rot[1])
			}
			md, sd := meanSD(diff)
			t.Logf("line %s: rotation (head-side-locked minus opposite) %.2f +- %.2f rad per minute", tt.line, md, sd)
			if tt.steer && md < 3*sd/math.Sqrt(float64(len(diff))) {
				t.Errorf("line %s: light locked to the head swing does not steer toward the head side: %.2f +- %.2f rad", tt.line, md, sd)
			}
			if !tt.steer && md != 0 {
				t.Errorf("line %s: wild type steered by light: %.2f rad", tt.line, md)
			}
		})
	}
}

// TestClosedLoopControl checks that each responsive line's light effect can be exploited by a
// state-dependent policy that sees only the pose and the target (as the agents do), and that the
// wild type cannot be driven at all. The policies are simple hand-written ones matched to each
// line's mechanism; the trained agents find their own.
func TestClosedLoopControl(t *testing.T) {
	facingToward := func(p arenas.Pose, tx, ty float64) float64 {
		return math.Cos(p.BodyAngle - math.Atan2(ty-p.Y, tx-p.X))
	}
	pulseToward := func() func(p arenas.Pose, tx, ty float64) bool {
		since := 100
		return func(p arenas.Pose, tx, ty float64) bool {
			since++
			if facingToward(p, tx, ty) > 0.8 && since > 6 {
				since = 0
				return true
			}
			return false
		}
	}
	holdToward := func() func(p arenas.Pose, tx, ty float64) bool {
		return func(p arenas.Pose, tx, ty float64) bool { return facingToward(p, tx, ty) > 0.5 }
	}
	away := func() func(p arenas.Pose, tx, ty float64) bool {
		return func(p arenas.Pose, tx, ty float64) bool { return facingToward(p, tx, ty) < -0.2 }
	}
	off := func(arenas.Pose, float64, float64) bool { return false }
	tests := []struct {
		line   string
		policy func() func(p arenas.Pose, tx, ty float64) bool
		want   string  // "closer", "no better" (cross-evaluation) or "same" (wild type)
		alpha  float64 // significance required of the improvement
	}{
		{"446", pulseToward, "closer", 0.001},
		{"281", holdToward, "closer", 0.001},
		{"301", away, "closer", 0.01},
		// 352 is the weakest responder (as in the reference, where its own agents reached
		// 0.49 cm against 0.16-0.41 for the others).
		{"352", away, "closer", 0.05},
		// Cross-evaluation: a policy matched to one line's mechanism fails on the other
		// (reference: 281 animals with 301 agents 1.35 cm, 301 animals with 281 agents 1.48 cm).
		{"281", away, "no better", 0},
		{"301", holdToward, "no better", 0},
		{"73", away, "same", 0},
	}
	const n, secs = 20, 450
	// Without light every line is the same animal (the light response draws nothing else), so
	// one no-light baseline serves all lines.
	var none []float64
	for _, tt := range tests {
		t.Run(tt.line+" "+tt.want, func(t *testing.T) {
			line := mustLine(t, tt.line)
			target := func(i int) [2]float64 {
				return [2]float64{[]float64{0, 0, -1.5, 1.5}[i%4], []float64{-1.5, 1.5, 0, 0}[i%4]}
			}
			if none == nil {
				none = parallelClosest(n, func(i int) float64 {
					m, _ := closedLoop(t, line, uint64(900+i), target(i), secs, off)
					return m.ClosestCM
				})
			}
			pol := parallelClosest(n, func(i int) float64 {
				m, _ := closedLoop(t, line, uint64(900+i), target(i), secs, tt.policy())
				return m.ClosestCM
			})
			mn, _ := meanSD(none)
			mp, _ := meanSD(pol)
			p, _ := mannWhitney(pol, none)
			t.Logf("line %s: closest approach no light %.3f cm, policy %.3f cm (p %.2g)", tt.line, mn, mp, p)
			switch tt.want {
			case "closer":
				if p > tt.alpha || mp > mn-0.25 {
					t.Errorf("line %s: the policy does not bring the worm closer: %.3f vs %.3f cm", tt.line, mp, mn)
				}
			case "no better":
				if mp < mn-0.1 {
					t.Errorf("line %s: another line's policy works here: %.3f vs %.3f cm", tt.line, mp, mn)
				}
			case "same":
				if mp != mn {
					t.Errorf("line %s: wild type is driven by light: %.3f vs %.3f cm", tt.line, mp, mn)
				}
			}
		})
	}
}

// parallelClosest evaluates f(0..n-1) on two goroutines.
func parallelClosest(n int, f func(i int) float64) []float64 {
	out := make([]float64, n)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 2 {
				out[i] = f(i)
			}
		}(w)
	}
	wg.Wait()
	return out
}
