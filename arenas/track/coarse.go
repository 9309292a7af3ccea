package track

import (
	"errors"
	"image"
	"math"
	"slices"
	"time"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
)

// coarseMinPixels is the frame size (pixels) below which a lost worm is searched at full
// resolution: there the whole-frame segmentation is cheap anyway.
const coarseMinPixels = 512 * 512

// coarseMaxFactor bounds the downsampling factor of the lost-worm search.
const coarseMaxFactor = 16

// coarseBands is the number of horizontal bands the coarse background is re-derived in, one
// band per lost frame, so that it follows the background's refresh at a small steady cost.
const coarseBands = 8

// coarseGroups is how many groups of coarse candidates are segmented at full resolution,
// best first, before the frame counts as empty.
const coarseGroups = 3

// coarseMaxCands is how many of the largest coarse candidates are considered.
const coarseMaxCands = 16

// coarse is the lost-worm search's state: the frame and the background downsampled by a power
// of two (box averages, OpenCV's INTER_AREA halving), the coarse difference image, its
// connected components and the coarse plate mask. All buffers are reused from frame to frame.
type coarse struct {
	ready bool
	// factor is the downsampling factor for frames of fw x fh (0: not chosen yet).
	factor, fw, fh int
	// strip holds a strip of stripRows rows of the frame (or background), small enough to
	// stay in the cache while it is halved; lv are its halving levels (lv[i] is 2^(i+1) times
	// smaller).
	strip gocv.Mat
	lv    [4]gocv.Mat

	small, bg, diff, tmp, valid, bin, pool, labels, stats, cents, plate, kernel gocv.Mat
	// bgOf is the background that bg was derived from, bgFull the number of whole
	// re-derivations still due for it, bgBand the band to re-derive next.
	bgOf   *background
	bgFull int
	bgBand int
	// plateOK says that plate is the coarse plate mask for the current frame size.
	plateOK bool
	histo   [256]int
	cands   []coarseCand
	used    []bool
}

// coarseCand is a connected component of the pooled coarse detection mask, in cells of twice
// the factor.
type coarseCand struct {
	area       int
	x, y, w, h int
}

func (c *coarse) mats() []*gocv.Mat {
	ms := []*gocv.Mat{&c.strip, &c.small, &c.bg, &c.diff, &c.tmp, &c.valid, &c.bin, &c.pool, &c.labels, &c.stats, &c.cents, &c.plate, &c.kernel}
	for i := range c.lv {
		ms = append(ms, &c.lv[i])
	}
	return ms
}

// alloc creates the buffers on first use.
func (c *coarse) alloc() {
	if c.ready {
		return
	}
	c.ready = true
	for _, m := range c.mats() {
		*m = gocv.NewMat()
	}
}

// close releases the buffers. It is idempotent.
func (c *coarse) close() error {
	if !c.ready {
		return nil
	}
	c.ready = false
	var errs []error
	for _, m := range c.mats() {
		if err := m.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.bgOf = nil
	return errors.Join(errs...)
}

// coarseFactor is the downsampling factor of the lost-worm search for frames of w x h: the
// largest power of two at which the narrowest accepted worm (MinBodyLength/10 wide) still
// covers at least half a coarse pixel across and 4 coarse pixels along, 1 for small frames.
// At the reference rig's scale (54 px per mm, the shortest worm 21.6 px long and 2.2 px wide)
// it is 4: a 1 mm worm is 13.5 x 1.4 coarse pixels.
func coarseFactor(cfg Config, w, h int) int {
	if w*h < coarseMinPixels {
		return 1
	}
	minLen := cfg.MinBodyLength
	minW := widthOf(minLen)
	s := 1
	for 2*s <= coarseMaxFactor && minW/float64(2*s) >= 0.5 && minLen/float64(2*s) >= 4 {
		s *= 2
	}
	return s
}

// levels is log2 of the factor.
func (c *coarse) levels() int {
	n := 0
	for s := c.factor; s > 1; s >>= 1 {
		n++
	}
	return n
}

// stripRows is the height of the strips the downsampling works in (a multiple of every
// factor): 128 rows of a 2160 px wide frame are 276 kB, which stay in the cache from the copy
// to the halvings.
const stripRows = 128

// downsample writes the box averages (factor x factor) of rows [y0, y1) of pix (stride, the
// width cols, both rows and cols multiples of the factor) into dst, a matrix of rows/factor x
// cols/factor: strip by strip, each copied into the strip buffer and halved by OpenCV's
// INTER_AREA resize until it is coarse. spans, when not nil, are the columns to copy per row
// (the plate): the others are left as they were, which only matters to coarse pixels the
// plate mask clears. A strip may reach before y0 (the last one is moved up to stay whole);
// what it writes there is the same box averages.
func (c *coarse) downsample(pix []uint8, stride, rows, cols, y0, y1 int, spans [][2]int, dst *gocv.Mat) bool {
	s := c.factor
	n := c.levels()
	h := min(stripRows, rows)
	out, err := dst.DataPtrUint8()
	cc := cols / s
	if err != nil || len(out) != rows/s*cc {
		return false
	}
	ensure(&c.strip, h, cols, gocv.MatTypeCV8U)
	b, err := c.strip.DataPtrUint8()
	if err != nil {
		return false
	}
	for y := y0; y < y1; y += h {
		y = min(y, rows-h)
		for r := range h {
			src := pix[(y+r)*stride : (y+r)*stride+cols]
			row := b[r*cols : (r+1)*cols]
			if spans == nil {
				copy(row, src)
				continue
			}
			sp := spans[y+r]
			x0, x1 := min(sp[0], cols), min(sp[1], cols)
			if x1 > x0 {
				copy(row[x0:x1], src[x0:x1])
			}
		}
		cur := &c.strip
		for i := range n {
			lh, lw := h>>(i+1), cols>>(i+1)
			ensure(&c.lv[i], lh, lw, gocv.MatTypeCV8U)
			gocv.Resize(*cur, &c.lv[i], image.Pt(lw, lh), 0, 0, gocv.InterpolationArea)
			cur = &c.lv[i]
		}
		res, err := cur.DataPtrUint8()
		if err != nil || len(res) != h/s*cc {
			return false
		}
		copy(out[y/s*cc:], res)
	}
	return true
}

// findLost searches the whole frame for a lost worm: at full resolution on small frames, else
// coarse to fine. The candidates of a downsampled difference image are segmented at full
// resolution in a region around them (the largest first, joined by the candidates near it, by
// any far one that could be a second worm, and by the one nearest a worm still followed, so
// that segment sees every blob its rules choose between).
//
// hint is where the search around the last centre saw the worm cut by its region's border
// (empty if it did not): it is segmented when the coarse image shows nothing.
func (t *Tracker) findLost(f arenas.Frame, now time.Time, hint image.Rectangle) (Result, image.Rectangle) {
	full := image.Rect(0, 0, f.Width, f.Height)
	c := &t.coarse
	if c.factor == 0 || c.fw != f.Width || c.fh != f.Height {
		c.factor, c.fw, c.fh, c.plateOK = coarseFactor(t.cfg, f.Width, f.Height), f.Width, f.Height, false
	}
	if c.factor == 1 {
		res, where, _ := t.segment(f, full, now)
		return res, where
	}
	c.alloc()
	_, length := t.sizeRange()
	// Candidates nearer than ROIScale body lengths are segmented together; the region
	// around them reaches a quarter of a body length beyond the coarse box.
	near := int(math.Ceil(t.cfg.ROIScale * length))
	margin := int(math.Ceil(0.25*length)) + c.factor
	if !t.coarseCandidates(f) {
		c.cands = c.cands[:0]
	}
	s := 2 * c.factor
	box := func(k coarseCand, m int) image.Rectangle {
		return image.Rect(k.x*s-m, k.y*s-m, (k.x+k.w)*s+m, (k.y+k.h)*s+m).Intersect(full)
	}
	c.used = c.used[:0]
	for range c.cands {
		c.used = append(c.used, false)
	}
	// A worm seen within ReacquireAfter is followed (segment prefers the blob nearest its last
	// centre): the candidate nearest that centre joins the first group.
	follow := -1
	if t.haveLast && now.Sub(t.lastSeen) <= t.cfg.ReacquireAfter {
		bestD := math.Inf(1)
		for i, k := range c.cands {
			r := box(k, 0)
			dx := math.Max(0, math.Max(float64(r.Min.X)-t.lastC[0], t.lastC[0]-float64(r.Max.X)))
			dy := math.Max(0, math.Max(float64(r.Min.Y)-t.lastC[1], t.lastC[1]-float64(r.Max.Y)))
			if d := math.Hypot(dx, dy); d < bestD {
				follow, bestD = i, d
			}
		}
	}
	for g := 0; g < coarseGroups; g++ {
		first := -1
		for i := range c.cands {
			if !c.used[i] {
				first = i
				break
			}
		}
		if first < 0 {
			break
		}
		best := c.cands[first]
		c.used[first] = true
		group, region := box(best, near), box(best, margin)
		if g == 0 && follow > first {
			group, region = group.Union(box(c.cands[follow], near)), region.Union(box(c.cands[follow], margin))
			c.used[follow] = true
		}
		for changed := true; changed; {
			changed = false
			for i, k := range c.cands {
				if c.used[i] {
					continue
				}
				if r := box(k, near); r.Overlaps(group) || t.coarseWormLike(k, best) {
					group = group.Union(r)
					region = region.Union(box(k, margin))
					c.used[i] = true
					changed = true
				}
			}
		}
		res, where, edge := t.segment(f, region, now)
		if res.Status == NoWorm {
			continue
		}
		if edge && region != full {
			// The blob reaches the region's border: once more in a region grown by a body length.
			big := image.Rect(region.Min.X-near, region.Min.Y-near, region.Max.X+near, region.Max.Y+near).Intersect(full)
			if r2, w2, _ := t.segment(f, big, now); r2.Status != NoWorm {
				return r2, w2
			}
		}
		return res, where
	}
	if !hint.Empty() {
		region := image.Rect(hint.Min.X-near, hint.Min.Y-near, hint.Max.X+near, hint.Max.Y+near).Intersect(full)
		res, where, _ := t.segment(f, region, now)
		return res, where
	}
	return t.lost(now, NoWorm), image.Rectangle{}
}

// coarseWormLike reports whether the coarse candidate k could be a second worm beside best:
// wormLike's rule (comparable area, elongated) on the coarse image.
func (t *Tracker) coarseWormLike(k, best coarseCand) bool {
	s := float64(2 * t.coarse.factor)
	lo, _ := t.sizeRange()
	return float64(k.area) >= 0.5*float64(best.area) && float64(max(k.w, k.h))*s >= 0.45*lo
}

// coarseCandidates makes the coarse difference image of f, thresholds it and fills
// t.coarse.cands with its plausible blobs, largest first. It reports false when the image
// could not be made.
func (t *Tracker) coarseCandidates(f arenas.Frame) bool {
	c := &t.coarse
	if t.cfg.Polarity == AutoPolarity {
		// As diffImage does: the frame decides a polarity still undecided.
		t.resolvePolarity(f, "first frame")
	}
	// Rows and columns to a multiple of twice the factor (the pooling's): at most a few rows
	// and columns at the frame's bottom and right edges are left out.
	s := c.factor
	rows, cols := f.Height/(2*s)*(2*s), f.Width/(2*s)*(2*s)
	cr, cc := rows/s, cols/s
	// With a background only the plate's pixels are copied (the coarse pixels the plate mask
	// keeps hold no others); the local background's closing needs every pixel.
	var spans [][2]int
	if t.usePlate(f) && t.bg != nil {
		t.ensurePlate()
		spans = t.spans
	}
	ensure(&c.small, cr, cc, gocv.MatTypeCV8U)
	if !c.downsample(f.Pix, f.Width, rows, cols, 0, rows, spans, &c.small) {
		return false
	}
	if t.bg != nil {
		if !t.coarseBackground(rows, cols, spans) {
			return false
		}
		if t.bright {
			gocv.Subtract(c.small, c.bg, &c.diff)
		} else {
			gocv.Subtract(c.bg, c.small, &c.diff)
		}
	} else if !t.coarseLocalDiff() {
		return false
	}
	if t.usePlate(f) {
		if !c.plateOK {
			t.ensurePlate()
			px, err := t.mats.plate.DataPtrUint8()
			ensure(&c.tmp, cr, cc, gocv.MatTypeCV8U)
			if err != nil || !c.downsample(px, f.Width, rows, cols, 0, rows, nil, &c.tmp) {
				return false
			}
			// Only coarse pixels wholly inside the plate: the wall stays out.
			gocv.Threshold(c.tmp, &c.plate, 254.5, 255, gocv.ThresholdBinary)
			c.plateOK = true
		}
		gocv.BitwiseAnd(c.diff, c.plate, &c.diff)
	}
	diff, err := c.diff.DataPtrUint8()
	if err != nil || len(diff) != cr*cc {
		return false
	}
	thr := t.coarseThreshold(diff)
	gocv.Threshold(c.diff, &c.bin, float32(thr)-0.5, 255, gocv.ThresholdBinary)
	// The components are labelled on the mask pooled by 2 (a cell is set when any of its
	// four pixels is): a quarter of the labelling's cost, the boxes a little coarser.
	pr, pc := cr/2, cc/2
	gocv.Resize(c.bin, &c.pool, image.Pt(pc, pr), 0, 0, gocv.InterpolationArea)
	gocv.Threshold(c.pool, &c.pool, 0, 255, gocv.ThresholdBinary)
	n := gocv.ConnectedComponentsWithStatsWithParams(c.pool, &c.labels, &c.stats, &c.cents, 8, gocv.MatTypeCV32S, gocv.CCL_DEFAULT)
	stats, err := int32s(&c.stats)
	if err != nil || len(stats) < 5*n {
		return false
	}
	// Bounds in pooled cells, loose: segment applies the real ones at full resolution.
	s *= 2
	fs := float64(s)
	lo, hi := t.sizeRange()
	maxSide := 1.6*hi*t.cfg.MaxLengthRatio/fs + 2
	maxArea := t.cfg.MaxAreaRatio*1.5*areaOf(hi)/(fs*fs) + 2*maxSide
	minArea := max(2, 0.25*lo/fs)
	c.cands = c.cands[:0]
	for l := 1; l < n; l++ {
		st := stats[5*l : 5*l+5]
		k := coarseCand{
			x:    int(st[gocv.CC_STAT_LEFT]),
			y:    int(st[gocv.CC_STAT_TOP]),
			w:    int(st[gocv.CC_STAT_WIDTH]),
			h:    int(st[gocv.CC_STAT_HEIGHT]),
			area: int(st[gocv.CC_STAT_AREA]),
		}
		a := float64(k.area)
		if a < minArea || a > maxArea || float64(max(k.w, k.h)) > maxSide {
			continue
		}
		c.cands = append(c.cands, k)
	}
	slices.SortFunc(c.cands, func(a, b coarseCand) int { return b.area - a.area })
	if len(c.cands) > coarseMaxCands {
		c.cands = c.cands[:coarseMaxCands]
	}
	return true
}

// coarseBackground keeps t.coarse.bg the coarse copy of the background: derived whole when the
// background is new (twice: CommitBackground repairs the background after its first search),
// else one band of coarseBands per call, so that it follows the slow refresh.
func (t *Tracker) coarseBackground(rows, cols int, spans [][2]int) bool {
	c := &t.coarse
	s := c.factor
	cr, cc := rows/s, cols/s
	if c.bgOf != t.bg || c.bg.Rows() != cr || c.bg.Cols() != cc {
		c.bgOf, c.bgFull, c.bgBand = t.bg, 2, 0
		ensure(&c.bg, cr, cc, gocv.MatTypeCV8U)
	}
	if c.bgFull > 0 {
		c.bgFull--
		return c.downsample(t.bg.pix8, t.bg.w, rows, cols, 0, rows, spans, &c.bg)
	}
	band := (rows/s + coarseBands - 1) / coarseBands * s
	y0 := c.bgBand * band
	c.bgBand = (c.bgBand + 1) % coarseBands
	if y0 >= rows {
		return true
	}
	return c.downsample(t.bg.pix8, t.bg.w, rows, cols, y0, min(rows, y0+band), spans, &c.bg)
}

// coarseLocalDiff makes the coarse difference image without a background, like diffImage:
// a grey closing minus the image for dark worms, with the near-black surround of masked
// recordings filled and then cleared; the image minus its grey opening for bright ones.
func (t *Tracker) coarseLocalDiff() bool {
	c := &t.coarse
	if c.kernel.Empty() {
		k := t.mats.kernel.Cols()/c.factor | 1
		k = max(k, 3)
		c.kernel.Close()
		c.kernel = gocv.GetStructuringElement(gocv.MorphEllipse, image.Pt(k, k))
	}
	if t.bright {
		// The frame minus its grey opening (a top-hat); a near-black surround is dark
		// background here, not a mask.
		gocv.MorphologyExWithParams(c.small, &c.diff, gocv.MorphTophat, c.kernel, 1, gocv.BorderReplicate)
		return true
	}
	px, err := c.small.DataPtrUint8()
	if err != nil {
		return false
	}
	dark := 0
	for _, v := range px {
		if v <= maskedLevel {
			dark++
		}
	}
	masked := dark > len(px)/5
	if masked {
		gocv.Threshold(c.small, &c.valid, maskedLevel+0.5, 255, gocv.ThresholdBinary)
		clear(c.histo[:])
		n := 0
		for _, v := range px {
			if v > maskedLevel {
				c.histo[v]++
				n++
			}
		}
		if n == 0 {
			return false
		}
		fill := uint8(histQuantile(&c.histo, n, 0.9))
		for i, v := range px {
			if v <= maskedLevel {
				px[i] = fill
			}
		}
	}
	gocv.MorphologyExWithParams(c.small, &c.tmp, gocv.MorphClose, c.kernel, 1, gocv.BorderReplicate)
	gocv.Subtract(c.tmp, c.small, &c.diff)
	if masked {
		gocv.BitwiseAnd(c.diff, c.valid, &c.diff)
	}
	return true
}

// coarseThreshold is detectionThreshold's rule on the coarse difference image, with its floor
// MinContrast lowered by the share of a coarse pixel the narrowest accepted worm covers (a
// worm thinner than a coarse pixel is averaged with the agar beside it), and at least the
// noise's 99.5th percentile.
func (t *Tracker) coarseThreshold(diff []uint8) float64 {
	c := &t.coarse
	n, med, sigma := noiseLevel(&c.histo, diff)
	// The deviation is not measured where the difference is clipped at 0 for most pixels (a
	// top-hat, a background that matches): then the level that 99.5 % of the coarse pixels
	// stay below bounds the noise (a worm covers far fewer of them).
	noise := float64(histQuantile(&c.histo, n, 0.995)) + 2
	cover := math.Min(1, math.Max(0.25, 0.5*widthOf(t.cfg.MinBodyLength)/float64(c.factor)))
	return math.Max(math.Max(3, t.cfg.MinContrast*cover), math.Max(noise, med+t.cfg.NoiseK*sigma))
}
