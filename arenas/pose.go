package arenas

import "math"

// HeadFraction is the front share of the midline whose direction is the head angle.
const HeadFraction = 0.1

// BodyAngle is the body angle of a midline (head first): the direction of the line fitted
// through all its points (their principal axis), pointing from the tail half toward the head
// half. The simulator's truth and the tracker both use it, so they measure the same angle. It
// panics when mid has fewer than 2 points.
func BodyAngle(mid [][2]float64) float64 {
	n := len(mid)
	if n < 2 {
		panic("arenas: BodyAngle needs at least 2 midline points")
	}
	var mx, my float64
	for _, p := range mid {
		mx += p[0]
		my += p[1]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxx, syy, sxy float64
	for _, p := range mid {
		dx, dy := p[0]-mx, p[1]-my
		sxx += dx * dx
		syy += dy * dy
		sxy += dx * dy
	}
	a := 0.5 * math.Atan2(2*sxy, sxx-syy)
	ux, uy := math.Cos(a), math.Sin(a)
	// Orientation: the head half's points minus the tail half's, pairwise from the ends.
	var hx, hy float64
	for i := range n / 2 {
		hx += mid[i][0] - mid[n-1-i][0]
		hy += mid[i][1] - mid[n-1-i][1]
	}
	if ux*hx+uy*hy < 0 {
		ux, uy = -ux, -uy
	}
	return math.Atan2(uy, ux)
}

// HeadAngle is the head angle of a midline (head first): the direction from the point at
// HeadFraction of the midline's length to the head tip. It panics when mid has fewer than 2
// points.
func HeadAngle(mid [][2]float64) float64 {
	n := len(mid)
	if n < 2 {
		panic("arenas: HeadAngle needs at least 2 midline points")
	}
	var total float64
	for i := 1; i < n; i++ {
		total += math.Hypot(mid[i][0]-mid[i-1][0], mid[i][1]-mid[i-1][1])
	}
	k, arc := 1, math.Hypot(mid[1][0]-mid[0][0], mid[1][1]-mid[0][1])
	for k < n-1 && arc < HeadFraction*total {
		arc += math.Hypot(mid[k+1][0]-mid[k][0], mid[k+1][1]-mid[k][1])
		k++
	}
	return math.Atan2(mid[0][1]-mid[k][1], mid[0][0]-mid[k][0])
}
