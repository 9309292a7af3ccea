package sim

import (
	"context"
	"math"
	"sort"
	"sync"
	"testing"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/episode"
)

// mannWhitney returns the two-sided p value of the Mann-Whitney U test (normal approximation
// with tie correction) and the common-language effect size P(a > b) + P(a = b)/2.
func mannWhitney(a, b []float64) (p, effect float64) {
	type obs struct {
		v float64
		g int
	}
	all := make([]obs, 0, len(a)+len(b))
	for _, v := range a {
		all = append(all, obs{v, 0})
	}
	for _, v := range b {
		all = append(all, obs{v, 1})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	n1, n2 := float64(len(a)), float64(len(b))
	n := n1 + n2
	var r1, tie float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		rank := float64(i+j+1) / 2
		t := float64(j - i)
		tie += t*t*t - t
		for k := i; k < j; k++ {
			if all[k].g == 0 {
				r1 += rank
			}
		}
		i = j
	}
	u := r1 - n1*(n1+1)/2
	effect = u / (n1 * n2)
	sd := math.Sqrt(n1 * n2 / 12 * ((n + 1) - tie/(n*(n-1))))
	if sd == 0 {
		return 1, effect
	}
	z := (math.Abs(u-n1*n2/2) - 0.5) / sd
	if z < 0 {
		z = 0
	}
	return math.Erfc(z / math.Sqrt2), effect
}

func TestMannWhitney(t *testing.T) {
	a := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	b := []float64{11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if p, e := mannWhitney(a, b); p > 0.001 || e != 0 {
		t.Fatalf("separated samples: p %v effect %v", p, e)
	}
	if p, e := mannWhitney(a, a); p < 0.9 || e != 0.5 {
		t.Fatalf("equal samples: p %v effect %v", p, e)
	}
}

// episodes runs n seeded episodes of a line under a policy (no rendering) and returns results.
func episodes(t testing.TB, line Line, pol string, n int, seconds float64, seed0 uint64) []Result {
	t.Helper()
	p, err := episode.ParsePolicy(pol)
	if err != nil {
		t.Fatal(err)
	}
	return episodesWith(t, line, n, seed0, func(i int) Episode {
		tg, _ := episode.ParseTarget("")
		x, y := tg.ForEpisode(i)
		cfg := DefaultConfig(line)
		cfg.NoRender = true
		cfg.Seed = seed0 + uint64(i)
		return Episode{Arena: cfg, Policy: p, PolicySeed: 7919 * (seed0 + uint64(i)), TargetCM: [2]float64{x, y}, Seconds: seconds}
	})
}

func episodesWith(t testing.TB, line Line, n int, seed0 uint64, mk func(i int) Episode) []Result {
	t.Helper()
	res := make([]Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res[i], errs[i] = RunEpisode(context.Background(), mk(i))
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return res
}

func field(rs []Result, f func(Result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func meanSD(xs []float64) (m, sd float64) {
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	for _, x := range xs {
		sd += (x - m) * (x - m)
	}
	return m, math.Sqrt(sd / float64(len(xs)-1))
}

func closest(r Result) float64   { return r.ClosestCM }
func speed(r Result) float64     { return r.MeanSpeedMMs }
func reversals(r Result) float64 { return r.ReversalsPerMin }

// spontaneous counts the reversals per minute not triggered by the plate edge.
func spontaneous(r Result) float64 {
	return r.ReversalsPerMin - float64(r.EdgeReversals)/(r.Seconds/60)
}
func omegas(r Result) float64 { return float64(r.Omegas) / (r.Seconds / 60) }

// poseFrame is a helper type for tests that inspect poses frame by frame.
type poseFrame struct {
	f arenas.Frame
	p arenas.Pose
	s State
}
