package track

import (
	"testing"

	"github.com/optoloop/optoloop/arenas"
)

// TestEstimateScaleErrors: no frames, frames of one camera in different sizes, and blank frames
// are errors.
func TestEstimateScaleErrors(t *testing.T) {
	base := DefaultConfig(stillCalibration(64, 64, 540))
	if _, err := EstimateScale(nil, base, false); err == nil {
		t.Error("no frames: no error")
	}
	a := arenas.Frame{Width: 64, Height: 64, Pix: make([]byte, 64*64)}
	b := arenas.Frame{Width: 32, Height: 64, Pix: make([]byte, 32*64)}
	if _, err := EstimateScale([]arenas.Frame{a, b}, base, true); err == nil {
		t.Error("frames of one camera in two sizes: no error")
	}
	for i := range a.Pix {
		a.Pix[i] = 170
	}
	if _, err := EstimateScale([]arenas.Frame{a, a}, base, true); err != ErrNoScale {
		t.Errorf("blank frames: %v, want ErrNoScale", err)
	}
}
