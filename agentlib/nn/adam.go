package nn

import (
	"fmt"
	"math"
)

// Adam is the Adam optimiser (Kingma and Ba 2015) with the bias correction and L2 weight decay of
// torch.optim.Adam: the decay is added to the gradient (g + wd*p) before the moment updates.
type Adam struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	// M and V are the first and second moment estimates, one per parameter.
	M, V []float32
	// T is the number of steps taken.
	T int64
	// slow disables the AVX2/FMA kernel; tests compare both paths.
	slow bool
}

// NewAdam returns an Adam optimiser for n parameters with torch's defaults (betas 0.9, 0.999,
// eps 1e-8) and the given learning rate and weight decay.
func NewAdam(n int, lr, weightDecay float64) *Adam {
	return &Adam{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay,
		M: make([]float32, n), V: make([]float32, n)}
}

// Step updates params in place from grads. It panics if the lengths differ from the optimiser's.
func (a *Adam) Step(params, grads []float32) {
	if len(params) != len(a.M) || len(grads) != len(a.M) {
		panic(fmt.Sprintf("nn: Adam for %d parameters got %d parameters and %d gradients", len(a.M), len(params), len(grads)))
	}
	a.T++
	b1, b2 := float32(a.Beta1), float32(a.Beta2)
	c1 := 1 - math.Pow(a.Beta1, float64(a.T))
	c2 := 1 - math.Pow(a.Beta2, float64(a.T))
	step := float32(a.LR / c1)
	invSqrtC2 := float32(1 / math.Sqrt(c2))
	eps := float32(a.Eps)
	wd := float32(a.WeightDecay)
	m, v := a.M, a.V
	if n := len(params) &^ 7; n > 0 && !a.slow && hasKernel() {
		coef := [8]float32{b1, 1 - b1, b2, 1 - b2, step, invSqrtC2, eps, wd}
		adam8(n, &params[0], &grads[0], &m[0], &v[0], &coef)
		params, grads, m, v = params[n:], grads[n:], m[n:], v[n:]
	}
	adamLoop(params, grads, m, v, b1, b2, step, invSqrtC2, eps, wd)
}

// adamLoop is the element-wise Adam update (see relu for why it is go:norace).
//
//go:norace
func adamLoop(params, grads, m, v []float32, b1, b2, step, invSqrtC2, eps, wd float32) {
	m, v = m[:len(params)], v[:len(params)]
	grads = grads[:len(params)]
	for i, p := range params {
		g := grads[i]
		if wd != 0 {
			g += wd * p
		}
		mi := b1*m[i] + (1-b1)*g
		vi := b2*v[i] + (1-b2)*g*g
		m[i], v[i] = mi, vi
		params[i] = p - step*mi/(sqrt32(vi)*invSqrtC2+eps)
	}
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
