// Package policy holds what a worker acts with: ensembles of trained actors, the versioned binary
// format their parameters are stored in, and policy maps that show what an ensemble does.
package policy

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/optoloop/optoloop/agentlib/nn"
	"github.com/optoloop/optoloop/agentlib/obs"
)

// ObsSpec describes the observation an actor was trained on.
type ObsSpec struct {
	// Frames is the number of frames per observation (reference 15).
	Frames int `json:"frames"`
	// Features is the number of numbers per frame (reference 6).
	Features int `json:"features"`
	// PosScale is the divisor of positions relative to the target, in reference pixels
	// (reference 900).
	PosScale float64 `json:"pos_scale_px"`
}

// ReferenceSpec is the observation of package obs: 15 frames x 6 features, positions / 900 px.
func ReferenceSpec() ObsSpec {
	return ObsSpec{Frames: obs.Frames, Features: obs.Features, PosScale: obs.PosScale}
}

// LightSpec is package obs's light observation: the reference's with a seventh feature per
// frame, the light under which the frame was captured (15 x 7 = 105 numbers).
func LightSpec() ObsSpec {
	return ObsSpec{Frames: obs.Frames, Features: obs.LightFeatures, PosScale: obs.PosScale}
}

// KnownArchs returns the architectures workers build observations for: the reference actor on
// the reference observation and on the light observation (ArchOn).
func KnownArchs() []Arch { return []Arch{ReferenceArch(), ArchOn(LightSpec())} }

// Size returns Frames * Features.
func (s ObsSpec) Size() int { return s.Frames * s.Features }

// Arch is the architecture of an actor: its observation and its layer sizes (input, hidden...,
// actions).
type Arch struct {
	Spec  ObsSpec `json:"obs"`
	Sizes []int   `json:"sizes"`
}

// ReferenceArch is the reference actor: 90 -> 64 -> 64 -> 2 on the reference observation.
func ReferenceArch() Arch { return ArchOn(ReferenceSpec()) }

// ArchOn is the reference actor's layers (two hidden layers of 64, two actions) on observation
// spec.
func ArchOn(spec ObsSpec) Arch { return Arch{Spec: spec, Sizes: []int{spec.Size(), 64, 64, 2}} }

// Validate reports whether the architecture is usable.
func (a Arch) Validate() error {
	if a.Spec.Frames < 1 || a.Spec.Features < 1 || !(a.Spec.PosScale > 0) {
		return fmt.Errorf("policy: bad observation spec %+v", a.Spec)
	}
	if len(a.Sizes) < 3 || a.Sizes[0] != a.Spec.Size() || a.Sizes[len(a.Sizes)-1] < 2 {
		return fmt.Errorf("policy: layer sizes %v do not map a %d-number observation through at least one hidden layer to at least 2 actions", a.Sizes, a.Spec.Size())
	}
	for _, s := range a.Sizes {
		if s < 1 || s > 1<<16 {
			return fmt.Errorf("policy: layer size %d out of range", s)
		}
	}
	return nil
}

// Equal reports whether two architectures are identical.
func (a Arch) Equal(b Arch) bool { return a.diff(b) == "" }

// diff names the first difference between a (found) and b (wanted), or returns "".
func (a Arch) diff(b Arch) string {
	switch {
	case a.Spec.Frames != b.Spec.Frames:
		return fmt.Sprintf("observation frames %d, want %d", a.Spec.Frames, b.Spec.Frames)
	case a.Spec.Features != b.Spec.Features:
		return fmt.Sprintf("observation features %d, want %d", a.Spec.Features, b.Spec.Features)
	case a.Spec.PosScale != b.Spec.PosScale:
		return fmt.Sprintf("position scale %v px, want %v px", a.Spec.PosScale, b.Spec.PosScale)
	case fmt.Sprint(a.Sizes) != fmt.Sprint(b.Sizes):
		return fmt.Sprintf("layer sizes %v, want %v", a.Sizes, b.Sizes)
	}
	return ""
}

// Ensemble averages the action probabilities of several actors. It holds its own copy of the
// members' parameters. Act, Probs and Sample use internal buffers: an Ensemble is not safe for
// concurrent use (give each goroutine its own, see Clone).
type Ensemble struct {
	arch    Arch
	members []*nn.MLP
	// The members' first layers side by side: w1 is in x (K*h1), b1 has K*h1 entries.
	w1, b1  []float32
	h1      []float32   // first hidden layer of every member
	lastT   [][]float32 // each member's output weights transposed (actions x last hidden)
	scratch []float32
	logits  []float32
	probs   []float64
}

// NewEnsemble returns an ensemble of copies of the given actors, which must all have the
// architecture arch. It refuses an empty list or any mismatch.
func NewEnsemble(arch Arch, members ...*nn.MLP) (*Ensemble, error) {
	if err := arch.Validate(); err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return nil, errors.New("policy: an ensemble needs at least one member")
	}
	e := &Ensemble{arch: Arch{Spec: arch.Spec, Sizes: append([]int(nil), arch.Sizes...)}}
	for i, m := range members {
		if d := (Arch{Spec: arch.Spec, Sizes: m.Sizes()}).diff(arch); d != "" {
			return nil, fmt.Errorf("policy: member %d: %s", i, d)
		}
		c := nn.New(m.Sizes()...)
		c.CopyFrom(m)
		e.members = append(e.members, c)
	}
	in, h := arch.Sizes[0], arch.Sizes[1]
	k := len(members)
	e.w1 = make([]float32, in*k*h)
	e.b1 = make([]float32, k*h)
	for j, m := range e.members {
		w := m.W(0)
		for i := 0; i < in; i++ {
			copy(e.w1[i*k*h+j*h:i*k*h+(j+1)*h], w[i*h:(i+1)*h])
		}
		copy(e.b1[j*h:(j+1)*h], m.B(0))
		L := m.Layers() - 1
		ni, no := arch.Sizes[L], arch.Sizes[L+1]
		wt := make([]float32, ni*no)
		wl := m.W(L)
		for i := 0; i < ni; i++ {
			for a := 0; a < no; a++ {
				wt[a*ni+i] = wl[i*no+a]
			}
		}
		e.lastT = append(e.lastT, wt)
	}
	e.h1 = make([]float32, k*h)
	e.scratch = make([]float32, e.members[0].ScratchLen())
	na := arch.Sizes[len(arch.Sizes)-1]
	e.logits = make([]float32, na)
	e.probs = make([]float64, na)
	return e, nil
}

// Clone returns an independent ensemble with the same members, for use by another goroutine.
func (e *Ensemble) Clone() *Ensemble {
	c, err := NewEnsemble(e.arch, e.members...)
	if err != nil {
		panic("policy: clone of a valid ensemble failed: " + err.Error())
	}
	return c
}

// Len returns the number of members.
func (e *Ensemble) Len() int { return len(e.members) }

// Arch returns the members' architecture.
func (e *Ensemble) Arch() Arch {
	return Arch{Spec: e.arch.Spec, Sizes: append([]int(nil), e.arch.Sizes...)}
}

// Actions returns the number of actions.
func (e *Ensemble) Actions() int { return len(e.probs) }

// Member returns a copy of member i.
func (e *Ensemble) Member(i int) *nn.MLP {
	c := nn.New(e.members[i].Sizes()...)
	c.CopyFrom(e.members[i])
	return c
}

// Probs writes into dst (length Actions()) the mean over the members of their action
// probabilities (softmax of the actor outputs) for the observation o (length Sizes[0]). It
// allocates nothing. It panics on a length mismatch.
func (e *Ensemble) Probs(o []float32, dst []float64) {
	in, h := e.arch.Sizes[0], e.arch.Sizes[1]
	if len(o) != in || len(dst) != len(e.probs) {
		panic(fmt.Sprintf("policy: Probs needs an observation of %d and room for %d actions", in, len(e.probs)))
	}
	k := len(e.members)
	copy(e.h1, e.b1)
	blas32.Gemv(blas.Trans, 1,
		blas32.General{Rows: in, Cols: k * h, Stride: k * h, Data: e.w1},
		blas32.Vector{N: in, Inc: 1, Data: o}, 1,
		blas32.Vector{N: k * h, Inc: 1, Data: e.h1})
	for i, v := range e.h1 {
		e.h1[i] = max(v, 0)
	}
	clear(dst)
	for j, m := range e.members {
		inferRest(m, e.lastT[j], e.h1[j*h:(j+1)*h], e.logits, e.scratch)
		softmaxAdd(e.logits, dst)
	}
	for a := range dst {
		dst[a] /= float64(k)
	}
}

// inferRest runs layers 1.. of m on the first hidden layer x; lastT is the output layer's
// weights transposed, so that the (narrow) output layer is a few dot products.
func inferRest(m *nn.MLP, lastT, x, out, scratch []float32) {
	w := len(scratch) / 2
	bufs := [2][]float32{scratch[:w], scratch[w:]}
	in := x
	L := m.Layers()
	for l := 1; l < L; l++ {
		ni, no := len(in), len(m.B(l))
		if l+1 == L {
			copy(out, m.B(l))
			blas32.Gemv(blas.NoTrans, 1,
				blas32.General{Rows: no, Cols: ni, Stride: ni, Data: lastT},
				blas32.Vector{N: ni, Inc: 1, Data: in}, 1,
				blas32.Vector{N: no, Inc: 1, Data: out})
			return
		}
		y := bufs[l%2][:no]
		copy(y, m.B(l))
		blas32.Gemv(blas.Trans, 1,
			blas32.General{Rows: ni, Cols: no, Stride: no, Data: m.W(l)},
			blas32.Vector{N: ni, Inc: 1, Data: in}, 1,
			blas32.Vector{N: no, Inc: 1, Data: y})
		for i, v := range y {
			y[i] = max(v, 0)
		}
		in = y
	}
}

func softmaxAdd(logits []float32, dst []float64) {
	mx := float64(logits[0])
	for _, z := range logits[1:] {
		mx = max(mx, float64(z))
	}
	s := 0.0
	for _, z := range logits {
		s += math.Exp(float64(z) - mx)
	}
	for a, z := range logits {
		dst[a] += math.Exp(float64(z)-mx) / s
	}
}

// ObservationSize returns the length of the observations the ensemble acts on (the worker
// builds observations of this size).
func (e *Ensemble) ObservationSize() int { return e.arch.Sizes[0] }

// Act returns the most likely action under the mean probabilities (the evaluation rule of the
// reference; ties go to the lower action). It allocates nothing.
func (e *Ensemble) Act(o []float32) int {
	e.Probs(o, e.probs)
	best := 0
	for a, p := range e.probs {
		if p > e.probs[best] {
			best = a
		}
	}
	return best
}

// Sample draws an action from the mean probabilities with rng (exploration). It allocates
// nothing.
func (e *Ensemble) Sample(o []float32, rng *rand.Rand) int {
	e.Probs(o, e.probs)
	u := rng.Float64()
	for a, p := range e.probs {
		u -= p
		if u < 0 {
			return a
		}
	}
	return len(e.probs) - 1
}
