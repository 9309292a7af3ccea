package track

import (
	"image"
	"math"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
)

// diffImage fills t.mats.diff with how far each pixel of roi is from the background in the
// worm's direction (the "darkening": darker than the background for a dark worm, brighter for
// a bright one; 0 outside the plate mask). Without a background the local background is a
// grey closing of the region (for a bright worm a grey opening). With AutoPolarity still
// undecided, the frame decides it first.
func (t *Tracker) diffImage(f arenas.Frame, roi image.Rectangle) bool {
	if t.cfg.Polarity == AutoPolarity {
		t.resolvePolarity(f, "first frame")
	}
	m := &t.mats
	w, h := roi.Dx(), roi.Dy()
	ensure(&m.diff, h, w, gocv.MatTypeCV8U)
	diff, err := m.diff.DataPtrUint8()
	if err != nil {
		return false
	}
	whole := roi == image.Rect(0, 0, f.Width, f.Height)
	if t.bg != nil && whole {
		// Whole-frame search: OpenCV's saturating subtraction and the plate mask.
		ensure(&m.src, h, w, gocv.MatTypeCV8U)
		src, err := m.src.DataPtrUint8()
		if err != nil {
			return false
		}
		copy(src, f.Pix[:w*h])
		if t.bright {
			gocv.Subtract(m.src, t.bg.mat, &m.diff)
		} else {
			gocv.Subtract(t.bg.mat, m.src, &m.diff)
		}
		if t.usePlate(f) {
			t.ensurePlate()
			gocv.BitwiseAnd(m.diff, m.plate, &m.diff)
		}
		return true
	}
	if t.bg != nil {
		t.bg.diff(diff, f, roi, t.bright)
	} else if t.bright {
		// A bright worm: the frame minus its grey opening (a top-hat), which keeps thin bright
		// things. A near-black surround is dark background here, not a mask.
		ensure(&m.src, h, w, gocv.MatTypeCV8U)
		src, err := m.src.DataPtrUint8()
		if err != nil {
			return false
		}
		for y := range h {
			off := (roi.Min.Y+y)*f.Width + roi.Min.X
			copy(src[y*w:(y+1)*w], f.Pix[off:off+w])
		}
		// The frame minus its grey opening, the opening taken of the frame with dark things
		// (debris, the shadowed edges of tracks) raised to the local level.
		if !t.flattenOther(-1) {
			return false
		}
		gocv.MorphologyExWithParams(m.clip, &m.closed, gocv.MorphOpen, m.kernel, 1, gocv.BorderReplicate)
		gocv.Subtract(m.src, m.closed, &m.diff)
		diff, err = m.diff.DataPtrUint8()
		if err != nil {
			return false
		}
	} else {
		ensure(&m.src, h, w, gocv.MatTypeCV8U)
		src, err := m.src.DataPtrUint8()
		if err != nil {
			return false
		}
		for y := range h {
			off := (roi.Min.Y+y)*f.Width + roi.Min.X
			copy(src[y*w:(y+1)*w], f.Pix[off:off+w])
		}
		dark := 0
		for _, v := range src {
			if v <= maskedLevel {
				dark++
			}
		}
		// Recordings that blank everything but the worm and a margin around it (tierpsy's
		// masked videos) have a large near-black area: those pixels are filled with the bright
		// background level of the rest so that the closing sees no dark surround, and are
		// kept out of the worm afterwards.
		masked := dark > len(src)/5
		if masked {
			clear(t.histo[:])
			valid := 0
			for _, v := range src {
				if v > maskedLevel {
					t.histo[v]++
					valid++
				}
			}
			if valid == 0 {
				return false
			}
			fill := uint8(histQuantile(&t.histo, valid, 0.9))
			for i, v := range src {
				if v <= maskedLevel {
					src[i] = fill
				}
			}
		}
		// The grey closing of the frame minus the frame, the closing taken of the frame with
		// bright things (old tracks in the agar, reflections) lowered to the local level: a
		// closing spreads them, and the agar beside them would look dark.
		if !t.flattenOther(1) {
			return false
		}
		gocv.MorphologyExWithParams(m.clip, &m.closed, gocv.MorphClose, m.kernel, 1, gocv.BorderReplicate)
		gocv.Subtract(m.closed, m.src, &m.diff)
		diff, err = m.diff.DataPtrUint8()
		if err != nil {
			return false
		}
		if masked {
			t.maskDark(f, roi, diff)
		}
	}
	if t.usePlate(f) {
		t.ensurePlate()
		for y := range h {
			span := t.spans[roi.Min.Y+y]
			row := diff[y*w : (y+1)*w]
			x0 := min(w, max(0, span[0]-roi.Min.X))
			x1 := min(w, max(x0, span[1]-roi.Min.X))
			clear(row[:x0])
			clear(row[x1:])
		}
	}
	return true
}

// otherTolerance is how far, in grey levels, a pixel may lie beyond the local median on the
// side away from the worm before flattenOther brings it back.
const otherTolerance = 6

// flattenOther fills t.mats.clip with t.mats.src, its pixels brighter (sign 1, for a dark
// worm) or darker (sign -1, for a bright worm) than the local median by more than
// otherTolerance brought back to that bound. The median's window is the background kernel's:
// three body widths, of which a worm covers too little to move it.
func (t *Tracker) flattenOther(sign int) bool {
	m := &t.mats
	k := m.kernel.Cols() | 1
	gocv.MedianBlur(m.src, &m.med, min(k, 255))
	m.src.CopyTo(&m.clip)
	clip, err := m.clip.DataPtrUint8()
	if err != nil {
		return false
	}
	med, err := m.med.DataPtrUint8()
	if err != nil || len(med) != len(clip) {
		return false
	}
	for i, v := range clip {
		if sign > 0 {
			if b := int(med[i]) + otherTolerance; int(v) > b {
				clip[i] = uint8(min(255, b))
			}
		} else if b := int(med[i]) - otherTolerance; int(v) < b {
			clip[i] = uint8(max(0, b))
		}
	}
	return true
}

// ensurePlate computes the plate mask: per row, the columns [x0, x1) inside the plate circle,
// and the same as a 0/255 matrix.
func (t *Tracker) ensurePlate() {
	c := t.cfg.Calibration
	if len(t.spans) == c.Height {
		return
	}
	t.spans = make([][2]int, c.Height)
	ensure(&t.mats.plate, c.Height, c.Width, gocv.MatTypeCV8U)
	px, err := t.mats.plate.DataPtrUint8()
	for y := range c.Height {
		dy := float64(y) - c.CenterY
		r2 := c.PlateRadius*c.PlateRadius - dy*dy
		if r2 < 0 {
			continue
		}
		r := math.Sqrt(r2)
		x0 := min(c.Width, max(0, int(math.Ceil(c.CenterX-r))))
		x1 := min(c.Width, max(x0, int(math.Floor(c.CenterX+r))+1))
		t.spans[y] = [2]int{x0, x1}
		if err == nil {
			row := px[y*c.Width : (y+1)*c.Width]
			clear(row)
			for x := x0; x < x1; x++ {
				row[x] = 255
			}
		}
	}
}

// maskedLevel is the grey level up to which a pixel of a masked recording counts as masked.
const maskedLevel = 12

// maskDark clears diff where the frame is masked (near black).
func (t *Tracker) maskDark(f arenas.Frame, roi image.Rectangle, diff []uint8) {
	w := roi.Dx()
	for y := range roi.Dy() {
		row := f.Pix[(roi.Min.Y+y)*f.Width+roi.Min.X : (roi.Min.Y+y)*f.Width+roi.Max.X]
		for x, v := range row {
			if v <= maskedLevel {
				diff[y*w+x] = 0
			}
		}
	}
}

// Polarity returns the polarity the tracker works with: DarkWorm or BrightWorm, or
// AutoPolarity while it has not been decided yet (no background and no frame seen).
func (t *Tracker) Polarity() Polarity { return t.cfg.Polarity }

// setPolarity fixes the polarity in use for the rest of the tracker's life.
func (t *Tracker) setPolarity(p Polarity) {
	t.cfg.Polarity = p
	t.bright = p == BrightWorm
}

// Polarity levels: a background (the median grey level of the plate) at least polarityBright
// is bright-field agar, one below polarityDark a dark-field background; in between, the tail
// of strong outliers holding more pixels (the worm, debris, the texture) says which.
const (
	polarityBright = 112
	polarityDark   = 56
)

// resolvePolarity decides AutoPolarity from f (a background frame or the first frame tracked):
// the median grey level inside the plate, leaving out the near-black surround of masked
// recordings, and for a mid-grey level the tail (darker or brighter than the median by more
// than max(2 MinContrast, 6 robust deviations)) holding more pixels. A frame that cannot tell
// (blank, or masked everywhere) leaves it undecided for the next one. The decision is logged.
func (t *Tracker) resolvePolarity(f arenas.Frame, from string) {
	if f.Width <= 0 || f.Height <= 0 || len(f.Pix) < f.Width*f.Height {
		return
	}
	var hist [256]int
	n := 0
	if t.usePlate(f) {
		t.ensurePlate()
		for y := range f.Height {
			sp := t.spans[y]
			for _, v := range f.Pix[y*f.Width+sp[0] : y*f.Width+sp[1]] {
				hist[v]++
			}
			n += sp[1] - sp[0]
		}
	} else {
		for _, v := range f.Pix[:f.Width*f.Height] {
			hist[v]++
		}
		n = f.Width * f.Height
	}
	if n == 0 {
		return
	}
	// A masked recording (bright-field with everything but the worm's surroundings blanked):
	// its near-black pixels are no background level.
	black := 0
	for v := range maskedLevel + 1 {
		black += hist[v]
	}
	maskedPx := 0
	if black > n/5 {
		maskedPx = black
		for v := range maskedLevel + 1 {
			hist[v] = 0
		}
		n -= black
		if n == 0 {
			return
		}
	}
	level := histQuantile(&hist, n, 0.5)
	var dev [256]int
	for v, c := range hist {
		dev[max(v-level, level-v)] += c
	}
	mad := histQuantile(&dev, n, 0.5)
	tol := max(int(math.Ceil(2*t.cfg.MinContrast)), 9*mad) // 6 robust deviations of 1.48 MAD
	darkTail, brightTail := 0, 0
	for v, c := range hist {
		switch {
		case v < level-tol:
			darkTail += c
		case v > level+tol:
			brightTail += c
		}
	}
	var p Polarity
	switch {
	case level >= polarityBright:
		p = DarkWorm
	case level < polarityDark:
		p = BrightWorm
	case darkTail > brightTail:
		p = DarkWorm
	case brightTail > darkTail:
		p = BrightWorm
	default:
		return
	}
	t.setPolarity(p)
	t.log.Info("worm polarity decided", "polarity", p.String(), "from", from, "background_level", level,
		"dark_tail_px", darkTail, "bright_tail_px", brightTail, "tail_tolerance", tol, "masked_px", maskedPx)
}
