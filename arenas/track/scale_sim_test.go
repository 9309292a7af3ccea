//go:build !race

package track

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
)

// TestEstimateScaleSimulated estimates the scale of simulated recordings (whole frames of a
// fixed camera, bright-field and dark-field, at two scales) from 20 frames of a 1 mm worm
// spread over 33 s, with the polarity left to the tracker: within 15 % of the truth.
func TestEstimateScaleSimulated(t *testing.T) {
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	line, err := cat.Line("301")
	if err != nil {
		t.Fatal(err)
	}
	for _, darkField := range []bool{false, true} {
		for _, pxPerCM := range []float64{540, 1080} {
			t.Run(fmt.Sprintf("dark-field %v at %v px/cm", darkField, pxPerCM), func(t *testing.T) {
				cfg := sim.DefaultConfig(line)
				cfg.Seed = 21
				cfg.Calibration = smallRig()
				cfg.Calibration.PxPerCM = pxPerCM
				cfg.DarkField = darkField
				a, err := sim.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer a.Close()
				var frames []arenas.Frame
				for i := range 100 {
					f, err := a.NextFrame(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if i%5 == 0 {
						f.Pix = append([]byte(nil), f.Pix...)
						frames = append(frames, f)
					}
				}
				base := DefaultConfig(a.Calibration())
				base.Polarity = AutoPolarity
				est, err := EstimateScale(frames, base, true)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("estimate: %s", est)
				if r := est.PxPerCM / pxPerCM; math.Abs(r-1) > 0.15 || est.FromWidth {
					t.Errorf("estimated %.0f px/cm (from width %v), truth %v", est.PxPerCM, est.FromWidth, pxPerCM)
				}
			})
		}
	}
}
