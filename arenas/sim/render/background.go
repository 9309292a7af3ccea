package render

import (
	"math"
	"math/rand/v2"
)

// Streams of the seeded generator, one per use, so that changing one part of the look does not
// reshuffle the others.
const (
	streamTexture = 1 + iota
	streamGrain
	streamDebris
	streamNoiseTable
	streamNoiseOffsets
)

// background computes the clean static frame (no worm, no sensor noise, light off) as floating
// grey levels, row-major.
func background(cfg Config, lut *edgeLUT) []float32 {
	cal := cfg.Calibration
	w, h := cal.Width, cal.Height
	bg := make([]float32, w*h)
	tex := newTexture(cfg, w, h)
	grain := rand.New(rand.NewPCG(cfg.Seed, streamGrain))
	sigma := math.Sqrt(cfg.Blur*cfg.Blur + 1.0/12)

	// Vignetting about the frame centre (the optical axis), reaching cfg.Vignetting at the corners.
	fcx, fcy := float64(w-1)/2, float64(h-1)/2
	corner2 := fcx*fcx + fcy*fcy
	if corner2 == 0 {
		corner2 = 1
	}
	wall, rimOut := cfg.WallRadius, cfg.WallRadius+cfg.RimWidth
	// Inside this radius the agar is undisturbed by the wall's blur and the meniscus.
	edgeFree := wall - 7*sigma
	if cfg.Meniscus > 0 {
		edgeFree = math.Min(edgeFree, wall-12*cfg.MeniscusWidth)
	}
	edgeFree2 := math.Max(edgeFree, 0) * math.Max(edgeFree, 0)
	// Grain: standard normals drawn from a table by random 16-bit indices (4 per draw).
	normals := make([]float32, 1<<16)
	for i := range normals {
		normals[i] = float32(grain.NormFloat64())
	}
	var bits uint64
	nbits := 0
	for y := 0; y < h; y++ {
		dyc := float64(y) - cal.CenterY
		dyf := float64(y) - fcy
		for x := 0; x < w; x++ {
			if nbits == 0 {
				bits, nbits = grain.Uint64(), 4
			}
			g := float64(normals[bits&0xffff])
			bits >>= 16
			nbits--
			dxc := float64(x) - cal.CenterX
			r2 := dxc*dxc + dyc*dyc
			dxf := float64(x) - fcx
			vig := 1 - cfg.Vignetting*(dxf*dxf+dyf*dyf)/corner2
			agar := cfg.AgarLevel + tex.at(x, y) + cfg.GrainSD*g
			if r2 < edgeFree2 {
				bg[y*w+x] = float32(agar * vig)
				continue
			}
			// Near or beyond the wall: shares of agar, wall ring and outside, blurred.
			r := math.Sqrt(r2)
			agarShare := lut.phi((wall - r) / sigma)
			beyondRim := lut.phi((r - rimOut) / sigma)
			rimShare := 1 - agarShare - beyondRim
			if rimShare < 0 {
				rimShare = 0
			}
			v := cfg.RimLevel*rimShare + cfg.OutsideLevel*beyondRim
			if agarShare > 0 {
				if cfg.MeniscusWidth > 0 && r < wall {
					if cfg.DarkField {
						// The curved surface scatters: the agar glows towards the wall.
						agar += cfg.Meniscus * math.Exp(-(wall-r)/cfg.MeniscusWidth) * math.Max(0, 255-agar)
					} else {
						agar *= 1 - cfg.Meniscus*math.Exp(-(wall-r)/cfg.MeniscusWidth)
					}
				}
				v += agar * agarShare
			}
			bg[y*w+x] = float32(v * vig)
		}
	}
	addDebris(cfg, lut, sigma, bg)
	addScene(cfg, lut, sigma, bg)
	return bg
}

// vignette is the optics' brightness falloff: 1 at the frame centre, 1-Vignetting at the
// corners, falling with the squared distance from the centre.
type vignette struct {
	fcx, fcy, corner2, amount float64
}

func newVignette(cfg Config) vignette {
	w, h := cfg.Calibration.Width, cfg.Calibration.Height
	v := vignette{fcx: float64(w-1) / 2, fcy: float64(h-1) / 2, amount: cfg.Vignetting}
	v.corner2 = v.fcx*v.fcx + v.fcy*v.fcy
	if v.corner2 == 0 {
		v.corner2 = 1
	}
	return v
}

func (v vignette) at(x, y int) float64 {
	dx, dy := float64(x)-v.fcx, float64(y)-v.fcy
	return 1 - v.amount*(dx*dx+dy*dy)/v.corner2
}

// texture is the agar's low-frequency brightness field: three octaves of smooth value noise
// (wavelengths TextureScale, /2, /4), sampled on a coarse lattice and interpolated bilinearly,
// scaled to a standard deviation of TextureAmplitude grey levels.
type texture struct {
	step   int
	cw, ch int
	v      []float32
}

func newTexture(cfg Config, w, h int) *texture {
	t := &texture{step: max(1, int(cfg.TextureScale/32))}
	t.cw, t.ch = w/t.step+2, h/t.step+2
	t.v = make([]float32, t.cw*t.ch)
	if cfg.TextureAmplitude == 0 {
		return t
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, streamTexture))
	field := make([]float64, len(t.v))
	amp := 1.0
	for oct := 0; oct < 3; oct++ {
		cell := cfg.TextureScale / math.Pow(2, float64(oct))
		gw := int(float64(w)/cell) + 3
		gh := int(float64(h)/cell) + 3
		grid := make([]float64, gw*gh)
		for i := range grid {
			grid[i] = rng.NormFloat64()
		}
		for j := 0; j < t.ch; j++ {
			fy := float64(j*t.step) / cell
			iy := int(fy)
			uy := smooth(fy - float64(iy))
			for i := 0; i < t.cw; i++ {
				fx := float64(i*t.step) / cell
				ix := int(fx)
				ux := smooth(fx - float64(ix))
				ix, iy1 := min(ix, gw-2), min(iy, gh-2)
				g := grid[iy1*gw+ix:]
				top := g[0]*(1-ux) + g[1]*ux
				bot := g[gw]*(1-ux) + g[gw+1]*ux
				field[j*t.cw+i] += amp * (top*(1-uy) + bot*uy)
			}
		}
		amp /= 2
	}
	var sum, sum2 float64
	for _, f := range field {
		sum += f
		sum2 += f * f
	}
	n := float64(len(field))
	mean := sum / n
	sd := math.Sqrt(math.Max(sum2/n-mean*mean, 1e-12))
	for i, f := range field {
		t.v[i] = float32((f - mean) / sd * cfg.TextureAmplitude)
	}
	return t
}

// smooth is the quintic fade 6u^5 - 15u^4 + 10u^3 (smooth value noise without grid artefacts).
func smooth(u float64) float64 { return u * u * u * (u*(u*6-15) + 10) }

func (t *texture) at(x, y int) float64 {
	i, j := x/t.step, y/t.step
	fx := float64(x-i*t.step) / float64(t.step)
	fy := float64(y-j*t.step) / float64(t.step)
	g := t.v[j*t.cw+i:]
	top := float64(g[0])*(1-fx) + float64(g[1])*fx
	bot := float64(g[t.cw])*(1-fx) + float64(g[t.cw+1])*fx
	return top*(1-fy) + bot*fy
}

// addDebris darkens bg (brightens it in dark-field, where debris scatters the light) with
// cfg.DebrisCount pieces of debris scattered uniformly over the usable plate: mostly small
// round or slightly elongated specks (log-normal radius around DebrisRadius), and a
// DebrisLargeFraction share of worm-sized-ish curved blobs.
func addDebris(cfg Config, lut *edgeLUT, sigma float64, bg []float32) {
	cal := cfg.Calibration
	vig := newVignette(cfg)
	rng := rand.New(rand.NewPCG(cfg.Seed, streamDebris))
	var ras bodyRaster
	margin := 4*sigma + 1
	for n := 0; n < cfg.DebrisCount; n++ {
		rad := cal.PlateRadius * 0.97 * math.Sqrt(rng.Float64())
		ang := 2 * math.Pi * rng.Float64()
		cx, cy := cal.CenterX+rad*math.Cos(ang), cal.CenterY+rad*math.Sin(ang)
		dir := 2 * math.Pi * rng.Float64()
		dark := cfg.DebrisDarkness * (1 + 2*rng.Float64()) / 3
		var mid [][2]float64
		var half []float64
		if rng.Float64() < cfg.DebrisLargeFraction {
			// A curved, tapered blob: 7 points along an arc.
			length := cfg.WormLengthHint * (0.25 + 0.45*rng.Float64())
			hw := cfg.WormLengthHint / 24 * (1 + 0.5*rng.Float64())
			bend := (rng.Float64() - 0.5) * 2.5 // total turn in radians
			const pts = 7
			step := length / (pts - 1)
			x, y, a := cx-length/2*math.Cos(dir), cy-length/2*math.Sin(dir), dir-bend/2
			for i := 0; i < pts; i++ {
				mid = append(mid, [2]float64{x, y})
				half = append(half, hw*(0.35+0.65*math.Sin(math.Pi*float64(i)/(pts-1))))
				x += step * math.Cos(a)
				y += step * math.Sin(a)
				a += bend / (pts - 1)
			}
		} else {
			r := cfg.DebrisRadius * math.Exp(0.4*rng.NormFloat64())
			e := r * 1.5 * rng.Float64() / 2
			mid = [][2]float64{{cx - e*math.Cos(dir), cy - e*math.Sin(dir)}, {cx + e*math.Cos(dir), cy + e*math.Sin(dir)}}
			half = []float64{r, r}
		}
		x0, y0, bw, bh, ok := polylineBounds(mid, half, margin, cal.Width, cal.Height)
		if !ok {
			continue
		}
		ras.reset(x0, y0, bw, bh)
		ras.addPolyline(mid, half, margin)
		for j := 0; j < bh; j++ {
			for i := 0; i < bw; i++ {
				k := j*bw + i
				if ras.s[k] == outside {
					continue
				}
				cov := lut.bandCoverage(float64(ras.s[k]), float64(ras.hw[k]), sigma)
				p := (y0+j)*cal.Width + x0 + i
				if cfg.DarkField {
					white := 255 * vig.at(x0+i, y0+j)
					bg[p] += float32(dark * cov * math.Max(0, white-float64(bg[p])))
					continue
				}
				bg[p] *= float32(1 - dark*cov)
			}
		}
	}
}
