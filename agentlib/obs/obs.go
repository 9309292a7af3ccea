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
//
// The light observation (LightSize = 105 numbers, LightFeatures = 7 per frame) adds a seventh
// feature, the light under which each frame was captured:
//
//	obs[6*15+i] = 1 if the light chosen after frame i-1 (which acted until frame i) was on, else 0
//
// (for the episode's first frame: 0, the light is off before an episode's first decision). It
// never holds the action being chosen, only the ones before it. The reference observation does
// not show the agent its own light; an opsin's effect outlasts the light by up to seconds and a
// response at light offset follows the light's history, so on lines whose light acts that way
// the pose alone does not say what the light is doing (runner/SCIENCE.md).
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
	// LightFeatures is the number of numbers per frame of the light observation: Features and
	// the light under which the frame was captured.
	LightFeatures = Features + 1
	// LightSize is the length of one light observation (Frames x LightFeatures = 105).
	LightSize = Frames * LightFeatures
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

// Pose is one tracked frame: the worm's centre in reference pixels and its body and head angles,
// and whether the light was on while it was captured (the light chosen after the frame before).
type Pose struct {
	X, Y       float64
	Body, Head float64
	Light      bool
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
// the replay keeps frames, so that sampling does not recompute them. Light is 1 if the light was
// on while the frame was captured, else 0.
type Trig struct {
	X, Y       float64
	SinB, CosB float64
	SinH, CosH float64
	Light      float32
}

// TrigOf returns the Trig form of p.
func TrigOf(p Pose) Trig {
	sb, cb := math.Sincos(p.Body)
	sh, ch := math.Sincos(p.Head)
	t := Trig{X: p.X, Y: p.Y, SinB: sb, CosB: cb, SinH: sh, CosH: ch}
	if p.Light {
		t.Light = 1
	}
	return t
}

// Encode writes the observation of the Frames poses p (oldest first) relative to the target
// (tx, ty) into dst, after rotating the scene by theta radians about the target: positions
// relative to the target are rotated by theta and theta is added to every angle. theta = 0 is
// the plain observation. The length of dst chooses the observation: Size (the reference's) or
// LightSize (with the light). It panics unless len(p) == Frames and len(dst) is one of them.
func Encode(dst []float32, p []Pose, tx, ty, theta float64) {
	if len(p) != Frames || (len(dst) != Size && len(dst) != LightSize) {
		panic(fmt.Sprintf("obs: Encode needs %d poses and %d or %d outputs, got %d and %d", Frames, Size, LightSize, len(p), len(dst)))
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
// len(dst) is Size or LightSize.
func EncodeTrig(dst []float32, p []Trig, tx, ty, sinTheta, cosTheta float64) {
	if len(p) != Frames || (len(dst) != Size && len(dst) != LightSize) {
		panic(fmt.Sprintf("obs: Encode needs %d frames and %d or %d outputs, got %d and %d", Frames, Size, LightSize, len(p), len(dst)))
	}
	s, c := sinTheta, cosTheta
	const inv = 1 / PosScale
	if len(dst) == LightSize {
		for i, q := range p {
			dst[Features*Frames+i] = q.Light
		}
	}
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

// Mirror reflects the observation o (Size or LightSize numbers, as Encode writes them) in place
// across the line through the target along the x axis: the sines of the body and head angles
// and every y relative to the target change sign; cosines, x and the light are unchanged. It
// panics unless len(o) is Size or LightSize.
func Mirror(o []float32) {
	if len(o) != Size && len(o) != LightSize {
		panic(fmt.Sprintf("obs: Mirror needs %d or %d numbers, got %d", Size, LightSize, len(o)))
	}
	for _, f := range [...]int{0, 2, 5} {
		for i := f * Frames; i < (f+1)*Frames; i++ {
			o[i] = -o[i]
		}
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
	light  bool // the light chosen last (Decided)
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

// Push adds one frame, captured under the light last given to Decided (p.Light is ignored). A
// frame with ok == false (tracking lost) is ignored, so the observation holds.
func (b *Builder) Push(p Pose, ok bool) {
	if !ok {
		return
	}
	p.Light = b.light
	b.ring[b.next] = p
	b.next = (b.next + 1) % Frames
	b.n++
}

// Decided records the light chosen after the newest frame, lost or not: the light the next
// frame is captured under. Before the first call of an episode the light counts as off.
func (b *Builder) Decided(on bool) { b.light = on }

// Tracked returns the number of tracked frames pushed since the last Reset.
func (b *Builder) Tracked() int { return b.n }

// Ready reports whether at least Frames tracked frames have been pushed, so that the observation
// holds no padding.
func (b *Builder) Ready() bool { return b.n >= Frames }

// Observation writes the current observation into dst (length Size, or LightSize for the light
// observation) and reports whether there was any tracked frame to build it from; with none, dst
// is left unchanged. It allocates nothing.
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
