package track

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/optoloop/optoloop/arenas"
)

// ErrNoPixels is returned when an arena delivers frames without pixels and does not know the
// pose itself (it implements no arenas.Poser).
var ErrNoPixels = errors.New("track: frame has no pixels and the arena reports no pose")

// Observer is the worker's "next frame -> pose" step for one arena. Simulated and real arenas
// go through the same tracker; an arena that renders no frames (nil Pix) and implements
// arenas.Poser reports its own pose instead (with the angles rounded when QuantizeDeg is
// set).
//
// Use: NewObserver, Prepare before each episode (light off, background), then NextPose once
// per control step. An Observer is used by one goroutine; it does not close the arena.
type Observer struct {
	arena arenas.Arena
	tr    *Tracker
	log   *slog.Logger
	last  Result
}

// NewObserver returns an observer of a. cfg.Calibration must be a's calibration.
func NewObserver(a arenas.Arena, cfg Config, log *slog.Logger) (*Observer, error) {
	if a == nil {
		return nil, errors.New("track: nil arena")
	}
	if cfg.Calibration != a.Calibration() {
		return nil, fmt.Errorf("track: config calibration %+v differs from the arena's %+v", cfg.Calibration, a.Calibration())
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr, err := New(cfg, log)
	if err != nil {
		return nil, err
	}
	return &Observer{arena: a, tr: tr, log: log}, nil
}

// Tracker returns the observer's tracker.
func (o *Observer) Tracker() *Tracker { return o.tr }

// Prepare readies the observer for a new episode (a new animal): it switches the light off,
// averages Config.BackgroundFrames light-off frames into the background and forgets the
// previous worm. For an arena without rendered frames it only forgets the worm.
func (o *Observer) Prepare(ctx context.Context) error {
	if err := o.arena.SetLight(ctx, arenas.Light{}); err != nil {
		return fmt.Errorf("track: light off for the background: %w", err)
	}
	o.tr.Reset()
	o.tr.StartBackground()
	want := o.tr.cfg.BackgroundFrames
	for added, seen := 0, 0; added < want; seen++ {
		if seen >= 4*want+4 {
			return fmt.Errorf("track: only %d of %d background frames had the light off", added, want)
		}
		f, err := o.arena.NextFrame(ctx)
		if err != nil {
			return fmt.Errorf("track: background frame: %w", err)
		}
		if f.Pix == nil {
			if _, ok := o.arena.(arenas.Poser); ok {
				return nil
			}
			return ErrNoPixels
		}
		if f.Light.On {
			continue
		}
		if err := o.tr.AddBackground(f); err != nil {
			return err
		}
		added++
	}
	if err := o.tr.CommitBackground(); err != nil {
		return err
	}
	o.log.Debug("background built", "frames", want)
	return nil
}

// NextPose waits for the arena's next frame and returns it with the worm's pose. Before the
// first Prepare frames are tracked without a background (local threshold). The frame's Pix is
// valid until the next call, as for Arena.NextFrame.
func (o *Observer) NextPose(ctx context.Context) (arenas.Frame, arenas.Pose, error) {
	f, err := o.arena.NextFrame(ctx)
	if err != nil {
		return arenas.Frame{}, arenas.Pose{}, err
	}
	if f.Pix == nil {
		p, ok := o.arena.(arenas.Poser)
		if !ok {
			return f, arenas.Pose{}, ErrNoPixels
		}
		pose := p.Pose()
		if q := o.tr.cfg.QuantizeDeg; q > 0 {
			pose.BodyAngle = quantize(pose.BodyAngle, q)
			pose.HeadAngle = quantize(pose.HeadAngle, q)
		}
		o.last = Result{Pose: pose, Status: Found, Settled: true}
		if !pose.OK {
			o.last.Status = NoWorm
		}
		return f, pose, nil
	}
	o.last = o.tr.Track(f)
	return f, o.last.Pose, nil
}

// Last returns the full result of the last NextPose.
func (o *Observer) Last() Result { return o.last }

// Close releases the tracker; the arena stays open.
func (o *Observer) Close() error { return o.tr.Close() }
