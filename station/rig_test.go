package station_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/rig"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/station"
)

// plateVideo writes n frames of a simulated worm of line 446 on cal (light off) to an MJPG
// video: the recorded camera of a rig.
func plateVideo(t *testing.T, cal arenas.Calibration, n int) string {
	t.Helper()
	l, err := catalogue(t).Line("446")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig(l)
	cfg.Calibration, cfg.Seed = cal, 4
	a, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	path := filepath.Join(t.TempDir(), "plate.avi")
	vw, err := gocv.VideoWriterFile(path, "MJPG", 3, cal.Width, cal.Height, false)
	if err != nil || !vw.IsOpened() {
		t.Fatalf("video writer: %v", err)
	}
	for i := 0; i < n; i++ {
		f, err := a.NextFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m, err := gocv.NewMatFromBytes(f.Height, f.Width, gocv.MatTypeCV8UC1, f.Pix)
		if err != nil {
			t.Fatal(err)
		}
		err = vw.Write(m)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := vw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// lightFile reads a GPIO value file as the light's state.
func lightFile(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)) == "1"
}

// rigStation opens a rig station whose camera plays a recorded plate and whose light is a
// file-backed GPIO value file (returned).
func rigStation(t *testing.T, frames int) (*station.Station, string) {
	t.Helper()
	cal := smallCal()
	value := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(value, []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	rc := rig.DefaultConfig()
	rc.Calibration = cal
	rc.Camera = rig.CameraConfig{Source: plateVideo(t, cal, frames), API: "any", Mode: rig.ModeStream, FrameTimeout: rig.Duration(30 * time.Second)}
	rc.LED.Driver = rig.DriverGPIO
	rc.LED.GPIO = rig.GPIOConfig{Path: value, Verify: true}
	a, err := rig.Open(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := station.DefaultConfig()
	cfg.ArenaID, cfg.Line, cfg.Arena = "rig-1", "446", a
	cfg.Worker.ChunkFrames = 4
	s, err := station.New(cfg)
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if lightFile(t, value) {
			t.Error("light on after Close")
		}
	})
	return s, value
}

// TestRig runs episodes on a real rig (a recorded camera, a GPIO light): the arena stays open
// across episodes, refused episodes do not touch it, and the light is off after an episode
// that ends normally, one whose context is cancelled and one whose sink fails.
func TestRig(t *testing.T) {
	s, value := rigStation(t, 130)
	if s.Simulated() || s.Line() != "446" || s.Calibration() != smallCal() {
		t.Fatalf("rig station: simulated %v, line %q, calibration %+v", s.Simulated(), s.Line(), s.Calibration())
	}
	// Always on while tracked: the light is on during the episode whenever it can be.
	always := func(id string, seconds float64) station.Episode {
		sp := episode.Spec{Kind: episode.KindRandom, Line: "446", Seed: 1, Seconds: seconds, LightProbability: 1}
		return station.Episode{ID: id, Spec: sp}
	}
	var lastSeq uint64
	seqs := func(e *station.Episode) {
		e.OnStep = func(st station.Step) error {
			if st.True != nil {
				t.Fatal("a rig reported a true pose")
			}
			if lastSeq != 0 && st.Frame.Seq <= lastSeq {
				t.Fatalf("frame %d after frame %d: the rig was reopened", st.Frame.Seq, lastSeq)
			}
			lastSeq = st.Frame.Seq
			return nil
		}
	}
	for i, id := range []string{"first", "second"} {
		e := always(id, 3)
		seqs(&e)
		res, err := s.Run(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, e, res, 9)
		if res.Sim != nil || res.Outcome.LightFraction == 0 {
			t.Fatalf("episode %d: simulator statistics %v, light fraction %v", i, res.Sim, res.Outcome.LightFraction)
		}
		if lightFile(t, value) {
			t.Fatalf("light on after episode %q", id)
		}
	}

	// Refused episodes do not touch the rig: its next episode continues the video.
	before := lastSeq
	for _, e := range []station.Episode{
		{ID: "x", Spec: episode.Spec{Kind: episode.KindNone, Line: "301", Seconds: 4}},
		{ID: "x", Spec: episode.Spec{Kind: episode.KindNone, Line: "446", Seconds: 4, Target: &episode.Place{XCM: 1}}},
	} {
		if _, err := s.Run(context.Background(), e); err == nil {
			t.Fatalf("episode %+v accepted", e.Spec)
		}
	}

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e := always("cancelled", 20)
		lit := false
		e.OnStep = func(st station.Step) error {
			if st.Index == 0 && st.Frame.Seq != before+16 {
				t.Fatalf("first frame %d, want %d: a refused episode read frames", st.Frame.Seq, before+16)
			}
			if lightFile(t, value) {
				lit = true
				cancel()
			}
			return nil
		}
		if _, err := s.Run(ctx, e); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if !lit || lightFile(t, value) {
			t.Fatalf("light on during the episode %v, after it %v", lit, lightFile(t, value))
		}
	})
	t.Run("sink fails", func(t *testing.T) {
		broken := errors.New("replay unavailable")
		e := always("sink", 20)
		lit := false
		e.Sink = &sink{fail: func() error {
			if lightFile(t, value) {
				lit = true
				return broken
			}
			return nil
		}}
		if _, err := s.Run(context.Background(), e); !errors.Is(err, broken) {
			t.Fatalf("error %v, want the sink's", err)
		}
		if !lit || lightFile(t, value) {
			t.Fatalf("light on during the episode %v, after it %v", lit, lightFile(t, value))
		}
	})
}
