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

// TestDebrisNeverTakenForTheWorm tracks rendered frames of a plate with 12 pieces of debris
// (the transfer task's obstacles, high-contrast blobs of about a worm's width times ten)
// scattered between the start and a target 5 mm away, and a food lawn, in bright-field and
// dark-field, and compares every pose with the simulator's truth: no pose the tracker gives
// (confident or not) may lie on a piece of debris or far from the worm, and most frames must
// be tracked confidently. The worm must come close to the debris for the test to mean anything.
func TestDebrisNeverTakenForTheWorm(t *testing.T) {
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	line, err := cat.Line("301")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, dark := range []bool{false, true} {
		cfg := sim.DefaultConfig(line)
		cfg.Seed = 21
		cfg.Calibration = smallRig()
		cfg.DarkField = dark
		pxmm := cfg.Calibration.PxPerCM / 10
		obs, err := sim.PlaceObstacles(cfg.Seed, 12, 0.75, cfg.Calibration.PlateRadius/pxmm, [2]float64{0, 0}, [2]float64{5, 0})
		if err != nil {
			t.Fatal(err)
		}
		food := sim.DefaultFood(-4, 4)
		food.RadiusMM = 2.5
		cfg.Environment = &sim.Environment{Food: &food, Obstacles: obs}
		a, err := sim.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tcfg := DefaultConfig(a.Calibration())
		tcfg.BackgroundFrames = 10
		tcfg.Polarity = AutoPolarity
		o, err := NewObserver(a, tcfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(cfg.Seed, 98))
		const frames = 360
		var posed, confident, near int
		var worst, worstNear float64
		var errs []float64
		cx, cy := a.Calibration().CenterX, a.Calibration().CenterY
		for i := range frames {
			if i%3 == 0 {
				if err := a.SetLight(ctx, arenas.Light{On: rng.Float64() < 0.1}); err != nil {
					t.Fatal(err)
				}
			}
			_, p, err := o.NextPose(ctx)
			if err != nil {
				t.Fatal(err)
			}
			truth := a.Pose()
			// The true worm's closest approach to a piece of debris's edge (px).
			gap := math.Inf(1)
			for _, q := range truth.Midline {
				for _, b := range obs {
					gap = math.Min(gap, math.Hypot(q[0]-(cx+b.XMM*pxmm), q[1]-(cy+b.YMM*pxmm))-b.RadiusMM*pxmm)
				}
			}
			if gap < 0.2*pxmm {
				near++
			}
			if !p.OK {
				continue
			}
			posed++
			if p.Confidence >= Confident {
				confident++
			}
			e := math.Hypot(p.X-truth.X, p.Y-truth.Y)
			limit := 0.5 * pxmm // half a body length: a coiled worm's centre-only pose
			if p.Confidence >= Confident {
				worst = math.Max(worst, e)
				errs = append(errs, e)
				if gap < 0.2*pxmm {
					worstNear = math.Max(worstNear, e)
				}
				limit = 0.25 * pxmm
			}
			if e > limit {
				t.Errorf("dark-field %v frame %d: tracked centre %.1f px from the worm (confidence %.2f)", dark, i, e, p.Confidence)
			}
			for k, b := range obs {
				if math.Hypot(p.X-(cx+b.XMM*pxmm), p.Y-(cy+b.YMM*pxmm)) < b.RadiusMM*pxmm {
					t.Errorf("dark-field %v frame %d: tracked centre on debris %d", dark, i, k)
				}
			}
		}
		t.Logf("dark-field %v: %d frames, %d posed, %d confident, confident centre error median %.2f px, worst %.1f px (%.1f px near debris); worm within 0.2 mm of debris in %d frames, %d contacts",
			dark, frames, posed, confident, median(errs), worst, worstNear, near, a.Model().Contacts())
		if m := median(errs); !(m < 2) {
			t.Errorf("dark-field %v: median confident centre error %.2f px, want < 2", dark, m)
		}
		if confident < frames*7/10 {
			t.Errorf("dark-field %v: confident in %d of %d frames", dark, confident, frames)
		}
		if near < 10 {
			t.Errorf("dark-field %v: the worm came near the debris in only %d frames: the test proves nothing", dark, near)
		}
		o.Close()
		a.Close()
	}
}
