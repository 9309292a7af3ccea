//go:build !race

package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
)

// TestLightAdvantageDependsOnTheContinuation measures on line 446 what the agents' critics
// estimate: the advantage of light at one frame, the discounted return (gamma 0.99, the
// reference's reward 2 x decrease in distance / 900 px, 300 frames) after light on minus after
// light off, with the light policy that follows unchanged. Each pair of branches is one seeded
// animal run to the branch frame under that policy; the return is taken toward 8 virtual targets
// drawn as the replay's augmentation draws them (uniform within +-900 px of the worm) and binned
// by which way the worm faced each target. No light is used before frame 15, as in the worker.
//
// What it shows (runner/SCIENCE.md): the advantage depends on what the light does afterwards.
// When the light is on half the time afterwards (the near-uniform policy whose values discrete
// SAC's critics estimate at the reference's target entropy, 0.98 log 2), light while the worm
// faces away from a target is worth more than light while it faces the target: one greedy step
// over that policy lights a worm that faces away and paralyses it there. When the light then
// follows the data's own schedule (3-frame blocks with probability 0.1), light facing away is
// bad and light facing the target good, which is the policy that works (TestClosedLoopControl's
// pulse toward the target).
//
// The test runs without -race (make test runs it in its no-race step): about 25 s on 2 cores.
func TestLightAdvantageDependsOnTheContinuation(t *testing.T) {
	line := mustLine(t, "446")
	const (
		animals, points, horizon, targets = 64, 24, 300, 8
		gamma                             = 0.99
	)
	type continuation struct {
		name string
		// light returns the light policy for frames after warm-up, given a seed.
		light func(seed uint64) func() bool
	}
	conts := []continuation{
		{"uniform 0.5 per frame", func(seed uint64) func() bool {
			r := rand.New(rand.NewPCG(seed, 1))
			return func() bool { return r.Float64() < 0.5 }
		}},
		{"collection schedule (p 0.1, 3-frame blocks)", func(seed uint64) func() bool {
			s := episode.Policy{Kind: episode.Random, P: 0.1}.Schedule(seed)
			return s.Next
		}},
	}
	type stats struct{ sum, sum2, n [results.FacingBins]float64 }
	res := make([]stats, len(conts))
	for ci, c := range conts {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < animals; i += 2 {
					for pt := 0; pt < points; pt++ {
						adv, bins := branch(t, line, uint64(9000+i), uint64(pt), 30+40*pt, horizon, targets, gamma, c.light)
						mu.Lock()
						for k, a := range adv {
							b := bins[k]
							res[ci].sum[b] += a
							res[ci].sum2[b] += a * a
							res[ci].n[b]++
						}
						mu.Unlock()
					}
				}
			}(w)
		}
		wg.Wait()
	}
	mean := func(s stats, b int) (m, se float64) {
		m = s.sum[b] / s.n[b]
		return m, math.Sqrt((s.sum2[b]/s.n[b] - m*m) / s.n[b])
	}
	for ci, c := range conts {
		line := c.name + ":"
		for b := 0; b < results.FacingBins; b++ {
			m, se := mean(res[ci], b)
			line += fmt.Sprintf(" %+.4f±%.4f (n %.0f)", m, se, res[ci].n[b])
		}
		t.Log(line, " (facing away ... facing the target)")
	}
	// Near-uniform continuation: light facing away beats light facing the target.
	ua, uaSE := mean(res[0], 0)
	ut, utSE := mean(res[0], results.FacingBins-1)
	if !(ua-ut > 3*math.Hypot(uaSE, utSE)) {
		t.Errorf("uniform continuation: advantage facing away %.4f, facing the target %.4f: want away above toward by 3 SE", ua, ut)
	}
	// The collection schedule afterwards: light facing away is bad, facing the target good.
	ba, baSE := mean(res[1], 0)
	bt, btSE := mean(res[1], results.FacingBins-1)
	if !(ba < -3*baSE && bt > 3*btSE) {
		t.Errorf("collection-schedule continuation: advantage facing away %.4f ± %.4f, facing the target %.4f ± %.4f: want below and above 0 by 3 SE", ba, baSE, bt, btSE)
	}
}

// branch runs one animal to frame k under the light policy, then twice from the same start:
// light on at k, and light off at k, each followed by the same policy for horizon frames. It
// returns, for each of the virtual targets, the return after on minus the return after off and
// the facing bin of the worm toward that target at frame k.
func branch(t *testing.T, line Line, seed, stream uint64, k, horizon, targets int, gamma float64, light func(uint64) func() bool) (adv []float64, bins []int) {
	var xs, ys [2][]float64
	var bx, by, bb float64
	for act := 0; act < 2; act++ {
		cfg := DefaultConfig(line)
		cfg.NoRender = true
		cfg.Seed = seed
		a, err := New(cfg)
		if err != nil {
			t.Error(err)
			return nil, nil
		}
		next := light(seed*1000 + stream)
		ctx := context.Background()
		for f := 0; f <= k+horizon; f++ {
			if _, err := a.NextFrame(ctx); err != nil {
				t.Error(err)
				a.Close()
				return nil, nil
			}
			p := a.Pose()
			xs[act], ys[act] = append(xs[act], p.X), append(ys[act], p.Y)
			on := f >= 14 && next()
			if f == k {
				on = act == 1
				bx, by, bb = p.X, p.Y, p.BodyAngle
			}
			if err := a.SetLight(ctx, arenas.Light{On: on}); err != nil {
				t.Error(err)
			}
		}
		a.Close()
	}
	r := rand.New(rand.NewPCG(seed, stream+1<<32))
	for v := 0; v < targets; v++ {
		tx, ty := bx+(2*r.Float64()-1)*900, by+(2*r.Float64()-1)*900
		var g [2]float64
		for act := 0; act < 2; act++ {
			disc := 1.0
			for f := k; f < k+horizon; f++ {
				d0 := math.Hypot(xs[act][f]-tx, ys[act][f]-ty)
				d1 := math.Hypot(xs[act][f+1]-tx, ys[act][f+1]-ty)
				g[act] += disc * 2 * (d0 - d1) / 900
				disc *= gamma
			}
		}
		c := math.Cos(bb - math.Atan2(ty-by, tx-bx))
		adv = append(adv, g[1]-g[0])
		bins = append(bins, results.FacingBin(c))
	}
	return adv, bins
}
