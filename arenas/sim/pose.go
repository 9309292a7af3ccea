package sim

import (
	"math"

	"github.com/optoloop/optoloop/arenas"
)

// PoseOf computes a pose from a midline (pixels, head first) and the full body width at each
// point (pixels): the centre is the length-weighted centroid of the midline, the body and head
// angles those of arenas.BodyAngle and arenas.HeadAngle (the tracker's definitions), and Coiled is set when two parts of the body at least three body
// widths apart along the midline cross or touch. The pose is marked OK with confidence 1; Speed
// is left 0. PoseOf panics when the midline has fewer than 2 points or widths has another length.
func PoseOf(mid [][2]float64, widths []float64) arenas.Pose {
	n := len(mid)
	if n < 2 || len(widths) != n {
		panic("sim: PoseOf needs at least 2 midline points and one width per point")
	}
	var sx, sy, sw float64
	seg := make([]float64, n) // cumulative arc length
	for i := 1; i < n; i++ {
		l := math.Hypot(mid[i][0]-mid[i-1][0], mid[i][1]-mid[i-1][1])
		seg[i] = seg[i-1] + l
		sx += l * (mid[i][0] + mid[i-1][0]) / 2
		sy += l * (mid[i][1] + mid[i-1][1]) / 2
		sw += l
	}
	cx, cy := mid[0][0], mid[0][1]
	if sw > 0 {
		cx, cy = sx/sw, sy/sw
	}
	ang := arenas.BodyAngle(mid)
	headAng := arenas.HeadAngle(mid)
	maxW := 0.0
	for _, w := range widths {
		maxW = math.Max(maxW, w)
	}
	return arenas.Pose{
		OK:         true,
		Confidence: 1,
		X:          cx,
		Y:          cy,
		Head:       mid[0],
		Tail:       mid[n-1],
		BodyAngle:  ang,
		HeadAngle:  headAng,
		Coiled:     coiled(mid, seg, maxW),
		Midline:    mid,
	}
}

// coiled reports whether parts of the midline at least 3 widths apart along it cross or come
// within one width of each other.
func coiled(mid [][2]float64, arc []float64, width float64) bool {
	n := len(mid)
	gap := 3 * width
	for i := 0; i < n-1; i++ {
		li := arc[i+1] - arc[i]
		for j := i + 2; j < n-1; j++ {
			if arc[j]-arc[i+1] < gap {
				continue
			}
			// Segments farther apart than their lengths plus a width can neither cross nor touch.
			dx, dy := mid[i][0]-mid[j][0], mid[i][1]-mid[j][1]
			if r := li + arc[j+1] - arc[j] + width; dx*dx+dy*dy > r*r {
				continue
			}
			if segmentsCross(mid[i], mid[i+1], mid[j], mid[j+1]) {
				return true
			}
			if dx*dx+dy*dy < width*width {
				return true
			}
		}
	}
	return false
}

func segmentsCross(a, b, c, d [2]float64) bool {
	cross := func(o, p, q [2]float64) float64 {
		return (p[0]-o[0])*(q[1]-o[1]) - (p[1]-o[1])*(q[0]-o[0])
	}
	d1, d2 := cross(c, d, a), cross(c, d, b)
	d3, d4 := cross(a, b, c), cross(a, b, d)
	return ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0))
}
