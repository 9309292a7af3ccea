package zoo

import (
	"fmt"
	"math"
	"slices"

	"github.com/optoloop/optoloop/agentlib/obs"
)

// Trigger is what a hand policy looks at in the observation's newest frame.
type Trigger string

// The triggers. The facing cosine is cos(body angle - direction to the target): 1 when the worm
// faces the target, -1 when it faces away. The head-swing phase proxy is the head angle
// relative to the body at the newest frame minus its mean over the last SwingFrames frames
// (about one undulation): the looping path bends the head to one side for long stretches,
// the swing moves it about that bend. The target side is the side (left or right of the body
// axis) on which the target lies.
const (
	// FacingAway holds while the facing cosine is below the threshold.
	FacingAway Trigger = "away"
	// FacingToward holds while the facing cosine is above the threshold.
	FacingToward Trigger = "toward"
	// HeadTargetSide holds while the head is swung (phase proxy beyond the threshold, radians)
	// to the target's side of the body axis.
	HeadTargetSide Trigger = "head-target-side"
	// HeadOtherSide holds while the head is swung to the side away from the target.
	HeadOtherSide Trigger = "head-other-side"
	// SwingTargetSide holds while the head swings toward the target's side (the phase proxy's
	// change over the last frame beyond the threshold, radians, in that direction): a quarter
	// of an undulation ahead of HeadTargetSide, which makes up for the delay between the head's
	// measured direction, the light and its effect (the head angle follows the tip's track,
	// the light acts on the next frame, through the line's onset lag).
	SwingTargetSide Trigger = "swing-target-side"
	// SwingOtherSide holds while the head swings toward the side away from the target.
	SwingOtherSide Trigger = "swing-other-side"
)

// SwingFrames is the window, in frames, of the head-swing phase proxy's mean (3 s at 3 Hz,
// about one undulation period of 2.8 s).
const SwingFrames = 9

// HandPolicy is one simple state-based light policy acting on the agent's observation (package
// agentlib/obs): the light is on while (Pulse 0) its trigger holds, or, with Pulse > 0, for
// Pulse frames whenever the trigger holds and at least Refractory frames have passed since the
// last pulse ended.
type HandPolicy struct {
	Name      string  `json:"name"`
	Trigger   Trigger `json:"trigger"`
	Threshold float64 `json:"threshold"`
	// Pulse is the pulse length in frames (0: hold the light while the trigger holds).
	Pulse int `json:"pulse_frames,omitempty"`
	// Refractory is the least number of frames between a pulse's end and the next pulse.
	Refractory int `json:"refractory_frames,omitempty"`
}

// HandFamily returns the fixed family of hand policies the bounds are taken over (22 policies):
// light while facing away or toward the target (three thresholds each); 1 s and 2 s pulses
// (3 s apart at least) when facing away or toward (two thresholds each); light while the head
// is swung to the target's side or to the other side; light while it swings toward either
// side (two thresholds each); and 1 s pulses, at most about once per undulation, timed to the
// swing toward either side.
func HandFamily() []HandPolicy {
	var out []HandPolicy
	hold := func(t Trigger, th float64) {
		out = append(out, HandPolicy{Name: fmt.Sprintf("hold-%s%+g", t, th), Trigger: t, Threshold: th})
	}
	pulse := func(t Trigger, th float64, frames, refr int) {
		out = append(out, HandPolicy{Name: fmt.Sprintf("pulse%gs-%s%+g", float64(frames)/3, t, th), Trigger: t, Threshold: th, Pulse: frames, Refractory: refr})
	}
	for _, th := range []float64{-0.5, 0, 0.5} {
		hold(FacingAway, th)
	}
	for _, th := range []float64{0, 0.5, 0.8} {
		hold(FacingToward, th)
	}
	for _, frames := range []int{3, 6} {
		for _, th := range []float64{-0.5, 0} {
			pulse(FacingAway, th, frames, 9)
		}
		for _, th := range []float64{0.5, 0.8} {
			pulse(FacingToward, th, frames, 9)
		}
	}
	for _, t := range []Trigger{HeadTargetSide, HeadOtherSide} {
		hold(t, 0)
	}
	for _, t := range []Trigger{SwingTargetSide, SwingOtherSide} {
		hold(t, 0)
		hold(t, 0.05)
		pulse(t, 0.05, 3, 3)
	}
	return out
}

// Validate reports the first unusable field.
func (h HandPolicy) Validate() error {
	switch {
	case h.Name == "":
		return fmt.Errorf("hand policy: no name")
	case !slices.Contains([]Trigger{FacingAway, FacingToward, HeadTargetSide, HeadOtherSide, SwingTargetSide, SwingOtherSide}, h.Trigger):
		return fmt.Errorf("hand policy %s: trigger %q is unknown", h.Name, h.Trigger)
	case math.IsNaN(h.Threshold) || math.IsInf(h.Threshold, 0):
		return fmt.Errorf("hand policy %s: threshold must be finite", h.Name)
	case h.Pulse < 0 || h.Refractory < 0:
		return fmt.Errorf("hand policy %s: pulse and refractory frames must be >= 0", h.Name)
	}
	return nil
}

// New returns the policy ready for one episode (its pulse state fresh). The result satisfies
// worker.Policy: it is called once per frame on which the worker lets a policy decide.
func (h HandPolicy) New() *Acting { return &Acting{p: h, since: math.MaxInt / 2} }

// Acting is a hand policy during one episode. It is not safe for concurrent use.
type Acting struct {
	p     HandPolicy
	left  int // frames left of the current pulse
	since int // frames since the last pulse ended
}

// Act returns 1 (light on) or 0 for the observation o (obs.Size numbers, oldest frame first,
// feature-major). It panics when len(o) != obs.Size.
func (a *Acting) Act(o []float32) int {
	if len(o) != obs.Size {
		panic(fmt.Sprintf("zoo: hand policy %s: observation of %d numbers, want %d", a.p.Name, len(o), obs.Size))
	}
	holds := Holds(a.p.Trigger, a.p.Threshold, o)
	if a.p.Pulse == 0 {
		if holds {
			return 1
		}
		return 0
	}
	if a.left > 0 {
		a.left--
		if a.left == 0 {
			a.since = 0
		}
		return 1
	}
	a.since++
	if holds && a.since > a.p.Refractory {
		a.left = a.p.Pulse - 1
		if a.left == 0 {
			a.since = 0
		}
		return 1
	}
	return 0
}

// Holds reports whether trigger t at threshold th holds on observation o (obs.Size numbers).
func Holds(t Trigger, th float64, o []float32) bool {
	f := Features(o)
	switch t {
	case FacingAway:
		return f.Facing < th
	case FacingToward:
		return f.Facing > th
	case HeadTargetSide:
		return f.Swing*f.TargetSide > th
	case HeadOtherSide:
		return -f.Swing*f.TargetSide > th
	case SwingTargetSide:
		return f.SwingRate*f.TargetSide > th
	case SwingOtherSide:
		return -f.SwingRate*f.TargetSide > th
	}
	return false
}

// Observed is what the hand policies read from an observation's newest frame.
type Observed struct {
	// Facing is cos(body angle - direction to the target).
	Facing float64
	// TargetSide is +1 when the target lies on the positive-angle side of the body axis (its
	// bearing minus the body angle within (0, pi)), -1 otherwise.
	TargetSide float64
	// Swing is the head-swing phase proxy, radians: the head angle relative to the body now
	// minus its mean over the last SwingFrames frames.
	Swing float64
	// SwingRate is the change of Swing since the frame before, radians per frame.
	SwingRate float64
}

// Features reads an observation (obs.Size numbers, see package agentlib/obs).
func Features(o []float32) Observed {
	const n = obs.Frames
	at := func(feature, frame int) float64 { return float64(o[feature*n+frame]) }
	last := n - 1
	body := math.Atan2(at(0, last), at(1, last))
	bearing := math.Atan2(-at(5, last), -at(4, last)) // from the worm to the target
	rel := math.Remainder(bearing-body, 2*math.Pi)
	f := Observed{Facing: math.Cos(rel), TargetSide: 1}
	if rel < 0 {
		f.TargetSide = -1
	}
	headRel := func(i int) float64 {
		return math.Remainder(math.Atan2(at(2, i), at(3, i))-math.Atan2(at(0, i), at(1, i)), 2*math.Pi)
	}
	swing := func(k int) float64 { // the proxy at frame k, from the SwingFrames frames up to it
		var mean float64
		for i := k - SwingFrames + 1; i <= k; i++ {
			mean += headRel(i)
		}
		return headRel(k) - mean/SwingFrames
	}
	f.Swing = swing(last)
	f.SwingRate = f.Swing - swing(last-1)
	return f
}
