package track

import (
	"fmt"
	"math"
	"time"

	"github.com/optoloop/optoloop/arenas"
)

// Confident is the confidence from which a pose counts as confident: a pose is to be trusted
// for control when OK is set and Confidence >= Confident. Poses whose head/tail identity is not
// settled yet, and doubtful shapes, stay below it.
const Confident = 0.5

// Config sets up a Tracker. Lengths are in pixels of the frame, grey levels are 8-bit values.
// DefaultConfig derives every size from the calibration's scale.
type Config struct {
	// Calibration is the camera and plate tracked: scale, plate mask and frame period.
	Calibration arenas.Calibration

	// BodyLength is the nominal worm length in pixels (default 1 mm, a young adult, at the
	// calibration's scale): the reference length a track starts from and the unit of the
	// search region and the settling distance.
	BodyLength float64
	// MinBodyLength and MaxBodyLength bound the length of a worm the tracker accepts, in
	// pixels (default 0.4 mm, an L1 larva, to 1.5 mm, a gravid adult, at the calibration's
	// scale). The area and width bounds and the local background kernel derive from them;
	// within a track, the reference length follows the confident frames inside these bounds.
	MinBodyLength, MaxBodyLength float64
	// Polarity says whether the worm is darker than the agar (bright-field, the default) or
	// brighter than it (dark-field, as on the reference's rig), or to decide it from the
	// background (AutoPolarity).
	Polarity Polarity
	// MidlinePoints is the number of points of the ordered midline, head first (default 49).
	MidlinePoints int

	// MinContrast is the smallest darkening (grey levels below the background) that can be
	// worm; the detection threshold is the larger of it and NoiseK noise deviations.
	MinContrast float64
	// NoiseK is the detection threshold in robust noise deviations of the difference image.
	NoiseK float64
	// MinAreaRatio, MaxAreaRatio bound a plausible worm's area relative to the expected
	// area of a worm of the shortest and the longest accepted length (L x L/10 x 0.8).
	MinAreaRatio, MaxAreaRatio float64
	// MinLengthRatio, MaxLengthRatio bound a plausible uncoiled midline's length relative to
	// the reference length once it is known, and to the accepted length range before. A
	// shorter midline means the worm is curled up on itself.
	MinLengthRatio, MaxLengthRatio float64
	// RefineLength measures the worm: the reference length is unknown (any length in
	// [MinBodyLength, MaxBodyLength]) until the median of the first confident frames sets it,
	// and then follows the confident frames within those bounds. Without it, BodyLength is
	// the worm's known length from the first frame.
	RefineLength bool
	// PlateMask restricts the search to the calibration's plate circle.
	PlateMask bool

	// ROIScale is the half-size of the search region around the last known centre, in body
	// lengths. The whole frame is searched only when the worm was lost.
	ROIScale float64

	// SwapAfter is how long the worm must move against its head direction (faster than
	// SpeedFloor) before head and tail are swapped (the reference's ~10 s rule).
	SwapAfter time.Duration
	// SpeedFloor, in pixels per second, is the axial speed below which the worm counts as
	// still for the head/tail rules.
	SpeedFloor float64
	// SettleDistance is how far, in body lengths, the worm must move along its body after an
	// acquisition (first frame or after a loss) for the head/tail identity to settle by the
	// direction of motion. Until then poses stay below Confident.
	SettleDistance float64
	// MotionIdentity uses the worm's motion in the frame for head/tail identity (settling
	// after an acquisition, the SwapAfter rule). Turn it off for recordings whose field of
	// view follows the worm (a tracking stage), where motion in the frame is not the worm's:
	// identity then rests on continuity alone and never settles.
	MotionIdentity bool
	// RequireSettled keeps poses below Confident until the head/tail identity has been
	// settled by the worm's motion. Still images, where motion is unknown, turn it off: their
	// confidence then speaks for the shape only, and the head/tail order is arbitrary.
	RequireSettled bool
	// ReacquireAfter is how long the worm may be lost before head/tail identity must settle
	// again by motion (shorter losses keep continuity with the last pose).
	ReacquireAfter time.Duration

	// QuantizeDeg rounds the body and head angles to multiples of this many degrees (the
	// reference used 30); 0 keeps full precision.
	QuantizeDeg float64

	// BackgroundFrames is the number of light-off frames averaged into the background before
	// an episode (used by Observer.Prepare).
	BackgroundFrames int
	// RefreshRate is the weight of a new light-off frame in the running-mean refresh of the
	// background (0 disables the refresh). RefreshStripes splits the frame into horizontal
	// stripes of which one is refreshed per frame, so the cost per frame stays small.
	RefreshRate    float64
	RefreshStripes int
}

// DefaultConfig returns the reference tracker for cal: a worm of 1 mm, 49 midline points,
// a 10 s swap rule above 0.05 mm/s, a plate mask and a background of 15 light-off frames (5 s at 3 Hz)
// refreshed one 128th at a time.
func DefaultConfig(cal arenas.Calibration) Config {
	mm := cal.PxPerCM / 10
	return Config{
		Calibration:      cal,
		BodyLength:       mm,
		MinBodyLength:    max(0.4*mm, min(8, mm)),
		MaxBodyLength:    1.5 * mm,
		MidlinePoints:    49,
		MinContrast:      12,
		NoiseK:           5,
		MinAreaRatio:     0.2,
		MaxAreaRatio:     3,
		MinLengthRatio:   0.72,
		MaxLengthRatio:   1.6,
		RefineLength:     true,
		PlateMask:        true,
		ROIScale:         1.0,
		SwapAfter:        10 * time.Second,
		SpeedFloor:       0.05 * mm,
		SettleDistance:   0.1,
		MotionIdentity:   true,
		RequireSettled:   true,
		ReacquireAfter:   time.Second,
		BackgroundFrames: 15,
		RefreshRate:      0.05,
		RefreshStripes:   128,
	}
}

// Validate reports the first field that makes c unusable.
func (c Config) Validate() error {
	if err := c.Calibration.Validate(); err != nil {
		return fmt.Errorf("track: %w", err)
	}
	pos := func(v float64) bool { return v > 0 && !math.IsInf(v, 0) }
	switch {
	case !pos(c.BodyLength) || c.BodyLength < 8 || c.BodyLength > 4000:
		return fmt.Errorf("track: body length %v px must be in [8, 4000]", c.BodyLength)
	case !pos(c.MinBodyLength) || c.MinBodyLength < 8 || !(c.MaxBodyLength >= c.MinBodyLength) || c.MaxBodyLength > 4000 ||
		c.BodyLength < c.MinBodyLength || c.BodyLength > c.MaxBodyLength:
		return fmt.Errorf("track: body length bounds [%v, %v] px must hold the nominal %v px and lie in [8, 4000]", c.MinBodyLength, c.MaxBodyLength, c.BodyLength)
	case c.Polarity < DarkWorm || c.Polarity > AutoPolarity:
		return fmt.Errorf("track: polarity %d unknown", int(c.Polarity))
	case c.MidlinePoints < 5 || c.MidlinePoints > 1000:
		return fmt.Errorf("track: midline points %d must be in [5, 1000]", c.MidlinePoints)
	case !(c.MinContrast >= 1 && c.MinContrast <= 200):
		return fmt.Errorf("track: min contrast %v must be in [1, 200]", c.MinContrast)
	case !(c.NoiseK >= 0 && c.NoiseK <= 50):
		return fmt.Errorf("track: noise k %v must be in [0, 50]", c.NoiseK)
	case !pos(c.MinAreaRatio) || !(c.MaxAreaRatio > c.MinAreaRatio) || math.IsInf(c.MaxAreaRatio, 0):
		return fmt.Errorf("track: area ratios [%v, %v] must be positive and ordered", c.MinAreaRatio, c.MaxAreaRatio)
	case !pos(c.MinLengthRatio) || !(c.MaxLengthRatio > c.MinLengthRatio) || math.IsInf(c.MaxLengthRatio, 0):
		return fmt.Errorf("track: length ratios [%v, %v] must be positive and ordered", c.MinLengthRatio, c.MaxLengthRatio)
	case !(c.ROIScale >= 1 && c.ROIScale <= 20):
		return fmt.Errorf("track: roi scale %v must be in [1, 20] body lengths", c.ROIScale)
	case c.SwapAfter <= 0:
		return fmt.Errorf("track: swap after %v must be positive", c.SwapAfter)
	case !(c.SpeedFloor >= 0) || math.IsInf(c.SpeedFloor, 0):
		return fmt.Errorf("track: speed floor %v must be non-negative", c.SpeedFloor)
	case !(c.SettleDistance >= 0 && c.SettleDistance <= 5):
		return fmt.Errorf("track: settle distance %v must be in [0, 5] body lengths", c.SettleDistance)
	case c.ReacquireAfter < 0:
		return fmt.Errorf("track: reacquire after %v must not be negative", c.ReacquireAfter)
	case !(c.QuantizeDeg >= 0 && c.QuantizeDeg <= 180):
		return fmt.Errorf("track: quantize %v deg must be in [0, 180]", c.QuantizeDeg)
	case c.BackgroundFrames < 1 || c.BackgroundFrames > 10000:
		return fmt.Errorf("track: background frames %d must be in [1, 10000]", c.BackgroundFrames)
	case !(c.RefreshRate >= 0 && c.RefreshRate <= 1):
		return fmt.Errorf("track: refresh rate %v must be in [0, 1]", c.RefreshRate)
	case c.RefreshStripes < 1 || c.RefreshStripes > 4096:
		return fmt.Errorf("track: refresh stripes %d must be in [1, 4096]", c.RefreshStripes)
	}
	return nil
}

// Polarity is how the worm shows against the agar.
type Polarity int

const (
	// DarkWorm: bright-field, the worm darker than the agar.
	DarkWorm Polarity = iota
	// BrightWorm: dark-field, the worm brighter than the background.
	BrightWorm
	// AutoPolarity: decided from the background (or, without one, from the first frame).
	AutoPolarity
)

func (p Polarity) String() string {
	switch p {
	case DarkWorm:
		return "dark"
	case BrightWorm:
		return "bright"
	case AutoPolarity:
		return "auto"
	}
	return fmt.Sprintf("polarity(%d)", int(p))
}

// ParsePolarity reads "dark", "bright" or "auto".
func ParsePolarity(s string) (Polarity, error) {
	for _, p := range []Polarity{DarkWorm, BrightWorm, AutoPolarity} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("track: polarity %q: want dark, bright or auto", s)
}

// widthOf is the nominal body width in pixels of a worm l pixels long (a tenth of it).
func widthOf(l float64) float64 { return l / 10 }

// areaOf is the nominal area in pixels of a worm l pixels long.
func areaOf(l float64) float64 { return 0.8 * l * widthOf(l) }
