package episode

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// DefaultTargetCM is the reference evaluation's distance of the target from the plate centre.
const DefaultTargetCM = 1.5

// Target says where an episode's target is, relative to the plate centre.
type Target struct {
	// Rotate, when set, rotates the target up, down, left, right over episodes (the reference
	// evaluation), at DistanceCM from the plate centre.
	Rotate     bool
	DistanceCM float64
	// XCM, YCM is a fixed offset from the plate centre in cm, image axes (y down), when Rotate
	// is not set.
	XCM, YCM float64
}

// ParseTarget parses "" (rotate, default distance), "up", "down", "left", "right" (default
// distance in that direction, image axes: up is -y) or "x,y" in cm from the plate centre.
func ParseTarget(s string) (Target, error) {
	d := DefaultTargetCM
	switch strings.TrimSpace(s) {
	case "", "rotate":
		return Target{Rotate: true, DistanceCM: d}, nil
	case "up":
		return Target{DistanceCM: d, YCM: -d}, nil
	case "down":
		return Target{DistanceCM: d, YCM: d}, nil
	case "left":
		return Target{DistanceCM: d, XCM: -d}, nil
	case "right":
		return Target{DistanceCM: d, XCM: d}, nil
	}
	xs, ys, ok := strings.Cut(s, ",")
	if !ok {
		return Target{}, fmt.Errorf("target %q: want up, down, left, right or x,y in cm", s)
	}
	x, err1 := strconv.ParseFloat(strings.TrimSpace(xs), 64)
	y, err2 := strconv.ParseFloat(strings.TrimSpace(ys), 64)
	if err1 != nil || err2 != nil || math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
		return Target{}, fmt.Errorf("target %q: x,y must be numbers in cm", s)
	}
	return Target{DistanceCM: math.Hypot(x, y), XCM: x, YCM: y}, nil
}

// ForEpisode returns the target offset (cm from the plate centre, image axes) of episode i
// (0-based): up, down, left, right in turn when rotating.
func (t Target) ForEpisode(i int) (xcm, ycm float64) {
	if !t.Rotate {
		return t.XCM, t.YCM
	}
	d := t.DistanceCM
	switch i % 4 {
	case 0:
		return 0, -d
	case 1:
		return 0, d
	case 2:
		return -d, 0
	}
	return d, 0
}

// Check reports an error when the target lies outside a plate of radius plateCM.
func (t Target) Check(plateCM float64) error {
	if t.DistanceCM > plateCM {
		return fmt.Errorf("target %.3g cm from the plate centre is outside the plate (radius %.3g cm)", t.DistanceCM, plateCM)
	}
	return nil
}
