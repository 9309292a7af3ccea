package sim

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/arenatest"
)

func mustLine(t testing.TB, code string) Line {
	t.Helper()
	c, err := DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Line(code)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestAcceptance(t *testing.T) {
	line := mustLine(t, "446")
	seed := uint64(0)
	arenatest.Run(t, func(t *testing.T) arenatest.Subject {
		seed++
		cfg := DefaultConfig(line)
		// A quarter of the reference frame at the reference scale keeps the test fast under
		// -race; TestRenderedWormAtPose renders the full reference frame.
		cfg.Calibration.Width, cfg.Calibration.Height = 1080, 960
		cfg.Calibration.CenterX, cfg.Calibration.CenterY, cfg.Calibration.PlateRadius = 540, 480, 450
		cfg.Seed = seed
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return arenatest.Subject{Arena: a, LightState: a.LightState}
	})
}

// The rendered frame shows a dark worm where the true pose says it is.
func TestRenderedWormAtPose(t *testing.T) {
	cfg := DefaultConfig(mustLine(t, "73"))
	cfg.Seed = 7
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	for i := 0; i < 12; i++ {
		f, err := a.NextFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i%4 != 3 {
			continue
		}
		p := a.Pose()
		// Darkest pixel near the midline's middle point versus the agar 100 px away.
		m := p.Midline[len(p.Midline)/2]
		dark := 255
		for dy := -3; dy <= 3; dy++ {
			for dx := -3; dx <= 3; dx++ {
				dark = min(dark, int(f.At(int(math.Round(m[0]))+dx, int(math.Round(m[1]))+dy)))
			}
		}
		agar := int(f.At(int(p.X)+100, int(p.Y)))
		if agar-dark < 30 {
			t.Fatalf("frame %d: worm at (%.0f, %.0f) not dark: worm %d, agar %d", f.Seq, m[0], m[1], dark, agar)
		}
	}
}

func TestNoRenderFramesAndPose(t *testing.T) {
	cfg := DefaultConfig(mustLine(t, "446"))
	cfg.NoRender = true
	cfg.Seed = 3
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var first arenas.Pose
	for i := 0; i < 90; i++ {
		f, err := a.NextFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Pix != nil {
			t.Fatal("no-render frame carries pixels")
		}
		if f.Time.Sub(cfg.Start) != time.Duration(i)*cfg.Calibration.FramePeriod {
			t.Fatalf("frame %d at %v after start", i, f.Time.Sub(cfg.Start))
		}
		if i == 0 {
			first = a.Pose()
		}
	}
	p := a.Pose()
	if !p.OK || len(p.Midline) != cfg.Behaviour.Points {
		t.Fatalf("pose %+v", p)
	}
	// 30 s later the worm has moved, and its length stays about 1 mm (54 px).
	if d := math.Hypot(p.X-first.X, p.Y-first.Y); d < 5 {
		t.Fatalf("worm moved only %.1f px in 30 s", d)
	}
	l := 0.0
	for i := 1; i < len(p.Midline); i++ {
		l += math.Hypot(p.Midline[i][0]-p.Midline[i-1][0], p.Midline[i][1]-p.Midline[i-1][1])
	}
	if l < 40 || l > 68 {
		t.Fatalf("midline length %.1f px, want about 54", l)
	}
}
