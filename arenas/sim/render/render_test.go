package render

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/arenas"
)

// smallCal is the reference rig scaled down to a 320x240 frame (80 px/cm).
func smallCal() arenas.Calibration {
	cal := arenas.DefaultCalibration()
	s := 320.0 / 2160
	cal.Width, cal.Height = 320, 284
	cal.PxPerCM *= s
	cal.CenterX, cal.CenterY = 160, 142
	cal.PlateRadius *= s
	return cal
}

// midCal is a 640x568 frame at 160 px/cm: the worm is ~16 px long and 1-1.5 px wide.
func midCal() arenas.Calibration {
	cal := arenas.DefaultCalibration()
	s := 640.0 / 2160
	cal.Width, cal.Height = 640, 568
	cal.PxPerCM *= s
	cal.CenterX, cal.CenterY = 320, 284
	cal.PlateRadius *= s
	return cal
}

func mustNew(t testing.TB, cfg Config) *Camera {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pair renders the same frame with and without the worm, restarting the noise in between: the
// sensor noise is identical, so the difference is the worm alone.
func pair(t testing.TB, cfg Config, w Worm, light bool) (with, without []byte) {
	t.Helper()
	c := mustNew(t, cfg)
	n := cfg.Calibration.Width * cfg.Calibration.Height
	with, without = make([]byte, n), make([]byte, n)
	c.Render(with, w, light)
	c.Reseed(cfg.Seed)
	c.Render(without, Worm{}, light)
	return with, without
}

// halfCal is the reference rig at half the resolution: 1080x960 at 270 px/cm.
func halfCal() arenas.Calibration {
	cal := arenas.DefaultCalibration()
	cal.Width, cal.Height = 1080, 960
	cal.PxPerCM /= 2
	cal.CenterX, cal.CenterY = 540, 480
	cal.PlateRadius /= 2
	return cal
}

func midlineCentroid(w Worm) (x, y float64) {
	for _, p := range w.Midline {
		x += p[0]
		y += p[1]
	}
	n := float64(len(w.Midline))
	return x / n, y / n
}

func TestValidateNamesField(t *testing.T) {
	cal := arenas.DefaultCalibration()
	tests := []struct {
		field  string
		mutate func(c *Config)
	}{
		{"px_per_cm", func(c *Config) { c.Calibration.PxPerCM = 0 }},
		{"frame size", func(c *Config) { c.Calibration.Width = -1 }},
		{"Calibration frame size", func(c *Config) { c.Calibration.Width, c.Calibration.Height = 1<<15, 1<<15 }},
		{"AgarLevel", func(c *Config) { c.AgarLevel = 300 }},
		{"AgarLevel", func(c *Config) { c.AgarLevel = math.NaN() }},
		{"TextureAmplitude", func(c *Config) { c.TextureAmplitude = -1 }},
		{"TextureScale", func(c *Config) { c.TextureScale = 0 }},
		{"GrainSD", func(c *Config) { c.GrainSD = math.Inf(1) }},
		{"Vignetting", func(c *Config) { c.Vignetting = 1 }},
		{"WallRadius", func(c *Config) { c.WallRadius = cal.PlateRadius - 1 }},
		{"RimWidth", func(c *Config) { c.RimWidth = -2 }},
		{"RimLevel", func(c *Config) { c.RimLevel = 256 }},
		{"OutsideLevel", func(c *Config) { c.OutsideLevel = -1 }},
		{"Meniscus", func(c *Config) { c.Meniscus = 2 }},
		{"MeniscusWidth", func(c *Config) { c.MeniscusWidth = -1 }},
		{"DebrisCount", func(c *Config) { c.DebrisCount = -1 }},
		{"DebrisRadius", func(c *Config) { c.DebrisRadius = 0 }},
		{"DebrisLargeFraction", func(c *Config) { c.DebrisLargeFraction = 1.5 }},
		{"DebrisDarkness", func(c *Config) { c.DebrisDarkness = -0.1 }},
		{"WormLengthHint", func(c *Config) { c.WormLengthHint = 0 }},
		{"NoiseSD", func(c *Config) { c.NoiseSD = 50 }},
		{"WormDarkness", func(c *Config) { c.WormDarkness = 1.2 }},
		{"WormCore", func(c *Config) { c.WormCore = 0 }},
		{"LightGain", func(c *Config) { c.LightGain = 3 }},
		{"Blur", func(c *Config) { c.Blur = -1 }},
	}
	if err := DefaultConfig(cal).Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	if err := DefaultConfig(smallCal()).Validate(); err != nil {
		t.Fatalf("default config of a small frame: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			cfg := DefaultConfig(cal)
			tt.mutate(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted a bad config")
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q does not name %s", err, tt.field)
			}
			if _, err := New(cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
}

// TestWormContrast pins the documented contrast: on the midline of a worm at least 3 px wide a
// pixel is darker than the agar beneath it by WormDarkness*WormCore, and the worm stands out of
// the agar around it in a single noisy frame.
func TestWormContrast(t *testing.T) {
	cfg := DefaultConfig(arenas.DefaultCalibration())
	w := testWorm(1000.3, 900.6, 0, 54, 4.5, 0) // straight, along x
	with, without := pair(t, cfg, w, false)
	want := cfg.WormDarkness * cfg.WormCore
	W := cfg.Calibration.Width
	var sum float64
	var n int
	var wormSum, ringSum float64
	var wormN, ringN int
	for x := 990; x <= 1010; x++ { // the middle of the body, where the width is near 4.5 px
		for y := 895; y <= 907; y++ {
			p := y*W + x
			d := math.Abs(float64(y) - 900.6)
			switch {
			case d <= 0.5:
				sum += 1 - float64(with[p])/float64(without[p])
				n++
				wormSum += float64(with[p])
				wormN++
			case d >= 4.5:
				ringSum += float64(with[p])
				ringN++
			}
		}
	}
	got := sum / float64(n)
	if math.Abs(got-want) > 0.03 {
		t.Fatalf("midline darkening %.3f, want %.3f +- 0.03", got, want)
	}
	wormMean, ringMean := wormSum/float64(wormN), ringSum/float64(ringN)
	if c := 1 - wormMean/ringMean; c < 0.8*want {
		t.Fatalf("worm %.1f against agar %.1f beside it: contrast %.3f, want at least %.3f", wormMean, ringMean, c, 0.8*want)
	}
}

// TestLighterCore checks the bright-field look of a wide worm: its core is lighter than the
// zone along its body wall.
func TestLighterCore(t *testing.T) {
	cfg := DefaultConfig(arenas.DefaultCalibration())
	cfg.NoiseSD = 0
	w := testWorm(1000, 900, 0, 120, 14, 0) // 14 px wide in the middle
	with, without := pair(t, cfg, w, false)
	W := cfg.Calibration.Width
	dark := func(dy int) float64 {
		var s float64
		for x := 985; x <= 1015; x++ {
			p := (900+dy)*W + x
			s += 1 - float64(with[p])/float64(without[p])
		}
		return s / 31
	}
	core, wall := dark(0), (dark(4)+dark(-4))/2
	if !(core < wall-0.02) {
		t.Fatalf("core darkening %.3f not below wall zone darkening %.3f", core, wall)
	}
}

// TestCentroid checks that the worm's dark pixels are centred on its midline (within 1 px),
// weighting by darkening and, as a tracker does, counting thresholded pixels.
func TestCentroid(t *testing.T) {
	// A worm with a blunt head and a pointed tail (as the simulator draws it): its dark pixels
	// are centred on the width-weighted centroid of its midline, ~2.5 px towards the head.
	blunt := testWorm(1200.5, 800.2, 0.9, 54, 4.5, 5)
	for i := range blunt.Width {
		u := float64(i) / float64(len(blunt.Width)-1)
		w := 1.0
		if u < 0.15 {
			w = math.Max(0.3, math.Sqrt(u/0.15))
		}
		if u > 0.7 {
			w = math.Max(0.12, math.Min(w, (1-u)/0.3))
		}
		blunt.Width[i] = 4.5 * w
	}
	tests := []struct {
		name     string
		cal      arenas.Calibration
		w        Worm
		weighted bool // compare with the width-weighted midline centroid
	}{
		{"blunt head, pointed tail", arenas.DefaultCalibration(), blunt, true},
		{"straight", arenas.DefaultCalibration(), testWorm(1080.25, 960.75, 0.4, 54, 4.5, 0), false},
		{"bent", arenas.DefaultCalibration(), testWorm(700.5, 1300.1, 2.2, 54, 4, 6), false},
		{"bent thin", halfCal(), testWorm(700.9, 300.4, -1.3, 54, 3, 8), false},
		{"near frame edge", halfCal(), testWorm(540, 30, 0, 27, 2.5, 3), false},
		{"640x568", midCal(), testWorm(300.3, 250.8, 1, 16, 1.5, 2), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig(tt.cal)
			with, without := pair(t, cfg, tt.w, false)
			W := tt.cal.Width
			mx, my := midlineCentroid(tt.w)
			if tt.weighted {
				var sw float64
				mx, my = 0, 0
				for i, p := range tt.w.Midline {
					mx += tt.w.Width[i] * p[0]
					my += tt.w.Width[i] * p[1]
					sw += tt.w.Width[i]
				}
				mx, my = mx/sw, my/sw
				if px, py := midlineCentroid(tt.w); math.Hypot(px-mx, py-my) < 1.5 {
					t.Fatal("test worm's taper too symmetric to tell the centroids apart")
				}
			}
			var sw, sx, sy float64
			var tn, tx, ty float64
			for p := range with {
				d := float64(without[p]) - float64(with[p])
				if d <= 0 {
					continue
				}
				x, y := float64(p%W), float64(p/W)
				sw += d
				sx += d * x
				sy += d * y
				if float64(with[p]) < float64(without[p])*(1-cfg.WormDarkness*cfg.WormCore/2) {
					tn++
					tx += x
					ty += y
				}
			}
			if sw == 0 || tn == 0 {
				t.Fatal("no worm pixels")
			}
			if e := math.Hypot(sx/sw-mx, sy/sw-my); e > 1 {
				t.Errorf("darkening-weighted centroid (%.2f, %.2f) is %.2f px from the midline's (%.2f, %.2f)", sx/sw, sy/sw, e, mx, my)
			}
			if e := math.Hypot(tx/tn-mx, ty/tn-my); e > 1 {
				t.Errorf("thresholded dark-pixel centroid (%.2f, %.2f) is %.2f px from the midline's (%.2f, %.2f)", tx/tn, ty/tn, e, mx, my)
			}
		})
	}
}

func mean(b []byte) float64 {
	var s float64
	for _, v := range b {
		s += float64(v)
	}
	return s / float64(len(b))
}

func TestLightGain(t *testing.T) {
	for _, gain := range []float64{0.03, 0.05, -0.02} {
		cfg := DefaultConfig(halfCal())
		cfg.LightGain = gain
		c := mustNew(t, cfg)
		w := testWorm(540, 480, 0, 27, 2.5, 2)
		off, on := make([]byte, 1080*960), make([]byte, 1080*960)
		c.Render(off, w, false)
		c.Render(on, w, true)
		got := mean(on)/mean(off) - 1
		if math.Abs(got-gain) > 0.003 {
			t.Errorf("LightGain %v: the light-on frame is brighter by %.4f", gain, got)
		}
	}
}

func TestDeterministic(t *testing.T) {
	cal := smallCal()
	cfg := DefaultConfig(cal)
	cfg.Seed = 42
	a, b := mustNew(t, cfg), mustNew(t, cfg)
	cfg.Seed = 43
	other := mustNew(t, cfg)
	n := cal.Width * cal.Height
	fa, fb, fo := make([]byte, n), make([]byte, n), make([]byte, n)
	prev := make([]byte, n)
	for i := 0; i < 4; i++ {
		w := testWorm(150+float64(i), 140, 0.2*float64(i), 8, 1, 1)
		a.Render(fa, w, i%2 == 1)
		b.Render(fb, w, i%2 == 1)
		other.Render(fo, w, i%2 == 1)
		if string(fa) != string(fb) {
			t.Fatalf("frame %d differs between two cameras of one seed", i)
		}
		if string(fa) == string(fo) {
			t.Fatalf("frame %d is the same for seeds 42 and 43", i)
		}
		if i > 0 {
			same := 0
			for p := range fa {
				if fa[p] == prev[p] {
					same++
				}
			}
			// Independent noise of SD 2 repeats a pixel's value in about 14 % of pixels.
			if frac := float64(same) / float64(n); frac > 0.3 {
				t.Fatalf("frame %d repeats %.0f %% of the previous frame's pixels: noise is not new per frame", i, 100*frac)
			}
		}
		copy(prev, fa)
	}
}

// TestNoise measures the per-frame sensor noise: the difference of two frames of the same scene
// has SD sqrt(2)*NoiseSD and no correlation between neighbouring rows or columns.
func TestNoise(t *testing.T) {
	cal := halfCal()
	for _, sd := range []float64{0, 1, 2, 5} {
		cfg := DefaultConfig(cal)
		cfg.NoiseSD = sd
		c := mustNew(t, cfg)
		n := cal.Width * cal.Height
		f1, f2 := make([]byte, n), make([]byte, n)
		c.Render(f1, Worm{}, false)
		c.Render(f2, Worm{}, false)
		var s, s2, cr, cc float64
		var cnt float64
		for y := 200; y < 760; y++ {
			for x := 250; x < 830; x++ {
				p := y*cal.Width + x
				d := float64(f1[p]) - float64(f2[p])
				dr := float64(f1[p+cal.Width]) - float64(f2[p+cal.Width])
				dc := float64(f1[p+1]) - float64(f2[p+1])
				s += d
				s2 += d * d
				cr += d * dr
				cc += d * dc
				cnt++
			}
		}
		v := s2/cnt - (s/cnt)*(s/cnt)
		got := math.Sqrt(v) / math.Sqrt2
		want := math.Sqrt(sd*sd + 1.0/12) // rounding to whole grey levels adds 1/12
		if sd == 0 {
			want = 0
		}
		if math.Abs(got-want) > 0.08*want+0.01 {
			t.Errorf("NoiseSD %v: measured %.3f, want %.3f", sd, got, want)
		}
		if sd > 0 {
			if r := cr / cnt / v; math.Abs(r) > 0.02 {
				t.Errorf("NoiseSD %v: rows correlated (%.3f)", sd, r)
			}
			if r := cc / cnt / v; math.Abs(r) > 0.02 {
				t.Errorf("NoiseSD %v: columns correlated (%.3f)", sd, r)
			}
		}
	}
}

// TestPlateLook checks the static scene with texture, grain and noise switched off: vignetting
// as configured, the meniscus darkening towards the wall, a dark rim and a dark outside.
func TestPlateLook(t *testing.T) {
	cal := arenas.DefaultCalibration()
	cfg := DefaultConfig(cal)
	cfg.TextureAmplitude, cfg.GrainSD, cfg.NoiseSD, cfg.DebrisCount = 0, 0, 0, 0
	c := mustNew(t, cfg)
	f := make([]byte, cal.Width*cal.Height)
	c.Render(f, Worm{}, false)
	at := func(x, y int) float64 { return float64(f[y*cal.Width+x]) }
	fcx, fcy := float64(cal.Width-1)/2, float64(cal.Height-1)/2
	corner2 := fcx*fcx + fcy*fcy
	vig := func(x, y int) float64 {
		dx, dy := float64(x)-fcx, float64(y)-fcy
		return 1 - cfg.Vignetting*(dx*dx+dy*dy)/corner2
	}
	// Agar well inside the plate (meniscus negligible) follows the vignetting.
	for _, p := range [][2]int{{1080, 960}, {1080 + 500, 960}, {1080, 960 - 600}, {1080 - 450, 960 + 450}} {
		want := cfg.AgarLevel * vig(p[0], p[1])
		if got := at(p[0], p[1]); math.Abs(got-want) > 1 {
			t.Errorf("agar at %v: %v, want %.1f", p, got, want)
		}
	}
	// The meniscus darkens the agar just inside the wall.
	wall := int(cfg.WallRadius)
	xin := 1080 + wall - 3
	if got, want := at(xin, 960), cfg.AgarLevel*vig(xin, 960)*(1-0.8*cfg.Meniscus); got > want {
		t.Errorf("agar just inside the wall %v, want at most %.1f", got, want)
	}
	// The wall ring and outside are dark (the corner is beyond the wall).
	if got := at(0, 0); math.Abs(got-cfg.OutsideLevel*vig(0, 0)) > 1 {
		t.Errorf("outside the plate %v, want %.1f", got, cfg.OutsideLevel*vig(0, 0))
	}
	rr := (cfg.WallRadius + cfg.RimWidth/2) / math.Sqrt2 // on the diagonal up-left of the centre
	rx, ry := int(math.Round(1080-rr)), int(math.Round(960-rr))
	if got := at(rx, ry); math.Abs(got-cfg.RimLevel*vig(rx, ry)) > 2 {
		t.Errorf("plate wall at (%d, %d) %v, want %.1f", rx, ry, got, cfg.RimLevel*vig(rx, ry))
	}
}

// TestTexture checks that the agar is textured at low spatial frequency: its brightness varies
// by about TextureAmplitude over the plate, smoothly from pixel to pixel.
func TestTexture(t *testing.T) {
	cal := arenas.DefaultCalibration()
	cfg := DefaultConfig(cal)
	cfg.GrainSD, cfg.NoiseSD, cfg.DebrisCount, cfg.Vignetting, cfg.Meniscus = 0, 0, 0, 0, 0
	cfg.TextureAmplitude = 6
	c := mustNew(t, cfg)
	f := make([]byte, cal.Width*cal.Height)
	c.Render(f, Worm{}, false)
	var s, s2, step, n float64
	for y := 560; y < 1360; y += 2 {
		for x := 680; x < 1480; x += 2 {
			v := float64(f[y*cal.Width+x])
			s += v
			s2 += v * v
			step += math.Abs(v - float64(f[y*cal.Width+x+1]))
			n++
		}
	}
	sd := math.Sqrt(s2/n - (s/n)*(s/n))
	if sd < 0.4*cfg.TextureAmplitude || sd > 1.6*cfg.TextureAmplitude {
		t.Errorf("agar SD %.2f over the centre, texture amplitude %v", sd, cfg.TextureAmplitude)
	}
	if step/n > 0.6 {
		t.Errorf("mean neighbour step %.2f: the texture is not low-frequency", step/n)
	}
}

// blobs labels the 8-connected components of mask (w columns) and returns their areas.
func blobs(mask []bool, w int) []int {
	seen := make([]bool, len(mask))
	var areas []int
	var stack []int
	for i, m := range mask {
		if !m || seen[i] {
			continue
		}
		area := 0
		seen[i] = true
		stack = append(stack[:0], i)
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			area++
			x, y := p%w, p/w
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					q := (y+dy)*w + x + dx
					if x+dx < 0 || x+dx >= w || q < 0 || q >= len(mask) || !mask[q] || seen[q] {
						continue
					}
					seen[q] = true
					stack = append(stack, q)
				}
			}
		}
		areas = append(areas, area)
	}
	return areas
}

// TestDebris counts the debris against a debris-free plate of the same seed: the configured
// number of pieces, all inside the usable plate, mostly small.
func TestDebris(t *testing.T) {
	cal := halfCal()
	const smallArea = 58 // pixels darkened by more than 4 grey levels, at 270 px/cm
	tests := []struct {
		name      string
		count     int
		large     float64
		wantSmall float64 // at least this share of pieces smaller than smallArea (about half a worm)
		wantLarge float64 // at least this share of pieces of smallArea and more
	}{
		{"default mix", 50, 0.1, 0.75, 0},
		{"only large", 6, 1, 0, 1},
		{"none", 0, 0.1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig(cal)
			cfg.NoiseSD = 0
			cfg.DebrisCount = 0
			clean := mustNew(t, cfg)
			cfg.DebrisCount, cfg.DebrisLargeFraction = tt.count, tt.large
			dirty := mustNew(t, cfg)
			n := cal.Width * cal.Height
			a, b := make([]byte, n), make([]byte, n)
			clean.Render(a, Worm{}, false)
			dirty.Render(b, Worm{}, false)
			mask := make([]bool, n)
			for p := range a {
				if float64(b[p]) < float64(a[p])-4 {
					mask[p] = true
					x, y := float64(p%cal.Width), float64(p/cal.Width)
					if math.Hypot(x-cal.CenterX, y-cal.CenterY) > cal.PlateRadius+cfg.WormLengthHint {
						t.Fatalf("debris at (%v, %v) outside the usable plate", x, y)
					}
				}
			}
			areas := blobs(mask, cal.Width)
			// Pieces may touch; allow a few to merge.
			if len(areas) > tt.count || len(areas) < tt.count*9/10 {
				t.Fatalf("%d debris pieces seen, configured %d", len(areas), tt.count)
			}
			small := 0
			for _, a := range areas {
				if a < smallArea {
					small++
				}
			}
			if tt.count > 0 {
				if f := float64(small) / float64(len(areas)); f < tt.wantSmall || 1-f < tt.wantLarge {
					t.Fatalf("%d of %d pieces small (areas %v)", small, len(areas), areas)
				}
			}
		})
	}
}

// TestFrameSizes renders odd and small frames: nothing panics, the worm shows where it is, and a
// worm off the frame draws nothing.
func TestFrameSizes(t *testing.T) {
	tests := []struct {
		name    string
		w, h    int
		pxPerCM float64
	}{
		{"320x284", 320, 284, 80},
		{"odd 333x201", 333, 201, 60},
		{"narrower than a word 7x9", 7, 9, 2},
		{"one pixel", 1, 1, 1},
		{"one row", 2161, 1, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cal := arenas.Calibration{
				PxPerCM: tt.pxPerCM, Width: tt.w, Height: tt.h,
				CenterX: float64(tt.w) / 2, CenterY: float64(tt.h) / 2,
				PlateRadius: math.Max(float64(min(tt.w, tt.h))*0.45, 0.5), FramePeriod: 1,
			}
			cfg := DefaultConfig(cal)
			length := math.Max(0.1*tt.pxPerCM, 3)
			w := testWorm(cal.CenterX, cal.CenterY, 0.3, length, math.Max(length/12, 1.5), 0)
			with, without := pair(t, cfg, w, false)
			var sw, sx, sy float64
			for p := range with {
				d := float64(without[p]) - float64(with[p])
				if d > 0 {
					sw += d
					sx += d * float64(p%tt.w)
					sy += d * float64(p/tt.w)
				}
			}
			if sw == 0 {
				t.Fatal("the worm did not show")
			}
			if tt.w > 20 && tt.h > 20 {
				mx, my := midlineCentroid(w)
				if e := math.Hypot(sx/sw-mx, sy/sw-my); e > 1 {
					t.Fatalf("worm centroid %.2f px from its midline's", e)
				}
			}
			off := testWorm(-100, -100, 0, length, 2, 0)
			a, b := pair(t, cfg, off, true)
			if string(a) != string(b) {
				t.Fatal("a worm outside the frame changed it")
			}
		})
	}
}

func TestRenderPanics(t *testing.T) {
	c := mustNew(t, DefaultConfig(smallCal()))
	n := 320 * 284
	tests := []struct {
		name string
		dst  []byte
		w    Worm
	}{
		{"short dst", make([]byte, n-1), Worm{}},
		{"long dst", make([]byte, n+1), Worm{}},
		{"widths mismatch", make([]byte, n), Worm{Midline: [][2]float64{{1, 1}, {2, 2}}, Width: []float64{1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Render did not panic")
				}
			}()
			c.Render(tt.dst, tt.w, false)
		})
	}
}

// TestDegenerateWorms: non-finite points are skipped, a single point draws a dot.
func TestDegenerateWorms(t *testing.T) {
	cfg := DefaultConfig(smallCal())
	nan := math.NaN()
	dot := Worm{Midline: [][2]float64{{100, 100}}, Width: []float64{4}}
	with, without := pair(t, cfg, dot, false)
	if p := 100*320 + 100; !(with[p] < without[p]-20) {
		t.Fatalf("single-point worm not drawn: %d vs %d", with[p], without[p])
	}
	bad := Worm{Midline: [][2]float64{{nan, 5}, {100, 100}, {math.Inf(1), 3}, {110, 100}}, Width: []float64{2, 3, 2, 3}}
	with, without = pair(t, cfg, bad, false)
	if p := 100*320 + 105; !(with[p] < without[p]-20) {
		t.Fatalf("finite part of a worm with NaN points not drawn: %d vs %d", with[p], without[p])
	}
}

// TestAddRow checks the word-at-a-time addition against byte arithmetic.
func TestAddRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{0, 1, 7, 8, 9, 63, 2160} {
		const k = 9
		b, nz, d := make([]byte, n), make([]byte, n), make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256 - 2*k))
			nz[i] = byte(rng.IntN(2*k + 1))
		}
		addRow(d, b, nz)
		for i := range d {
			if int(d[i]) != int(b[i])+int(nz[i]) {
				t.Fatalf("n=%d: byte %d is %d, want %d", n, i, d[i], int(b[i])+int(nz[i]))
			}
		}
	}
}
