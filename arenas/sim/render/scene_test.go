package render

import (
	"math"
	"testing"
)

// The scene is drawn into the static background: a lawn a few per cent darker than the agar in
// bright-field (brighter in dark-field) with a stronger rim, debris of high contrast, and
// nothing else changes.
func TestScene(t *testing.T) {
	for _, dark := range []bool{false, true} {
		cal := halfCal()
		cfg := DefaultConfig(cal)
		if dark {
			cfg = DarkFieldConfig(cal)
		}
		cfg.NoiseSD = 0
		lawn := Disc{X: 400, Y: 480, R: 135} // 5 mm at 270 px/cm
		obst := Disc{X: 700, Y: 480, R: 20}
		plain := mustNew(t, cfg)
		cfg.Scene = Scene{Lawns: []Disc{lawn}, Obstacles: []Disc{obst}}
		scene := mustNew(t, cfg)
		n := cal.Width * cal.Height
		a, b := make([]byte, n), make([]byte, n)
		plain.Render(a, Worm{}, false)
		scene.Render(b, Worm{}, false)
		// Signed change toward the scene's contrast (darker in bright-field, brighter in
		// dark-field), averaged over a ring of radii r0-r1 about d's centre.
		change := func(d Disc, r0, r1 float64) float64 {
			var s, k float64
			for y := int(d.Y - r1 - 1); y <= int(d.Y+r1+1); y++ {
				for x := int(d.X - r1 - 1); x <= int(d.X+r1+1); x++ {
					r := math.Hypot(float64(x)-d.X, float64(y)-d.Y)
					if r < r0 || r > r1 {
						continue
					}
					v := float64(a[y*cal.Width+x]) - float64(b[y*cal.Width+x])
					if dark {
						v = -v
					}
					s += v
					k++
				}
			}
			return s / k
		}
		agar := 0.0
		for _, v := range a[480*cal.Width+380 : 480*cal.Width+420] {
			agar += float64(v) / 40
		}
		inside, rim, out := change(lawn, 0, lawn.R-10), change(lawn, lawn.R-2, lawn.R), change(lawn, lawn.R+10, lawn.R+30)
		core := change(obst, 0, obst.R-4)
		t.Logf("dark-field %v: agar %.0f; lawn inside %.2f, rim %.2f, outside %.2f grey levels; obstacle %.1f", dark, agar, inside, rim, out, core)
		// Faint: 2-8 % of the agar's level in bright-field, of the way to white in dark-field
		// (and far below the worm's ~85 grey levels of contrast).
		scale := agar
		if dark {
			scale = 255 - agar
		}
		if !(inside > 0.02*scale && inside < 0.08*scale) {
			t.Errorf("dark-field %v: lawn changes the agar by %.2f grey levels, want a faint 2-8 %% of %.0f", dark, inside, scale)
		}
		if !(rim > 1.5*inside) {
			t.Errorf("dark-field %v: lawn rim %.2f not stronger than its inside %.2f", dark, rim, inside)
		}
		if out != 0 {
			t.Errorf("dark-field %v: the agar outside the lawn changed by %.2f", dark, out)
		}
		if want := 30.0; !(core > want) {
			t.Errorf("dark-field %v: obstacle contrast %.1f grey levels, want > %v", dark, core, want)
		}
	}
	bad := DefaultConfig(halfCal())
	bad.Scene.Obstacles = []Disc{{X: 1, Y: math.NaN(), R: 3}}
	if err := bad.Validate(); err == nil {
		t.Error("an obstacle at NaN accepted")
	}
}
