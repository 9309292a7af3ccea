package track

import (
	"math"
	"slices"
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

	if length > maxElongation*medW {
		add("thin")
	}
	if slices.Max(widths) > 1.7*medW {
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
	for _, e := range []int{0, n - 1} {
		if endTouches(body, mid, e, medW, length, ox, oy) {
			add("touching")
		}
	}
	return flags
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
