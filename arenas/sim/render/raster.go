package render

import "math"

// Pixel (x, y) of a frame has its centre at the coordinates (x, y): a midline point at
// (10, 20) lies on the centre of column 10, row 20. This matches image moments (OpenCV's
// centroid of a blob is in the same coordinates), so a tracker's centroid compares directly.

// edgeLUT tabulates the standard normal distribution function Phi on [-edgeSpan, edgeSpan].
type edgeLUT struct {
	tab   []float32
	scale float64 // table entries per unit of the argument
}

const (
	edgeSpan  = 6.0
	edgeSteps = 2048
)

func newEdgeLUT() *edgeLUT {
	l := &edgeLUT{tab: make([]float32, edgeSteps+1), scale: edgeSteps / (2 * edgeSpan)}
	for i := range l.tab {
		z := -edgeSpan + float64(i)/l.scale
		l.tab[i] = float32(0.5 * math.Erfc(-z/math.Sqrt2))
	}
	return l
}

// phi returns the standard normal distribution function at z by linear interpolation.
func (l *edgeLUT) phi(z float64) float64 {
	u := (z + edgeSpan) * l.scale
	if !(u > 0) {
		return 0
	}
	if u >= edgeSteps {
		return 1
	}
	i := int(u)
	f := u - float64(i)
	return float64(l.tab[i])*(1-f) + float64(l.tab[i+1])*f
}

// bandCoverage is the share of a pixel covered by a bar of half-width h whose nearest edge is
// s pixels away (s > 0 inside), after blurring with a Gaussian of SD sigma: the profile of a
// blurred bar, Phi((h-d)/sigma) - Phi((-h-d)/sigma), with d = h - s the distance from its axis.
func (l *edgeLUT) bandCoverage(s, h, sigma float64) float64 {
	return l.phi(s/sigma) - l.phi((s-2*h)/sigma)
}

// bodyRaster holds, for each pixel of a rectangle, how deep it lies inside a chain of capsules
// (a midline with a half-width at each point): s = halfwidth - distance to the midline at the
// nearest capsule (maximised over capsules), and r = distance/halfwidth there.
type bodyRaster struct {
	x0, y0, w, h int
	s, r, hw     []float32
}

const outside = float32(-1e30)

// reset sizes the raster to the rectangle [x0, x0+w) x [y0, y0+h) and clears it.
func (b *bodyRaster) reset(x0, y0, w, h int) {
	b.x0, b.y0, b.w, b.h = x0, y0, w, h
	n := w * h
	if cap(b.s) < n {
		b.s = make([]float32, n)
		b.r = make([]float32, n)
		b.hw = make([]float32, n)
	}
	b.s, b.r, b.hw = b.s[:n], b.r[:n], b.hw[:n]
	for i := range b.s {
		b.s[i] = outside
	}
}

// addSegment adds the capsule from (ax, ay) with half-width ha to (bx, by) with half-width hb
// (the half-width varies linearly along it; both ends are rounded). margin is how far outside
// the capsule pixels are still visited (the reach of the blur).
func (b *bodyRaster) addSegment(ax, ay, ha, bx, by, hb, margin float64) {
	reach := math.Max(ha, hb) + margin
	xa := int(math.Floor(math.Min(ax, bx) - reach))
	xb := int(math.Ceil(math.Max(ax, bx) + reach))
	ya := int(math.Floor(math.Min(ay, by) - reach))
	yb := int(math.Ceil(math.Max(ay, by) + reach))
	xa, xb = max(xa, b.x0), min(xb, b.x0+b.w-1)
	ya, yb = max(ya, b.y0), min(yb, b.y0+b.h-1)
	if xa > xb || ya > yb {
		return
	}
	dx, dy := bx-ax, by-ay
	len2 := dx*dx + dy*dy
	inv := 0.0
	if len2 > 1e-12 {
		inv = 1 / len2
	}
	for y := ya; y <= yb; y++ {
		qy := float64(y) - ay
		row := (y-b.y0)*b.w - b.x0
		for x := xa; x <= xb; x++ {
			qx := float64(x) - ax
			t := (qx*dx + qy*dy) * inv
			if t < 0 {
				t = 0
			} else if t > 1 {
				t = 1
			}
			ex, ey := qx-t*dx, qy-t*dy
			d := math.Sqrt(ex*ex + ey*ey)
			hl := ha + t*(hb-ha)
			s := float32(hl - d)
			i := row + x
			if s > b.s[i] {
				b.s[i] = s
				b.hw[i] = float32(hl)
				if hl > 0 {
					b.r[i] = float32(d / hl)
				} else {
					b.r[i] = 1
				}
			}
		}
	}
}

// addPolyline adds the capsules between consecutive points of mid (half-widths half). Points
// with a non-finite coordinate or half-width are skipped. A single point draws a disc.
func (b *bodyRaster) addPolyline(mid [][2]float64, half []float64, margin float64) {
	prev := -1
	for i := range mid {
		x, y, h := mid[i][0], mid[i][1], half[i]
		if !finite(x) || !finite(y) || !finite(h) {
			continue
		}
		h = math.Max(h, 0)
		if prev >= 0 {
			p := mid[prev]
			b.addSegment(p[0], p[1], math.Max(half[prev], 0), x, y, h, margin)
		}
		prev = i
	}
	if prev >= 0 && countFinite(mid, half) == 1 {
		p := mid[prev]
		b.addSegment(p[0], p[1], math.Max(half[prev], 0), p[0], p[1], math.Max(half[prev], 0), margin)
	}
}

// polylineBounds returns the rectangle, clipped to a w x h frame, that holds the polyline grown
// by its largest half-width plus margin; ok is false when it is empty.
func polylineBounds(mid [][2]float64, half []float64, margin float64, w, h int) (x0, y0, bw, bh int, ok bool) {
	minX, minY := math.Inf(1), math.Inf(1)
	maxX, maxY := math.Inf(-1), math.Inf(-1)
	maxH := 0.0
	for i, p := range mid {
		if !finite(p[0]) || !finite(p[1]) || !finite(half[i]) {
			continue
		}
		minX, maxX = math.Min(minX, p[0]), math.Max(maxX, p[0])
		minY, maxY = math.Min(minY, p[1]), math.Max(maxY, p[1])
		maxH = math.Max(maxH, half[i])
	}
	if minX > maxX {
		return 0, 0, 0, 0, false
	}
	reach := maxH + margin
	fx0 := math.Max(math.Floor(minX-reach), 0)
	fy0 := math.Max(math.Floor(minY-reach), 0)
	fx1 := math.Min(math.Ceil(maxX+reach), float64(w-1))
	fy1 := math.Min(math.Ceil(maxY+reach), float64(h-1))
	if fx0 > fx1 || fy0 > fy1 {
		return 0, 0, 0, 0, false
	}
	return int(fx0), int(fy0), int(fx1-fx0) + 1, int(fy1-fy0) + 1, true
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func countFinite(mid [][2]float64, half []float64) int {
	n := 0
	for i, p := range mid {
		if finite(p[0]) && finite(p[1]) && finite(half[i]) {
			n++
		}
	}
	return n
}
