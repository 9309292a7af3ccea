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

// fixedEpisode is one episode under a fixed light policy on a new arena, measured on the
// worm's true centre (no tracking, no pose: the cheapest loop, for statistics over hundreds of
// animals). Episodes of experiments run through package station instead.
type fixedEpisode struct {
	// Arena configures the arena (line, seed, rendering).
	Arena Config
	// Policy is the fixed light policy; PolicySeed seeds its random schedule.
	Policy     episode.Policy
	PolicySeed uint64
	// TargetCM is the target's offset from the plate centre in cm (image axes).
	TargetCM [2]float64
	// Seconds is the episode's length on the arena's clock.
	Seconds float64
}

// fixedResult is a fixed episode's metrics and the simulator's own counts.
type fixedResult struct {
	episode.Metrics
	// ReversalsPerMin counts the simulator's true reversals (spontaneous, evoked and at the
	// plate edge) per minute of the episode; EdgeReversals how many the plate edge triggered.
	ReversalsPerMin float64
	EdgeReversals   int
	// Omegas is the number of omega turns.
	Omegas int
}

// runFixed runs e: frame, true centre, record, then the schedule's light for the next frame.
func runFixed(ctx context.Context, e fixedEpisode) (fixedResult, error) {
	a, err := New(e.Arena)
	if err != nil {
		return fixedResult{}, err
	}
	defer a.Close()
	cal := a.Calibration()
	tx, ty := cal.CenterX+e.TargetCM[0]*cal.PxPerCM, cal.CenterY+e.TargetCM[1]*cal.PxPerCM
	acc, err := episode.NewAccumulator(cal.PxPerCM)
	if err != nil {
		return fixedResult{}, err
	}
	sched := e.Policy.Schedule(e.PolicySeed)
	frames := int(math.Round(e.Seconds/cal.FramePeriod.Seconds())) + 1
	for i := 0; i < frames; i++ {
		f, err := a.NextFrame(ctx)
		if err != nil {
			return fixedResult{}, err
		}
		x, y := a.Centre()
		if err := acc.Add(episode.Record{T: float64(i) * cal.FramePeriod.Seconds(), X: x, Y: y, TargetX: tx, TargetY: ty, Light: f.Light.On}); err != nil {
			return fixedResult{}, err
		}
		if err := a.SetLight(ctx, arenas.Light{On: sched.Next()}); err != nil {
			return fixedResult{}, err
		}
	}
	m, err := acc.Metrics()
	if err != nil {
		return fixedResult{}, err
	}
	r := fixedResult{Metrics: m, Omegas: a.model.Omegas(), EdgeReversals: a.model.EdgeReversals()}
	if m.Seconds > 0 {
		r.ReversalsPerMin = float64(a.model.Reversals()) / (m.Seconds / 60)
	}
	return r, nil
}

// episodes runs n seeded episodes of a line under a policy (no rendering) and returns results.
func episodes(t testing.TB, line Line, pol string, n int, seconds float64, seed0 uint64) []fixedResult {
	t.Helper()
	p, err := episode.ParsePolicy(pol)
	if err != nil {
		t.Fatal(err)
	}
	return episodesWith(t, line, n, seed0, func(i int) fixedEpisode {
		tg, _ := episode.ParseTarget("")
		x, y := tg.ForEpisode(i)
		cfg := DefaultConfig(line)
		cfg.NoRender = true
		cfg.Seed = seed0 + uint64(i)
		return fixedEpisode{Arena: cfg, Policy: p, PolicySeed: 7919 * (seed0 + uint64(i)), TargetCM: [2]float64{x, y}, Seconds: seconds}
	})
}

func episodesWith(t testing.TB, line Line, n int, seed0 uint64, mk func(i int) fixedEpisode) []fixedResult {
	t.Helper()
	res := make([]fixedResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res[i], errs[i] = runFixed(context.Background(), mk(i))
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

func field(rs []fixedResult, f func(fixedResult) float64) []float64 {
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

func closest(r fixedResult) float64 { return r.ClosestCM }
func speed(r fixedResult) float64   { return r.MeanSpeedMMs }

// spontaneous counts the reversals per minute not triggered by the plate edge.
func spontaneous(r fixedResult) float64 {
	return r.ReversalsPerMin - float64(r.EdgeReversals)/(r.Seconds/60)
}
func omegas(r fixedResult) float64 { return float64(r.Omegas) / (r.Seconds / 60) }

// poseFrame is a helper type for tests that inspect poses frame by frame.
type poseFrame struct {
	f arenas.Frame
	p arenas.Pose
	s State
}
