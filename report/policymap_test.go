package report

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/optoloop/optoloop/charts"
)

// TestPolicyMapCellsAreEnsembleProbabilities checks the drawn cells against the ensemble's own
// P(light on) for observations built here from the protocol (docs/PROTOCOL.md section 1): one frame of
// (sin body, cos body, sin head, cos head, dx/900, dy/900) repeated 15 times, feature-major, with
// the body angle measured from the direction to the target and the head angle from the body.
func TestPolicyMapCellsAreEnsembleProbabilities(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ensemble")
	e := saveEnsemble(t, dir, 3, 5)
	m, err := EnsemblePolicyMap(dir)
	if err != nil {
		t.Fatal(err)
	}
	fig, err := charts.BuildPolicyMap(PolicyMapChart(m, "test"))
	if err != nil {
		t.Fatal(err)
	}
	if len(fig.Panels) != 9 || len(fig.Panels[0]) != 9 || len(fig.Body) != 36 || len(fig.Head) != 36 {
		t.Fatalf("grid %dx%d panels of %dx%d", len(fig.Panels), len(fig.Panels[0]), len(fig.Body), len(fig.Head))
	}
	if fig.Panels[0][0].X != -900.0/540 || fig.Panels[8][8].Y != 900.0/540 {
		t.Errorf("panel positions %v, %v: want +-900 px = +-1.667 cm", fig.Panels[0][0].X, fig.Panels[8][8].Y)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	o := make([]float32, 90)
	probs := make([]float64, 2)
	lo, hi := 1.0, 0.0
	for range 300 {
		iy, ix, ib, ih := rng.IntN(9), rng.IntN(9), rng.IntN(36), rng.IntN(36)
		if iy == 4 && ix == 4 {
			continue // at the target the direction to it is undefined
		}
		x, y := -900+225*float64(ix), -900+225*float64(iy)
		body := math.Atan2(-y, -x) + (-180+10*float64(ib))*math.Pi/180
		head := body + (-180+10*float64(ih))*math.Pi/180
		feat := []float64{math.Sin(body), math.Cos(body), math.Sin(head), math.Cos(head), x / 900, y / 900}
		for k, v := range feat {
			for f := range 15 {
				o[k*15+f] = float32(v)
			}
		}
		e.Probs(o, probs)
		got := fig.Panels[iy][ix].Cells[ih][ib]
		if math.Abs(got-probs[1]) > 1e-5 {
			t.Fatalf("cell (y %d, x %d, body %d, head %d) = %v, ensemble says %v", iy, ix, ib, ih, got, probs[1])
		}
		lo, hi = math.Min(lo, got), math.Max(hi, got)
	}
	if hi-lo < 1e-3 {
		t.Fatalf("the sampled cells hardly differ (%v..%v): the check is too weak", lo, hi)
	}
	if fig.Color.Min > lo || fig.Color.Max < hi {
		t.Errorf("colour range %+v does not cover the data %v..%v", fig.Color, lo, hi)
	}
}
