package track

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/arenas/sim/render"
)

// polarityScene renders frames of the small rig in bright-field or dark-field.
func polarityScene(t testing.TB, darkField bool, seed uint64) scene {
	t.Helper()
	cal := smallRig()
	rc := render.DefaultConfig(cal)
	if darkField {
		rc = render.DarkFieldConfig(cal)
	}
	rc.Seed = seed
	cam, err := render.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	s := scene{cam: cam, cal: cal}
	s.empty = s.frame(0)
	return s
}

// polarityWorm is a sinuous 1 mm worm (54 px, 4.5 px wide) centred near (cx, cy).
func polarityWorm(cx, cy, phase float64) render.Worm {
	mid, wid := wormShape(49, 54, 4.5, sinuous(phase))
	return render.Worm{Midline: shift(mid, cx-27, cy), Width: wid}
}

// TestAutoPolarity: AutoPolarity decides bright-field (dark worm) or dark-field (bright worm)
// from the background, or without one from the first frame tracked, logs the decision once,
// and keeps it (Reset too).
func TestAutoPolarity(t *testing.T) {
	for _, tt := range []struct {
		name      string
		darkField bool
		want      Polarity
	}{{"bright-field", false, DarkWorm}, {"dark-field", true, BrightWorm}} {
		s := polarityScene(t, tt.darkField, 5)
		w := polarityWorm(560, 470, 0.3)
		worm := s.frame(1, w)
		cx, cy := midlineMean(w.Midline)
		for _, withBG := range []bool{true, false} {
			name := tt.name + "/no background"
			if withBG {
				name = tt.name + "/background"
			}
			t.Run(name, func(t *testing.T) {
				var logs bytes.Buffer
				cfg := DefaultConfig(s.cal)
				cfg.Polarity = AutoPolarity
				cfg.RequireSettled = false
				tr, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				if p := tr.Polarity(); p != AutoPolarity {
					t.Fatalf("polarity %v before any frame, want auto", p)
				}
				if withBG {
					if err := tr.SetBackground(s.empty); err != nil {
						t.Fatal(err)
					}
					if p := tr.Polarity(); p != tt.want {
						t.Fatalf("polarity %v from the background, want %v", p, tt.want)
					}
				}
				for i := range 3 {
					r := tr.Track(worm)
					if p := tr.Polarity(); p != tt.want {
						t.Fatalf("frame %d: polarity %v, want %v", i, p, tt.want)
					}
					if !r.OK || math.Hypot(r.X-cx, r.Y-cy) > 2 {
						t.Fatalf("frame %d: %v ok=%v at (%.1f, %.1f), want the worm at (%.1f, %.1f)", i, r.Status, r.OK, r.X, r.Y, cx, cy)
					}
					tr.Reset()
				}
				if n := strings.Count(logs.String(), "worm polarity decided"); n != 1 {
					t.Fatalf("the decision was logged %d times, want once:\n%s", n, logs.String())
				}
				if !strings.Contains(logs.String(), "polarity="+tt.want.String()) || !strings.Contains(logs.String(), "background_level=") {
					t.Fatalf("the log does not give the decision and its numbers:\n%s", logs.String())
				}
			})
		}
	}
}

// TestAutoPolarityMasked: a masked bright-field recording (everything but the worm's
// surroundings blanked to black) is a dark worm, and a dark-field plate whose background is
// as dark as a mask is a bright worm, which the tracker finds (the masked-recording logic does
// not take its background for a mask).
func TestAutoPolarityMasked(t *testing.T) {
	s := polarityScene(t, false, 6)
	w := polarityWorm(560, 470, 1.1)
	f := s.frame(1, w)
	for y := range f.Height {
		for x := range f.Width {
			if math.Hypot(float64(x)-560, float64(y)-470) > 60 {
				f.Pix[y*f.Width+x] = 0
			}
		}
	}
	masked := stillCalibration(f.Width, f.Height, s.cal.PxPerCM)
	cfg := DefaultConfig(masked)
	cfg.Polarity = AutoPolarity
	cfg.RequireSettled = false
	tr, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	r := tr.Track(f)
	if p := tr.Polarity(); p != DarkWorm {
		t.Fatalf("masked bright-field frame: polarity %v, want dark", p)
	}
	if mx, my := midlineMean(w.Midline); !r.OK || math.Hypot(r.X-mx, r.Y-my) > 2 {
		t.Fatalf("masked bright-field frame: %v ok=%v at (%.1f, %.1f), want the worm at (%.1f, %.1f)", r.Status, r.OK, r.X, r.Y, mx, my)
	}

	rc := render.DarkFieldConfig(s.cal)
	rc.AgarLevel, rc.TextureAmplitude, rc.OutsideLevel = 8, 1, 4
	cam, err := render.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	dark := scene{cam: cam, cal: s.cal}
	g := dark.frame(1, w)
	black := 0
	for _, v := range g.Pix {
		if v <= maskedLevel {
			black++
		}
	}
	if black < len(g.Pix)/2 {
		t.Fatalf("only %d of %d pixels near black: the test needs a background as dark as a mask", black, len(g.Pix))
	}
	cx, cy := midlineMean(w.Midline)
	for _, p := range []Polarity{BrightWorm, AutoPolarity} {
		cfg := DefaultConfig(s.cal)
		cfg.Polarity = p
		cfg.RequireSettled = false
		tr, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := tr.Track(g)
		got := tr.Polarity()
		tr.Close()
		if got != BrightWorm {
			t.Fatalf("near-black dark-field frame tracked with %v: polarity %v, want bright", p, got)
		}
		if !r.OK || math.Hypot(r.X-cx, r.Y-cy) > 2 {
			t.Fatalf("near-black dark-field frame tracked with %v: %v ok=%v at (%.1f, %.1f), want the worm at (%.1f, %.1f)",
				p, r.Status, r.OK, r.X, r.Y, cx, cy)
		}
	}
}

// midlineMean is the mean of the midline's points (the pose's centre for evenly spaced points).
func midlineMean(mid [][2]float64) (x, y float64) {
	for _, q := range mid {
		x += q[0] / float64(len(mid))
		y += q[1] / float64(len(mid))
	}
	return x, y
}

// TestDarkFieldStillImage tracks still images (no background: 200 px crops around the worm)
// of a simulated dark-field worm, with the polarity set and detected: every uncoiled one is
// ok and confident, with a midline close to the true one.
func TestDarkFieldStillImage(t *testing.T) {
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	line, err := cat.Line("446")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig(line)
	cfg.Seed = 11
	cfg.Calibration = smallRig()
	cfg.DarkField = true
	a, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	const size = 200
	tested := 0
	for i := range 40 {
		f, err := a.NextFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		truth := a.Pose()
		if i%4 != 0 || truth.Coiled {
			continue
		}
		tested++
		c := crop(f, [2]float64{truth.X, truth.Y}, size)
		x0 := min(max(0, int(truth.X)-size/2), f.Width-size)
		y0 := min(max(0, int(truth.Y)-size/2), f.Height-size)
		mid := shift(truth.Midline, -float64(x0), -float64(y0))
		for _, p := range []Polarity{BrightWorm, AutoPolarity} {
			tc := DefaultConfig(stillCalibration(size, size, cfg.Calibration.PxPerCM))
			tc.Polarity = p
			tc.RequireSettled = false
			tc.MotionIdentity = false
			tr, err := New(tc, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := tr.Track(c)
			got := tr.Polarity()
			tr.Close()
			if got != BrightWorm {
				t.Fatalf("frame %d, %v: polarity %v, want bright", i, p, got)
			}
			if !confident(r) || len(r.Midline) == 0 {
				t.Errorf("frame %d, %v: %v ok=%v confidence %.2f (flags %v), want a confident pose", i, p, r.Status, r.OK, r.Confidence, r.Flags)
				continue
			}
			var worst, sum float64
			for _, q := range r.Midline {
				d := distToPolyline(q, mid)
				worst = math.Max(worst, d)
				sum += d
			}
			if m := sum / float64(len(r.Midline)); m > 1 || worst > 2.5 {
				t.Errorf("frame %d, %v: midline %.2f px from the truth on average, %.2f px at worst; want <= 1 and <= 2.5", i, p, m, worst)
			}
			if e := math.Min(dist(r.Head, mid[0])+dist(r.Tail, mid[len(mid)-1]), dist(r.Head, mid[len(mid)-1])+dist(r.Tail, mid[0])); e > 6 {
				t.Errorf("frame %d, %v: the ends are %.1f px from the true ends (together)", i, p, e)
			}
		}
	}
	if tested < 5 {
		t.Fatalf("only %d uncoiled frames tested", tested)
	}
}
