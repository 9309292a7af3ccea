package render

import (
	"fmt"
	"math"
)

// Disc is a disc in frame pixels.
type Disc struct {
	X, Y, R float64
}

// Scene is what an episode puts on the plate, in frame pixels. Both are static: they are drawn
// into the background once, in New.
//
// A lawn is a faint disc with a slightly stronger ring at its edge, where bacteria grow
// thickest: in bright-field a little darker than the agar (LawnContrast inside, twice that in
// the rim), in dark-field a little brighter (the bacteria scatter). Obstacles are pieces of
// debris the worm cannot cross: solid blobs of high contrast (ObstacleContrast), darker than
// the worm in bright-field, brighter in dark-field, with a slightly irregular outline.
type Scene struct {
	Lawns     []Disc
	Obstacles []Disc
}

// Scene contrasts: fractions of the agar's brightness (bright-field) or of the way to white
// (dark-field).
const (
	LawnContrast     = 0.04
	ObstacleContrast = 0.75
)

func (s Scene) validate() error {
	for _, set := range []struct {
		name string
		ds   []Disc
	}{{"lawn", s.Lawns}, {"obstacle", s.Obstacles}} {
		for i, d := range set.ds {
			if !(d.R > 0) || d.R > 1<<16 || math.IsNaN(d.X) || math.IsNaN(d.Y) || math.IsInf(d.X, 0) || math.IsInf(d.Y, 0) {
				return fmt.Errorf("render: Scene %s %d (%v, %v, radius %v) must be finite with a radius within (0, 65536]", set.name, i, d.X, d.Y, d.R)
			}
		}
	}
	return nil
}

// addScene draws the scene into the clean background bg.
func addScene(cfg Config, lut *edgeLUT, sigma float64, bg []float32) {
	vig := newVignette(cfg)
	rim := math.Max(2, 0.01*cfg.Calibration.PxPerCM) // a lawn's rim, ~0.1 mm
	for _, d := range cfg.Scene.Lawns {
		eachPixel(cfg, d, rim+4*sigma, func(p, x, y int, r float64) {
			in := lut.phi((d.R - r) / sigma)
			ring := lut.phi((d.R-r)/sigma) - lut.phi((d.R-rim-r)/sigma)
			shade(cfg, bg, p, vig.at(x, y), LawnContrast*(in+ring))
		})
	}
	for _, d := range cfg.Scene.Obstacles {
		eachPixel(cfg, d, 4*sigma+1, func(p, x, y int, r float64) {
			// A slightly irregular outline: the radius wobbles by 10 % with the angle.
			a := math.Atan2(float64(y)-d.Y, float64(x)-d.X)
			rr := d.R * (1 + 0.06*math.Sin(3*a+d.X) + 0.04*math.Sin(5*a+d.Y))
			shade(cfg, bg, p, vig.at(x, y), ObstacleContrast*lut.phi((rr-r)/sigma))
		})
	}
}

// eachPixel calls fn for every pixel within d.R+margin of d's centre, with its index, its
// coordinates and its distance from the centre.
func eachPixel(cfg Config, d Disc, margin float64, fn func(p, x, y int, r float64)) {
	w, h := cfg.Calibration.Width, cfg.Calibration.Height
	reach := d.R*1.1 + margin
	x0, x1 := max(0, int(math.Floor(d.X-reach))), min(w-1, int(math.Ceil(d.X+reach)))
	y0, y1 := max(0, int(math.Floor(d.Y-reach))), min(h-1, int(math.Ceil(d.Y+reach)))
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			r := math.Hypot(float64(x)-d.X, float64(y)-d.Y)
			if r <= reach {
				fn(y*w+x, x, y, r)
			}
		}
	}
}

// shade darkens pixel p of bg by the fraction k (bright-field) or brightens it by k of the way
// to the vignetted white (dark-field).
func shade(cfg Config, bg []float32, p int, vig, k float64) {
	if k <= 0 {
		return
	}
	k = math.Min(k, 1)
	if cfg.DarkField {
		bg[p] += float32(k * math.Max(0, 255*vig-float64(bg[p])))
		return
	}
	bg[p] *= float32(1 - k)
}
