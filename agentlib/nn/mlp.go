// Package nn implements small float32 multilayer perceptrons with ReLU hidden layers and a linear
// output layer, their gradients, Xavier-uniform initialisation and the Adam optimiser, on gonum's
// BLAS (gonum.org/v1/gonum/blas/blas32).
//
// Shapes: an MLP of sizes [n0, n1, ..., nL] maps n0 inputs to nL outputs through L affine layers;
// layers 0..L-2 are followed by ReLU, the last is linear. Batches are row-major matrices with one
// sample per row: an input batch of n samples is a []float32 of length n*n0.
//
// All parameters live in one contiguous slice (Params) and all gradients in another of the same
// length (Grads), so optimisers, target-network updates and serialisation work on flat slices.
// Layer l has a weight matrix W_l of sizes[l] x sizes[l+1] stored row-major (W_l[i*out+j] is the
// weight from input i to output j) followed by its bias b_l of length sizes[l+1].
//
// An MLP is not safe for concurrent use when one goroutine writes Params or Grads; concurrent
// inference with separate scratch buffers is safe.
package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// MLP is a multilayer perceptron with ReLU hidden layers and a linear output layer.
type MLP struct {
	sizes []int
	wOff  []int // offset of W_l in Params
	bOff  []int // offset of b_l in Params
	// Params holds all weights and biases, layer by layer: W_0, b_0, W_1, b_1, ...
	Params []float32
	// Grads has the layout of Params; Backward adds to it, ZeroGrads clears it.
	Grads []float32
}

// New returns an MLP of the given layer sizes with zero parameters. It panics if fewer than two
// sizes are given or any size is not positive.
func New(sizes ...int) *MLP {
	if len(sizes) < 2 {
		panic("nn: an MLP needs at least two layer sizes")
	}
	m := &MLP{sizes: append([]int(nil), sizes...)}
	n := 0
	for l := 0; l+1 < len(sizes); l++ {
		if sizes[l] <= 0 || sizes[l+1] <= 0 {
			panic(fmt.Sprintf("nn: layer size must be positive, got %v", sizes))
		}
		m.wOff = append(m.wOff, n)
		n += sizes[l] * sizes[l+1]
		m.bOff = append(m.bOff, n)
		n += sizes[l+1]
	}
	m.Params = make([]float32, n)
	m.Grads = make([]float32, n)
	return m
}

// NumParams returns the number of parameters (len(Params)) of an MLP of the given sizes.
func NumParams(sizes ...int) int {
	n := 0
	for l := 0; l+1 < len(sizes); l++ {
		n += sizes[l]*sizes[l+1] + sizes[l+1]
	}
	return n
}

// InitXavier sets every weight to a draw from the Xavier (Glorot) uniform distribution
// U(-a, a), a = sqrt(6 / (fan_in + fan_out)), and every bias to zero, as torch's
// xavier_uniform_ with gain 1 and constant_(bias, 0).
func (m *MLP) InitXavier(rng *rand.Rand) {
	for l := 0; l < m.Layers(); l++ {
		in, out := m.sizes[l], m.sizes[l+1]
		a := math.Sqrt(6 / float64(in+out))
		w := m.W(l)
		for i := range w {
			w[i] = float32((2*rng.Float64() - 1) * a)
		}
		clear(m.B(l))
	}
}

// Sizes returns a copy of the layer sizes.
func (m *MLP) Sizes() []int { return append([]int(nil), m.sizes...) }

// In returns the input width, Out the output width, Layers the number of affine layers.
func (m *MLP) In() int { return m.sizes[0] }

// Out returns the output width.
func (m *MLP) Out() int { return m.sizes[len(m.sizes)-1] }

// Layers returns the number of affine layers (len(sizes)-1).
func (m *MLP) Layers() int { return len(m.sizes) - 1 }

// W returns the weights of layer l (sizes[l] x sizes[l+1], row-major), aliasing Params.
func (m *MLP) W(l int) []float32 {
	return m.Params[m.wOff[l] : m.wOff[l]+m.sizes[l]*m.sizes[l+1]]
}

// B returns the bias of layer l (length sizes[l+1]), aliasing Params.
func (m *MLP) B(l int) []float32 { return m.Params[m.bOff[l] : m.bOff[l]+m.sizes[l+1]] }

func (m *MLP) gw(l int) []float32 {
	return m.Grads[m.wOff[l] : m.wOff[l]+m.sizes[l]*m.sizes[l+1]]
}

func (m *MLP) gb(l int) []float32 { return m.Grads[m.bOff[l] : m.bOff[l]+m.sizes[l+1]] }

// ZeroGrads sets every gradient to zero.
func (m *MLP) ZeroGrads() { clear(m.Grads) }

// CopyFrom copies the parameters of src into m. It panics if the sizes differ.
func (m *MLP) CopyFrom(src *MLP) {
	m.mustMatch(src)
	copy(m.Params, src.Params)
}

// SoftUpdate sets m = (1-tau) m + tau src, parameter by parameter (a target-network update). It
// panics if the sizes differ.
func (m *MLP) SoftUpdate(src *MLP, tau float32) {
	m.mustMatch(src)
	softUpdate(m.Params, src.Params, tau)
}

//go:norace
func softUpdate(dst, src []float32, tau float32) {
	dst = dst[:len(src)]
	for i, p := range src {
		dst[i] = dst[i]*(1-tau) + p*tau
	}
}

func (m *MLP) mustMatch(o *MLP) {
	if len(m.sizes) != len(o.sizes) {
		panic("nn: size mismatch")
	}
	for i := range m.sizes {
		if m.sizes[i] != o.sizes[i] {
			panic("nn: size mismatch")
		}
	}
}

// narrowOut is the output width below which a layer is computed through a transposed copy of its
// weights: the row-by-row kernels of gonum are slow on very short rows.
const narrowOut = 16

// Workspace holds the activations of one batch for Forward and Backward. A workspace belongs to
// one MLP shape and one batch size; it is not safe for concurrent use.
type Workspace struct {
	n     int
	x     []float32   // the input of the last Forward (aliased, not copied)
	ldx   int         // its stride
	acts  [][]float32 // acts[l] = output of layer l (post-ReLU for hidden layers), n x sizes[l+1]
	delta [][]float32 // delta[l] = dLoss/d(pre-activation of layer l), n x sizes[l+1]
	wt    [][]float32 // transposed weights (sizes[l+1] x sizes[l])
	gwt   [][]float32 // gradient scratch of narrow layers, else nil
	// slow disables the AVX2/FMA micro-kernel (gonum BLAS only); tests compare both paths.
	slow bool
}

// NewWorkspace returns a workspace for batches of n samples. It panics if n < 1.
func (m *MLP) NewWorkspace(n int) *Workspace {
	if n < 1 {
		panic("nn: workspace batch size must be positive")
	}
	ws := &Workspace{n: n}
	for l := 0; l < m.Layers(); l++ {
		ws.acts = append(ws.acts, make([]float32, n*m.sizes[l+1]))
		ws.delta = append(ws.delta, make([]float32, n*m.sizes[l+1]))
		wt := make([]float32, m.sizes[l]*m.sizes[l+1])
		var gwt []float32
		if m.sizes[l+1] < narrowOut {
			gwt = make([]float32, m.sizes[l]*m.sizes[l+1])
		}
		ws.wt = append(ws.wt, wt)
		ws.gwt = append(ws.gwt, gwt)
	}
	return ws
}

// N returns the batch size of the workspace.
func (ws *Workspace) N() int { return ws.n }

// Hidden returns the output of layer l of the last Forward (n x sizes[l+1], row-major).
func (ws *Workspace) Hidden(l int) []float32 { return ws.acts[l] }

func gen(rows, cols, stride int, data []float32) blas32.General {
	return blas32.General{Rows: rows, Cols: cols, Stride: stride, Data: data}
}

// Forward computes the outputs of the batch x (n x In(), row-major, n = ws.N()) and returns them
// as an n x Out() row-major slice owned by ws (valid until the next Forward on ws). x is
// retained by ws for Backward and must not change in between. It panics if len(x) != n*In().
func (m *MLP) Forward(ws *Workspace, x []float32) []float32 {
	if len(x) != ws.n*m.sizes[0] {
		panic(fmt.Sprintf("nn: Forward input has %d values, want %d x %d", len(x), ws.n, m.sizes[0]))
	}
	return m.forwardFrom(ws, 0, x, m.sizes[0])
}

// forwardFrom runs layers start.. on the input x (n x sizes[start], row stride ldx).
func (m *MLP) forwardFrom(ws *Workspace, start int, x []float32, ldx int) []float32 {
	n := ws.n
	ws.x, ws.ldx = x, ldx
	in, ld := x, ldx
	for l := start; l < m.Layers(); l++ {
		ni, no := m.sizes[l], m.sizes[l+1]
		out := ws.acts[l]
		b := m.B(l)
		for r := 0; r < n; r++ {
			copy(out[r*no:(r+1)*no], b)
		}
		if no < narrowOut {
			wt := ws.wt[l]
			transpose(wt, m.W(l), ni, no)
			blas32.Gemm(blas.NoTrans, blas.Trans, 1, gen(n, ni, ld, in), gen(no, ni, ni, wt), 1, gen(n, no, no, out))
		} else {
			gemmAcc(!ws.slow, false, n, no, ni, in, ld, m.W(l), no, out, no)
		}
		if l+1 < m.Layers() {
			relu(out)
		}
		in, ld = out, no
	}
	return in
}

// transpose writes the transpose of a (rows x cols) into dst (cols x rows).
func transpose(dst, a []float32, rows, cols int) {
	for i := 0; i < rows; i++ {
		row := a[i*cols : (i+1)*cols]
		for j, v := range row {
			dst[j*rows+i] = v
		}
	}
}

// Backward back-propagates dy = dLoss/dOutput (n x Out(), row-major) through the activations of
// the last Forward on ws and adds dLoss/dParams to m.Grads. If dx is not nil it receives
// dLoss/dInput (n x In()). It panics on a length mismatch. Params must not have changed since
// that Forward.
func (m *MLP) Backward(ws *Workspace, dy, dx []float32) {
	n := ws.n
	L := m.Layers()
	if len(dy) != n*m.sizes[L] {
		panic(fmt.Sprintf("nn: Backward gradient has %d values, want %d x %d", len(dy), n, m.sizes[L]))
	}
	if dx != nil && len(dx) != n*m.sizes[0] {
		panic(fmt.Sprintf("nn: Backward input gradient has %d values, want %d x %d", len(dx), n, m.sizes[0]))
	}
	m.backwardTo(ws, dy, 0, dx, m.sizes[0], false)
}

// backwardTo back-propagates dy through layers L-1..start, whose input was the one given to
// forwardFrom. If dIn is not nil it receives dLoss/d(input of layer start) (row stride ldd),
// multiplied by the ReLU mask of that input when mask is set.
func (m *MLP) backwardTo(ws *Workspace, dy []float32, start int, dIn []float32, ldd int, mask bool) {
	n := ws.n
	L := m.Layers()
	copy(ws.delta[L-1], dy)
	for l := L - 1; l >= start; l-- {
		ni, no := m.sizes[l], m.sizes[l+1]
		d := ws.delta[l]
		in, ld := ws.x, ws.ldx
		if l > start {
			in, ld = ws.acts[l-1], ni
		}
		if gwt := ws.gwt[l]; gwt != nil {
			// dW^T = d^T in, accumulated into Grads through the transposed scratch.
			blas32.Gemm(blas.Trans, blas.NoTrans, 1, gen(n, no, no, d), gen(n, ni, ld, in), 0, gen(no, ni, ni, gwt))
			gw := m.gw(l)
			for j := 0; j < no; j++ {
				for i, v := range gwt[j*ni : (j+1)*ni] {
					gw[i*no+j] += v
				}
			}
		} else {
			// dW += in^T d
			gemmAcc(!ws.slow, true, ni, no, n, in, ld, d, no, m.gw(l), no)
		}
		gb := m.gb(l)
		for r := 0; r < n; r++ {
			for j, v := range d[r*no : (r+1)*no] {
				gb[j] += v
			}
		}
		var dst []float32
		ldDst := ni
		switch {
		case l > start:
			dst = ws.delta[l-1]
		case dIn != nil:
			dst, ldDst = dIn, ldd
		default:
			continue
		}
		// dIn = d W^T
		wt := ws.wt[l]
		if no >= narrowOut {
			transpose(wt, m.W(l), ni, no)
		}
		for r := 0; r < n; r++ {
			clear(dst[r*ldDst : r*ldDst+ni])
		}
		gemmAcc(!ws.slow, false, n, ni, no, d, no, wt, ni, dst, ldDst)
		if l > start || mask {
			for r := 0; r < n; r++ {
				reluMask(dst[r*ldDst:r*ldDst+ni], in[r*ld:r*ld+ni])
			}
		}
	}
}

// ScratchLen returns the length of the scratch buffer Infer needs: twice the widest layer.
func (m *MLP) ScratchLen() int {
	w := 0
	for _, s := range m.sizes {
		w = max(w, s)
	}
	return 2 * w
}

// Infer computes the output of one sample x (length In()) into out (length Out()), using scratch
// (length at least ScratchLen()) for the hidden layers. It allocates nothing and does not touch
// any workspace, so goroutines with their own scratch may call it concurrently. It panics on a
// length mismatch.
func (m *MLP) Infer(x, out, scratch []float32) {
	if len(x) != m.sizes[0] || len(out) != m.Out() || len(scratch) < m.ScratchLen() {
		panic("nn: Infer length mismatch")
	}
	w := len(scratch) / 2
	bufs := [2][]float32{scratch[:w], scratch[w:]}
	in := x
	for l := 0; l < m.Layers(); l++ {
		ni, no := m.sizes[l], m.sizes[l+1]
		var y []float32
		if l+1 == m.Layers() {
			y = out
		} else {
			y = bufs[l%2][:no]
		}
		copy(y, m.B(l))
		blas32.Gemv(blas.Trans, 1,
			blas32.General{Rows: ni, Cols: no, Stride: no, Data: m.W(l)},
			blas32.Vector{N: ni, Inc: 1, Data: in}, 1,
			blas32.Vector{N: no, Inc: 1, Data: y})
		if l+1 < m.Layers() {
			relu(y)
		}
		in = y
	}
}

// relu sets every negative entry of v to +0. It compiles without branches (half of the signs
// are random, so a branch would mispredict half of the time).
//
// The element-wise loops of this package (relu, reluMask, Adam.Step, SoftUpdate) are marked
// go:norace: under the race detector their per-element instrumentation made training ten times
// slower. They only touch the slices passed to them, which the callers' own accesses (and the
// race detector there) cover; the assembly kernel is likewise not instrumented.
//
//go:norace
func relu(v []float32) {
	for i, x := range v {
		v[i] = max(x, 0)
	}
}

// reluMask zeroes o[i] wherever act[i], a ReLU output (+0 or positive), is not positive.
//
//go:norace
func reluMask(o, act []float32) {
	o = o[:len(act)]
	for i, a := range act {
		var keep float32
		if a > 0 {
			keep = 1
		}
		o[i] *= keep
	}
}
