package track

import (
	"image"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/optoloop/optoloop/arenas"
	"gocv.io/x/gocv"
)

// refineFrac is the share of the blob's median darkening at which its edge is drawn.
const refineFrac = 0.3

// shape measures the chosen blob: refined mask, holes, skeleton, midline, widths, coil checks,
// head/tail identity and the pose. labels and blur cover the region roi (stride w).
// cut says that the blob touches the frame's edge (its ends may be outside).
func (t *Tracker) shape(c candidate, labels []int32, blur []uint8, w int, roi image.Rectangle, thr float64, cut bool, now time.Time) Result {
	// Refined threshold: a share (refineFrac) of the blob's median darkening, so that the mask
	// reaches into the thin, blurred tips of the body without widening it much.
	clear(t.histo[:])
	cnt := 0
	for y := c.y; y < c.y+c.h; y++ {
		for x := c.x; x < c.x+c.w; x++ {
			i := y*w + x
			if int(labels[i]) == c.label {
				t.histo[blur[i]]++
				cnt++
			}
		}
	}
	med := float64(histQuantile(&t.histo, cnt, 0.5))
	thr2 := math.Max(thr, refineFrac*med)

	// Blob bitmap with a 1-pixel empty border: (bx, by) = (x - c.x + 1, y - c.y + 1).
	b := &t.blob
	b.reset(c.w+2, c.h+2)
	for y := c.y; y < c.y+c.h; y++ {
		for x := c.x; x < c.x+c.w; x++ {
			i := y*w + x
			if int(labels[i]) == c.label && float64(blur[i]) >= thr2 {
				b.pix[(y-c.y+1)*b.w+(x-c.x+1)] = 1
			}
		}
	}
	t.keepLargest(b)
	t.trimThin(b)
	area := b.count()
	ox, oy := float64(roi.Min.X+c.x-1), float64(roi.Min.Y+c.y-1) // bitmap -> frame offset
	lo, hi := t.sizeRange()
	if float64(area) < t.cfg.MinAreaRatio*areaOf(lo) {
		return t.lost(now, NoWorm)
	}
	// Centroid of the blob, reported when the worm is coiled.
	var sx, sy float64
	for y := range b.h {
		for x := range b.w {
			if b.pix[y*b.w+x] != 0 {
				sx += float64(x)
				sy += float64(y)
			}
		}
	}
	cx, cy := sx/float64(area)+ox, sy/float64(area)+oy

	// Holes smaller than a cross-section of the body are gaps in the mask; larger ones are
	// enclosed by a worm lying on itself.
	wEst := 2 * float64(area) / math.Max(1, float64(b.perimeter()))
	minHole := max(4, int(0.6*wEst*wEst))
	hole := t.geo.fillHoles(b, minHole)
	area = b.count()
	t.geo.thin(b)
	path, _ := t.geo.longestPath(t.scratch[0])
	t.scratch[0] = path
	if len(path) < 2 {
		return t.coiled(now, cx, cy, area)
	}
	meanW := float64(area) / math.Max(1, polyLength(path))
	half := max(1, int(math.Round(meanW/2)))
	sm := smoothPath(t.scratch[1], path, half)
	t.scratch[1] = sm
	ext := extendEnds(append(t.scratch[2][:0], sm...), b, math.Max(2, 1.5*meanW), 1.5*meanW+2)
	t.scratch[2] = ext
	length := polyLength(ext)
	res := Result{Length: length, Area: area}
	res.X, res.Y = cx, cy

	// Coils: an enclosed hole, a midline too short for the worm, a blob much wider than its
	// midline explains (known length), or too squat to be an uncurled worm (length unknown).
	meanW = float64(area) / math.Max(1, length)
	ratio := length / t.refLen
	var coiledShape bool
	if t.lenKnown {
		coiledShape = hole > 0 || ratio < t.cfg.MinLengthRatio || meanW > 2.2*t.refWidth()
	} else {
		coiledShape = hole > 0 || length < t.cfg.MinLengthRatio*lo || length < minElongation*meanW
	}
	if coiledShape {
		return t.coiled(now, cx, cy, area)
	}

	if length > maxElongation*meanW {
		// Far thinner than any worm: a track, a scratch, a fibre.
		return t.lost(now, NoWorm)
	}

	n := t.cfg.MidlinePoints
	mid := resample(nil, ext, n)
	mid = t.refineMidline(mid, blur, w, roi.Dy(), float64(c.x-1), float64(c.y-1), thr2, meanW)
	for i := range mid {
		mid[i][0] += ox
		mid[i][1] += oy
	}
	res.Widths = t.widths(b, mid, ox, oy)

	conf := 1.0
	var flags []string
	flag := func(f string, c float64) {
		flags = append(flags, f)
		conf = math.Min(conf, c)
	}
	if i, j, ok := thinEnds(res.Widths); ok {
		// The midline runs off the body at an end, along something thin attached to it (the
		// shadowed edge of a track): the pose keeps the body's part, and is not trusted.
		mid = resample(nil, slices.Clone(mid[i:j+1]), n)
		res.Widths = t.widths(b, mid, ox, oy)
		length = polyLength(mid)
		res.Length = length
		flag("off-body midline", 0.3)
	}
	if t.lenKnown {
		switch {
		case ratio > t.cfg.MaxLengthRatio:
			flag("long", 0.2)
		case ratio > 1.25:
			// Longer than the worm: with something attached, or another worm lying against it.
			conf *= 1 - (ratio-1.25)/(t.cfg.MaxLengthRatio-1.25)
			if conf < Confident {
				flag("long", conf)
			}
		case ratio < 0.85:
			conf *= 1 - 0.6*(0.85-ratio)/(0.85-t.cfg.MinLengthRatio)
		}
	} else if length > t.cfg.MaxLengthRatio*hi {
		// Far longer than the longest worm accepted, with no worm measured: a track, a scratch.
		return t.lost(now, NoWorm)
	}
	// Side branches of the skeleton longer than the body is wide: a spur of the mask's ragged
	// edge is shorter.
	branch := float64(t.geo.branchBeyond(max(1, int(math.Round(meanW))))) / length
	if branch > 0.1 {
		conf *= math.Max(0.2, 1-(branch-0.1)*3)
	}
	// Weak contrast relative to the detection threshold is doubtful.
	if med < 2*thr {
		conf *= math.Max(0.3, med/(2*thr))
	}
	// b is the body with its small holes filled (a larger hole made it a coil).
	for _, fl := range t.bodyChecks(b, mid, res.Widths, ox, oy, length) {
		flag(fl, 0.3)
	}
	if conf < Confident && len(flags) == 0 {
		flags = append(flags, "doubtful shape")
	}

	free := len(flags) == 0 // one whole, free, worm-shaped body
	dark := t.darkAlong(mid, blur, w, roi)
	mid, res.Widths = t.id.orient(mid, res.Widths, dark, [2]float64{cx, cy}, now, t.cfg, t.refLen, !cut && free)
	res.Settled = t.id.settled
	if !res.Settled && t.cfg.RequireSettled {
		conf = math.Min(conf, 0.45)
		if len(flags) == 0 {
			flags = append(flags, "unsettled")
		}
	}
	res.OK = true
	res.Status = Found
	res.Confidence = conf
	res.Flags = flags
	res.Midline = mid
	res.Head, res.Tail = mid[0], mid[n-1]
	res.X, res.Y = centre(mid)
	res.BodyAngle = arenas.BodyAngle(mid)
	res.HeadAngle = arenas.HeadAngle(mid)
	if q := t.cfg.QuantizeDeg; q > 0 {
		res.BodyAngle = quantize(res.BodyAngle, q)
		res.HeadAngle = quantize(res.HeadAngle, q)
	}
	res.Speed = t.id.speed
	if conf >= Confident && !cut {
		t.learnSize(length, meanW)
	}
	t.haveLast, t.lastSeen, t.lastC = true, now, [2]float64{res.X, res.Y}
	if free && !cut {
		// The worm as continuity knows it: its last whole, free pose (a merged or doubtful
		// blob does not move it).
		t.anchorC, t.lastArea = t.lastC, float64(area)
	}
	return res
}

// darkAlong samples the darkening img (region roi, stride w) at each midline point (frame
// coordinates), bilinearly.
func (t *Tracker) darkAlong(mid [][2]float64, img []uint8, w int, roi image.Rectangle) []float64 {
	h := roi.Dy()
	out := t.dark[:0]
	for _, p := range mid {
		x, y := p[0]-float64(roi.Min.X), p[1]-float64(roi.Min.Y)
		x0, y0 := math.Floor(x), math.Floor(y)
		ix, iy := int(x0), int(y0)
		v := 0.0
		if ix >= 0 && iy >= 0 && ix+1 < w && iy+1 < h {
			fx, fy := x-x0, y-y0
			i := iy*w + ix
			v = (float64(img[i])*(1-fx)+float64(img[i+1])*fx)*(1-fy) + (float64(img[i+w])*(1-fx)+float64(img[i+w+1])*fx)*fy
		}
		out = append(out, v)
	}
	t.dark = out
	return out
}

// trimThin removes from the blob the parts much thinner than its body (what an opening with a
// disc of thinFrac of its width takes away) that reach further than the body is wide: the
// dark edge of an old track, a scratch or a fibre that touches the worm is not the worm; the
// tapered tip of its tail is. The largest piece left is kept.
func (t *Tracker) trimThin(b *bitmap) {
	area := b.count()
	wEst := 2 * float64(area) / math.Max(1, float64(b.perimeter()))
	d := int(math.Round(thinFrac * wEst))
	if d < 3 {
		return
	}
	d |= 1
	m := &t.mats
	ensure(&m.blob, b.h, b.w, gocv.MatTypeCV8U)
	px, err := m.blob.DataPtrUint8()
	if err != nil {
		return
	}
	for i, v := range b.pix {
		px[i] = v * 255
	}
	if t.thinK.d != d {
		t.thinK.m.Close()
		t.thinK.m = gocv.GetStructuringElement(gocv.MorphEllipse, image.Pt(d, d))
		t.thinK.d = d
	}
	gocv.MorphologyExWithParams(m.blob, &m.dist, gocv.MorphOpen, t.thinK.m, 1, gocv.BorderConstant)
	out, err := m.dist.DataPtrUint8()
	if err != nil || len(out) != len(b.pix) {
		return
	}
	kept := 0
	for _, v := range out {
		if v != 0 {
			kept++
		}
	}
	if kept < area/2 {
		return // the body itself is thin: nothing to trim
	}
	// The pixels the opening removed, in pieces: a piece longer than the body is wide is
	// something thin attached to the worm, and goes; a shorter one (the tapered tip of the
	// tail, a ragged edge) stays.
	g := &t.geo
	n := b.w * b.h
	if cap(g.mark) < n {
		g.mark = make([]int32, n)
	}
	g.mark = g.mark[:n]
	clear(g.mark)
	maxExtent := int(math.Ceil(1.5 * wEst))
	for i := range n {
		if b.pix[i] == 0 || out[i] != 0 || g.mark[i] != 0 {
			continue
		}
		g.queue = append(g.queue[:0], int32(i))
		g.mark[i] = 1
		x0, y0, x1, y1 := i%b.w, i/b.w, i%b.w, i/b.w
		for k := 0; k < len(g.queue); k++ {
			j := int(g.queue[k])
			x, y := j%b.w, j/b.w
			x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					nx, ny := x+dx, y+dy
					if !b.at(nx, ny) {
						continue
					}
					q := ny*b.w + nx
					if out[q] == 0 && g.mark[q] == 0 {
						g.mark[q] = 1
						g.queue = append(g.queue, int32(q))
					}
				}
			}
		}
		if max(x1-x0, y1-y0)+1 > maxExtent {
			for _, j := range g.queue {
				b.pix[j] = 0
			}
		}
	}
	t.keepLargest(b)
}

// thinFrac is the width, as a share of the body's, below which trimThin removes a part.
const thinFrac = 0.35

// thinEnds finds where the body begins at each end of a width profile: the first and last
// points at least thinEnd of the body's median width wide. ok reports that a longer stretch
// than a tail's taper (an eighth of the points) at an end is thinner than that, with the body
// between still at least half the points.
func thinEnds(widths []float64) (i, j int, ok bool) {
	n := len(widths)
	if n < 12 {
		return 0, n - 1, false
	}
	medW := median(slices.Clone(widths[n/10 : n-n/10]))
	if !(medW > 0) {
		return 0, n - 1, false
	}
	for i < n-1 && widths[i] < thinEnd*medW {
		i++
	}
	j = n - 1
	for j > i && widths[j] < thinEnd*medW {
		j--
	}
	taper := n / 8
	if (i <= taper && j >= n-1-taper) || j-i < n/2 {
		return 0, n - 1, false
	}
	return i, j, true
}

// thinEnd is the share of the body's width below which thinEnds takes the midline to have left
// the body (a tail tapers below it over the last few per cent only).
const thinEnd = 0.3

// minElongation is the smallest length-to-mean-width ratio of an uncurled worm (adults are
// about 12, larvae more, less when the optics' blur widens a small worm); a squatter blob is
// a worm curled on itself, or not a worm.
const minElongation = 4

// maxElongation is the largest: a thinner blob is a track, a scratch or a fibre.
const maxElongation = 40

// learnSize feeds a confident frame's midline length and mean width to the reference size:
// the medians of the first lengthSamples set it, later frames move it slowly, the length
// within the length bounds. Without RefineLength only the width is learnt.
func (t *Tracker) learnSize(length, width float64) {
	if t.refW == 0 || t.sizeSeen < lengthSamples {
		t.lenSeen = append(t.lenSeen, length)
		t.widSeen = append(t.widSeen, width)
		t.sizeSeen++
		if t.sizeSeen < lengthSamples {
			return
		}
		t.refW = median(slices.Clone(t.widSeen))
		if t.cfg.RefineLength {
			t.refLen = median(slices.Clone(t.lenSeen))
			t.lenKnown = true
			t.log.Debug("worm measured", "length_px", t.refLen, "width_px", t.refW, "frames", len(t.lenSeen))
		}
	} else {
		t.refW += 0.05 * (width - t.refW)
		if t.cfg.RefineLength {
			t.refLen += 0.05 * (length - t.refLen)
		}
	}
	t.refLen = math.Min(t.cfg.MaxBodyLength, math.Max(t.cfg.MinBodyLength, t.refLen))
}

// refWidth is the worm's typical mean width (measured blob area over midline length, so
// including the optics' blur) once measured, else the nominal width of its length.
func (t *Tracker) refWidth() float64 {
	if t.refW > 0 {
		return t.refW
	}
	return widthOf(t.refLen)
}

// lengthSamples is the number of confident frames whose median length becomes the reference.
const lengthSamples = 5

// median of v (v is reordered).
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// coiled records a worm lying on itself: its centre is known, its midline is not.
func (t *Tracker) coiled(now time.Time, cx, cy float64, area int) Result {
	t.id.lostAt(now)
	t.haveLast, t.lastSeen, t.lastC = true, now, [2]float64{cx, cy}
	r := Result{Status: Coiled, Area: area}
	r.X, r.Y = cx, cy
	r.Coiled = true
	r.Confidence = 0.1
	return r
}

// keepLargest keeps the largest 8-connected component of b.
func (t *Tracker) keepLargest(b *bitmap) {
	g := &t.geo
	n := b.w * b.h
	if cap(g.mark) < n {
		g.mark = make([]int32, n)
	}
	g.mark = g.mark[:n]
	clear(g.mark)
	bestLabel, bestSize := int32(0), 0
	label := int32(0)
	for i := range n {
		if b.pix[i] == 0 || g.mark[i] != 0 {
			continue
		}
		label++
		g.queue = append(g.queue[:0], int32(i))
		g.mark[i] = label
		for k := 0; k < len(g.queue); k++ {
			j := int(g.queue[k])
			x, y := j%b.w, j/b.w
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					nx, ny := x+dx, y+dy
					if !b.at(nx, ny) {
						continue
					}
					q := ny*b.w + nx
					if g.mark[q] == 0 {
						g.mark[q] = label
						g.queue = append(g.queue, int32(q))
					}
				}
			}
		}
		if len(g.queue) > bestSize {
			bestSize, bestLabel = len(g.queue), label
		}
	}
	for i := range n {
		if g.mark[i] != bestLabel {
			b.pix[i] = 0
		}
	}
}

// widths measures the body width at each midline point from the distance transform of b.
func (t *Tracker) widths(b *bitmap, mid [][2]float64, ox, oy float64) []float64 {
	m := &t.mats
	ensure(&m.blob, b.h, b.w, gocv.MatTypeCV8U)
	px, err := m.blob.DataPtrUint8()
	if err != nil {
		return nil
	}
	for i, v := range b.pix {
		px[i] = v * 255
	}
	gocv.DistanceTransform(m.blob, &m.dist, &m.distLabels, gocv.DistL2, gocv.DistanceMask5, gocv.DistanceLabelCComp)
	d, err := m.dist.DataPtrFloat32()
	if err != nil || len(d) != b.w*b.h {
		return nil
	}
	out := make([]float64, len(mid))
	for i, p := range mid {
		x := int(math.Round(p[0] - ox))
		y := int(math.Round(p[1] - oy))
		if x < 0 || y < 0 || x >= b.w || y >= b.h {
			continue
		}
		// Largest distance within one pixel: the midline point may sit off the ridge.
		best := float32(0)
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				nx, ny := x+dx, y+dy
				if nx >= 0 && ny >= 0 && nx < b.w && ny < b.h && d[ny*b.w+nx] > best {
					best = d[ny*b.w+nx]
				}
			}
		}
		out[i] = math.Max(0, 2*float64(best)-1)
	}
	return out
}

// centre is the mean of the midline points.
func centre(mid [][2]float64) (float64, float64) {
	var sx, sy float64
	for _, p := range mid {
		sx += p[0]
		sy += p[1]
	}
	n := float64(len(mid))
	return sx / n, sy / n
}

// quantize rounds angle a (radians) to a multiple of q degrees, in (-pi, pi].
func quantize(a, q float64) float64 {
	d := math.Round(a*180/math.Pi/q) * q
	return wrap(d * math.Pi / 180)
}

// wrap maps a into (-pi, pi].
func wrap(a float64) float64 {
	a = math.Mod(a, 2*math.Pi)
	if a <= -math.Pi {
		a += 2 * math.Pi
	} else if a > math.Pi {
		a -= 2 * math.Pi
	}
	return a
}

// refineMidline moves each midline point (bitmap coordinates; the bitmap's origin is at
// (bx, by) in the region) across the body to the darkness-weighted centre of the body's cross
// section, which puts the midline between pixels. It then smooths lightly and resamples.
func (t *Tracker) refineMidline(mid [][2]float64, img []uint8, w, h int, bx, by, thr, width float64) [][2]float64 {
	n := len(mid)
	sample := func(x, y float64) float64 {
		x, y = x+bx, y+by
		x0, y0 := math.Floor(x), math.Floor(y)
		ix, iy := int(x0), int(y0)
		if ix < 0 || iy < 0 || ix+1 >= w || iy+1 >= h {
			return 0
		}
		fx, fy := x-x0, y-y0
		i := iy*w + ix
		v00, v10, v01, v11 := float64(img[i]), float64(img[i+1]), float64(img[i+w]), float64(img[i+w+1])
		return (v00*(1-fx)+v10*fx)*(1-fy) + (v01*(1-fx)+v11*fx)*fy
	}
	reach := math.Max(1.5, width)
	floor := 0.5 * thr
	out := t.scratch[3][:0]
	out = append(out, mid...)
	for i := range n {
		a, b := mid[max(0, i-1)], mid[min(n-1, i+1)]
		tx, ty := b[0]-a[0], b[1]-a[1]
		l := math.Hypot(tx, ty)
		if l == 0 {
			continue
		}
		nx, ny := -ty/l, tx/l
		var sw, so float64
		for o := -reach; o <= reach; o += 0.5 {
			v := sample(mid[i][0]+o*nx, mid[i][1]+o*ny) - floor
			if v > 0 {
				sw += v
				so += v * o
			}
		}
		if sw > 0 {
			off := so / sw
			off = math.Max(-0.5*reach, math.Min(0.5*reach, off))
			out[i] = [2]float64{mid[i][0] + off*nx, mid[i][1] + off*ny}
		}
	}
	t.scratch[3] = out
	sm := smoothPath(t.scratch[1], out, 1)
	t.scratch[1] = sm
	return resample(mid[:0], sm, n)
}
