// Package rig is the real-hardware arena: a camera read through OpenCV (gocv) and a
// stimulation light behind a small LED driver interface (serial line, GPIO value file, or a
// command). It implements arenas.Arena and passes arenas/arenatest.
//
// Safety: the light is switched off when the rig opens, when Close is called (on every path),
// when the camera stops delivering frames and when a light command fails. A light command that
// fails returns an error wrapping ErrLight and the rig records the light as off (after trying
// to switch it off); a camera that stops returns errors wrapping ErrCamera and refuses to switch
// the light on afterwards.
//
// Frames are taken by one reader goroutine that owns the OpenCV capture: in stream mode it
// reads one frame per NextFrame, in latest mode it reads continuously and keeps the newest.
// A frame always shows the light it records: frames whose exposure began before the latest
// light command are discarded.
package rig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/optoloop/optoloop/arenas"
)

var (
	// ErrLight marks a light command that failed: the light's state is not as commanded.
	ErrLight = errors.New("light failed")
	// ErrCamera marks a camera that could not be opened or stopped delivering frames.
	ErrCamera = errors.New("camera failed")
)

// closeWait bounds how long Close waits for a camera read in progress to end.
const closeWait = 2 * time.Second

// lightOffTimeout bounds a light-off command issued by the rig itself (Close, failures).
const lightOffTimeout = 5 * time.Second

// shot is one frame read by the reader, not yet handed out.
type shot struct {
	buf   []byte
	t     time.Time
	gen   uint64       // light generation when its exposure began
	light arenas.Light // light in force when its exposure began
}

// Arena is a real rig. See arenas.Arena for the contract.
type Arena struct {
	cal    arenas.Calibration
	cfg    Config
	clock  Clock
	log    *slog.Logger
	stream bool

	ledMu           sync.Mutex // serialises driver calls
	led             LED
	ledClosed       bool
	offAfterFailure bool // the light was switched off after the camera stopped

	mu       sync.Mutex
	light    arenas.Light
	gen      uint64
	slot     *shot
	pending  bool // stream mode: a read was requested and not yet delivered
	free     [][]byte
	cur      []byte
	seq      uint64
	lastTime time.Time
	next     time.Time // with a Period: when the next frame may be returned
	returned bool
	camErr   error
	closed   bool
	stats    Stats

	wake chan struct{}
	req  chan struct{}
	stop chan struct{}
	done chan struct{}
}

// Open opens the light driver, switches the light off, opens the camera and starts reading.
// On any failure the light is left off (when the driver works) and everything opened is
// released.
func Open(ctx context.Context, cfg Config) (*Arena, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	led, err := OpenLED(cfg.LED)
	if err != nil {
		return nil, fmt.Errorf("rig: %w: %w", ErrLight, err)
	}
	if err := led.Set(ctx, arenas.Light{}); err != nil {
		led.Close()
		return nil, fmt.Errorf("rig: switching the light off at open: %w: %w", ErrLight, err)
	}
	stream := cfg.Camera.Mode == ModeStream ||
		(cfg.Camera.Mode == ModeAuto && isRegularFile(cfg.Camera.Source))
	cam, err := openCapture(cfg.Camera, cfg.Calibration.Width, cfg.Calibration.Height, !stream)
	if err != nil {
		led.Close()
		return nil, fmt.Errorf("rig: %w", err)
	}
	a := &Arena{
		cal:    cfg.Calibration,
		cfg:    cfg,
		clock:  cfg.Clock,
		log:    cfg.Logger,
		stream: stream,
		led:    led,
		wake:   make(chan struct{}, 1),
		req:    make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go a.read(cam)
	a.log.Info("rig open", "source", cfg.Camera.Source, "stream", stream, "light", cfg.LED.Driver)
	return a, nil
}

// Stats counts what the camera delivered and what became of it.
type Stats struct {
	// Read is the number of frames read from the camera.
	Read uint64 `json:"read"`
	// Delivered is the number of frames NextFrame returned.
	Delivered uint64 `json:"delivered"`
	// Superseded counts frames replaced by a newer one before anyone asked (latest mode).
	Superseded uint64 `json:"superseded"`
	// LightChanged counts frames discarded because their exposure began before a light command.
	LightChanged uint64 `json:"light_changed"`
}

// Stats returns the frame counters so far.
func (a *Arena) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// Calibration returns the configured calibration.
func (a *Arena) Calibration() arenas.Calibration { return a.cal }

// Polarity is the worm's polarity the rig's config gives the tracker (Config.Polarity).
func (a *Arena) Polarity() string { return a.cfg.Polarity }

// Light returns the light state the rig believes is in force.
func (a *Arena) Light() arenas.Light {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.light
}

func (a *Arena) notify() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// bufLocked returns a free frame buffer.
func (a *Arena) bufLocked() []byte {
	if n := len(a.free); n > 0 {
		b := a.free[n-1]
		a.free = a.free[:n-1]
		return b
	}
	return make([]byte, a.cal.Width*a.cal.Height)
}

// read is the reader goroutine; it owns cam and releases it when it ends.
func (a *Arena) read(cam *capture) {
	defer close(a.done)
	defer cam.close()
	for {
		if a.stream {
			select {
			case <-a.req:
			case <-a.stop:
				return
			}
		} else {
			select {
			case <-a.stop:
				return
			default:
			}
		}
		a.mu.Lock()
		buf, gen, light := a.bufLocked(), a.gen, a.light
		a.mu.Unlock()
		err := cam.read(buf)
		t := a.clock.Now()
		a.mu.Lock()
		a.pending = false
		if err != nil {
			a.free = append(a.free, buf)
			if a.camErr == nil {
				a.camErr = err
			}
			a.mu.Unlock()
			a.notify()
			a.cameraFailed(err)
			return
		}
		if a.camErr != nil {
			// Declared stopped (no frame within FrameTimeout): a late frame is not delivered.
			a.free = append(a.free, buf)
			a.mu.Unlock()
			return
		}
		a.stats.Read++
		if a.slot != nil {
			a.free = append(a.free, a.slot.buf)
			a.stats.Superseded++
		}
		a.slot = &shot{buf: buf, t: t, gen: gen, light: light}
		a.mu.Unlock()
		a.notify()
	}
}

// cameraFailed records a stopped camera and makes sure the light is off: the reader calls it
// when a read fails and NextFrame before it reports the failure, so the light is off by then.
func (a *Arena) cameraFailed(err error) {
	a.mu.Lock()
	if a.camErr == nil {
		a.camErr = err
	}
	a.mu.Unlock()
	a.ledMu.Lock()
	done := a.offAfterFailure
	a.ledMu.Unlock()
	if done {
		return
	}
	a.log.Error("rig camera stopped; light off", "err", err)
	if lerr := a.forceOff(); lerr != nil {
		a.log.Error("rig light off after camera failure", "err", lerr)
		return
	}
	a.ledMu.Lock()
	a.offAfterFailure = true
	a.ledMu.Unlock()
}

// NextFrame returns the next frame (see arenas.Arena). It returns an error wrapping ErrCamera
// when the camera stopped (end of a file, a lost device, no frame within FrameTimeout).
func (a *Arena) NextFrame(ctx context.Context) (arenas.Frame, error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return arenas.Frame{}, arenas.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		a.mu.Unlock()
		return arenas.Frame{}, err
	}
	if a.cur != nil {
		a.free = append(a.free, a.cur)
		a.cur = nil
	}
	if p := time.Duration(a.cfg.Camera.Period); p > 0 && a.returned {
		if d := a.next.Sub(a.clock.Now()); d > 0 {
			a.mu.Unlock()
			select {
			case <-ctx.Done():
				return arenas.Frame{}, ctx.Err()
			case <-a.stop:
				return arenas.Frame{}, arenas.ErrClosed
			case <-a.clock.After(d):
			}
			a.mu.Lock()
		}
	}
	var timeout <-chan time.Time
	if ft := time.Duration(a.cfg.Camera.FrameTimeout); ft > 0 {
		timeout = a.clock.After(ft)
	}
	for {
		if a.closed {
			a.mu.Unlock()
			return arenas.Frame{}, arenas.ErrClosed
		}
		if s := a.slot; s != nil {
			a.slot = nil
			if s.gen == a.gen {
				return a.deliverLocked(s), nil
			}
			a.free = append(a.free, s.buf) // exposed before the latest light command
			a.stats.LightChanged++
		}
		if a.camErr != nil {
			err := a.camErr
			a.mu.Unlock()
			a.cameraFailed(err)
			return arenas.Frame{}, err
		}
		if a.stream && !a.pending {
			a.pending = true
			a.req <- struct{}{} // never blocks: one request at a time
		}
		a.mu.Unlock()
		select {
		case <-a.wake:
		case <-ctx.Done():
			return arenas.Frame{}, ctx.Err()
		case <-a.stop:
			return arenas.Frame{}, arenas.ErrClosed
		case <-timeout:
			err := fmt.Errorf("%w: no frame from %q within %v", ErrCamera, a.cfg.Camera.Source, a.cfg.Camera.FrameTimeout)
			a.cameraFailed(err)
			return arenas.Frame{}, err
		}
		a.mu.Lock()
	}
}

// deliverLocked hands s out as the next frame and unlocks a.mu.
func (a *Arena) deliverLocked(s *shot) arenas.Frame {
	a.cur = s.buf
	t := s.t
	if a.seq > 0 && !t.After(a.lastTime) {
		t = a.lastTime.Add(time.Nanosecond) // a clock that did not advance between frames
	}
	f := arenas.Frame{
		Seq: a.seq, Time: t, Width: a.cal.Width, Height: a.cal.Height, Pix: s.buf, Light: s.light,
	}
	a.seq++
	a.stats.Delivered++
	a.lastTime = t
	// Pace on a grid of periods; a consumer late by a period or more restarts the grid.
	now := a.clock.Now()
	p := time.Duration(a.cfg.Camera.Period)
	if a.returned && a.next.Add(p).After(now) {
		a.next = a.next.Add(p)
	} else {
		a.next = now.Add(p)
	}
	a.returned = true
	a.mu.Unlock()
	return f
}

// SetLight switches the light. An intensity outside [0, 1] is rejected and changes nothing. A
// driver failure returns an error wrapping ErrLight; the rig then tries to switch the light off
// and records it as off. After the camera stopped, switching on is refused (ErrCamera).
func (a *Arena) SetLight(ctx context.Context, l arenas.Light) error {
	a.mu.Lock()
	closed, camErr := a.closed, a.camErr
	a.mu.Unlock()
	if closed {
		return arenas.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkLight(l); err != nil {
		return fmt.Errorf("rig: %w", err)
	}
	if l.On && camErr != nil {
		return fmt.Errorf("rig: light not switched on: %w", camErr)
	}
	a.ledMu.Lock()
	a.mu.Lock()
	closed = a.closed
	a.mu.Unlock()
	if a.ledClosed || closed {
		a.ledMu.Unlock()
		return arenas.ErrClosed
	}
	err := a.led.Set(ctx, l)
	if err == nil {
		a.mu.Lock()
		if a.light != l {
			a.light = l
			a.gen++
		}
		a.mu.Unlock()
		a.ledMu.Unlock()
		return nil
	}
	a.ledMu.Unlock()
	a.log.Error("rig light command failed; switching off", "on", l.On, "err", err)
	if offErr := a.forceOff(); offErr != nil && l.On {
		return fmt.Errorf("rig: %w: %w (switching off failed too: %w)", ErrLight, err, offErr)
	}
	return fmt.Errorf("rig: %w: %w", ErrLight, err)
}

// forceOff switches the light off with a fresh bounded context and records it as off.
func (a *Arena) forceOff() error {
	a.ledMu.Lock()
	defer a.ledMu.Unlock()
	return a.forceOffLocked()
}

// forceOffLocked is forceOff with a.ledMu held.
func (a *Arena) forceOffLocked() error {
	var err error
	if !a.ledClosed {
		ctx, cancel := context.WithTimeout(context.Background(), lightOffTimeout)
		err = a.led.Set(ctx, arenas.Light{})
		cancel()
	}
	a.mu.Lock()
	if a.light != (arenas.Light{}) {
		a.light = arenas.Light{}
		a.gen++
	}
	a.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLight, err)
	}
	return nil
}

// Close switches the light off, stops the reader, releases the camera and the driver. When the
// light cannot be switched off Close returns an error wrapping ErrLight and keeps the driver
// open, so that a later Close tries again. Close is idempotent once it succeeded.
func (a *Arena) Close() error {
	a.mu.Lock()
	first := !a.closed
	if first {
		a.closed = true
		close(a.stop)
	}
	a.mu.Unlock()

	// Switching off and closing the driver happen under one hold of ledMu, so that a SetLight
	// racing with Close cannot switch the light on in between.
	a.ledMu.Lock()
	if a.ledClosed {
		a.ledMu.Unlock()
		return nil
	}
	if err := a.forceOffLocked(); err != nil {
		a.ledMu.Unlock()
		a.log.Error("rig close: light did not switch off", "err", err)
		return fmt.Errorf("rig: close: %w", err)
	}
	a.ledClosed = true
	lerr := a.led.Close()
	a.ledMu.Unlock()

	if first {
		// A real-time bound (not the rig's clock, which may be simulated): how long a stuck
		// camera read may hold Close.
		timer := time.NewTimer(closeWait)
		defer timer.Stop()
		select {
		case <-a.done:
		case <-timer.C:
			a.log.Warn("rig close: camera read still in progress; the camera is released when it returns")
		}
	}
	if lerr != nil {
		return fmt.Errorf("rig: close: %w", lerr)
	}
	return nil
}
