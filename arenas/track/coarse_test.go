package track

import (
	"bytes"
	"fmt"
	"image"
	"math"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim/render"
)

// TestCoarseFactor: the lost-worm search downsamples large frames by the largest power of two
// that keeps the shortest accepted worm visible, and small frames not at all.
func TestCoarseFactor(t *testing.T) {
	ref := arenas.DefaultCalibration()
	big := ref
	big.PxPerCM = 4800 // a 1 mm worm 480 px long
	tiny := ref
	tiny.PxPerCM = 100 // a 1 mm worm 10 px long
	for _, tt := range []struct {
		name string
		cal  arenas.Calibration
		w, h int
		want int
	}{
		{"reference rig", ref, 2160, 1920, 4},
		{"quarter of the reference frame", ref, 1080, 960, 4},
		{"small frame", ref, 480, 360, 1},
		{"4800 px/cm", big, 2160, 1920, coarseMaxFactor},
		{"100 px/cm: the shortest worm is under 1 px wide", tiny, 2160, 1920, 1},
	} {
		cfg := DefaultConfig(tt.cal)
		if got := coarseFactor(cfg, tt.w, tt.h); got != tt.want {
			t.Errorf("%s: factor %d, want %d", tt.name, got, tt.want)
		}
	}
}

// invert mirrors a frame's grey levels: a dark worm on bright agar becomes a bright worm on a
// dark background.
func invert(f arenas.Frame) arenas.Frame {
	g := f
	g.Pix = bytes.Clone(f.Pix)
	for i, v := range g.Pix {
		g.Pix[i] = 255 - v
	}
	return g
}

// TestLostWormCoarseMatchesFull: a lost worm re-found coarse to fine is the worm the whole-frame
// segmentation at full resolution finds, at the same place, for worms of the shortest to the
// longest accepted length anywhere on the plate, with and without a background, dark and
// bright; with a background nothing is found on an empty plate or outside the plate.
func TestLostWormCoarseMatchesFull(t *testing.T) {
	s := newScene(t, 21, true)
	cal := s.cal
	mm := cal.PxPerCM / 10
	at := [][2]float64{{cal.CenterX, cal.CenterY}, {cal.CenterX - 300, cal.CenterY + 200}, {cal.CenterX + 330, cal.CenterY - 250}, {cal.CenterX + 40, cal.CenterY + 380}}
	type frameCase struct {
		name string
		f    arenas.Frame
		want bool // a worm to find
	}
	var cases []frameCase
	for i, p := range at {
		for _, l := range []float64{0.4, 1, 1.5} {
			m, w := wormShape(49, l*mm, l*mm/10, sinuous(float64(i)))
			cases = append(cases, frameCase{fmt.Sprintf("%.1f mm at (%.0f, %.0f)", l, p[0], p[1]), s.frame(uint64(i+1), render.Worm{Midline: shift(m, p[0], p[1]), Width: w}), true})
		}
	}
	cases = append(cases, frameCase{"empty plate", s.frame(9), false})
	outside := s.frame(10)
	for y := 20; y < 26; y++ {
		for x := 20; x < 74; x++ {
			outside.Pix[y*cal.Width+x] = 40 // a worm-sized dark bar in the corner, off the plate
		}
	}
	cases = append(cases, frameCase{"dark bar off the plate", outside, false})

	for _, mode := range []string{"background", "local threshold"} {
		for _, bright := range []bool{false, true} {
			newTracker := func() *Tracker {
				cfg := DefaultConfig(cal)
				cfg.RequireSettled = false
				if bright {
					cfg.Polarity = BrightWorm
				}
				tr, err := New(cfg, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { tr.Close() })
				if mode == "background" {
					bg := s.empty
					if bright {
						bg = invert(bg)
					}
					if err := tr.SetBackground(bg); err != nil {
						t.Fatal(err)
					}
				}
				return tr
			}
			coarse, full := newTracker(), newTracker()
			for _, c := range cases {
				name := fmt.Sprintf("%s/bright=%v/%s", mode, bright, c.name)
				f := c.f
				if bright {
					f = invert(f)
				}
				coarse.Reset()
				got := coarse.Track(f)
				full.Reset()
				want, _, _ := full.segment(f, image.Rect(0, 0, f.Width, f.Height), time.Time{})
				if got.Status != want.Status {
					t.Errorf("%s: coarse %v, full %v", name, got.Status, want.Status)
					continue
				}
				if !c.want {
					// Without a background the plate's debris can look like worms, to both.
					if mode == "background" && got.Status != NoWorm {
						t.Errorf("%s: %v, want no worm", name, got.Status)
					}
					continue
				}
				if want.Status == NoWorm {
					t.Fatalf("%s: the full-resolution search found no worm: the test's frame is wrong", name)
				}
				// The local background (a closing and a median over three body widths) and the
				// detection threshold depend on the region segmented: without a background the
				// blob may differ by a pixel or two at its rim and tips.
				tol := 0.5
				if mode != "background" {
					tol = 2
				}
				if d := math.Hypot(got.X-want.X, got.Y-want.Y); d > tol {
					t.Errorf("%s: coarse %v at (%.1f, %.1f), full %v at (%.1f, %.1f)", name, got.Status, got.X, got.Y, want.Status, want.X, want.Y)
				}
			}
		}
	}
}

// TestLostWormTwoWorms: two worms at acquisition are two worms for the coarse search as for
// the whole-frame one, side by side or far apart on the plate.
func TestLostWormTwoWorms(t *testing.T) {
	s := newScene(t, 22, true)
	c := [2]float64{s.cal.CenterX, s.cal.CenterY}
	worm := func(phase float64, at [2]float64) render.Worm {
		m, w := wormShape(49, 54, 4.5, sinuous(phase))
		return render.Worm{Midline: shift(m, at[0], at[1]), Width: w}
	}
	for _, tt := range []struct {
		name   string
		second [2]float64
	}{
		{"side by side", [2]float64{c[0] + 70, c[1] + 40}},
		{"far apart", [2]float64{c[0] - 350, c[1] - 250}},
	} {
		tr := s.trackerWithBackground(t)
		f := s.frame(1, worm(0, c), worm(2, tt.second))
		if r := tr.Track(f); r.Status != TwoWorms || confident(r) {
			t.Errorf("%s: %v (confidence %.2f), want two worms", tt.name, r.Status, r.Confidence)
		}
	}
}

// TestCoarseBackgroundFollows: the coarse background is derived whole for a new background and
// then follows changes to it band by band, within coarseBands lost searches.
func TestCoarseBackgroundFollows(t *testing.T) {
	s := newScene(t, 23, true)
	tr := s.trackerWithBackground(t)
	tr.Reset()
	tr.Track(s.empty)
	c := &tr.coarse
	if c.factor < 2 || c.bgOf != tr.bg {
		t.Fatalf("factor %d, coarse background of %p for background %p", c.factor, c.bgOf, tr.bg)
	}
	want := func() []uint8 {
		rows, cols := tr.bg.h/c.factor*c.factor, tr.bg.w/c.factor*c.factor
		m := c.bg.Clone()
		defer m.Close()
		if !c.downsample(tr.bg.pix8, tr.bg.w, rows, cols, 0, rows, nil, &m) {
			t.Fatal("downsample failed")
		}
		px, err := m.DataPtrUint8()
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(px)
	}
	plate := func(px []uint8) []uint8 {
		mask, err := c.plate.DataPtrUint8()
		if err != nil {
			t.Fatal(err)
		}
		out := bytes.Clone(px)
		for i := range out {
			out[i] &= mask[i]
		}
		return out
	}
	// Darken the whole background by 20 (as a slow refresh would over time).
	for i := range tr.bg.pix8 {
		tr.bg.pix8[i] = max(tr.bg.pix8[i], 20) - 20
	}
	exp := plate(want())
	for i := range coarseBands {
		tr.Reset()
		tr.Track(s.empty)
		px, err := c.bg.DataPtrUint8()
		if err != nil {
			t.Fatal(err)
		}
		if got := plate(px); bytes.Equal(got, exp) != (i == coarseBands-1) {
			t.Fatalf("after %d lost searches the coarse background matches: %v", i+1, bytes.Equal(got, exp))
		}
	}
}

// TestLostSearchAllocates: the coarse search allocates no more per frame than the whole-frame
// segmentation it replaces.
func TestLostSearchAllocates(t *testing.T) {
	s := newScene(t, 24, true)
	m, w := wormShape(49, 54, 4.5, sinuous(1))
	f := s.frame(1, render.Worm{Midline: shift(m, s.cal.CenterX+100, s.cal.CenterY-50), Width: w})
	tr := s.trackerWithBackground(t)
	full := image.Rect(0, 0, f.Width, f.Height)
	lost := testing.AllocsPerRun(20, func() {
		tr.Reset()
		if r := tr.Track(f); r.Status != Found {
			t.Fatalf("lost search: %v", r.Status)
		}
	})
	whole := testing.AllocsPerRun(20, func() {
		tr.Reset()
		if r, _, _ := tr.segment(f, full, time.Time{}); r.Status != Found {
			t.Fatalf("whole-frame search: %v", r.Status)
		}
	})
	if lost > whole {
		t.Errorf("the coarse search allocates %.0f times per frame, the whole-frame search %.0f", lost, whole)
	}
}

// TestLostWormFollowed: a worm lost for one frame (it moved beyond the search regions) while a
// second, much bigger worm is on the plate is re-found as the whole-frame search finds it: the blob
// nearest its last centre keeps the identity, and the other worm is flagged.
func TestLostWormFollowed(t *testing.T) {
	s := newScene(t, 25, true)
	c := [2]float64{s.cal.CenterX, s.cal.CenterY}
	// A young worm (0.5 mm) is tracked; a gravid adult (1.5 mm), far away, is the largest blob
	// of the coarse image.
	worm := func(phase float64, at [2]float64) render.Worm {
		arc := func(u float64) [2]float64 { return [2]float64{100 * u, 8 * math.Sin(math.Pi*u+phase)} }
		m, w := wormShape(49, 27, 2.7, arc)
		return render.Worm{Midline: shift(m, at[0], at[1]), Width: w}
	}
	m, w := wormShape(49, 81, 6.8, sinuous(2))
	other := render.Worm{Midline: shift(m, c[0]-300, c[1]+250), Width: w}
	f1 := s.frame(1, worm(0, c), other)
	f2 := s.frame(2, worm(0.3, [2]float64{c[0] + 150, c[1] + 20}), other)
	coarse, full := s.trackerWithBackground(t), s.trackerWithBackground(t)
	// Both start on the first worm alone, then see the second one.
	alone := s.frame(1, worm(0, c))
	for _, tr := range []*Tracker{coarse, full} {
		if r := tr.Track(alone); r.Status != Found {
			t.Fatalf("first frame: %v", r.Status)
		}
		if r := tr.Track(f1); r.Status != Found {
			t.Fatalf("second worm entering: %v", r.Status)
		}
	}
	got := coarse.Track(f2)
	want, _, _ := full.segment(f2, image.Rect(0, 0, f2.Width, f2.Height), full.timestamp(f2))
	if want.Status != Found || math.Hypot(want.X-(c[0]+150+13.5), want.Y-(c[1]+20)) > 15 {
		t.Fatalf("the whole-frame search found %v at (%.1f, %.1f): the test's frames are wrong", want.Status, want.X, want.Y)
	}
	if got.Status != want.Status || got.OtherWorm != want.OtherWorm || math.Hypot(got.X-want.X, got.Y-want.Y) > 0.5 {
		t.Errorf("coarse %v at (%.1f, %.1f) other worm %v, full %v at (%.1f, %.1f) other worm %v", got.Status, got.X, got.Y, got.OtherWorm, want.Status, want.X, want.Y, want.OtherWorm)
	}
}
