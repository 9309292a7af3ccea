// Package arenatest is the acceptance test that every arenas.Arena implementation must pass.
//
// An implementation's own test calls Run with a function that opens a fresh arena:
//
//	func TestAcceptance(t *testing.T) {
//		arenatest.Run(t, func(t *testing.T) arenatest.Subject { ... })
//	}
package arenatest

import (
	"context"
	"errors"
	"testing"

	"github.com/optoloop/optoloop/arenas"
)

// Subject is one freshly opened arena under test.
type Subject struct {
	Arena arenas.Arena
	// LightState reports the physical state of the light, read independently of the Arena
	// interface (the simulator's LED, a rig driver's read-back). It must stay callable after Close.
	LightState func() arenas.Light
}

// Run runs the acceptance test. open is called once per subtest and must return a new arena;
// Run closes it.
func Run(t *testing.T, open func(t *testing.T) Subject) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s Subject)
	}{
		{"calibration is valid", testCalibration},
		{"frames arrive in order with the calibrated size", testFramesInOrder},
		{"light command shows in later frames", testLightShowsInFrames},
		{"light is off after close", testLightOffAfterClose},
		{"cancelled context is honoured", testContextCancelled},
		{"errors after close", testErrorsAfterClose},
		{"close is idempotent", testCloseIdempotent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			if s.Arena == nil || s.LightState == nil {
				t.Fatal("open returned a subject without an arena or a light probe")
			}
			defer s.Arena.Close()
			tt.fn(t, s)
		})
	}
}

func testCalibration(t *testing.T, s Subject) {
	if err := s.Arena.Calibration().Validate(); err != nil {
		t.Fatal(err)
	}
}

func testFramesInOrder(t *testing.T, s Subject) {
	ctx := context.Background()
	cal := s.Arena.Calibration()
	var prev arenas.Frame
	for i := 0; i < 5; i++ {
		f, err := s.Arena.NextFrame(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Width != cal.Width || f.Height != cal.Height {
			t.Fatalf("frame %d is %dx%d, calibration says %dx%d", i, f.Width, f.Height, cal.Width, cal.Height)
		}
		if len(f.Pix) != f.Width*f.Height {
			t.Fatalf("frame %d has %d bytes for %dx%d pixels", i, len(f.Pix), f.Width, f.Height)
		}
		if i > 0 {
			if f.Seq <= prev.Seq {
				t.Fatalf("frame %d: sequence %d after %d", i, f.Seq, prev.Seq)
			}
			if !f.Time.After(prev.Time) {
				t.Fatalf("frame %d: time %v not after %v", i, f.Time, prev.Time)
			}
		}
		prev = f
	}
}

func testLightShowsInFrames(t *testing.T, s Subject) {
	ctx := context.Background()
	if err := s.Arena.SetLight(ctx, arenas.Light{On: true}); err != nil {
		t.Fatal(err)
	}
	f, err := s.Arena.NextFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Light.On {
		t.Fatal("frame after SetLight(on) does not record the light on")
	}
	if !s.LightState().On {
		t.Fatal("light probe says off after SetLight(on)")
	}
	if err := s.Arena.SetLight(ctx, arenas.Light{}); err != nil {
		t.Fatal(err)
	}
	if f, err = s.Arena.NextFrame(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Light.On || s.LightState().On {
		t.Fatal("light still on after SetLight(off)")
	}
}

func testLightOffAfterClose(t *testing.T, s Subject) {
	ctx := context.Background()
	if err := s.Arena.SetLight(ctx, arenas.Light{On: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Arena.NextFrame(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Arena.Close(); err != nil {
		t.Fatal(err)
	}
	if s.LightState().On {
		t.Fatal("light is on after Close")
	}
}

func testContextCancelled(t *testing.T, s Subject) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Arena.NextFrame(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("NextFrame with a cancelled context: got %v, want context.Canceled", err)
	}
	if err := s.Arena.SetLight(ctx, arenas.Light{On: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("SetLight with a cancelled context: got %v, want context.Canceled", err)
	}
	// The arena still works with a live context.
	if _, err := s.Arena.NextFrame(context.Background()); err != nil {
		t.Fatalf("NextFrame after a cancelled call: %v", err)
	}
}

func testErrorsAfterClose(t *testing.T, s Subject) {
	ctx := context.Background()
	if err := s.Arena.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Arena.NextFrame(ctx); !errors.Is(err, arenas.ErrClosed) {
		t.Fatalf("NextFrame after Close: got %v, want ErrClosed", err)
	}
	if err := s.Arena.SetLight(ctx, arenas.Light{On: true}); !errors.Is(err, arenas.ErrClosed) {
		t.Fatalf("SetLight after Close: got %v, want ErrClosed", err)
	}
	if s.LightState().On {
		t.Fatal("SetLight after Close switched the light on")
	}
}

func testCloseIdempotent(t *testing.T, s Subject) {
	if err := s.Arena.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Arena.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
