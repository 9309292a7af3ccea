package results

import (
	"math"
	"testing"
)

func TestMannWhitneyU(t *testing.T) {
	tests := []struct {
		name  string
		a, b  []float64
		wantU float64
		wantP float64
		tol   float64
	}{
		// Exact: 2 of the C(6,3) = 20 arrangements are as extreme (U = 0 or 9).
		{"exact, separated", []float64{1, 2, 3}, []float64{4, 5, 6}, 0, 0.1, 1e-12},
		// Exact: the mean of U for 4 and 4 is 8; 48 of the 70 arrangements have |U-8| >= 2.
		{"exact, interleaved", []float64{1, 3, 5, 7}, []float64{2, 4, 6, 8}, 6, 48.0 / 70, 1e-12},
		// Exact: U = 3 (0.9>0.7, 1.1>0.7, 1.1>1.0); P(U <= 3) = (1+1+2+3)/252 for 5 and 5.
		{"exact, nearly separated", []float64{0.2, 0.4, 0.5, 0.9, 1.1}, []float64{1.2, 1.3, 1.5, 1.0, 0.7}, 3, 14.0 / 252, 1e-12},
		// Ties: normal approximation; sum(t^3-t) = 24+6+6, sigma = sqrt(25/12*(11-36/90)),
		// z = (|4.5-12.5|-0.5)/sigma = 1.59598, p = 2*(1-Phi(z)).
		{"ties, normal", []float64{1, 2, 2, 3, 4}, []float64{2, 3, 5, 6, 6}, 4.5, 0.110492, 1e-5},
		{"all equal", []float64{1, 1, 1}, []float64{1, 1}, 3, 1, 1e-12},
		// Normal approximation far in the tail (80 and 80, separated): z = (3200-0.5)/sigma,
		// sigma = sqrt(6400/12*161), p = erfc(z/sqrt 2) = 9.386e-28, not 0.
		{"normal, far tail", seq(0, 80), seq(80, 80), 0, 9.3858e-28, 1e-31},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, p, err := MannWhitneyU(tt.a, tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if u != tt.wantU {
				t.Errorf("U = %v, want %v", u, tt.wantU)
			}
			if math.Abs(p-tt.wantP) > tt.tol {
				t.Errorf("p = %.6g, want %.6g", p, tt.wantP)
			}
		})
	}
}

func TestMannWhitneyUSymmetric(t *testing.T) {
	a := []float64{0.41, 0.2, 0.9, 0.33, 0.12, 0.75, 0.5}
	b := []float64{1.25, 0.8, 1.6, 1.1, 0.95, 1.4}
	u1, p1, err := MannWhitneyU(a, b)
	if err != nil {
		t.Fatal(err)
	}
	u2, p2, err := MannWhitneyU(b, a)
	if err != nil {
		t.Fatal(err)
	}
	if u1+u2 != float64(len(a)*len(b)) {
		t.Errorf("U1 + U2 = %v, want n1*n2 = %d", u1+u2, len(a)*len(b))
	}
	if math.Abs(p1-p2) > 1e-12 {
		t.Errorf("p not symmetric: %v vs %v", p1, p2)
	}
}

func TestMannWhitneyUErrors(t *testing.T) {
	if _, _, err := MannWhitneyU(nil, []float64{1}); err == nil {
		t.Error("empty sample accepted")
	}
	if _, _, err := MannWhitneyU([]float64{math.NaN()}, []float64{1}); err == nil {
		t.Error("NaN accepted")
	}
}

func TestSummarize(t *testing.T) {
	m, sd, n := Summarize([]float64{1, 2, 3, 4})
	if m != 2.5 || n != 4 || math.Abs(sd-1.2909944487358056) > 1e-12 {
		t.Errorf("Summarize = %v, %v, %v", m, sd, n)
	}
	if m, sd, n := Summarize([]float64{7}); m != 7 || sd != 0 || n != 1 {
		t.Errorf("Summarize single = %v, %v, %v", m, sd, n)
	}
	if m, _, n := Summarize(nil); !math.IsNaN(m) || n != 0 {
		t.Errorf("Summarize empty = %v, %v", m, n)
	}
}

// seq is n consecutive whole numbers from first.
func seq(first, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(first + i)
	}
	return out
}
