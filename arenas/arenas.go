// Package arenas defines the arena contract: one agar plate with one worm, a camera above it
// and an optogenetic light. Simulated arenas (arenas/sim) and real rigs (arenas/rig) implement
// it, and every implementation passes the shared acceptance test in arenas/arenatest.
//
// Coordinates: positions are in pixels of the camera frame, x to the right and y down (image
// coordinates). Angles are radians, atan2(dy, dx) in those same coordinates, in (-pi, pi].
package arenas

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrClosed is returned by every method of an Arena after Close.
var ErrClosed = errors.New("arena closed")

// Calibration describes an arena's camera and plate.
type Calibration struct {
	// PxPerCM is the camera scale in pixels per centimetre (reference rig: 540).
	PxPerCM float64 `json:"px_per_cm"`
	// CenterX, CenterY is the plate centre in pixels.
	CenterX float64 `json:"center_x_px"`
	CenterY float64 `json:"center_y_px"`
	// PlateRadius is the radius of the usable plate area in pixels (reference rig: ~970).
	PlateRadius float64 `json:"plate_radius_px"`
	// Width, Height is the frame size in pixels (reference rig: 2160 x 1920).
	Width  int `json:"width_px"`
	Height int `json:"height_px"`
	// FramePeriod is the time between frames and light decisions (reference: 1/3 s).
	FramePeriod time.Duration `json:"frame_period"`
}

// DefaultCalibration is the reference rig: a 4 cm plate seen at 540 px/cm on a 2160x1920
// camera, one frame every 1/3 s.
func DefaultCalibration() Calibration {
	return Calibration{
		PxPerCM:     540,
		CenterX:     1080,
		CenterY:     960,
		PlateRadius: 970,
		Width:       2160,
		Height:      1920,
		FramePeriod: time.Second / 3,
	}
}

// Validate reports the first field that makes c unusable.
func (c Calibration) Validate() error {
	switch {
	case !(c.PxPerCM > 0) || c.PxPerCM > 1e5:
		return fmt.Errorf("calibration: px_per_cm %v must be positive and finite", c.PxPerCM)
	case c.Width <= 0 || c.Height <= 0 || c.Width > 1<<15 || c.Height > 1<<15:
		return fmt.Errorf("calibration: frame size %dx%d out of range", c.Width, c.Height)
	case !(c.PlateRadius > 0):
		return fmt.Errorf("calibration: plate_radius_px %v must be positive", c.PlateRadius)
	case c.CenterX < 0 || c.CenterY < 0 || c.CenterX > float64(c.Width) || c.CenterY > float64(c.Height):
		return fmt.Errorf("calibration: plate centre (%v, %v) outside the %dx%d frame", c.CenterX, c.CenterY, c.Width, c.Height)
	case c.FramePeriod <= 0:
		return fmt.Errorf("calibration: frame_period %v must be positive", c.FramePeriod)
	}
	return nil
}

// Frame is one 8-bit grey camera image.
type Frame struct {
	// Seq numbers frames from 0 in the order the camera delivered them.
	Seq uint64
	// Time is when the frame was exposed, on the arena's clock (virtual for simulated arenas).
	Time time.Time
	// Width, Height in pixels; Pix holds Height rows of Width bytes, row-major, no padding.
	Width, Height int
	Pix           []byte
	// Light is the light command in force when the frame was exposed.
	Light Light
}

// At returns the grey value at column x, row y. It panics when (x, y) is outside the frame.
func (f *Frame) At(x, y int) uint8 {
	if x < 0 || y < 0 || x >= f.Width || y >= f.Height {
		panic(fmt.Sprintf("arenas: pixel (%d, %d) outside %dx%d frame", x, y, f.Width, f.Height))
	}
	return f.Pix[y*f.Width+x]
}

// Light is a light command.
type Light struct {
	On bool `json:"on"`
	// Intensity in (0, 1] for rigs that can dim the light; 0 means the arena's fixed intensity.
	Intensity float64 `json:"intensity,omitempty"`
}

// Arena is one plate with one worm, a camera and a light. Implementations are safe for use by
// one goroutine at a time, except Close, which may be called from any goroutine and unblocks a
// pending NextFrame.
type Arena interface {
	// Calibration describes the camera and the plate; it does not change during the arena's life.
	Calibration() Calibration
	// NextFrame blocks until the next camera frame is available and returns it. The frame's
	// Pix stays valid until the following call to NextFrame; copy it to keep it longer.
	// It returns ctx.Err() when ctx ends first and ErrClosed after Close.
	NextFrame(ctx context.Context) (Frame, error)
	// SetLight switches the light. It takes effect from the next frame on.
	SetLight(ctx context.Context, l Light) error
	// Close switches the light off and releases the camera. Close is idempotent.
	Close() error
}

// Pose is where the worm is and how it lies, as a tracker sees it or as a simulator knows it.
type Pose struct {
	// OK is false when the worm was not found or the pose is not to be trusted (lost).
	OK bool `json:"ok"`
	// Confidence in [0, 1].
	Confidence float64 `json:"confidence"`
	// X, Y is the worm's centre in pixels.
	X float64 `json:"x_px"`
	Y float64 `json:"y_px"`
	// Head and Tail are the midline's end points in pixels.
	Head [2]float64 `json:"head_px"`
	Tail [2]float64 `json:"tail_px"`
	// BodyAngle is the direction of a line fitted through the midline, pointing from tail to head.
	BodyAngle float64 `json:"body_angle"`
	// HeadAngle is the direction of the front ~10 % of the midline, pointing to the head tip.
	HeadAngle float64 `json:"head_angle"`
	// Speed of the centre in pixels per second (0 when unknown).
	Speed float64 `json:"speed_px_s"`
	// Coiled is set when the worm touches or crosses itself.
	Coiled bool `json:"coiled"`
	// Midline runs from head to tail; it may be nil.
	Midline [][2]float64 `json:"midline,omitempty"`
}

// Poser is implemented by arenas that know the worm's pose without a camera (a simulator in
// its fast mode, without rendering). Pose returns the pose at the last frame NextFrame delivered.
type Poser interface {
	Pose() Pose
}
