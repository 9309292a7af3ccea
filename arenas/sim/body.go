package sim

import "math"

// ringCap is the capacity of the body's vertex ring. A body of n segments never holds more than
// n+4 vertices (all segments are one segment length long except the two tip segments and at
// most two left over from direction changes, which the trailing end soon drops).
const ringCap = 256

// body is the worm's midline as a polyline that slides along its own track (follow-the-leader):
// the leading tip (the head going forward, the tail in reversal) moves, new vertices are laid
// down behind it every seg millimetres, and the trailing end is pulled along the polyline so that
// the total length stays length. Vertices live in a ring indexed by b (tail end) to f (head end);
// segLen[i] is the length from vertex i to vertex i+1. Coordinates are millimetres.
type body struct {
	x, y   [ringCap]float64
	segLen [ringCap]float64
	b, f   int // tail vertex, head vertex (f > b; indices taken mod ringCap)
	total  float64
	length float64
	seg    float64
}

func idx(i int) int { return i & (ringCap - 1) }

// reset lays the body out straight with its head at (hx, hy) pointing along angle theta.
func (bd *body) reset(hx, hy, theta, length float64, segments int) {
	bd.length = length
	bd.seg = length / float64(segments)
	bd.b, bd.f = 0, segments
	c, s := math.Cos(theta), math.Sin(theta)
	for i := 0; i <= segments; i++ {
		d := float64(segments-i) * bd.seg
		bd.x[idx(i)] = hx - c*d
		bd.y[idx(i)] = hy - s*d
		bd.segLen[idx(i)] = bd.seg
	}
	bd.total = length
}

// head and tail return the tips.
func (bd *body) head() (float64, float64) { return bd.x[idx(bd.f)], bd.y[idx(bd.f)] }
func (bd *body) tail() (float64, float64) { return bd.x[idx(bd.b)], bd.y[idx(bd.b)] }

// moveHead moves the head tip by (dx, dy) and pulls the tail along (forward locomotion).
func (bd *body) moveHead(dx, dy float64) {
	f := bd.f
	p := idx(f - 1)
	bd.x[idx(f)] += dx
	bd.y[idx(f)] += dy
	old := bd.segLen[p]
	l := math.Hypot(bd.x[idx(f)]-bd.x[p], bd.y[idx(f)]-bd.y[p])
	bd.segLen[p] = l
	bd.total += l - old
	for l >= bd.seg {
		tx, ty := bd.x[idx(f)], bd.y[idx(f)]
		ux, uy := (tx-bd.x[p])/l, (ty-bd.y[p])/l
		bd.x[idx(f)] = bd.x[p] + ux*bd.seg
		bd.y[idx(f)] = bd.y[p] + uy*bd.seg
		bd.segLen[p] = bd.seg
		f++
		p = idx(f - 1)
		bd.x[idx(f)], bd.y[idx(f)] = tx, ty
		l -= bd.seg
		bd.segLen[p] = l
	}
	bd.f = f
	// Pull the tail: drop or shorten trailing segments by the excess length.
	excess := bd.total - bd.length
	for excess > 0 && bd.f-bd.b > 1 {
		i := idx(bd.b)
		sl := bd.segLen[i]
		if sl <= excess {
			bd.total -= sl
			excess -= sl
			bd.b++
			continue
		}
		n := idx(bd.b + 1)
		k := excess / sl
		bd.x[i] += (bd.x[n] - bd.x[i]) * k
		bd.y[i] += (bd.y[n] - bd.y[i]) * k
		bd.segLen[i] = sl - excess
		bd.total -= excess
		excess = 0
	}
}

// moveTail moves the tail tip by (dx, dy) and pushes the head back along the body (reversal).
func (bd *body) moveTail(dx, dy float64) {
	b := bd.b
	bi := idx(b)
	n := idx(b + 1)
	bd.x[bi] += dx
	bd.y[bi] += dy
	old := bd.segLen[bi]
	l := math.Hypot(bd.x[bi]-bd.x[n], bd.y[bi]-bd.y[n])
	bd.segLen[bi] = l
	bd.total += l - old
	for l >= bd.seg {
		tx, ty := bd.x[bi], bd.y[bi]
		ux, uy := (tx-bd.x[n])/l, (ty-bd.y[n])/l
		bd.x[bi] = bd.x[n] + ux*bd.seg
		bd.y[bi] = bd.y[n] + uy*bd.seg
		bd.segLen[bi] = bd.seg
		b--
		bi, n = idx(b), idx(b+1)
		bd.x[bi], bd.y[bi] = tx, ty
		l -= bd.seg
		bd.segLen[bi] = l
	}
	bd.b = b
	excess := bd.total - bd.length
	for excess > 0 && bd.f-bd.b > 1 {
		p := idx(bd.f - 1)
		i := idx(bd.f)
		sl := bd.segLen[p]
		if sl <= excess {
			bd.total -= sl
			excess -= sl
			bd.f--
			continue
		}
		k := excess / sl
		bd.x[i] += (bd.x[p] - bd.x[i]) * k
		bd.y[i] += (bd.y[p] - bd.y[i]) * k
		bd.segLen[p] = sl - excess
		bd.total -= excess
		excess = 0
	}
}

// centroid returns the length-weighted centre of the midline.
func (bd *body) centroid() (float64, float64) {
	var sx, sy, sw float64
	for i := bd.b; i < bd.f; i++ {
		a, n := idx(i), idx(i+1)
		w := bd.segLen[a]
		sx += w * (bd.x[a] + bd.x[n])
		sy += w * (bd.y[a] + bd.y[n])
		sw += w
	}
	if sw == 0 {
		return bd.head()
	}
	return sx / (2 * sw), sy / (2 * sw)
}

// pointFromHead returns the point at arc length s (mm) from the head tip along the midline.
func (bd *body) pointFromHead(s float64) (float64, float64) {
	for i := bd.f; i > bd.b; i-- {
		a, p := idx(i), idx(i-1)
		sl := bd.segLen[p]
		if s <= sl {
			if sl == 0 {
				return bd.x[a], bd.y[a]
			}
			k := s / sl
			return bd.x[a] + (bd.x[p]-bd.x[a])*k, bd.y[a] + (bd.y[p]-bd.y[a])*k
		}
		s -= sl
	}
	return bd.tail()
}

// pointFromTail returns the point at arc length s (mm) from the tail tip along the midline.
func (bd *body) pointFromTail(s float64) (float64, float64) {
	for i := bd.b; i < bd.f; i++ {
		a, n := idx(i), idx(i+1)
		sl := bd.segLen[a]
		if s <= sl {
			if sl == 0 {
				return bd.x[a], bd.y[a]
			}
			k := s / sl
			return bd.x[a] + (bd.x[n]-bd.x[a])*k, bd.y[a] + (bd.y[n]-bd.y[a])*k
		}
		s -= sl
	}
	return bd.head()
}

// resample writes n points evenly spaced by arc length from head to tail into dst (mm).
func (bd *body) resample(dst [][2]float64) {
	n := len(dst)
	if n == 0 {
		return
	}
	if n == 1 {
		x, y := bd.centroid()
		dst[0] = [2]float64{x, y}
		return
	}
	step := bd.total / float64(n-1)
	i := bd.f  // current segment runs from vertex i to i-1
	acc := 0.0 // arc length at vertex i
	for k := 0; k < n; k++ {
		s := float64(k) * step
		for i > bd.b+1 && acc+bd.segLen[idx(i-1)] < s {
			acc += bd.segLen[idx(i-1)]
			i--
		}
		a, p := idx(i), idx(i-1)
		sl := bd.segLen[p]
		t := 0.0
		if sl > 0 {
			t = math.Min(math.Max((s-acc)/sl, 0), 1)
		}
		dst[k] = [2]float64{bd.x[a] + (bd.x[p]-bd.x[a])*t, bd.y[a] + (bd.y[p]-bd.y[a])*t}
	}
}
