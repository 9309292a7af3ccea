package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randomMLP(seed uint64, sizes ...int) *MLP {
	m := New(sizes...)
	rng := rand.New(rand.NewPCG(seed, 1))
	m.InitXavier(rng)
	for l := 0; l < m.Layers(); l++ {
		for i := range m.B(l) {
			m.B(l)[i] = float32(rng.NormFloat64() * 0.1)
		}
	}
	return m
}

func randomBatch(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 2))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// loss = sum_i c_i * y_i^2 / 2 over the batch output, accumulated in float64.
func quadLoss(m *MLP, ws *Workspace, x, c []float32) float64 {
	y := m.Forward(ws, x)
	s := 0.0
	for i, v := range y {
		s += float64(c[i]) * float64(v) * float64(v) / 2
	}
	return s
}

// reluPattern returns a string of the signs of every hidden activation of the last Forward.
func reluPattern(m *MLP, ws *Workspace) string {
	var b []byte
	for l := 0; l+1 < m.Layers(); l++ {
		for _, v := range ws.Hidden(l) {
			if v > 0 {
				b = append(b, '1')
			} else {
				b = append(b, '0')
			}
		}
	}
	return string(b)
}

func TestBackwardMatchesFiniteDifferences(t *testing.T) {
	cases := []struct {
		name  string
		sizes []int
		n     int
	}{
		{"one layer", []int{5, 3}, 4},
		{"two layers", []int{6, 8, 2}, 3},
		{"reference shape", []int{90, 64, 64, 2}, 5},
		{"reference shape, batch of 8", []int{90, 64, 64, 2}, 8},
		{"wide fused-like layers", []int{90, 192, 32, 3}, 12},
	}
	for ci, tc := range cases {
		for _, slow := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s slow=%v", tc.name, slow), func(t *testing.T) {
				m := randomMLP(uint64(ci), tc.sizes...)
				ws := m.NewWorkspace(tc.n)
				ws.slow = slow
				x := randomBatch(uint64(ci)+10, tc.n*tc.sizes[0])
				c := randomBatch(uint64(ci)+20, tc.n*m.Out())
				y := m.Forward(ws, x)
				dy := make([]float32, len(y))
				for i := range y {
					dy[i] = c[i] * y[i]
				}
				m.ZeroGrads()
				dx := make([]float32, len(x))
				m.Backward(ws, dy, dx)
				rng := rand.New(rand.NewPCG(7, 7))
				base := reluPattern(m, ws)
				checked := 0
				check := func(what string, p []float32, i int, analytic float32) {
					const eps = 1e-3
					old := p[i]
					p[i] = old + eps
					lp := quadLoss(m, ws, x, c)
					kinkP := reluPattern(m, ws) != base
					p[i] = old - eps
					lm := quadLoss(m, ws, x, c)
					kinkM := reluPattern(m, ws) != base
					p[i] = old
					if kinkP || kinkM {
						return // the step crossed a ReLU kink: finite differences are meaningless there
					}
					checked++
					num := (lp - lm) / (2 * eps)
					if d := math.Abs(num - float64(analytic)); d > 2e-3+2e-2*math.Abs(num) {
						t.Errorf("%s[%d]: analytic %.6g, numeric %.6g", what, i, analytic, num)
					}
				}
				for k := 0; k < 200; k++ {
					i := rng.IntN(len(m.Params))
					check("param", m.Params, i, m.Grads[i])
				}
				for k := 0; k < 50; k++ {
					i := rng.IntN(len(x))
					check("input", x, i, dx[i])
				}
				if checked < 200 {
					t.Fatalf("only %d of 250 entries checked away from ReLU kinks", checked)
				}
			})
		}
	}
}

func TestInferMatchesForwardAndAllocatesNothing(t *testing.T) {
	m := randomMLP(3, 90, 64, 64, 2)
	const n = 7
	ws := m.NewWorkspace(n)
	x := randomBatch(4, n*90)
	y := m.Forward(ws, x)
	out := make([]float32, 2)
	scratch := make([]float32, m.ScratchLen())
	for r := 0; r < n; r++ {
		m.Infer(x[r*90:(r+1)*90], out, scratch)
		for j := range out {
			if d := math.Abs(float64(out[j] - y[r*2+j])); d > 1e-4 {
				t.Fatalf("row %d output %d: Infer %v, Forward %v", r, j, out[j], y[r*2+j])
			}
		}
	}
	allocs := testing.AllocsPerRun(100, func() { m.Infer(x[:90], out, scratch) })
	if allocs != 0 {
		t.Fatalf("Infer allocates %v times per call, want 0", allocs)
	}
}

func TestXavierBoundsAndSpread(t *testing.T) {
	m := New(90, 64, 2)
	m.InitXavier(rand.New(rand.NewPCG(1, 2)))
	a := math.Sqrt(6.0 / (90 + 64))
	w := m.W(0)
	var sum2 float64
	for _, v := range w {
		if math.Abs(float64(v)) > a {
			t.Fatalf("weight %v outside +-%v", v, a)
		}
		sum2 += float64(v) * float64(v)
	}
	// Variance of U(-a, a) is a^2/3.
	if got, want := sum2/float64(len(w)), a*a/3; math.Abs(got-want) > 0.1*want {
		t.Fatalf("weight variance %v, want about %v", got, want)
	}
	for _, v := range m.B(0) {
		if v != 0 {
			t.Fatalf("bias %v, want 0", v)
		}
	}
}

func TestAdamMatchesTorchFormula(t *testing.T) {
	p := []float32{1, -2}
	g := []float32{0.5, -0.1}
	a := NewAdam(2, 0.01, 0.1)
	a.Step(p, g)
	a.Step(p, g)
	// Reference computed in float64 from torch.optim.Adam's update rule.
	ref := []float64{1, -2}
	mm, vv := []float64{0, 0}, []float64{0, 0}
	for step := 1; step <= 2; step++ {
		for i := range ref {
			gi := float64(g[i]) + 0.1*ref[i]
			mm[i] = 0.9*mm[i] + 0.1*gi
			vv[i] = 0.999*vv[i] + 0.001*gi*gi
			mh := mm[i] / (1 - math.Pow(0.9, float64(step)))
			vh := vv[i] / (1 - math.Pow(0.999, float64(step)))
			ref[i] -= 0.01 * mh / (math.Sqrt(vh) + 1e-8)
		}
	}
	for i := range p {
		if math.Abs(float64(p[i])-ref[i]) > 1e-6 {
			t.Fatalf("param %d: got %v, want %v", i, p[i], ref[i])
		}
	}
}

// TestAdamKernelMatchesLoop compares the AVX2 Adam kernel with the Go loop over several steps
// and a length that is not a multiple of 8.
func TestAdamKernelMatchesLoop(t *testing.T) {
	const n = 1003
	rng := rand.New(rand.NewPCG(8, 8))
	p1 := make([]float32, n)
	for i := range p1 {
		p1[i] = float32(rng.NormFloat64())
	}
	p2 := append([]float32(nil), p1...)
	fast, slow := NewAdam(n, 1e-3, 1e-4), NewAdam(n, 1e-3, 1e-4)
	slow.slow = true
	g := make([]float32, n)
	for range 20 {
		for i := range g {
			g[i] = float32(rng.NormFloat64())
		}
		fast.Step(p1, g)
		slow.Step(p2, g)
	}
	for i := range p1 {
		if d := math.Abs(float64(p1[i] - p2[i])); d > 1e-6 || math.Abs(float64(fast.V[i]-slow.V[i])) > 1e-6 {
			t.Fatalf("element %d: kernel %v, loop %v", i, p1[i], p2[i])
		}
	}
}

func TestSoftUpdateAndCopy(t *testing.T) {
	a := randomMLP(1, 4, 3, 2)
	b := randomMLP(2, 4, 3, 2)
	want := make([]float32, len(a.Params))
	for i := range want {
		want[i] = 0.9*a.Params[i] + 0.1*b.Params[i]
	}
	a.SoftUpdate(b, 0.1)
	for i := range want {
		if math.Abs(float64(a.Params[i]-want[i])) > 1e-6 {
			t.Fatalf("param %d: %v, want %v", i, a.Params[i], want[i])
		}
	}
	a.CopyFrom(b)
	for i := range a.Params {
		if a.Params[i] != b.Params[i] {
			t.Fatal("CopyFrom did not copy")
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("SoftUpdate across shapes did not panic")
		}
	}()
	a.SoftUpdate(New(4, 2), 0.5)
}

// TestKernelMatchesGonum compares the micro-kernel path with gonum's Sgemm on many shapes.
func TestKernelMatchesGonum(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, sh := range [][3]int{{64, 64, 90}, {64, 192, 90}, {90, 64, 64}, {7, 16, 3}, {4, 32, 1}, {5, 48, 17}} {
		n, m, k := sh[0], sh[1], sh[2]
		for _, trans := range []bool{false, true} {
			lda := k + 3
			rowsA := n
			if trans {
				lda, rowsA = n+2, k
			}
			a := make([]float32, rowsA*lda)
			b := make([]float32, k*(m+5))
			for i := range a {
				a[i] = float32(rng.NormFloat64())
			}
			for i := range b {
				b[i] = float32(rng.NormFloat64())
			}
			c1 := make([]float32, n*(m+1))
			for i := range c1 {
				c1[i] = float32(rng.NormFloat64())
			}
			c2 := append([]float32(nil), c1...)
			gemmAcc(true, trans, n, m, k, a, lda, b, m+5, c1, m+1)
			gemmAcc(false, trans, n, m, k, a, lda, b, m+5, c2, m+1)
			for i := range c1 {
				if math.Abs(float64(c1[i]-c2[i])) > 1e-4*(1+math.Abs(float64(c2[i]))) {
					t.Fatalf("shape %v trans %v index %d: kernel %v, gonum %v", sh, trans, i, c1[i], c2[i])
				}
			}
		}
	}
	if !hasKernel() {
		t.Log("no AVX2/FMA on this CPU: both paths were gonum")
	}
}

func BenchmarkForwardBackward64(b *testing.B) {
	m := randomMLP(1, 90, 64, 64, 2)
	ws := m.NewWorkspace(64)
	x := randomBatch(2, 64*90)
	dy := randomBatch(3, 64*2)
	b.ReportAllocs()
	for b.Loop() {
		m.Forward(ws, x)
		m.Backward(ws, dy, nil)
	}
}

func BenchmarkInfer(b *testing.B) {
	m := randomMLP(1, 90, 64, 64, 2)
	x := randomBatch(2, 90)
	out := make([]float32, 2)
	s := make([]float32, m.ScratchLen())
	b.ReportAllocs()
	for b.Loop() {
		m.Infer(x, out, s)
	}
}
