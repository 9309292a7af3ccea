// Package render is the simulated camera: it draws 8-bit grey frames that look like the
// reference rig's (bright agar with low-frequency texture and grain, vignetting, a dark plate
// wall and outside, a few debris specks, per-frame sensor noise, a dark tapered worm with soft
// edges and a lighter core, and a slight brightening while the light is on), so that the tracker
// that runs on real recordings runs on simulated ones unchanged. Config.DarkField (see
// DarkFieldConfig) renders the other polarity: a bright worm and bright debris on dark agar.
//
// Cost: New precomputes the static background (light off and light on) and a table of sensor
// noise; Render copies the background with noise added (8 pixels per machine word, each row
// drawing its noise from a random offset in the table, so the noise is new in every frame) and
// then draws only the worm's bounding box. A Camera holds about 2 bytes per pixel plus 256 KiB.
//
// Pixel (x, y) has its centre at coordinates (x, y) (see raster.go), as in image moments.
package render

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
)

// Worm is what the camera sees of the worm.
type Worm struct {
	// Midline in pixels, head first (about 50 points). Points with a non-finite coordinate are
	// skipped; an empty midline draws no worm (an empty plate).
	Midline [][2]float64
	// Width is the full body width in pixels at each midline point (tapering to the ends).
	Width []float64
}

// noiseTableLen is the minimum length of the sensor noise table (it stays in cache).
const noiseTableLen = 1 << 18

// Camera renders frames for one arena. It is not safe for concurrent use.
type Camera struct {
	cfg   Config
	w, h  int
	k     int    // noise bound in grey levels: noise is in [-k, k]
	bgOff []byte // clean background minus k, light off
	bgOn  []byte // clean background minus k, light on
	noise []byte // sensor noise plus k, in [0, 2k]
	nOff  int    // number of distinct 8-aligned row offsets into noise
	rng   *rand.Rand
	lut   *edgeLUT
	sigma float64 // blur SD including pixel integration
	ras   bodyRaster
	half  []float64
	vig   vignette // for the dark-field worm's white level
}

// New precomputes the camera's static background (light off and on) and its noise table: a
// fraction of a second at 2160x1920 (BenchmarkNew2160x1920), so build one camera per plate and
// reuse it (Reseed gives each episode its own noise).
func New(cfg Config) (*Camera, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cal := cfg.Calibration
	c := &Camera{
		cfg:   cfg,
		w:     cal.Width,
		h:     cal.Height,
		k:     int(math.Ceil(3 * cfg.NoiseSD)),
		rng:   rand.New(rand.NewPCG(cfg.Seed, streamNoiseOffsets)),
		lut:   newEdgeLUT(),
		sigma: math.Sqrt(cfg.Blur*cfg.Blur + 1.0/12),
		vig:   newVignette(cfg),
	}
	clean := background(cfg, c.lut)
	n := c.w * c.h
	c.bgOff = make([]byte, n)
	c.bgOn = make([]byte, n)
	lo, hi := float64(c.k), float64(255-c.k)
	gainOn := 1 + cfg.LightGain
	for i, v := range clean {
		off := math.Min(math.Max(math.Round(float64(v)), lo), hi)
		on := math.Min(math.Max(math.Round(float64(v)*gainOn), lo), hi)
		c.bgOff[i] = byte(int(off) - c.k)
		c.bgOn[i] = byte(int(on) - c.k)
	}
	if c.k > 0 {
		size := max(noiseTableLen, 8*c.w)
		c.noise = make([]byte, size)
		rng := rand.New(rand.NewPCG(cfg.Seed, streamNoiseTable))
		for i := range c.noise {
			v := math.Round(cfg.NoiseSD * rng.NormFloat64())
			v = math.Min(math.Max(v, -float64(c.k)), float64(c.k))
			c.noise[i] = byte(int(v) + c.k)
		}
		c.nOff = (size-c.w)/8 + 1
	}
	return c, nil
}

// Reseed restarts the per-frame sensor noise from seed, as if the camera had been built with
// it; the static scene (texture, debris) stays. A simulator can so reuse one Camera for many
// episodes on the same plate, each with its own reproducible noise.
func (c *Camera) Reseed(seed uint64) {
	c.rng = rand.New(rand.NewPCG(seed, streamNoiseOffsets))
}

// Config returns the camera's configuration.
func (c *Camera) Config() Config { return c.cfg }

// Render draws the frame for this worm and light state into dst (Height rows of Width bytes,
// row-major, no padding). The static scene is the same in every frame; the sensor noise is new
// in every frame and follows from the seed and the number of frames rendered before, so the
// same Config and the same calls give the same frames.
//
// Render panics if len(dst) != Width*Height or len(w.Width) != len(w.Midline).
func (c *Camera) Render(dst []byte, w Worm, light bool) {
	if len(dst) != c.w*c.h {
		panic(fmt.Sprintf("render: dst has %d bytes, frame needs %dx%d = %d", len(dst), c.w, c.h, c.w*c.h))
	}
	if len(w.Width) != len(w.Midline) {
		panic(fmt.Sprintf("render: worm has %d widths for %d midline points", len(w.Width), len(w.Midline)))
	}
	bg := c.bgOff
	if light {
		bg = c.bgOn
	}
	if c.k == 0 {
		copy(dst, bg)
	} else {
		for y := 0; y < c.h; y++ {
			o := 8 * c.rng.IntN(c.nOff)
			addRow(dst[y*c.w:(y+1)*c.w], bg[y*c.w:(y+1)*c.w], c.noise[o:o+c.w])
		}
	}
	c.drawWorm(dst, bg, w, light)
}

// addRow sets d = b + n bytewise, a machine word (8 bytes) at a time, four words per step
// (sliced once so that the compiler drops most bounds checks). No byte sum exceeds 255 (the
// background is at most 255-2k, the noise at most 2k), so no carry crosses a byte.
func addRow(d, b, n []byte) {
	i := 0
	b, n = b[:len(d)], n[:len(d)]
	for ; i+32 <= len(d); i += 32 {
		dd, bb, nn := d[i:i+32], b[i:i+32], n[i:i+32]
		binary.LittleEndian.PutUint64(dd[0:], binary.LittleEndian.Uint64(bb[0:])+binary.LittleEndian.Uint64(nn[0:]))
		binary.LittleEndian.PutUint64(dd[8:], binary.LittleEndian.Uint64(bb[8:])+binary.LittleEndian.Uint64(nn[8:]))
		binary.LittleEndian.PutUint64(dd[16:], binary.LittleEndian.Uint64(bb[16:])+binary.LittleEndian.Uint64(nn[16:]))
		binary.LittleEndian.PutUint64(dd[24:], binary.LittleEndian.Uint64(bb[24:])+binary.LittleEndian.Uint64(nn[24:]))
	}
	for ; i+8 <= len(d); i += 8 {
		binary.LittleEndian.PutUint64(d[i:], binary.LittleEndian.Uint64(b[i:])+binary.LittleEndian.Uint64(n[i:]))
	}
	for ; i < len(d); i++ {
		d[i] = b[i] + n[i]
	}
}

// drawWorm darkens the worm's bounding box of dst: each pixel loses coverage x darkness of the
// clean background beneath it, so the sensor noise stays on the worm too. In dark-field it
// brightens it instead, by coverage x darkness of the way from the background to white.
func (c *Camera) drawWorm(dst, bg []byte, w Worm, light bool) {
	if len(w.Midline) == 0 {
		return
	}
	c.half = c.half[:0]
	for _, wd := range w.Width {
		c.half = append(c.half, wd/2)
	}
	margin := 4*c.sigma + 1
	x0, y0, bw, bh, ok := polylineBounds(w.Midline, c.half, margin, c.w, c.h)
	if !ok {
		return
	}
	c.ras.reset(x0, y0, bw, bh)
	c.ras.addPolyline(w.Midline, c.half, margin)
	dark, core := c.cfg.WormDarkness, c.cfg.WormCore
	k := float64(c.k)
	gain := 1.0
	if light {
		gain += c.cfg.LightGain
	}
	for j := 0; j < bh; j++ {
		row := (y0+j)*c.w + x0
		for i := 0; i < bw; i++ {
			q := j*bw + i
			s := c.ras.s[q]
			if s == outside {
				continue
			}
			cov := c.lut.bandCoverage(float64(s), float64(c.ras.hw[q]), c.sigma)
			if cov < 1.0/1024 {
				continue
			}
			r := math.Min(float64(c.ras.r[q]), 1)
			d := dark * (core + (1-core)*r*r)
			p := row + i
			if c.cfg.DarkField {
				white := math.Min(255, 255*gain*c.vig.at(x0+i, y0+j))
				v := float64(dst[p]) + cov*d*math.Max(0, white-(float64(bg[p])+k))
				dst[p] = byte(math.Min(math.Round(v), 255))
				continue
			}
			v := float64(dst[p]) - cov*d*(float64(bg[p])+k)
			dst[p] = byte(math.Max(math.Round(v), 0))
		}
	}
}
