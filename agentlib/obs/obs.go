// Package obs defines what an agent sees and is rewarded for: the 90-number observation of the
// reference study, the builder that turns a stream of tracked frames into observations, the
// reward, and the augmentation that turns one recorded track into tracks toward any target.
//
// Coordinates are reference pixels (540 px/cm), x to the right and y down (image coordinates);
// angles are radians, atan2(dy, dx) in those coordinates. The worker converts a rig's pixels to
// reference pixels before feeding frames here.
//
// The observation of frame t is the last Frames frames t-14..t, oldest first, feature-major:
//
//	obs[0*15+i] = sin(body_i)   obs[1*15+i] = cos(body_i)
//	obs[2*15+i] = sin(head_i)   obs[3*15+i] = cos(head_i)
//	obs[4*15+i] = (x_i - target_x) / 900
//	obs[5*15+i] = (y_i - target_y) / 900
//
// with i = 0 the oldest frame. Both the worker's Builder and replay sampling produce observations
// through Encode, so the two agree by construction.
package obs

import (
	"fmt"
	"math"
)

const (
	// Frames is the number of frames in one observation.
	Frames = 15
	// Features is the number of numbers per frame.
	Features = 6
	// Size is the length of one observation (Frames x Features = 90).
	Size = Frames * Features
	// PosScale is the position scale in reference pixels: positions relative to the target
	// are divided by it (900 px = 1.667 cm).
	PosScale = 900.0
	// ReachRadius is the distance to the target, in reference pixels, within which the worm
	// has reached it (30 px = 0.56 mm).
	ReachRadius = 30.0
	// ReachReward is the reward of a step that ends within ReachRadius of the target.
	ReachReward = 4.0
	// ProgressGain multiplies the decrease of the distance (in PosScale units) in the reward.
	ProgressGain = 2.0
)

// Pose is one tracked frame: the worm's centre in reference pixels and its body and head angles.
type Pose struct {
	X, Y       float64
	Body, Head float64
}

// Reward is the reward of the step from position (x0, y0) to (x1, y1) toward the target
// (tx, ty): ReachReward if (x1, y1) is within ReachRadius of the target (distance <= ReachRadius,
// as the reference), otherwise
// ProgressGain * (d0 - d1) with d the distance to the target divided by PosScale.
func Reward(x0, y0, x1, y1, tx, ty float64) float64 {
	return RewardReach(x0, y0, x1, y1, tx, ty, ReachReward)
}

// RewardReach is Reward with reach in place of ReachReward.
func RewardReach(x0, y0, x1, y1, tx, ty, reach float64) float64 {
	d1 := math.Hypot(x1-tx, y1-ty)
	if d1 <= ReachRadius {
		return reach
	}
	d0 := math.Hypot(x0-tx, y0-ty)
	return ProgressGain * (d0 - d1) / PosScale
}

// Trig is a frame with the sines and cosines of its angles already computed: the form in which
// the replay keeps frames, so that sampling does not recompute them.
type Trig struct {
	X, Y       float64
	SinB, CosB float64
	SinH, CosH float64
}

// TrigOf returns the Trig form of p.
func TrigOf(p Pose) Trig {
	sb, cb := math.Sincos(p.Body)
	sh, ch := math.Sincos(p.Head)
	return Trig{X: p.X, Y: p.Y, SinB: sb, CosB: cb, SinH: sh, CosH: ch}
}

// Encode writes the observation of the Frames poses p (oldest first) relative to the target
// (tx, ty) into dst, after rotating the scene by theta radians about the target: positions
// relative to the target are rotated by theta and theta is added to every angle. theta = 0 is
// the plain observation. It panics unless len(p) == Frames and len(dst) == Size.
func Encode(dst []float32, p []Pose, tx, ty, theta float64) {
	if len(p) != Frames || len(dst) != Size {
		panic(fmt.Sprintf("obs: Encode needs %d poses and %d outputs, got %d and %d", Frames, Size, len(p), len(dst)))
	}
	var t [Frames]Trig
	for i, q := range p {
		t[i] = TrigOf(q)
	}
	s, c := math.Sincos(theta)
	EncodeTrig(dst, t[:], tx, ty, s, c)
}

// EncodeTrig is Encode on frames in Trig form, with the rotation given by its sine and cosine.
// Encode and the replay's sampling both go through it. It panics unless len(p) == Frames and
// len(dst) == Size.
func EncodeTrig(dst []float32, p []Trig, tx, ty, sinTheta, cosTheta float64) {
	if len(p) != Frames || len(dst) != Size {
		panic(fmt.Sprintf("obs: Encode needs %d frames and %d outputs, got %d and %d", Frames, Size, len(p), len(dst)))
	}
	s, c := sinTheta, cosTheta
	const inv = 1 / PosScale
	dst = dst[:Size]
	for i, q := range p {
		dx, dy := q.X-tx, q.Y-ty
		// sin(a + theta) = sin a cos theta + cos a sin theta; cos(a + theta) = cos a cos theta - sin a sin theta
		dst[0*Frames+i] = float32(q.SinB*c + q.CosB*s)
		dst[1*Frames+i] = float32(q.CosB*c - q.SinB*s)
		dst[2*Frames+i] = float32(q.SinH*c + q.CosH*s)
		dst[3*Frames+i] = float32(q.CosH*c - q.SinH*s)
		dst[4*Frames+i] = float32((c*dx - s*dy) * inv)
		dst[5*Frames+i] = float32((s*dx + c*dy) * inv)
	}
}

// Builder turns the frames of one episode, fed one by one, into observations. The worker owns
// one per arena; it is not safe for concurrent use.
//
// Lost frames (tracking failed) do not enter the window: the observation holds its last value
// until tracking returns. Until Frames tracked frames have been seen, the window is padded by
// repeating the oldest tracked frame (Ready reports false during that time).
type Builder struct {
	tx, ty float64
	ring   [Frames]Pose
	n      int // tracked frames seen this episode
	next   int // ring index of the next write
	win    [Frames]Pose
}

// NewBuilder returns a builder for an episode with target (tx, ty) in reference pixels.
func NewBuilder(tx, ty float64) *Builder {
	b := &Builder{}
	b.Reset(tx, ty)
	return b
}

// Reset starts a new episode with target (tx, ty), forgetting every frame.
func (b *Builder) Reset(tx, ty float64) {
	*b = Builder{tx: tx, ty: ty}
}

// Target returns the episode's target.
func (b *Builder) Target() (x, y float64) { return b.tx, b.ty }

// Push adds one frame. A frame with ok == false (tracking lost) is ignored, so the observation
// holds.
func (b *Builder) Push(p Pose, ok bool) {
	if !ok {
		return
	}
	b.ring[b.next] = p
	b.next = (b.next + 1) % Frames
	b.n++
}

// Tracked returns the number of tracked frames pushed since the last Reset.
func (b *Builder) Tracked() int { return b.n }

// Ready reports whether at least Frames tracked frames have been pushed, so that the observation
// holds no padding.
func (b *Builder) Ready() bool { return b.n >= Frames }

// Observation writes the current observation into dst (length Size) and reports whether there
// was any tracked frame to build it from; with none, dst is left unchanged. It allocates nothing.
func (b *Builder) Observation(dst []float32) bool {
	if b.n == 0 {
		return false
	}
	if b.n >= Frames {
		for i := range Frames {
			b.win[i] = b.ring[(b.next+i)%Frames]
		}
	} else {
		pad := Frames - b.n
		for i := range Frames {
			j := max(i-pad, 0)
			b.win[i] = b.ring[j]
		}
	}
	Encode(dst, b.win[:], b.tx, b.ty, 0)
	return true
}
