package render

import (
	"fmt"
	"math"

	"github.com/optoloop/optoloop/arenas"
)

// Config sets how the simulated camera looks. Grey levels are 8-bit values (0 black, 255
// white); lengths are in pixels of the frame; fractions are of the local clean agar brightness.
// DefaultConfig gives the look of the reference rig scaled to the calibration.
type Config struct {
	// Calibration is the camera and plate being imaged (frame size, scale, plate centre and
	// usable radius).
	Calibration arenas.Calibration

	// Seed fixes every random choice: the agar texture, the debris and the per-frame sensor
	// noise. Two cameras with the same Config render identical frame sequences.
	Seed uint64

	// AgarLevel is the clean agar grey level at the optical centre before vignetting (0-255).
	AgarLevel float64
	// TextureAmplitude is the standard deviation, in grey levels, of the agar's low-frequency
	// brightness texture (uneven thickness, scratches of the surface).
	TextureAmplitude float64
	// TextureScale is the texture's largest wavelength in pixels (finer octaves at 1/2 and 1/4).
	TextureScale float64
	// GrainSD is the standard deviation, in grey levels, of the static pixel-scale grain of the
	// agar (fixed from frame to frame, unlike the sensor noise).
	GrainSD float64
	// Vignetting is the fractional brightness lost at the frame corners relative to the frame
	// centre (falls off with the squared distance from the centre).
	Vignetting float64

	// WallRadius is the distance in pixels from the plate centre to the inner edge of the plate
	// wall (the dark rim). It is at least the calibration's PlateRadius (the usable area).
	WallRadius float64
	// RimWidth is the width in pixels of the dark wall ring.
	RimWidth float64
	// RimLevel and OutsideLevel are the grey levels of the wall ring and beyond it.
	RimLevel     float64
	OutsideLevel float64
	// Meniscus is the fractional darkening of the agar right at the wall, decaying inwards over
	// MeniscusWidth pixels.
	Meniscus      float64
	MeniscusWidth float64

	// Scene is what an episode puts on the plate (a food lawn, debris the worm cannot cross),
	// drawn into the static background; empty by default.
	Scene Scene

	// DebrisCount is the number of debris specks on the usable plate area.
	DebrisCount int
	// DebrisRadius is the median radius in pixels of a small speck (radii are log-normal with
	// a log-SD of 0.4, so nearly all lie between half and twice it).
	DebrisRadius float64
	// DebrisLargeFraction is the share of debris that are worm-sized-ish elongated dark blobs
	// (lengths 0.25-0.7 of WormLengthHint, widths 1-1.5 of the worm's width) instead of specks.
	DebrisLargeFraction float64
	// DebrisDarkness is the largest fractional darkening of a piece of debris (each draws
	// uniformly between a third of it and it).
	DebrisDarkness float64
	// WormLengthHint is a typical worm length in pixels, used only to size the large debris.
	WormLengthHint float64

	// NoiseSD is the standard deviation in grey levels of the per-frame sensor noise. The noise
	// is Gaussian clipped at +-3 SD; the background is kept at least 3 SD away from 0 and 255
	// so that the noise never saturates.
	NoiseSD float64

	// WormDarkness is the fractional darkening at the worm's body wall (0-1): a fully covered
	// pixel there shows (1-WormDarkness) times the agar brightness beneath it.
	WormDarkness float64
	// WormCore is the darkening on the midline relative to the body wall (0-1]: below 1 the
	// interior is lighter than the wall, as in bright-field images of a worm. The darkening
	// profile across the body is WormDarkness*(WormCore + (1-WormCore)*(r/halfwidth)^2).
	WormCore float64

	// LightGain is the fractional change of the whole frame's brightness while the light is on
	// (the stimulation LED leaking into the camera); a few per cent, may be negative.
	LightGain float64

	// Blur is the standard deviation in pixels of the optics' Gaussian blur applied to the worm,
	// the debris and the plate rim (pixel area integration is added to it).
	Blur float64

	// DarkField renders dark-field illumination (the light reaches the lens only where something
	// scatters it, as on the reference study's rig): the agar is dark, and the worm, the debris
	// and the meniscus are brighter than it. The grey levels keep their meaning (AgarLevel is
	// then low, at most 128; DarkFieldConfig gives the look) and each fractional darkening of
	// bright-field becomes a brightening by that fraction of the way from the agar to white
	// (255, dimmed by the vignetting and scaled by LightGain): a fully covered pixel at the
	// worm's body wall shows agar + WormDarkness*(white-agar), the midline WormCore times that
	// brightening. False (the default) is bright-field: a dark worm on bright agar.
	DarkField bool
}

// DefaultConfig returns the reference rig's look for cal: bright agar (grey ~170) with soft
// texture, 18 % vignetting, a dark wall a little beyond the usable plate, ten debris specks of
// which one in ten is worm-sized, sensor noise of SD 2, a worm darkening the agar by about half
// with a lighter core, and a 3 % brightening while the light is on. Sizes given in physical
// units are scaled with cal.PxPerCM (the reference is 540 px/cm).
func DefaultConfig(cal arenas.Calibration) Config {
	s := cal.PxPerCM / 540
	if !(s > 0) {
		s = 1
	}
	return Config{
		Calibration:         cal,
		Seed:                1,
		AgarLevel:           170,
		TextureAmplitude:    4,
		TextureScale:        math.Max(8, 400*s),
		GrainSD:             1.2,
		Vignetting:          0.18,
		WallRadius:          cal.PlateRadius + math.Max(2, 0.2*cal.PxPerCM),
		RimWidth:            math.Max(2, 0.06*cal.PxPerCM),
		RimLevel:            45,
		OutsideLevel:        30,
		Meniscus:            0.12,
		MeniscusWidth:       math.Max(2, 0.1*cal.PxPerCM),
		DebrisCount:         10,
		DebrisRadius:        math.Max(0.7, 2*s),
		DebrisLargeFraction: 0.1,
		DebrisDarkness:      0.5,
		WormLengthHint:      0.1 * cal.PxPerCM,
		NoiseSD:             2,
		WormDarkness:        0.5,
		WormCore:            0.8,
		LightGain:           0.03,
		Blur:                0.8,
	}
}

// DarkFieldConfig returns the dark-field look (Config.DarkField) for cal: dark agar (grey ~28)
// with faint texture and grain, a bright plate wall (it scatters the light) on a dark outside,
// a meniscus glowing towards the wall, the worm and the debris bright (a fully covered pixel
// at the body wall 40 % of the way to white: a contrast of ~85 grey levels, as bright-field's
// dark worm), and otherwise DefaultConfig's sizes, noise, vignetting and blur.
func DarkFieldConfig(cal arenas.Calibration) Config {
	c := DefaultConfig(cal)
	c.DarkField = true
	c.AgarLevel = 28
	c.TextureAmplitude = 2
	c.GrainSD = 0.8
	c.RimLevel = 120
	c.OutsideLevel = 12
	c.Meniscus = 0.1
	c.WormDarkness = 0.4
	return c
}

// darkFieldMaxAgar is the brightest agar DarkField accepts: above it the worm would hardly be
// brighter than the agar.
const darkFieldMaxAgar = 128

// maxPixels bounds the frame size (a camera holds about 2 bytes per pixel, and New briefly 6).
const maxPixels = 1 << 26

// inRange reports lo <= v <= hi; NaN is never in range.
func inRange(v, lo, hi float64) bool { return v >= lo && v <= hi }

// Validate reports the first field that makes c unusable, naming it.
func (c Config) Validate() error {
	if err := c.Calibration.Validate(); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	if n := c.Calibration.Width * c.Calibration.Height; n > maxPixels {
		return fmt.Errorf("render: Calibration frame size %dx%d above the renderer's %d pixels",
			c.Calibration.Width, c.Calibration.Height, maxPixels)
	}
	checks := []struct {
		name   string
		v      float64
		lo, hi float64
	}{
		{"AgarLevel", c.AgarLevel, 1, 255},
		{"TextureAmplitude", c.TextureAmplitude, 0, 64},
		{"TextureScale", c.TextureScale, 2, 1 << 16},
		{"GrainSD", c.GrainSD, 0, 32},
		{"Vignetting", c.Vignetting, 0, 0.95},
		{"WallRadius", c.WallRadius, c.Calibration.PlateRadius, 1 << 17},
		{"RimWidth", c.RimWidth, 0, 1 << 16},
		{"RimLevel", c.RimLevel, 0, 255},
		{"OutsideLevel", c.OutsideLevel, 0, 255},
		{"Meniscus", c.Meniscus, 0, 0.95},
		{"MeniscusWidth", c.MeniscusWidth, 0, 1 << 16},
		{"DebrisCount", float64(c.DebrisCount), 0, 100000},
		{"DebrisRadius", c.DebrisRadius, 0.1, 1000},
		{"DebrisLargeFraction", c.DebrisLargeFraction, 0, 1},
		{"DebrisDarkness", c.DebrisDarkness, 0, 1},
		{"WormLengthHint", c.WormLengthHint, 0, 1 << 16},
		{"NoiseSD", c.NoiseSD, 0, 20},
		{"WormDarkness", c.WormDarkness, 0, 1},
		{"WormCore", c.WormCore, 0, 1},
		{"LightGain", c.LightGain, -0.5, 0.5},
		{"Blur", c.Blur, 0, 20},
	}
	for _, ch := range checks {
		if !inRange(ch.v, ch.lo, ch.hi) {
			return fmt.Errorf("render: %s %v out of range [%v, %v]", ch.name, ch.v, ch.lo, ch.hi)
		}
	}
	if c.DarkField && c.AgarLevel > darkFieldMaxAgar {
		return fmt.Errorf("render: AgarLevel %v too bright for DarkField (at most %v: the worm must be brighter than the agar)", c.AgarLevel, darkFieldMaxAgar)
	}
	if err := c.Scene.validate(); err != nil {
		return err
	}
	if c.WormCore == 0 {
		return fmt.Errorf("render: WormCore must be above 0")
	}
	if c.DebrisCount > 0 && c.DebrisLargeFraction > 0 && !(c.WormLengthHint > 0) {
		return fmt.Errorf("render: WormLengthHint must be positive when large debris are drawn")
	}
	return nil
}
