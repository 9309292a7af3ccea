package results

import (
	"math"
	"testing"
)

// Values from R's fisher.test (two-sided) and the textbook examples.
func TestFisherExact(t *testing.T) {
	cases := []struct {
		a, b, c, d int
		want       float64
	}{
		{3, 1, 1, 3, 0.4857142857},    // Fisher's tea-tasting lady: 34/70
		{1, 9, 11, 3, 0.002759456},    // Wikipedia's example
		{6, 2, 1, 6, 0.04055944},      // the reference's obstacle task: 6 of 8 against 1 of 7
		{10, 10, 10, 10, 1},           // no difference
		{0, 5, 0, 7, 1},               // one margin zero: one table
		{20, 0, 0, 20, 1.4508889e-11}, // complete separation: 2 / C(40, 20)
		{2, 7, 8, 2, 0.02301413},
	}
	for _, c := range cases {
		p, err := FisherExact(c.a, c.b, c.c, c.d)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(p-c.want)/c.want > 1e-6 {
			t.Errorf("fisher [[%d %d] [%d %d]] = %.10g, want %.10g", c.a, c.b, c.c, c.d, p, c.want)
		}
		// Symmetric in the rows and in the columns.
		if q, _ := FisherExact(c.c, c.d, c.a, c.b); math.Abs(q-p) > 1e-12 {
			t.Errorf("fisher not symmetric in the rows: %v vs %v", q, p)
		}
		if q, _ := FisherExact(c.b, c.a, c.d, c.c); math.Abs(q-p) > 1e-12 {
			t.Errorf("fisher not symmetric in the columns: %v vs %v", q, p)
		}
	}
	if _, err := FisherExact(-1, 2, 3, 4); err == nil {
		t.Error("a negative count accepted")
	}
}
