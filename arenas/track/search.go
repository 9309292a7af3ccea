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
	dark       float64 // mean darkening over the blob
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
	lo, hi := t.sizeRange()
	minA := t.cfg.MinAreaRatio * areaOf(lo)
	maxA := t.cfg.MaxAreaRatio * areaOf(hi) * 1.5
	maxSide := 1.6 * hi * t.cfg.MaxLengthRatio
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
	labels, err := int32s(&m.labels)
	if err != nil || len(labels) != w*h {
		return t.lost(now, BadFrame), image.Rectangle{}, false
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].area > cands[j].area })
	// The blobs that could be a worm: of comparable area to the largest, elongated and about as
	// dark (a faint out-of-focus part of the worm, or agar texture, is not a second worm).
	cands = cands[:min(len(cands), 8)]
	for i := range cands {
		cands[i].dark = meanOver(cands[i], labels, blur, w)
	}
	best := 0
	// Continuity: a worm seen within ReacquireAfter is the blob of about its area nearest its
	// last whole, free position (a second worm entering the field neither steals its identity
	// nor hides it).
	follow := t.haveLast && now.Sub(t.lastSeen) <= t.cfg.ReacquireAfter && t.lastArea > 0
	if follow {
		lx, ly := t.anchorC[0]-float64(roi.Min.X), t.anchorC[1]-float64(roi.Min.Y)
		bestD := math.Inf(1)
		for i, c := range cands {
			// A blob of about the size the worm had (the worm, not a speck beside it).
			a := float64(c.area)
			if a < 0.5*t.lastArea || a > 2*t.lastArea {
				continue
			}
			if d := c.distTo(lx, ly); d < bestD {
				best, bestD = i, d
			}
		}
	}
	chosen := cands[best]
	others := 0
	for i, c := range cands {
		if i != best && t.wormLike(c, chosen) {
			others++
		}
	}
	edge := chosen.x == 0 || chosen.y == 0 || chosen.x+chosen.w == w || chosen.y+chosen.h == h
	where := image.Rect(roi.Min.X+chosen.x, roi.Min.Y+chosen.y, roi.Min.X+chosen.x+chosen.w, roi.Min.Y+chosen.y+chosen.h)
	if others > 0 && !follow {
		// Two worms at acquisition: which one is ours is unknown.
		r := t.lost(now, TwoWorms)
		return r, where, edge
	}
	cut := where.Min.X <= 0 || where.Min.Y <= 0 || where.Max.X >= f.Width || where.Max.Y >= f.Height
	res := t.shape(chosen, labels, blur, w, roi, thr, cut, now)
	if others > 0 {
		res.OtherWorm = true
	}
	if cut {
		// Cut by the frame's edge: the worm's length and ends are unknown.
		res.Confidence = math.Min(res.Confidence, 0.4)
		res.CutByEdge = true
		if res.OK {
			res.Flags = append(res.Flags, "cut by edge")
		}
	}
	return res, where, edge
}

// distTo is the distance from (x, y) to the candidate's bounding box (0 inside it).
func (c candidate) distTo(x, y float64) float64 {
	dx := math.Max(0, math.Max(float64(c.x)-x, x-float64(c.x+c.w)))
	dy := math.Max(0, math.Max(float64(c.y)-y, y-float64(c.y+c.h)))
	return math.Hypot(dx, dy)
}

// meanOver is the mean of img over the candidate's pixels (labels and img have stride w).
func meanOver(c candidate, labels []int32, img []uint8, w int) float64 {
	var sum, n float64
	for y := c.y; y < c.y+c.h; y++ {
		row := labels[y*w+c.x : y*w+c.x+c.w]
		px := img[y*w+c.x : y*w+c.x+c.w]
		for x, l := range row {
			if int(l) == c.label {
				sum += float64(px[x])
				n++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return sum / n
}

// wormLike reports whether blob c could be another worm next to the worm ref: comparable area,
// an elongated extent of a worm's length and a comparable contrast.
func (t *Tracker) wormLike(c, ref candidate) bool {
	lo, _ := t.sizeRange()
	return float64(c.area) >= 0.5*float64(ref.area) &&
		float64(c.area) >= 2*t.cfg.MinAreaRatio*areaOf(lo) &&
		float64(max(c.w, c.h)) >= 0.45*math.Max(lo, math.Sqrt(10*float64(ref.area)/0.8)) &&
		c.dark >= 0.6*ref.dark
}

// detectionThreshold is the darkening above which a pixel may be worm: MinContrast or NoiseK
// robust deviations of the difference image above its median, whichever is larger.
func (t *Tracker) detectionThreshold(diff []uint8) float64 {
	_, med, sigma := noiseLevel(&t.histo, diff)
	return math.Max(t.cfg.MinContrast, med+t.cfg.NoiseK*sigma)
}

// noiseLevel fills h with (a sample of) diff and returns the sample's size, its median and its
// robust deviation, measured from the lower half: the worm may cover a good part of a cropped
// image and sits in the upper tail.
func noiseLevel(h *[256]int, diff []uint8) (n int, med, sigma float64) {
	clear(h[:])
	step := 1
	if len(diff) > 1<<16 {
		step = 7
	}
	for i := 0; i < len(diff); i += step {
		h[diff[i]]++
		n++
	}
	m := histQuantile(h, n, 0.5)
	lo := histQuantile(h, n, 0.2)
	return n, float64(m), math.Max(0.5, float64(m-lo)/0.8416)
}
