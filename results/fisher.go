package results

import (
	"fmt"
	"math"
)

// FisherExact returns the two-sided p value of Fisher's exact test for the 2x2 table
//
//	a b
//	c d
//
// (for example successes and failures of two conditions): the probability, under the
// hypergeometric distribution of the table with the same margins, of every table no more
// probable than the observed one (with a relative tolerance of 1e-7 for ties, as R's
// fisher.test). Probabilities are computed from log factorials (math.Lgamma), so any counts
// that fit an int work. It returns an error for a negative count.
func FisherExact(a, b, c, d int) (float64, error) {
	if a < 0 || b < 0 || c < 0 || d < 0 {
		return math.NaN(), fmt.Errorf("fisher: negative count in [[%d %d] [%d %d]]", a, b, c, d)
	}
	r1, c1, n := a+b, a+c, a+b+c+d
	lo, hi := max(0, c1-(n-r1)), min(r1, c1)
	if lo == hi {
		return 1, nil
	}
	// log P(X = x) for X the top-left cell: C(r1, x) C(n - r1, c1 - x) / C(n, c1).
	lf := func(k int) float64 { v, _ := math.Lgamma(float64(k) + 1); return v }
	base := lf(r1) + lf(n-r1) + lf(c1) + lf(n-c1) - lf(n)
	logp := func(x int) float64 {
		return base - lf(x) - lf(r1-x) - lf(c1-x) - lf(n-r1-c1+x)
	}
	obs := logp(a)
	p := 0.0
	for x := lo; x <= hi; x++ {
		if lx := logp(x); lx <= obs+1e-7 {
			p += math.Exp(lx)
		}
	}
	return math.Min(p, 1), nil
}
