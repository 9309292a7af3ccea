package track

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
)

func simArena(t *testing.T, noRender bool, seed uint64) *sim.Arena {
	t.Helper()
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	line, err := cat.Line("301")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig(line)
	cfg.Calibration = smallRig()
	cfg.Seed = seed
	cfg.NoRender = noRender
	a, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestObserverPrepare builds the background with the light off although it was on, and the
// background holds no trace of the worm that crawled under it.
func TestObserverPrepare(t *testing.T) {
	ctx := context.Background()
	a := simArena(t, false, 21)
	if err := a.SetLight(ctx, arenas.Light{On: true}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(a.Calibration())
	cfg.BackgroundFrames = 12
	obs, err := NewObserver(a, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	// Where the worm lies on the first frame: it must not darken the background.
	f0, err := a.NextFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := a.Pose().Midline
	if err := obs.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if a.LightState().On {
		t.Fatal("light still on after Prepare")
	}
	if !obs.Tracker().HasBackground() {
		t.Fatal("no background after Prepare")
	}
	// The empty agar around the start position, from a frame where the worm has moved on:
	// compare the background there with the light-off camera's agar (the frame's pixels
	// away from the worm).
	bg := obs.Tracker().bg
	var worst float64
	var sum, n float64
	for _, p := range start[10:40] {
		x, y := int(math.Round(p[0])), int(math.Round(p[1]))
		i := y*bg.w + x
		// The agar there: the brightest of the 5x5 neighbourhood in the first frame is at
		// most the agar level plus noise; the worm darkens it by ~50 %.
		agar := 0.0
		for dy := -6; dy <= 6; dy++ {
			for dx := -6; dx <= 6; dx++ {
				agar = math.Max(agar, float64(f0.Pix[(y+dy)*f0.Width+x+dx]))
			}
		}
		d := agar - float64(bg.mean[i])
		worst = math.Max(worst, d)
		sum += d
		n++
	}
	if sum/n > 12 || worst > 30 {
		t.Errorf("background under the starting worm is darker than the agar by %.1f on average (worst %.1f): the worm was averaged in", sum/n, worst)
	}
	// And the worm is then found right away.
	_, p, err := obs.NextPose(ctx)
	if err != nil {
		t.Fatal(err)
	}
	truth := a.Pose()
	if !p.OK || math.Hypot(p.X-truth.X, p.Y-truth.Y) > 2 {
		t.Errorf("first pose after Prepare %+v, truth centre (%.1f, %.1f)", p, truth.X, truth.Y)
	}
}

// TestObserverNoRender returns the arena's own pose when it renders no frames.
func TestObserverNoRender(t *testing.T) {
	ctx := context.Background()
	a := simArena(t, true, 22)
	obs, err := NewObserver(a, DefaultConfig(a.Calibration()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	if err := obs.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		f, p, err := obs.NextPose(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Pix != nil {
			t.Fatal("frame with pixels from a no-render arena")
		}
		truth := a.Pose()
		if !p.OK || p.X != truth.X || p.Y != truth.Y || p.BodyAngle != truth.BodyAngle {
			t.Fatalf("pose %+v, want the arena's %+v", p, truth)
		}
	}
}

// blindArena delivers frames without pixels and knows no pose.
type blindArena struct{ cal arenas.Calibration }

func (b blindArena) Calibration() arenas.Calibration { return b.cal }
func (b blindArena) NextFrame(ctx context.Context) (arenas.Frame, error) {
	if err := ctx.Err(); err != nil {
		return arenas.Frame{}, err
	}
	return arenas.Frame{Width: b.cal.Width, Height: b.cal.Height}, nil
}
func (b blindArena) SetLight(context.Context, arenas.Light) error { return nil }
func (b blindArena) Close() error                                 { return nil }

func TestObserverErrors(t *testing.T) {
	ctx := context.Background()
	b := blindArena{cal: smallRig()}
	obs, err := NewObserver(b, DefaultConfig(b.cal), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	if err := obs.Prepare(ctx); !errors.Is(err, ErrNoPixels) {
		t.Errorf("Prepare: %v, want ErrNoPixels", err)
	}
	if _, _, err := obs.NextPose(ctx); !errors.Is(err, ErrNoPixels) {
		t.Errorf("NextPose: %v, want ErrNoPixels", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := obs.NextPose(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("NextPose with a cancelled context: %v", err)
	}
	other := DefaultConfig(arenas.DefaultCalibration())
	if _, err := NewObserver(b, other, nil); err == nil {
		t.Error("observer accepted a config for another calibration")
	}
	a := simArena(t, false, 23)
	a.Close()
	obs2, err := NewObserver(a, DefaultConfig(a.Calibration()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer obs2.Close()
	if err := obs2.Prepare(ctx); !errors.Is(err, arenas.ErrClosed) {
		t.Errorf("Prepare on a closed arena: %v, want ErrClosed", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cal := arenas.DefaultCalibration()
	if err := DefaultConfig(cal).Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"bad calibration", func(c *Config) { c.Calibration.PxPerCM = 0 }},
		{"tiny worm", func(c *Config) { c.BodyLength = 2 }},
		{"NaN body length", func(c *Config) { c.BodyLength = math.NaN() }},
		{"few midline points", func(c *Config) { c.MidlinePoints = 2 }},
		{"no contrast", func(c *Config) { c.MinContrast = 0 }},
		{"area ratios reversed", func(c *Config) { c.MinAreaRatio, c.MaxAreaRatio = 2, 1 }},
		{"length ratios reversed", func(c *Config) { c.MinLengthRatio, c.MaxLengthRatio = 2, 1 }},
		{"small roi", func(c *Config) { c.ROIScale = 0.5 }},
		{"no swap time", func(c *Config) { c.SwapAfter = 0 }},
		{"negative floor", func(c *Config) { c.SpeedFloor = -1 }},
		{"quantize 200", func(c *Config) { c.QuantizeDeg = 200 }},
		{"no background frames", func(c *Config) { c.BackgroundFrames = 0 }},
		{"refresh rate 2", func(c *Config) { c.RefreshRate = 2 }},
		{"no stripes", func(c *Config) { c.RefreshStripes = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig(cal)
			tt.mod(&c)
			if err := c.Validate(); err == nil {
				t.Error("invalid config accepted")
			}
			if _, err := New(c, nil); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestQuantize(t *testing.T) {
	tests := []struct{ a, q, want float64 }{
		{0.1, 30, 0},
		{math.Pi / 180 * 44, 30, math.Pi / 6},
		{math.Pi / 180 * 46, 30, math.Pi / 3},
		{math.Pi / 180 * 179, 30, math.Pi},
		{-math.Pi / 180 * 179, 30, math.Pi},
		{-math.Pi / 180 * 100, 45, -math.Pi / 2},
	}
	for _, tt := range tests {
		if got := quantize(tt.a, tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("quantize(%v, %v) = %v, want %v", tt.a, tt.q, got, tt.want)
		}
	}
}
