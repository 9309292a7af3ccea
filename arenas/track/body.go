package track

import (
	"image"
	"image/color"
	"math"
	"slices"

	"gocv.io/x/gocv"
)

// bodyChecks tests that a measured midline describes one free, worm-shaped body: a width
// profile like a worm's (no stretch much wider, as where the body lies on itself, none much
// thinner, as where the midline leaves the worm along a track), the midline on the segmented
// body from end to end, and both ends free (no other part of the body touching
// a tip). It returns what fails, as flags. body is the blob (its small holes filled), (ox, oy)
// the frame position of its origin; mid is in frame coordinates.
func (t *Tracker) bodyChecks(body *bitmap, mid [][2]float64, widths []float64, ox, oy, length float64) []string {
	n := len(mid)
	if len(widths) != n || n < 5 {
		return []string{"no width profile"}
	}
	var flags []string
	add := func(f string) {
		if !slices.Contains(flags, f) {
			flags = append(flags, f)
		}
	}
	k := n / 10
	medW := median(slices.Clone(widths[k : n-k]))
	if !(medW > 0) {
		return []string{"no width profile"}
	}

	if length > maxWormElongation*medW {
		add("thin")
	}
	if length < minWormElongation*math.Max(1, medW-1.5) {
		// Too squat for a free worm (its width less the optics' blur, which widens a small
		// worm): folded double, or a piece of debris.
		add("squat")
	}
	// Wider than the body: two layers of it (a head bent back onto the body, another worm
	// alongside), most telling at an end, which tapers in a free worm.
	if slices.Max(widths) > 1.45*medW || slices.Max(widths[:n*15/100]) > 1.25*medW || slices.Max(widths[n-n*15/100:]) > 1.25*medW {
		add("touching")
	}
	run, longest := 0, 0
	for _, v := range widths[k : n-k] {
		if v < 0.4*medW {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	if longest > max(1, n/12) {
		add("off-body midline")
	}
	if !t.onBody(body, mid, ox, oy) {
		add("off-body midline")
	}
	if t.offMidline(body, mid, widths, ox, oy) > maxOffMidline {
		// Body the midline does not explain: a part of the worm folded beside it.
		add("touching")
	}
	for _, e := range []int{0, n - 1} {
		if endTouches(body, mid, e, medW, length, ox, oy) {
			add("touching")
		}
	}
	return flags
}

// maxWormElongation is the largest length over median width (as measured, blur included) of
// a confident pose: an adult is about 12 lengths per width, a first-stage larva about 20.
const maxWormElongation = 25

// minWormElongation is the smallest, over the width less 1.5 px of blur: a worm folded
// double, or a squat piece of debris, is shorter (the wormpose sample, the simulator and the
// other recordings measure 9-12).
const minWormElongation = 6.5

// maxOffMidline is the largest share of a free worm's pixels that may lie beyond the reach of
// its midline (its half-width there and a pixel and a half of blur).
const maxOffMidline = 0.08

// offMidline is the share of the body's pixels farther from the midline than the body's
// half-width at the nearest midline point, plus 1.5 px: what a fold, or a part lying against
// the body, adds. The midline's reach is drawn (discs at its points, joined by thick lines)
// into a reused matrix.
func (t *Tracker) offMidline(body *bitmap, mid [][2]float64, widths []float64, ox, oy float64) float64 {
	m := &t.mats
	ensure(&m.tube, body.h, body.w, gocv.MatTypeCV8U)
	m.tube.SetTo(gocv.NewScalar(0, 0, 0, 0))
	on := color.RGBA{255, 255, 255, 0}
	pt := func(p [2]float64) image.Point {
		return image.Pt(int(math.Round(p[0]-ox)), int(math.Round(p[1]-oy)))
	}
	reach := func(i int) int { return int(math.Round(widths[i]/2 + 1.5)) }
	for i, p := range mid {
		gocv.Circle(&m.tube, pt(p), reach(i), on, -1)
		if i > 0 {
			gocv.Line(&m.tube, pt(mid[i-1]), pt(p), on, 2*min(reach(i-1), reach(i))+1)
		}
	}
	tube, err := m.tube.DataPtrUint8()
	if err != nil || len(tube) != len(body.pix) {
		return 0
	}
	total, off := 0, 0
	for i, v := range body.pix {
		if v != 0 {
			total++
			if tube[i] == 0 {
				off++
			}
		}
	}
	if total == 0 {
		return 0
	}
	return float64(off) / float64(total)
}

// onBody reports whether the midline, sampled every half pixel, stays within one pixel of the
// body. The outermost segment at each end is left out: the tip, prolonged into the faint end of
// the body, may lie a pixel or two beyond its thresholded outline (a midline that runs on along
// something thin is thinEnds' to find).
func (t *Tracker) onBody(body *bitmap, mid [][2]float64, ox, oy float64) bool {
	near := func(x, y float64) bool {
		ix, iy := int(math.Round(x-ox)), int(math.Round(y-oy))
		return body.at(ix, iy) || body.at(ix-1, iy) || body.at(ix+1, iy) || body.at(ix, iy-1) || body.at(ix, iy+1)
	}
	for i := 2; i < len(mid)-1; i++ {
		a, b := mid[i-1], mid[i]
		l := math.Hypot(b[0]-a[0], b[1]-a[1])
		steps := max(1, int(math.Ceil(2*l)))
		for s := range steps {
			u := float64(s) / float64(steps)
			if !near(a[0]+u*(b[0]-a[0]), a[1]+u*(b[1]-a[1])) {
				return false
			}
		}
	}
	return true
}

// endTouches reports whether another part of the body touches the tip mid[e]: a body pixel
// within half a body width (and the blur's pixel and a half) of the tip whose nearest midline
// point is far along the body from that end (a head bent back onto the body, a tail touching
// the head).
func endTouches(body *bitmap, mid [][2]float64, e int, medW, length, ox, oy float64) bool {
	n := len(mid)
	step := length / float64(n-1)
	r := 0.5*medW + 0.5
	far := r + 1.5*medW
	tip := [2]float64{mid[e][0] - ox, mid[e][1] - oy}
	x0, x1 := max(0, int(tip[0]-r)), min(body.w-1, int(math.Ceil(tip[0]+r)))
	y0, y1 := max(0, int(tip[1]-r)), min(body.h-1, int(math.Ceil(tip[1]+r)))
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			if body.pix[y*body.w+x] == 0 {
				continue
			}
			px, py := float64(x)+ox, float64(y)+oy
			if math.Hypot(float64(x)-tip[0], float64(y)-tip[1]) > r {
				continue
			}
			best, bestD := 0, math.Inf(1)
			for i, p := range mid {
				if d := math.Hypot(p[0]-px, p[1]-py); d < bestD {
					best, bestD = i, d
				}
			}
			if math.Abs(float64(best-e))*step > far {
				return true
			}
		}
	}
	return false
}

// headCue says which end of a free, whole worm is the head, from its shape and shading alone
// (head first order of widths and dark, the body width and the darkening along the midline):
// positive when the first end looks like the head, negative when the last does. Two cues add
// up, each as a share of the body's typical value over the last 15 % at each end: the head is
// blunter (the tail tapers to a point), and the head is paler (the pharynx is clearer than
// the intestine, which runs nearly to the tail, in bright-field and dark-field alike).
func headCue(widths, dark []float64) float64 {
	n := len(widths)
	if n < 5 || len(dark) != n {
		return 0
	}
	k := max(2, n*15/100)
	mw := median(slices.Clone(widths[k : n-k]))
	md := median(slices.Clone(dark[k : n-k]))
	if !(mw > 0) || !(md > 0) {
		return 0
	}
	var wa, wb, da, db float64
	for i := range k {
		wa += widths[i]
		wb += widths[n-1-i]
		da += dark[i]
		db += dark[n-1-i]
	}
	kk := float64(k)
	return (wa-wb)/(kk*mw) + (db-da)/(kk*md)
}
