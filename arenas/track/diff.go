package track

import (
	"image"
	"math"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
)

// diffImage fills t.mats.diff with how much darker than the background each pixel of roi is
// (0 outside the plate mask). Without a background the local background is a grey closing
// of the region.
func (t *Tracker) diffImage(f arenas.Frame, roi image.Rectangle) bool {
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
		gocv.Subtract(t.bg.mat, m.src, &m.diff)
		if t.usePlate(f) {
			t.ensurePlate()
			gocv.BitwiseAnd(m.diff, m.plate, &m.diff)
		}
		return true
	}
	if t.bg != nil {
		t.bg.diff(diff, f, roi)
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
		gocv.MorphologyExWithParams(m.src, &m.closed, gocv.MorphClose, m.kernel, 1, gocv.BorderReplicate)
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
