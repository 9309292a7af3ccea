package rig

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/arenatest"
	"github.com/optoloop/optoloop/arenas/sim/render"
)

// fileRig is a rig whose camera plays video and whose light is the given driver.
func fileRig(video string, led LEDConfig) Config {
	cfg := DefaultConfig()
	cfg.Calibration = testCal()
	cfg.Camera = CameraConfig{Source: video, API: "any", Mode: ModeAuto, FrameTimeout: Duration(30 * time.Second)}
	cfg.LED = led
	return cfg
}

func gpioLED(path string) LEDConfig {
	c := DefaultLEDConfig()
	c.Driver = DriverGPIO
	c.GPIO = GPIOConfig{Path: path, Verify: true}
	return c
}

func serialLED(device, reply string) LEDConfig {
	c := DefaultLEDConfig()
	c.Serial.Device = device
	c.Serial.Reply = reply
	c.Serial.Intensity = "P{level}\n"
	c.Serial.Timeout = Duration(2 * time.Second)
	return c
}

func mustOpen(t *testing.T, cfg Config) *Arena {
	t.Helper()
	a, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAcceptanceGPIO: the rig with a rendered video as its camera and a file-backed GPIO
// value file as its light passes the arena acceptance test.
func TestAcceptanceGPIO(t *testing.T) {
	video := filepath.Join(t.TempDir(), "plate.avi")
	writeVideo(t, video, testCal(), 40, 1, false)
	arenatest.Run(t, func(t *testing.T) arenatest.Subject {
		path := gpioFile(t)
		a := mustOpen(t, fileRig(video, gpioLED(path)))
		return arenatest.Subject{Arena: a, LightState: func() arenas.Light { return gpioState(t, path) }}
	})
}

// TestAcceptanceSerial: the same with a serial light controller on a pseudo-terminal that
// acknowledges every command.
func TestAcceptanceSerial(t *testing.T) {
	video := filepath.Join(t.TempDir(), "plate.avi")
	writeVideo(t, video, testCal(), 40, 1, false)
	arenatest.Run(t, func(t *testing.T) arenatest.Subject {
		board := newFakeLEDBoard(t, "OK")
		a := mustOpen(t, fileRig(video, serialLED(board.Device, "OK")))
		return arenatest.Subject{Arena: a, LightState: board.state}
	})
}

func meanAbsDiff(a, b []byte) float64 {
	var s float64
	for i := range a {
		s += math.Abs(float64(a[i]) - float64(b[i]))
	}
	return s / float64(len(a))
}

// TestFramesAreTheVideo checks the conversion: grey and colour videos, at the calibrated size
// and at twice it, come out as grey frames of the calibrated size showing the rendered scene.
func TestFramesAreTheVideo(t *testing.T) {
	cal := testCal()
	tests := []struct {
		name  string
		scale int
		color bool
	}{
		{"grey", 1, false},
		{"colour", 1, true},
		{"colour at twice the size", 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			video := filepath.Join(t.TempDir(), "plate.avi")
			const n = 6
			writeVideo(t, video, cal, n, tt.scale, tt.color)
			// The same frames, straight from the renderer.
			rcfg := render.DefaultConfig(cal)
			rcfg.Seed = 5
			cam, err := render.New(rcfg)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, cal.Width*cal.Height)
			a := mustOpen(t, fileRig(video, gpioLED(gpioFile(t))))
			defer a.Close()
			for i := 0; i < n; i++ {
				cam.Render(want, crawlingWorm(cal, i), i%4 >= 2)
				f, err := a.NextFrame(context.Background())
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if f.Seq != uint64(i) || f.Width != cal.Width || f.Height != cal.Height {
					t.Fatalf("frame %d: seq %d, %dx%d", i, f.Seq, f.Width, f.Height)
				}
				// MJPG is lossy and resizing blurs: the frame matches the rendering closely.
				if d := meanAbsDiff(f.Pix, want); d > 3 {
					t.Fatalf("frame %d differs from the rendering by %.2f grey levels on average", i, d)
				}
				// The worm is where it was drawn: the darkest pixel near the plate centre lies
				// on its body.
				w := crawlingWorm(cal, i)
				mid := w.Midline[len(w.Midline)/2]
				best, bx, by := 256, 0, 0
				for y := int(cal.CenterY) - 15; y <= int(cal.CenterY)+15; y++ {
					for x := int(cal.CenterX) - 30; x <= int(cal.CenterX)+30; x++ {
						if v := int(f.Pix[y*cal.Width+x]); v < best {
							best, bx, by = v, x, y
						}
					}
				}
				if d := math.Hypot(float64(bx)-mid[0], float64(by)-mid[1]); d > 12 {
					t.Fatalf("frame %d: darkest pixel (%d, %d) is %.1f px from the worm's middle", i, bx, by, d)
				}
			}
		})
	}
}

// TestCameraStops: at the end of the video the rig reports ErrCamera, switches the light off
// and refuses to switch it on again.
func TestCameraStops(t *testing.T) {
	video := filepath.Join(t.TempDir(), "short.avi")
	writeVideo(t, video, testCal(), 3, 1, false)
	path := gpioFile(t)
	a := mustOpen(t, fileRig(video, gpioLED(path)))
	ctx := context.Background()
	if err := a.SetLight(ctx, arenas.Light{On: true}); err != nil {
		t.Fatal(err)
	}
	var err error
	frames := 0
	for ; frames < 10; frames++ {
		if _, err = a.NextFrame(ctx); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrCamera) || frames != 3 {
		t.Fatalf("after %d frames: %v, want ErrCamera after 3", frames, err)
	}
	if gpioState(t, path).On || a.Light().On {
		t.Fatal("light still on after the camera stopped")
	}
	if err := a.SetLight(ctx, arenas.Light{On: true}); !errors.Is(err, ErrCamera) {
		t.Fatalf("SetLight(on) after the camera stopped: %v, want ErrCamera", err)
	}
	if gpioState(t, path).On {
		t.Fatal("light switched on with a stopped camera")
	}
	if _, err := a.NextFrame(ctx); !errors.Is(err, ErrCamera) {
		t.Fatalf("NextFrame again: %v, want ErrCamera", err)
	}
	// Stream mode reads only on demand: nothing was dropped, not even around the light command.
	if st := a.Stats(); st != (Stats{Read: 3, Delivered: 3}) {
		t.Fatalf("stats %+v, want 3 read and delivered", st)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenFailures: a camera or light that cannot be opened is a clear error, and the light is
// off afterwards whenever its driver works.
func TestOpenFailures(t *testing.T) {
	dir := t.TempDir()
	video := filepath.Join(dir, "plate.avi")
	writeVideo(t, video, testCal(), 2, 1, false)

	path := gpioFile(t)
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), fileRig(filepath.Join(dir, "missing.avi"), gpioLED(path)))
	if !errors.Is(err, ErrCamera) || !strings.Contains(err.Error(), "missing.avi") {
		t.Fatalf("missing video: %v, want ErrCamera naming the file", err)
	}
	if gpioState(t, path).On {
		t.Fatal("light left on when the camera failed to open")
	}

	tests := []struct {
		name string
		led  LEDConfig
		want string
	}{
		{"gpio value file missing", gpioLED(filepath.Join(dir, "nope", "value")), "no such file"},
		{"gpio value file is a directory", gpioLED(dir), "is a directory"},
		{"gpio on a full device", gpioLED("/dev/full"), "no space left"},
		{"serial device missing", serialLED(filepath.Join(dir, "ttyNONE"), ""), "no such file"},
		{"serial on a full device", serialLED("/dev/full", ""), "no space left"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), fileRig(video, tt.led))
			if !errors.Is(err, ErrLight) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrLight mentioning %q", err, tt.want)
			}
		})
	}
}

// TestLightFailsLater: a driver that starts failing after open gives ErrLight; the rig records
// the light as off, frames show it off, and Close keeps trying to switch it off.
func TestLightFailsLater(t *testing.T) {
	video := filepath.Join(t.TempDir(), "plate.avi")
	writeVideo(t, video, testCal(), 10, 1, false)
	ctx := context.Background()

	t.Run("serial controller answers an error", func(t *testing.T) {
		board := newFakeLEDBoard(t, "OK")
		a := mustOpen(t, fileRig(video, serialLED(board.Device, "OK")))
		defer a.Close()
		board.setReply("ERR overheated")
		err := a.SetLight(ctx, arenas.Light{On: true})
		if !errors.Is(err, ErrLight) || !strings.Contains(err.Error(), "ERR overheated") {
			t.Fatalf("got %v, want ErrLight with the controller's answer", err)
		}
		if a.Light().On {
			t.Fatal("rig reports the light on after a failed command")
		}
		log := board.log()
		if last := log[len(log)-1]; last != "0" {
			t.Fatalf("the rig did not try to switch off after the failure: commands %q", log)
		}
		f, err := a.NextFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Light.On {
			t.Fatal("frame records the light on after a failed command")
		}
		board.setReply("OK")
	})

	t.Run("gpio value file becomes unwritable", func(t *testing.T) {
		path := gpioFile(t)
		a := mustOpen(t, fileRig(video, gpioLED(path)))
		if err := a.SetLight(ctx, arenas.Light{On: true}); err != nil {
			t.Fatal(err)
		}
		// The value file disappears behind a directory (a pin unexported under us).
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := a.SetLight(ctx, arenas.Light{On: true, Intensity: 0.5}); !errors.Is(err, ErrLight) {
			t.Fatalf("got %v, want ErrLight", err)
		}
		if a.Light().On {
			t.Fatal("rig reports the light on after a failed command")
		}
		if err := a.Close(); !errors.Is(err, ErrLight) {
			t.Fatalf("Close with a dead light: %v, want ErrLight", err)
		}
		// The pin comes back: a second Close switches the light off and succeeds.
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if gpioState(t, path).On {
			t.Fatal("light on after a successful Close")
		}
		if err := a.Close(); err != nil {
			t.Fatalf("third Close: %v", err)
		}
	})

	t.Run("bad intensity changes nothing", func(t *testing.T) {
		path := gpioFile(t)
		a := mustOpen(t, fileRig(video, gpioLED(path)))
		defer a.Close()
		for _, in := range []float64{-0.1, 1.5, math.NaN()} {
			err := a.SetLight(ctx, arenas.Light{On: true, Intensity: in})
			if err == nil || errors.Is(err, ErrLight) || !strings.Contains(err.Error(), "intensity") {
				t.Fatalf("intensity %v: %v, want an input error", in, err)
			}
		}
		if gpioState(t, path).On || a.Light().On {
			t.Fatal("a rejected command switched the light")
		}
	})
}

// TestDrivers exercises each driver's commands and failures directly.
func TestDrivers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	t.Run("serial commands and intensity", func(t *testing.T) {
		board := newFakeLEDBoard(t, "OK")
		s, err := OpenSerial(serialLED(board.Device, "OK").Serial)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for _, l := range []arenas.Light{{On: true}, {}, {On: true, Intensity: 0.5}, {On: true, Intensity: 1}} {
			if err := s.Set(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{"1", "0", "P128", "P255"}
		if got := board.log(); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("controller received %q, want %q", got, want)
		}
	})

	t.Run("serial controller silent", func(t *testing.T) {
		board := newFakeLEDBoard(t, "")
		cfg := serialLED(board.Device, "OK").Serial
		cfg.Timeout = Duration(100 * time.Millisecond)
		s, err := OpenSerial(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Set(ctx, arenas.Light{On: true}); err == nil || !strings.Contains(err.Error(), "no reply") {
			t.Fatalf("got %v, want a no-reply error", err)
		}
	})

	t.Run("gpio active low", func(t *testing.T) {
		path := gpioFile(t)
		g, err := OpenGPIO(GPIOConfig{Path: path, ActiveLow: true, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Set(ctx, arenas.Light{On: true}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != "0" {
			t.Fatalf("active-low on wrote %q", b)
		}
	})

	t.Run("command", func(t *testing.T) {
		out := filepath.Join(dir, "led")
		c, err := NewCommand(CommandConfig{
			On:        []string{"sh", "-c", "echo on > " + out},
			Off:       []string{"sh", "-c", "echo off > " + out},
			Intensity: []string{"sh", "-c", "echo level {level} {fraction} > " + out},
			MaxLevel:  255,
			Timeout:   Duration(5 * time.Second),
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			l    arenas.Light
			want string
		}{
			{arenas.Light{On: true}, "on"},
			{arenas.Light{On: true, Intensity: 0.25}, "level 64 0.250"},
			{arenas.Light{}, "off"},
		} {
			if err := c.Set(ctx, tc.l); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(out); strings.TrimSpace(string(b)) != tc.want {
				t.Fatalf("%+v: command wrote %q, want %q", tc.l, b, tc.want)
			}
		}
	})

	t.Run("command fails", func(t *testing.T) {
		c, err := NewCommand(CommandConfig{
			On: []string{"sh", "-c", "echo relay jammed >&2; exit 3"}, Off: []string{"true"},
			MaxLevel: 1, Timeout: Duration(5 * time.Second),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, arenas.Light{On: true}); err == nil || !strings.Contains(err.Error(), "relay jammed") || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("got %v, want the exit status and the program's message", err)
		}
	})

	t.Run("command hangs", func(t *testing.T) {
		c, err := NewCommand(CommandConfig{
			On: []string{"sleep", "30"}, Off: []string{"true"}, MaxLevel: 1, Timeout: Duration(100 * time.Millisecond),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, arenas.Light{On: true}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want a deadline error", err)
		}
	})

	t.Run("command missing", func(t *testing.T) {
		_, err := NewCommand(CommandConfig{On: []string{"no-such-led-tool"}, Off: []string{"true"}, MaxLevel: 1, Timeout: Duration(time.Second)})
		if err == nil || !strings.Contains(err.Error(), "no-such-led-tool") {
			t.Fatalf("got %v, want an error naming the program", err)
		}
	})
}

// TestPeriodPacing: with a period, NextFrame returns no sooner than one period (on the rig's
// clock) after the previous frame.
func TestPeriodPacing(t *testing.T) {
	video := filepath.Join(t.TempDir(), "plate.avi")
	writeVideo(t, video, testCal(), 5, 1, false)
	clk := newFakeClock()
	cfg := fileRig(video, gpioLED(gpioFile(t)))
	cfg.Camera.Period = Duration(time.Second)
	cfg.Camera.FrameTimeout = 0
	cfg.Clock = clk
	a := mustOpen(t, cfg)
	defer a.Close()
	ctx := context.Background()
	f0, err := a.NextFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		f   arenas.Frame
		err error
	}
	got := make(chan result, 1)
	go func() {
		f, err := a.NextFrame(ctx)
		got <- result{f, err}
	}()
	<-clk.added // NextFrame waits for the period
	clk.Advance(999 * time.Millisecond)
	select {
	case r := <-got:
		t.Fatalf("frame delivered before the period ended: %+v", r)
	default:
	}
	clk.Advance(time.Millisecond)
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.f.Seq != 1 || r.f.Time.Sub(f0.Time) < time.Second {
		t.Fatalf("second frame seq %d at %v after the first, want seq 1 at least 1 s later", r.f.Seq, r.f.Time.Sub(f0.Time))
	}
}

// TestLatestMode reads a file as if it were a live camera (the reader races through it): the
// newest frame read before the end is still delivered, frames come in order and never twice,
// and the end of the stream is ErrCamera.
func TestLatestMode(t *testing.T) {
	video := filepath.Join(t.TempDir(), "plate.avi")
	writeVideo(t, video, testCal(), 20, 1, false)
	cfg := fileRig(video, gpioLED(gpioFile(t)))
	cfg.Camera.Mode = ModeLatest
	a := mustOpen(t, cfg)
	defer a.Close()
	var prev arenas.Frame
	n := 0
	for ; n < 30; n++ {
		f, err := a.NextFrame(context.Background())
		if errors.Is(err, ErrCamera) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 && (f.Seq != prev.Seq+1 || !f.Time.After(prev.Time)) {
			t.Fatalf("frame %d: seq %d at %v after seq %d at %v", n, f.Seq, f.Time, prev.Seq, prev.Time)
		}
		prev = f
	}
	if n == 0 || n > 20 {
		t.Fatalf("%d frames from a 20-frame stream", n)
	}
	st := a.Stats()
	if st.Delivered != uint64(n) || st.Read > 20 || st.Read != st.Delivered+st.Superseded+st.LightChanged {
		t.Fatalf("stats %+v after %d frames: every frame read is delivered, superseded or dropped", st, n)
	}
}

func TestConfigFile(t *testing.T) {
	const yamlDoc = `
calibration:
  px_per_cm: 270
  center_x_px: 540
  center_y_px: 480
  plate_radius_px: 485
  width_px: 1080
  height_px: 960
  frame_period: 500ms
camera:
  source: "/dev/video2"
  api: v4l2
  mode: latest
  frame_timeout: 3
  fps: 15
light:
  driver: serial
  serial:
    device: /dev/ttyUSB0
    baud: 9600
    on: "L1\n"
    off: "L0\n"
    reply: OK
polarity: bright
`
	cfg, err := ParseConfig([]byte(yamlDoc), false)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case cfg.Calibration.PxPerCM != 270 || cfg.Calibration.Width != 1080 || cfg.Calibration.FramePeriod != 500*time.Millisecond:
		t.Fatalf("calibration %+v", cfg.Calibration)
	case cfg.Camera.Source != "/dev/video2" || cfg.Camera.Mode != ModeLatest || cfg.Camera.FPS != 15:
		t.Fatalf("camera %+v", cfg.Camera)
	case cfg.Camera.Period != Duration(500*time.Millisecond):
		t.Fatalf("period %v, want the frame period when unset", cfg.Camera.Period)
	case cfg.Camera.FrameTimeout != Duration(3*time.Second):
		t.Fatalf("frame timeout %v, want 3 s", cfg.Camera.FrameTimeout)
	case cfg.LED.Serial.On != "L1\n" || cfg.LED.Serial.Baud != 9600 || cfg.LED.Serial.Reply != "OK":
		t.Fatalf("serial %+v", cfg.LED.Serial)
	case cfg.LED.Serial.Timeout != Duration(time.Second) || cfg.LED.Serial.MaxLevel != 255:
		t.Fatalf("serial defaults lost: %+v", cfg.LED.Serial)
	case cfg.Polarity != PolarityBright:
		t.Fatalf("polarity %q, want bright", cfg.Polarity)
	}

	const jsonDoc = `{"camera": {"source": "rec.avi", "period": "0s"},
	  "light": {"driver": "gpio", "gpio": {"path": "/sys/class/gpio/gpio4/value", "active_low": true}}}`
	p := filepath.Join(t.TempDir(), "rig.json")
	if err := os.WriteFile(p, []byte(jsonDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err = LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Camera.Period != 0 || cfg.LED.Driver != DriverGPIO || !cfg.LED.GPIO.ActiveLow || cfg.Calibration != arenas.DefaultCalibration() || cfg.Polarity != PolarityAuto {
		t.Fatalf("json config %+v", cfg)
	}

	bad := []struct {
		name, doc string
		json      bool
		want      string
	}{
		{"unknown field", "camera:\n  sorce: x\n", false, "sorce"},
		{"unknown json field", `{"light": {"drvier": "gpio"}}`, true, "drvier"},
		{"bad duration", "camera:\n  period: soon\n", false, "soon"},
		{"unknown driver", "light:\n  driver: laser\n", false, "laser"},
		{"unknown mode", "camera:\n  mode: fast\n", false, "fast"},
		{"bad calibration", "calibration:\n  px_per_cm: -1\n", false, "px_per_cm"},
		{"bad baud", "light:\n  serial:\n    baud: 12345\n", false, "baud"},
		{"same commands", "light:\n  serial:\n    on: x\n    off: x\n", false, "both"},
		{"command without program", "light:\n  driver: command\n  command:\n    on: []\n", false, "on has no program"},
		{"unknown polarity", "polarity: sideways\n", false, "sideways"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.doc), tt.json)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "none.yaml")); err == nil {
		t.Fatal("missing config file accepted")
	}
}

// TestCameraStalls plays a video through a FIFO whose writer stops half-way without closing
// it, as a camera that hangs: NextFrame gives up after FrameTimeout with ErrCamera and the
// light goes off.
func TestCameraStalls(t *testing.T) {
	dir := t.TempDir()
	video := filepath.Join(dir, "plate.avi")
	writeVideo(t, video, testCal(), 40, 1, false)
	data, err := os.ReadFile(video)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "camera")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	release := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until the camera opens it
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if _, err := f.Write(data[:len(data)/2]); err != nil {
			t.Error(err)
			return
		}
		<-release
	}()
	var once sync.Once
	unstick := func() { once.Do(func() { close(release) }) } // the writer closes the FIFO
	defer unstick()

	path := gpioFile(t)
	cfg := fileRig(fifo, gpioLED(path))
	cfg.Camera.Mode = ModeStream
	cfg.Camera.FrameTimeout = Duration(time.Second)
	a := mustOpen(t, cfg)
	defer a.Close()
	ctx := context.Background()
	if err := a.SetLight(ctx, arenas.Light{On: true}); err != nil {
		t.Fatal(err)
	}
	frames := 0
	for ; frames < 40; frames++ {
		if _, err = a.NextFrame(ctx); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrCamera) || !strings.Contains(err.Error(), "within 1s") {
		t.Fatalf("after %d frames: %v, want ErrCamera for no frame within 1s", frames, err)
	}
	if frames == 0 || frames >= 40 {
		t.Fatalf("%d frames before the stall, want some but not all", frames)
	}
	if gpioState(t, path).On || a.Light().On {
		t.Fatal("light on after the camera stalled")
	}
	if err := a.SetLight(ctx, arenas.Light{On: true}); !errors.Is(err, ErrCamera) {
		t.Fatalf("SetLight(on) after the stall: %v, want ErrCamera", err)
	}
	unstick()
	<-writerDone // the stuck read ends with the FIFO
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCloseUnblocksNextFrame: Close from another goroutine ends a NextFrame that is waiting
// (here for the period) with ErrClosed, and the light is off.
func TestCloseUnblocksNextFrame(t *testing.T) {
	video := filepath.Join(t.TempDir(), "plate.avi")
	writeVideo(t, video, testCal(), 5, 1, false)
	clk := newFakeClock()
	path := gpioFile(t)
	cfg := fileRig(video, gpioLED(path))
	cfg.Camera.Period = Duration(time.Hour)
	cfg.Camera.FrameTimeout = 0
	cfg.Clock = clk
	a := mustOpen(t, cfg)
	ctx := context.Background()
	if err := a.SetLight(ctx, arenas.Light{On: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.NextFrame(ctx); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := a.NextFrame(ctx)
		got <- err
	}()
	<-clk.added // waiting for the period
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, arenas.ErrClosed) {
		t.Fatalf("pending NextFrame after Close: %v, want ErrClosed", err)
	}
	if gpioState(t, path).On {
		t.Fatal("light on after Close")
	}
}

// TestCloseRacesSetLight: Close may be called while another goroutine switches the light on;
// once Close returned, the light is off and stays off.
func TestCloseRacesSetLight(t *testing.T) {
	video := filepath.Join(t.TempDir(), "plate.avi")
	writeVideo(t, video, testCal(), 3, 1, false)
	for round := 0; round < 5; round++ {
		path := gpioFile(t)
		a := mustOpen(t, fileRig(video, gpioLED(path)))
		started := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			close(started)
			for {
				if err := a.SetLight(context.Background(), arenas.Light{On: true}); err != nil {
					done <- err
					return
				}
			}
		}()
		<-started
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, arenas.ErrClosed) {
			t.Fatalf("SetLight during Close: %v, want ErrClosed", err)
		}
		if gpioState(t, path).On {
			t.Fatalf("round %d: light on after Close", round)
		}
	}
}
