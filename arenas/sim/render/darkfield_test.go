package render

import (
	"math"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/arenas"
)

// midlineContrast is the mean signed difference with - without (grey levels) on the midline of
// the straight test worm of TestWormContrast, and the mean of the agar beside it.
func midlineContrast(t *testing.T, cfg Config) (contrast, agar float64) {
	t.Helper()
	w := testWorm(1000.3, 900.6, 0, 54, 4.5, 0)
	with, without := pair(t, cfg, w, false)
	W := cfg.Calibration.Width
	var n, ringN int
	for x := 990; x <= 1010; x++ {
		for y := 895; y <= 907; y++ {
			p := y*W + x
			switch d := math.Abs(float64(y) - 900.6); {
			case d <= 0.5:
				contrast += float64(with[p]) - float64(without[p])
				n++
			case d >= 4.5:
				agar += float64(with[p])
				ringN++
			}
		}
	}
	return contrast / float64(n), agar / float64(ringN)
}

// TestDarkFieldContrast pins the documented dark-field contrast: on the midline a pixel is
// brighter than the agar beneath it by WormDarkness*WormCore of the way to white (255 times the
// vignetting), a contrast in grey levels comparable to bright-field's dark worm.
func TestDarkFieldContrast(t *testing.T) {
	cal := arenas.DefaultCalibration()
	cfg := DarkFieldConfig(cal)
	got, agar := midlineContrast(t, cfg)
	vig := newVignette(cfg).at(1000, 900)
	want := cfg.WormDarkness * cfg.WormCore * (255*vig - agar)
	if math.Abs(got-want) > 0.03*(255-agar) {
		t.Errorf("dark-field midline brightening %.1f grey levels, want %.1f", got, want)
	}
	if !(agar < 40) {
		t.Errorf("dark-field agar beside the worm %.1f, want dark (< 40)", agar)
	}
	bf, bfAgar := midlineContrast(t, DefaultConfig(cal))
	if !(bf < 0) || !(bfAgar > 120) {
		t.Fatalf("bright-field: worm %+.1f on agar %.1f, want a dark worm on bright agar", bf, bfAgar)
	}
	if r := got / -bf; r < 0.8 || r > 1.5 {
		t.Errorf("dark-field contrast %.1f grey levels against bright-field's %.1f: ratio %.2f, want 0.8-1.5", got, -bf, r)
	}
}

// TestDarkFieldBrighterWall checks the mirror of bright-field's lighter core: in dark-field
// the body wall is brighter than the core.
func TestDarkFieldBrighterWall(t *testing.T) {
	cfg := DarkFieldConfig(arenas.DefaultCalibration())
	cfg.NoiseSD = 0
	with, without := pair(t, cfg, testWorm(1000, 900, 0, 120, 14, 0), false)
	W := cfg.Calibration.Width
	bright := func(dy int) float64 {
		var s float64
		for x := 985; x <= 1015; x++ {
			p := (900+dy)*W + x
			s += float64(with[p]) - float64(without[p])
		}
		return s / 31
	}
	core, wall := bright(0), (bright(4)+bright(-4))/2
	if !(core > 20) || !(core < wall-2) {
		t.Fatalf("core brightening %.1f, wall zone %.1f: want a bright worm with a brighter wall", core, wall)
	}
}

// TestDarkFieldCentroid checks that the worm's bright pixels, weighted by brightening and
// thresholded, are centred on its midline (within 1 px).
func TestDarkFieldCentroid(t *testing.T) {
	tests := []struct {
		name string
		cal  arenas.Calibration
		w    Worm
	}{
		{"straight", arenas.DefaultCalibration(), testWorm(1080.25, 960.75, 0.4, 54, 4.5, 0)},
		{"bent", arenas.DefaultCalibration(), testWorm(700.5, 1300.1, 2.2, 54, 4, 6)},
		{"bent thin", halfCal(), testWorm(700.9, 300.4, -1.3, 54, 3, 8)},
		{"640x568", midCal(), testWorm(300.3, 250.8, 1, 16, 1.5, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DarkFieldConfig(tt.cal)
			with, without := pair(t, cfg, tt.w, false)
			W := tt.cal.Width
			mx, my := midlineCentroid(tt.w)
			var sw, sx, sy, tn, tx, ty, peak float64
			for p := range with {
				d := float64(with[p]) - float64(without[p])
				if d < 0 {
					t.Fatalf("the dark-field worm darkens pixel (%d, %d) by %v", p%W, p/W, -d)
				}
				peak = math.Max(peak, d)
			}
			for p := range with {
				d := float64(with[p]) - float64(without[p])
				if d == 0 {
					continue
				}
				x, y := float64(p%W), float64(p/W)
				sw += d
				sx += d * x
				sy += d * y
				if d > peak/2 {
					tn++
					tx += x
					ty += y
				}
			}
			if sw == 0 || tn == 0 {
				t.Fatal("no worm pixels")
			}
			if e := math.Hypot(sx/sw-mx, sy/sw-my); e > 1 {
				t.Errorf("brightening-weighted centroid (%.2f, %.2f) is %.2f px from the midline's (%.2f, %.2f)", sx/sw, sy/sw, e, mx, my)
			}
			if e := math.Hypot(tx/tn-mx, ty/tn-my); e > 1 {
				t.Errorf("thresholded bright-pixel centroid (%.2f, %.2f) is %.2f px from the midline's (%.2f, %.2f)", tx/tn, ty/tn, e, mx, my)
			}
		})
	}
}

// TestDarkFieldPlateLook checks the dark-field plate: dark agar that follows the vignetting and
// keeps its texture, a glowing meniscus, a wall brighter than the agar, a dark outside, and
// bright (never dark) debris.
func TestDarkFieldPlateLook(t *testing.T) {
	cal := arenas.DefaultCalibration()
	cfg := DarkFieldConfig(cal)
	cfg.TextureAmplitude, cfg.GrainSD, cfg.NoiseSD, cfg.DebrisCount = 0, 0, 0, 0
	c := mustNew(t, cfg)
	f := make([]byte, cal.Width*cal.Height)
	c.Render(f, Worm{}, false)
	at := func(x, y int) float64 { return float64(f[y*cal.Width+x]) }
	vig := newVignette(cfg)
	for _, p := range [][2]int{{1080, 960}, {1080 + 500, 960}, {1080, 960 - 600}} {
		if got, want := at(p[0], p[1]), cfg.AgarLevel*vig.at(p[0], p[1]); math.Abs(got-want) > 1 {
			t.Errorf("agar at %v: %v, want %.1f", p, got, want)
		}
	}
	xin := 1080 + int(cfg.WallRadius) - 3
	if got, agar := at(xin, 960), cfg.AgarLevel*vig.at(xin, 960); !(got > agar+5) {
		t.Errorf("agar just inside the wall %v, want a glow above the agar's %.1f", got, agar)
	}
	if got := at(0, 0); math.Abs(got-cfg.OutsideLevel*vig.at(0, 0)) > 1 {
		t.Errorf("outside the plate %v, want %.1f", got, cfg.OutsideLevel*vig.at(0, 0))
	}
	rr := (cfg.WallRadius + cfg.RimWidth/2) / math.Sqrt2
	rx, ry := int(math.Round(1080-rr)), int(math.Round(960-rr))
	if got := at(rx, ry); math.Abs(got-cfg.RimLevel*vig.at(rx, ry)) > 2 || !(got > 2*cfg.AgarLevel) {
		t.Errorf("plate wall at (%d, %d) %v, want %.1f (brighter than the agar)", rx, ry, got, cfg.RimLevel*vig.at(rx, ry))
	}

	// Texture and grain are still there.
	tex := DarkFieldConfig(cal)
	tex.NoiseSD, tex.DebrisCount = 0, 0
	ft := make([]byte, cal.Width*cal.Height)
	mustNew(t, tex).Render(ft, Worm{}, false)
	var s, s2 float64
	var n int
	for y := 760; y < 1160; y++ {
		for x := 880; x < 1280; x++ {
			v := float64(ft[y*cal.Width+x])
			s += v
			s2 += v * v
			n++
		}
	}
	m := s / float64(n)
	if sd := math.Sqrt(s2/float64(n) - m*m); !(sd > 0.5) {
		t.Errorf("dark-field agar grey SD %.2f over a 400 px square: no texture or grain", sd)
	}

	// Debris is bright.
	hc := halfCal()
	dcfg := DarkFieldConfig(hc)
	dcfg.NoiseSD, dcfg.DebrisCount = 0, 0
	clean := mustNew(t, dcfg)
	dcfg.DebrisCount, dcfg.DebrisLargeFraction = 40, 0.2
	dirty := mustNew(t, dcfg)
	a, b := make([]byte, hc.Width*hc.Height), make([]byte, hc.Width*hc.Height)
	clean.Render(a, Worm{}, false)
	dirty.Render(b, Worm{}, false)
	var brighter, darker int
	for p := range a {
		switch d := int(b[p]) - int(a[p]); {
		case d > 4:
			brighter++
		case d < 0:
			darker++
		}
	}
	if brighter < 40 || darker > 0 {
		t.Errorf("dark-field debris: %d pixels brighter by more than 4 grey levels, %d darker; want bright debris only", brighter, darker)
	}
}

// TestDarkFieldDeterministic: one seed gives one frame sequence; dark-field and bright-field
// of one seed differ; the light-on frame is LightGain brighter.
func TestDarkFieldDeterministic(t *testing.T) {
	cal := smallCal()
	cfg := DarkFieldConfig(cal)
	cfg.Seed = 42
	a, b := mustNew(t, cfg), mustNew(t, cfg)
	bf := DefaultConfig(cal)
	bf.Seed = 42
	other := mustNew(t, bf)
	n := cal.Width * cal.Height
	fa, fb, fo := make([]byte, n), make([]byte, n), make([]byte, n)
	for i := range 4 {
		w := testWorm(150+float64(i), 140, 0.2*float64(i), 8, 1, 1)
		a.Render(fa, w, i%2 == 1)
		b.Render(fb, w, i%2 == 1)
		other.Render(fo, w, i%2 == 1)
		if string(fa) != string(fb) {
			t.Fatalf("dark-field frame %d differs between two cameras of one seed", i)
		}
		if mean(fa) > mean(fo)/2 {
			t.Fatalf("dark-field frame %d mean %.1f, bright-field %.1f: want a dark frame", i, mean(fa), mean(fo))
		}
	}
	hc := halfCal()
	g := DarkFieldConfig(hc)
	g.LightGain = 0.05
	c := mustNew(t, g)
	off, on := make([]byte, hc.Width*hc.Height), make([]byte, hc.Width*hc.Height)
	w := testWorm(540, 480, 0, 27, 2.5, 2)
	c.Render(off, w, false)
	c.Render(on, w, true)
	if got := mean(on)/mean(off) - 1; math.Abs(got-g.LightGain) > 0.01 {
		t.Errorf("dark-field LightGain %v: the light-on frame is brighter by %.4f", g.LightGain, got)
	}
}

// TestDarkFieldValidate: bright agar is refused in dark-field, naming the field.
func TestDarkFieldValidate(t *testing.T) {
	cfg := DefaultConfig(arenas.DefaultCalibration())
	cfg.DarkField = true
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "AgarLevel") || !strings.Contains(err.Error(), "DarkField") {
		t.Fatalf("DarkField on bright agar: error %v, want one naming AgarLevel and DarkField", err)
	}
	if err := DarkFieldConfig(smallCal()).Validate(); err != nil {
		t.Fatalf("DarkFieldConfig: %v", err)
	}
}
