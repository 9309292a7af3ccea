//go:build !race

package track

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
)

// TestSimulatedFramesAgainstTruth tracks rendered frames of several lines (random light as in
// the reference's data collection, reversals and omega turns included) and compares every
// pose with the simulator's true pose: in bright-field (a dark worm) and in dark-field (a
// bright worm), with the polarity set and detected (AutoPolarity), and for worms of 0.5, 1 and
// 1.5 mm at one scale (the tracker's DefaultConfig, which accepts 0.4-1.5 mm).
func TestSimulatedFramesAgainstTruth(t *testing.T) {
	cases := []struct {
		name      string
		darkField bool
		polarity  Polarity
		lengthMM  float64
		pxPerCM   float64
	}{
		{"bright-field/dark/1mm", false, DarkWorm, 1, 540},
		{"bright-field/auto/1mm", false, AutoPolarity, 1, 540},
		{"dark-field/bright/1mm", true, BrightWorm, 1, 540},
		{"dark-field/auto/1mm", true, AutoPolarity, 1, 540},
		// Life stages at one finer scale (a 0.5 mm worm is 54 px long, 5 px wide; at 540 px/cm
		// it would be 27 px long and under 3 px wide, and its head angle, taken over 10 % of
		// the length, would rest on 3 px).
		{"bright-field/dark/0.5mm@1080", false, DarkWorm, 0.5, 1080},
		{"bright-field/dark/1mm@1080", false, DarkWorm, 1, 1080},
		{"bright-field/dark/1.5mm@1080", false, DarkWorm, 1.5, 1080},
		{"dark-field/bright/0.5mm@1080", true, BrightWorm, 0.5, 1080},
		{"dark-field/auto/1mm@1080", true, AutoPolarity, 1, 1080},
		{"dark-field/bright/1.5mm@1080", true, BrightWorm, 1.5, 1080},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { simulatedAgainstTruth(t, c.darkField, c.polarity, c.lengthMM, c.pxPerCM) })
	}
}

// simulatedAgainstTruth runs the truth checks on frames rendered in bright-field or dark-field
// of a worm of lengthMM (its width in proportion) at pxPerCM, tracked with polarity p.
func simulatedAgainstTruth(t *testing.T, darkField bool, p Polarity, lengthMM, pxPerCM float64) {
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	want := DarkWorm
	if darkField {
		want = BrightWorm
	}
	const framesPerLine = 150
	lines := []struct {
		code string
		seed uint64
	}{{"446", 11}, {"301", 12}, {"352", 13}, {"73", 14}}
	var centreErr, headErr, tailErr, bodyErr, headAngErr []float64
	var total, confident, idRight, truthCoiled, coiledConfident, reversalFrames, omegaFrames, revConf int
	ctx := context.Background()
	notConf := map[string]int{}
	for _, l := range lines {
		line, err := cat.Line(l.code)
		if err != nil {
			t.Fatal(err)
		}
		cfg := sim.DefaultConfig(line)
		cfg.Seed = l.seed
		cfg.Calibration = smallRig()
		cfg.Calibration.PxPerCM = pxPerCM
		cfg.DarkField = darkField
		cfg.Behaviour = scaledBehaviour(cfg.Behaviour, lengthMM)
		a, err := sim.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tcfg := DefaultConfig(a.Calibration())
		tcfg.BackgroundFrames = 10
		tcfg.Polarity = p
		obs, err := NewObserver(a, tcfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := obs.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		if got := obs.Tracker().Polarity(); got != want {
			t.Fatalf("line %s: tracker polarity %v after the background, want %v", l.code, got, want)
		}
		rng := rand.New(rand.NewPCG(l.seed, 99))
		for i := range framesPerLine {
			if i%3 == 0 {
				if err := a.SetLight(ctx, arenas.Light{On: rng.Float64() < 0.1}); err != nil {
					t.Fatal(err)
				}
			}
			_, p, err := obs.NextPose(ctx)
			if err != nil {
				t.Fatal(err)
			}
			truth := a.Pose()
			st := a.Model().State()
			total++
			if st == sim.Reversal {
				reversalFrames++
			}
			if st == sim.Omega {
				omegaFrames++
			}
			conf := p.OK && p.Confidence >= Confident
			if truth.Coiled {
				truthCoiled++
				if conf {
					coiledConfident++
				}
				continue
			}
			if !conf {
				res := obs.Last()
				key := res.Status.String()
				if res.OK && !res.Settled {
					key = "unsettled"
				} else if res.OK {
					key = "doubtful shape"
				}
				notConf[key]++
				continue
			}
			confident++
			if st == sim.Reversal {
				revConf++
			}
			centreErr = append(centreErr, math.Hypot(p.X-truth.X, p.Y-truth.Y))
			headErr = append(headErr, dist(p.Head, truth.Head))
			tailErr = append(tailErr, dist(p.Tail, truth.Tail))
			if dist(p.Head, truth.Head) < dist(p.Head, truth.Tail) {
				idRight++
			}
			bodyErr = append(bodyErr, math.Abs(wrap(p.BodyAngle-truth.BodyAngle))*180/math.Pi)
			headAngErr = append(headAngErr, math.Abs(wrap(p.HeadAngle-truth.HeadAngle))*180/math.Pi)
		}
		t.Logf("line %s: animal %.2f mm long; %d reversals, %d omega turns so far", l.code, trueLengthMM(a), a.Model().Reversals(), a.Model().Omegas())
		obs.Close()
		a.Close()
	}
	mc, mh, mb, ma := median(centreErr), median(headErr), median(bodyErr), median(headAngErr)
	idShare := float64(idRight) / float64(confident)
	confShare := float64(confident) / float64(total-truthCoiled)
	t.Logf("frames %d (reversal %d, omega %d, truly coiled %d of which confident %d); confident %d (%.1f%% of uncoiled, %d in reversals)",
		total, reversalFrames, omegaFrames, truthCoiled, coiledConfident, confident, 100*confShare, revConf)
	t.Logf("uncoiled frames without a confident pose: %v", notConf)
	t.Logf("median tail error %.2f px", median(tailErr))
	t.Logf("median errors: centre %.2f px, head %.2f px, body angle %.2f deg, head angle %.2f deg; identity right %.2f%%",
		mc, mh, mb, ma, 100*idShare)
	checks := []struct {
		name      string
		got, want float64
	}{
		{"median centre error (px)", mc, 2},
		{"median head error (px)", mh, 4},
		{"median body angle error (deg)", mb, 10},
		{"median head angle error (deg)", ma, 10},
	}
	for _, c := range checks {
		if !(c.got < c.want) {
			t.Errorf("%s = %.2f, want < %v", c.name, c.got, c.want)
		}
	}
	if idShare < 0.97 {
		t.Errorf("head/tail identity right in %.1f%% of confident frames, want >= 97%%", 100*idShare)
	}
	// The test must see the hard cases and cannot pass by never being confident.
	if confShare < 0.8 {
		t.Errorf("confident in %.1f%% of the uncoiled frames, want >= 80%%", 100*confShare)
	}
	// A worm that touches or crosses itself must not get a confident pose (sim's Coiled is
	// strict: parts within one body width; a few may still be told apart).
	if truthCoiled > 0 && coiledConfident*4 > truthCoiled {
		t.Errorf("confident in %d of %d frames where the worm touches itself", coiledConfident, truthCoiled)
	}
	if reversalFrames < 20 || omegaFrames < 10 || revConf < 10 {
		t.Errorf("only %d reversal frames (%d confident) and %d omega frames: the test needs both", reversalFrames, revConf, omegaFrames)
	}
}

// scaledBehaviour is b for a worm s times as long: the same shape and gait in body lengths
// (width, speeds and the edge zone times s, path curvatures over s, heading diffusion over
// sqrt(s)), so that a larva or a gravid adult moves and bends as the young adult does.
func scaledBehaviour(b sim.Behaviour, s float64) sim.Behaviour {
	b.BodyLengthMM *= s
	b.BodyWidthMM *= s
	b.ForwardSpeedMMs *= s
	b.ReversalSpeedMMs *= s
	b.EdgeZoneMM *= s
	b.BiasRadMM /= s
	b.BiasDriftRadMM /= s
	b.HeadingNoise /= math.Sqrt(s)
	return b
}

// trueLengthMM is the length of the simulated worm's midline (mm) at the last frame.
func trueLengthMM(a *sim.Arena) float64 {
	mid := make([][2]float64, sim.DefaultBehaviour().Points)
	a.Model().Midline(mid)
	var l float64
	for i := 1; i < len(mid); i++ {
		l += math.Hypot(mid[i][0]-mid[i-1][0], mid[i][1]-mid[i-1][1])
	}
	return l
}
