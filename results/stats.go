package results

import (
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/stat"
)

// Summarize returns the mean, the sample standard deviation and n of xs (NaN mean and SD when xs
// is empty, SD 0 when n is 1).
func Summarize(xs []float64) (mean, sd float64, n int) {
	n = len(xs)
	switch n {
	case 0:
		return math.NaN(), math.NaN(), 0
	case 1:
		return xs[0], 0, 1
	}
	mean, sd = stat.MeanStdDev(xs, nil)
	return mean, sd, n
}

// exactLimit bounds n1*n2 for the exact null distribution of U; above it, and whenever there are
// ties, MannWhitneyU uses the normal approximation with tie and continuity corrections.
const exactLimit = 2500

// MannWhitneyU returns the U statistic of a (the number of pairs (a_i, b_j) with a_i > b_j, ties
// counting one half) and the two-sided p value of the Mann-Whitney U test of a against b. gonum
// has no rank-sum test; this follows the textbook definition (exact distribution without ties for
// small samples, as SciPy's method="auto" does, normal approximation otherwise). It returns an
// error when either sample is empty or holds a NaN.
func MannWhitneyU(a, b []float64) (u, p float64, err error) {
	n1, n2 := len(a), len(b)
	if n1 == 0 || n2 == 0 {
		return math.NaN(), math.NaN(), fmt.Errorf("mann-whitney: empty sample (n1=%d, n2=%d)", n1, n2)
	}
	type obs struct {
		v     float64
		first bool
	}
	all := make([]obs, 0, n1+n2)
	for _, v := range a {
		all = append(all, obs{v, true})
	}
	for _, v := range b {
		all = append(all, obs{v, false})
	}
	for _, o := range all {
		if math.IsNaN(o.v) {
			return math.NaN(), math.NaN(), fmt.Errorf("mann-whitney: sample holds NaN")
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	// Mid-ranks and the tie term sum(t^3 - t).
	var r1, tie float64
	ties := false
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		rank := float64(i+j+1) / 2 // mean of ranks i+1..j
		t := float64(j - i)
		if t > 1 {
			ties = true
			tie += t*t*t - t
		}
		for k := i; k < j; k++ {
			if all[k].first {
				r1 += rank
			}
		}
		i = j
	}
	fn1, fn2 := float64(n1), float64(n2)
	u = r1 - fn1*(fn1+1)/2
	mu := fn1 * fn2 / 2
	if !ties && n1*n2 <= exactLimit {
		return u, exactTwoSided(n1, n2, u), nil
	}
	n := fn1 + fn2
	sigma := math.Sqrt(fn1 * fn2 / 12 * ((n + 1) - tie/(n*(n-1))))
	if sigma == 0 {
		return u, 1, nil
	}
	z := (math.Abs(u-mu) - 0.5) / sigma
	if z < 0 {
		z = 0
	}
	// Two-sided normal tail, 2 * (1 - Phi(z)), through erfc: 1 - Phi(z) computed as a difference
	// is 0 beyond z of about 8.3, where samples of 80 and more still fall.
	p = math.Erfc(z / math.Sqrt2)
	return u, math.Min(p, 1), nil
}

// exactTwoSided is the two-sided p value of U under the null hypothesis, from the exact
// distribution of U for sample sizes n1 and n2 without ties.
func exactTwoSided(n1, n2 int, u float64) float64 {
	// counts[m][k] = number of arrangements of m first-sample items ... built by the recursion
	// f(n1, n2, k) = f(n1-1, n2, k-n2) + f(n1, n2-1, k).
	maxU := n1 * n2
	// dp over n2 for fixed n1 using float64 counts (exact well beyond the sizes used here).
	prev := make([][]float64, n1+1) // prev[i] = distribution for (i, j-1)
	for i := range prev {
		prev[i] = make([]float64, maxU+1)
	}
	// j = 0: only U = 0.
	for i := 0; i <= n1; i++ {
		prev[i][0] = 1
	}
	for j := 1; j <= n2; j++ {
		cur := make([][]float64, n1+1)
		for i := range cur {
			cur[i] = make([]float64, maxU+1)
		}
		cur[0][0] = 1
		for i := 1; i <= n1; i++ {
			for k := 0; k <= i*j; k++ {
				v := prev[i][k] // last item is from the second sample
				if k >= j {
					v += cur[i-1][k-j] // last item is from the first sample: it beats all j
				}
				cur[i][k] = v
			}
		}
		prev = cur
	}
	dist := prev[n1]
	var total, tail float64
	mu := float64(maxU) / 2
	d := math.Abs(u - mu)
	for k, c := range dist {
		total += c
		if math.Abs(float64(k)-mu) >= d-1e-9 {
			tail += c
		}
	}
	return math.Min(tail/total, 1)
}
