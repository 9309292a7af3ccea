package track

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/arenas/sim/render"
)

// wormShape returns a midline of n points and its widths: a body of length l (px) and width w
// following the curve c(u), u in [0, 1] from head to tail, scaled so that its arc length is l.
func wormShape(n int, l, w float64, c func(u float64) [2]float64) ([][2]float64, []float64) {
	const fine = 2000
	pts := make([][2]float64, fine+1)
	arc := make([]float64, fine+1)
	for i := range pts {
		pts[i] = c(float64(i) / fine)
		if i > 0 {
			arc[i] = arc[i-1] + dist(pts[i], pts[i-1])
		}
	}
	scale := l / arc[fine]
	mid := make([][2]float64, n)
	wid := make([]float64, n)
	j := 0
	for i := range n {
		target := arc[fine] * float64(i) / float64(n-1)
		for j < fine-1 && arc[j+1] < target {
			j++
		}
		s := (target - arc[j]) / math.Max(1e-12, arc[j+1]-arc[j])
		s = math.Min(1, math.Max(0, s))
		p := [2]float64{pts[j][0] + s*(pts[j+1][0]-pts[j][0]), pts[j][1] + s*(pts[j+1][1]-pts[j][1])}
		mid[i] = [2]float64{pts[0][0] + (p[0]-pts[0][0])*scale, pts[0][1] + (p[1]-pts[0][1])*scale}
		u := float64(i) / float64(n-1)
		f := 1.0
		if u < 0.15 {
			f = math.Max(0.3, math.Sqrt(u/0.15))
		}
		if u > 0.7 {
			f = math.Max(0.12, math.Min(f, (1-u)/0.3))
		}
		wid[i] = w * f
	}
	return mid, wid
}

// shift moves a midline by (dx, dy).
func shift(mid [][2]float64, dx, dy float64) [][2]float64 {
	out := make([][2]float64, len(mid))
	for i, p := range mid {
		out[i] = [2]float64{p[0] + dx, p[1] + dy}
	}
	return out
}

// shapes at the reference scale (54 px long, 4.5 px wide), drawn around the origin.
func sinuous(phase float64) func(u float64) [2]float64 {
	return func(u float64) [2]float64 {
		return [2]float64{100 * u, 12 * math.Sin(2*math.Pi*u/0.65+phase)}
	}
}

func loop(u float64) [2]float64 { // 1.2 turns of a circle: the tail crosses the head
	a := 2 * math.Pi * 1.2 * u
	return [2]float64{10 * math.Cos(a), 10*math.Sin(a) + 0.8*a}
}

func hairpin(u float64) [2]float64 { // folded in two, both halves touching
	if u < 0.5 {
		return [2]float64{60 * u, 0}
	}
	a := math.Pi * (u - 0.5) / 0.04
	if u < 0.54 {
		return [2]float64{30 + 2.2*math.Sin(a), 2.2 - 2.2*math.Cos(a)}
	}
	return [2]float64{30 - 60*(u-0.54), 4.4}
}

type scene struct {
	cam   *render.Camera
	cal   arenas.Calibration
	empty arenas.Frame // an empty plate
}

func newScene(t testing.TB, seed uint64, debris bool) scene {
	t.Helper()
	cal := smallRig()
	rc := render.DefaultConfig(cal)
	rc.Seed = seed
	if !debris {
		rc.DebrisCount = 0
	}
	cam, err := render.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	s := scene{cam: cam, cal: cal}
	s.empty = s.frame(0)
	return s
}

// frame renders the worms (none for an empty plate) into one frame; several worms are
// composited by taking the darker pixel (the brighter one in dark-field).
func (s scene) frame(seq uint64, worms ...render.Worm) arenas.Frame {
	bright := s.cam.Config().DarkField
	n := s.cal.Width * s.cal.Height
	pix := make([]byte, n)
	if len(worms) == 0 {
		s.cam.Render(pix, render.Worm{}, false)
	}
	tmp := make([]byte, n)
	for i, w := range worms {
		if i == 0 {
			s.cam.Render(pix, w, false)
			continue
		}
		s.cam.Render(tmp, w, false)
		for j, v := range tmp {
			if bright {
				pix[j] = max(pix[j], v)
			} else {
				pix[j] = min(pix[j], v)
			}
		}
	}
	return arenas.Frame{Seq: seq, Width: s.cal.Width, Height: s.cal.Height, Pix: pix}
}

// crop cuts the size x size square centred on c out of f (a still image around the worm).
func crop(f arenas.Frame, c [2]float64, size int) arenas.Frame {
	if len(f.Pix) < f.Width*f.Height || f.Width < size || f.Height < size {
		return f
	}
	x0 := min(max(0, int(c[0])-size/2), f.Width-size)
	y0 := min(max(0, int(c[1])-size/2), f.Height-size)
	out := arenas.Frame{Seq: f.Seq, Width: size, Height: size, Pix: make([]byte, size*size)}
	for y := range size {
		copy(out.Pix[y*size:(y+1)*size], f.Pix[(y0+y)*f.Width+x0:(y0+y)*f.Width+x0+size])
	}
	return out
}

// trackerWithBackground returns a tracker whose background is built from empty-plate frames.
func (s scene) trackerWithBackground(t testing.TB) *Tracker {
	t.Helper()
	tr, err := New(DefaultConfig(s.cal), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if err := tr.SetBackground(s.empty); err != nil {
		t.Fatal(err)
	}
	return tr
}

func confident(r Result) bool { return r.OK && r.Confidence >= Confident }

// TestShapesAndBadFrames covers what must never give a confident pose (an empty plate, a blank
// or saturated frame, noise, two worms, a coiled or folded worm, a frame of the wrong size) and
// the controls that must (a single uncoiled worm), with and without a background.
func TestShapesAndBadFrames(t *testing.T) {
	scenes := map[string]scene{"background": newScene(t, 3, true), "local threshold": newScene(t, 3, false)}
	c := [2]float64{scenes["background"].cal.CenterX, scenes["background"].cal.CenterY}
	worm := func(shape func(float64) [2]float64, at [2]float64) render.Worm {
		m, w := wormShape(49, 54, 4.5, shape)
		return render.Worm{Midline: shift(m, at[0], at[1]), Width: w}
	}
	for _, mode := range []string{"background", "local threshold"} {
		s := scenes[mode]
		full := func(v byte) arenas.Frame {
			pix := make([]byte, s.cal.Width*s.cal.Height)
			for i := range pix {
				pix[i] = v
			}
			return arenas.Frame{Width: s.cal.Width, Height: s.cal.Height, Pix: pix}
		}
		w1 := worm(sinuous(0), c)
		w2 := worm(sinuous(1), [2]float64{c[0] + 380, c[1]})
		noise := full(0)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range noise.Pix {
			noise.Pix[i] = byte(rng.IntN(256))
		}
		tests := []struct {
			name      string
			frame     arenas.Frame
			confident bool
			status    []Status // acceptable statuses
			worm      render.Worm
		}{
			{"single sinuous worm", s.frame(0, w1), true, []Status{Found}, w1},
			{"single worm near the plate edge", s.frame(0, w2), true, []Status{Found}, w2},
			{"empty plate", s.frame(0), false, []Status{NoWorm}, render.Worm{}},
			{"blank black frame", full(0), false, []Status{NoWorm}, render.Worm{}},
			{"saturated frame", full(255), false, []Status{NoWorm}, render.Worm{}},
			{"noise", noise, false, nil, render.Worm{}},
			{"two worms", s.frame(0, worm(sinuous(0), c), worm(sinuous(2), [2]float64{c[0] + 70, c[1] + 40})), false, []Status{TwoWorms}, render.Worm{}},
			{"looped worm", s.frame(0, worm(loop, c)), false, []Status{Coiled}, render.Worm{}},
			{"folded worm", s.frame(0, worm(hairpin, c)), false, []Status{Coiled, Found}, render.Worm{}},
			{"wrong size", arenas.Frame{Width: 640, Height: 480, Pix: make([]byte, 640*480)}, false, nil, render.Worm{}},
			{"short pixel buffer", arenas.Frame{Width: s.cal.Width, Height: s.cal.Height, Pix: make([]byte, 100)}, false, []Status{BadFrame}, render.Worm{}},
			{"nil pixels", arenas.Frame{Width: s.cal.Width, Height: s.cal.Height}, false, []Status{BadFrame}, render.Worm{}},
		}

		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				var tr *Tracker
				if mode == "background" {
					tr = s.trackerWithBackground(t)
				} else {
					var err error
					tr, err = New(DefaultConfig(s.cal), nil)
					if err != nil {
						t.Fatal(err)
					}
					defer tr.Close()
				}
				f := tt.frame
				if mode == "local threshold" {
					// Without a background the tracker works on still images around the worm.
					at := c
					if len(tt.worm.Midline) > 0 {
						at = sim.PoseOf(tt.worm.Midline, tt.worm.Width).Midline[24]
					}
					f = crop(f, at, 240)
				}
				r := tr.Track(f)
				if mode == "background" && tt.name == "wrong size" && r.Status != BadFrame {
					t.Errorf("status %v for a frame of the wrong size, want %v", r.Status, BadFrame)
				}
				if tt.confident {
					// Identity needs motion to settle; the shape must be trusted otherwise.
					if !r.OK || r.Status != Found || r.Confidence < 0.4 {
						t.Fatalf("got %v ok=%v conf %.2f, want a found worm", r.Status, r.OK, r.Confidence)
					}
					truth := sim.PoseOf(tt.worm.Midline, tt.worm.Width)
					if mode == "local threshold" {
						x0 := min(max(0, int(truth.Midline[24][0])-120), s.cal.Width-240)
						y0 := min(max(0, int(truth.Midline[24][1])-120), s.cal.Height-240)
						truth = sim.PoseOf(shift(tt.worm.Midline, -float64(x0), -float64(y0)), tt.worm.Width)
					}
					if d := math.Hypot(r.X-truth.X, r.Y-truth.Y); d > 2 {
						t.Errorf("centre %.1f px from the truth", d)
					}
					e := min(max(dist(r.Head, truth.Head), dist(r.Tail, truth.Tail)), max(dist(r.Head, truth.Tail), dist(r.Tail, truth.Head)))
					if e > 5 {
						t.Errorf("end points %.1f px from the truth", e)
					}
				} else if confident(r) {
					t.Fatalf("confident pose (%v, conf %.2f) for %s", r.Status, r.Confidence, tt.name)
				}
				if tt.status != nil {
					ok := false
					for _, st := range tt.status {
						ok = ok || r.Status == st
					}
					if !ok {
						t.Errorf("status %v, want one of %v", r.Status, tt.status)
					}
				}
			})
		}
	}
}
