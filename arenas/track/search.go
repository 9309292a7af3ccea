package track

import (
	"image"
	"math"
	"sort"
	"time"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
)

// usePlate reports whether the plate mask applies to f (the frame has the calibrated size).
func (t *Tracker) usePlate(f arenas.Frame) bool {
	c := t.cfg.Calibration
	return t.cfg.PlateMask && f.Width == c.Width && f.Height == c.Height
}

// candidate is a connected dark blob of the detection mask.
type candidate struct {
	label      int
	area       int
	x, y, w, h int
}

// segment looks for the worm in roi. edge reports that the chosen blob touches the region's
// border (the worm may extend beyond it).
func (t *Tracker) segment(f arenas.Frame, roi image.Rectangle, now time.Time) (Result, image.Rectangle, bool) {
	w, h := roi.Dx(), roi.Dy()
	if w < 3 || h < 3 {
		return t.lost(now, NoWorm), image.Rectangle{}, false
	}
	if !t.diffImage(f, roi) {
		return t.lost(now, NoWorm), image.Rectangle{}, false
	}
	m := &t.mats
	gocv.GaussianBlur(m.diff, &m.blur, image.Pt(3, 3), 0, 0, gocv.BorderReplicate)
	blur, err := m.blur.DataPtrUint8()
	if err != nil {
		return t.lost(now, BadFrame), image.Rectangle{}, false
	}
	thr := t.detectionThreshold(blur)
	gocv.Threshold(m.blur, &m.bin, float32(thr)-0.5, 255, gocv.ThresholdBinary)
	// 32-bit labels: an adversarial frame can hold more than 65535 blobs.
	n := gocv.ConnectedComponentsWithStatsWithParams(m.bin, &m.labels, &m.stats, &m.cents, 8, gocv.MatTypeCV32S, gocv.CCL_DEFAULT)
	stats, err := int32s(&m.stats)
	if err != nil || len(stats) < 5*n {
		return t.lost(now, BadFrame), image.Rectangle{}, false
	}
	expA := t.cfg.expectedArea()
	minA := t.cfg.MinAreaRatio * expA
	maxA := t.cfg.MaxAreaRatio * expA * 1.5
	maxSide := 1.6 * t.cfg.BodyLength * t.cfg.MaxLengthRatio
	var cands []candidate
	for l := 1; l < n; l++ {
		st := stats[5*l : 5*l+5]
		c := candidate{
			label: l,
			x:     int(st[gocv.CC_STAT_LEFT]),
			y:     int(st[gocv.CC_STAT_TOP]),
			w:     int(st[gocv.CC_STAT_WIDTH]),
			h:     int(st[gocv.CC_STAT_HEIGHT]),
			area:  int(st[gocv.CC_STAT_AREA]),
		}
		if float64(c.area) < minA || float64(c.area) > maxA || float64(max(c.w, c.h)) > maxSide {
			continue
		}
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		return t.lost(now, NoWorm), image.Rectangle{}, false
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].area > cands[j].area })
	best := cands[0]
	edge := best.x == 0 || best.y == 0 || best.x+best.w == w || best.y+best.h == h
	where := image.Rect(roi.Min.X+best.x, roi.Min.Y+best.y, roi.Min.X+best.x+best.w, roi.Min.Y+best.y+best.h)
	if len(cands) > 1 && t.wormLike(cands[1], best) {
		r := t.lost(now, TwoWorms)
		return r, where, edge
	}
	labels, err := int32s(&m.labels)
	if err != nil || len(labels) != w*h {
		return t.lost(now, BadFrame), image.Rectangle{}, false
	}
	res := t.shape(best, labels, blur, w, roi, thr, now)
	if where.Min.X <= 0 || where.Min.Y <= 0 || where.Max.X >= f.Width || where.Max.Y >= f.Height {
		// Cut by the frame's edge: the worm's length and ends are unknown.
		res.Confidence = math.Min(res.Confidence, 0.4)
		res.CutByEdge = true
	}
	return res, where, edge
}

// wormLike reports whether the second blob c could be another worm next to the best one:
// comparable area and an elongated extent.
func (t *Tracker) wormLike(c, best candidate) bool {
	return float64(c.area) >= 0.5*float64(best.area) &&
		float64(c.area) >= 2*t.cfg.MinAreaRatio*t.cfg.expectedArea() &&
		float64(max(c.w, c.h)) >= 0.45*t.refLen
}

// detectionThreshold is the darkening above which a pixel may be worm: MinContrast or NoiseK
// robust deviations of the difference image above its median, whichever is larger.
func (t *Tracker) detectionThreshold(diff []uint8) float64 {
	clear(t.histo[:])
	step := 1
	if len(diff) > 1<<16 {
		step = 7
	}
	n := 0
	for i := 0; i < len(diff); i += step {
		t.histo[diff[i]]++
		n++
	}
	med := histQuantile(&t.histo, n, 0.5)
	// Deviation from the lower half: the worm may cover a good part of a cropped image and
	// sits in the upper tail.
	lo := histQuantile(&t.histo, n, 0.2)
	sigma := math.Max(0.5, float64(med-lo)/0.8416)
	return math.Max(t.cfg.MinContrast, float64(med)+t.cfg.NoiseK*sigma)
}
