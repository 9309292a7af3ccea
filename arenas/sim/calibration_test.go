package sim

import (
	"testing"
)

// TestCalibration446 pins the simulator to the reference study's measured figures for the
// pan-neuronal inhibition line (Li et al. 2024): closest approach to a target 1.5 cm from the
// start in 600 s, no light 1.25 cm and random light at 15 % 0.86 cm (mean, n = 160 seeded
// animals each, tolerance +-0.15 cm), and random light brings the worm closer than no light
// (Mann-Whitney, p < 0.001).
func TestCalibration446(t *testing.T) {
	line := mustLine(t, "446")
	const n = 160
	none := field(episodes(t, line, "none", n, 600, 1000), closest)
	random := field(episodes(t, line, "random:0.15", n, 600, 1000), closest)
	mn, sdn := meanSD(none)
	mr, sdr := meanSD(random)
	t.Logf("line 446, %d episodes of 600 s: no light %.3f +- %.3f cm, random light 15%% %.3f +- %.3f cm", n, mn, sdn, mr, sdr)
	if mn < 1.10 || mn > 1.40 {
		t.Errorf("no light: mean closest approach %.3f cm, want 1.25 +- 0.15", mn)
	}
	if mr < 0.71 || mr > 1.01 {
		t.Errorf("random light: mean closest approach %.3f cm, want 0.86 +- 0.15", mr)
	}
	if p, e := mannWhitney(random, none); p > 0.001 || e > 0.5 {
		t.Errorf("random light not closer than no light: p %.3g, P(random > none) %.2f", p, e)
	}
}
