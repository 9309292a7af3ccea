package track

import (
	"math"
)

// bitmap is a binary image of one blob: 1 inside, 0 outside. Its outermost rows and columns
// are kept 0, so neighbour lookups never leave it.
type bitmap struct {
	w, h int
	pix  []uint8
}

func (b *bitmap) reset(w, h int) {
	b.w, b.h = w, h
	n := w * h
	if cap(b.pix) < n {
		b.pix = make([]uint8, n)
	}
	b.pix = b.pix[:n]
	clear(b.pix)
}

func (b *bitmap) at(x, y int) bool {
	return x >= 0 && y >= 0 && x < b.w && y < b.h && b.pix[y*b.w+x] != 0
}

func (b *bitmap) count() int {
	n := 0
	for _, v := range b.pix {
		if v != 0 {
			n++
		}
	}
	return n
}

// perimeter counts the pixels of b with a 4-neighbour outside it.
func (b *bitmap) perimeter() int {
	n := 0
	for y := 1; y < b.h-1; y++ {
		for x := 1; x < b.w-1; x++ {
			i := y*b.w + x
			if b.pix[i] != 0 && (b.pix[i-1] == 0 || b.pix[i+1] == 0 || b.pix[i-b.w] == 0 || b.pix[i+b.w] == 0) {
				n++
			}
		}
	}
	return n
}

// geometry holds the scratch space of the shape analysis of one tracker.
type geometry struct {
	mark  []int32 // flood fill labels
	queue []int32
	skel  bitmap
	dist  []int32
	prev  []int32
	path  []int32
}

// fillHoles fills the enclosed background regions of b smaller than minHole pixels and returns
// the area of the largest hole left open (0 when none).
func (g *geometry) fillHoles(b *bitmap, minHole int) (largest int) {
	n := b.w * b.h
	if cap(g.mark) < n {
		g.mark = make([]int32, n)
	}
	g.mark = g.mark[:n]
	clear(g.mark)
	// Label the outside: every 0 pixel 4-connected to the border.
	g.queue = g.queue[:0]
	push := func(i int32) {
		if b.pix[i] == 0 && g.mark[i] == 0 {
			g.mark[i] = -1
			g.queue = append(g.queue, i)
		}
	}
	for x := 0; x < b.w; x++ {
		push(int32(x))
		push(int32((b.h-1)*b.w + x))
	}
	for y := 0; y < b.h; y++ {
		push(int32(y * b.w))
		push(int32(y*b.w + b.w - 1))
	}
	g.flood(b, push)
	// Every other 0 pixel belongs to a hole.
	for i := range n {
		if b.pix[i] != 0 || g.mark[i] != 0 {
			continue
		}
		g.queue = g.queue[:0]
		pushHole := func(j int32) {
			if b.pix[j] == 0 && g.mark[j] == 0 {
				g.mark[j] = 1
				g.queue = append(g.queue, j)
			}
		}
		pushHole(int32(i))
		g.flood(b, pushHole)
		area := len(g.queue)
		if area < minHole {
			for _, j := range g.queue {
				b.pix[j] = 1
			}
		} else if area > largest {
			largest = area
		}
	}
	return largest
}

// flood visits the 4-neighbours of every queued pixel through push; the queue keeps every
// pixel visited, in order.
func (g *geometry) flood(b *bitmap, push func(int32)) {
	for k := 0; k < len(g.queue); k++ {
		i := g.queue[k]
		x, y := int(i)%b.w, int(i)/b.w
		if x > 0 {
			push(i - 1)
		}
		if x < b.w-1 {
			push(i + 1)
		}
		if y > 0 {
			push(i - int32(b.w))
		}
		if y < b.h-1 {
			push(i + int32(b.w))
		}
	}
}

// thin computes the Zhang-Suen skeleton of b into g.skel.
func (g *geometry) thin(b *bitmap) {
	s := &g.skel
	s.reset(b.w, b.h)
	copy(s.pix, b.pix)
	w := s.w
	var del []int
	for changed := true; changed; {
		changed = false
		for step := 0; step < 2; step++ {
			del = del[:0]
			for y := 1; y < s.h-1; y++ {
				for x := 1; x < w-1; x++ {
					i := y*w + x
					if s.pix[i] == 0 {
						continue
					}
					p2 := s.pix[i-w]
					p3 := s.pix[i-w+1]
					p4 := s.pix[i+1]
					p5 := s.pix[i+w+1]
					p6 := s.pix[i+w]
					p7 := s.pix[i+w-1]
					p8 := s.pix[i-1]
					p9 := s.pix[i-w-1]
					nb := int(p2 + p3 + p4 + p5 + p6 + p7 + p8 + p9)
					if nb < 2 || nb > 6 {
						continue
					}
					trans := 0
					seq := [9]uint8{p2, p3, p4, p5, p6, p7, p8, p9, p2}
					for k := 0; k < 8; k++ {
						if seq[k] == 0 && seq[k+1] == 1 {
							trans++
						}
					}
					if trans != 1 {
						continue
					}
					if step == 0 {
						if p2*p4*p6 != 0 || p4*p6*p8 != 0 {
							continue
						}
					} else {
						if p2*p4*p8 != 0 || p2*p6*p8 != 0 {
							continue
						}
					}
					del = append(del, i)
				}
			}
			for _, i := range del {
				s.pix[i] = 0
			}
			if len(del) > 0 {
				changed = true
			}
		}
	}
}

// bfs runs a breadth-first search over the 8-connected skeleton from the pixels starts,
// filling g.dist (steps from the nearest start, -1 when unreached) and g.prev, and returns the
// farthest pixel and the number of pixels reached (g.queue holds them, in order).
func (g *geometry) bfs(starts ...int32) (far int32, reached int) {
	s := &g.skel
	n := s.w * s.h
	if cap(g.dist) < n {
		g.dist = make([]int32, n)
		g.prev = make([]int32, n)
	}
	g.dist, g.prev = g.dist[:n], g.prev[:n]
	for i := range g.dist {
		g.dist[i] = -1
	}
	g.queue = append(g.queue[:0], starts...)
	for _, i := range starts {
		g.dist[i] = 0
		g.prev[i] = -1
	}
	far = starts[0]
	nbr8 := [8][2]int{{1, 0}, {-1, 0}, {0, 1}, {0, -1}, {1, 1}, {1, -1}, {-1, 1}, {-1, -1}}
	for k := 0; k < len(g.queue); k++ {
		i := g.queue[k]
		x, y := int(i)%s.w, int(i)/s.w
		for _, d := range nbr8 {
			nx, ny := x+d[0], y+d[1]
			if !s.at(nx, ny) {
				continue
			}
			j := int32(ny*s.w + nx)
			if g.dist[j] >= 0 {
				continue
			}
			g.dist[j] = g.dist[i] + 1
			g.prev[j] = i
			g.queue = append(g.queue, j)
			if g.dist[j] > g.dist[far] {
				far = j
			}
		}
	}
	return far, len(g.queue)
}

// skeletonInfo summarises the skeleton of a blob.
type skeletonInfo struct {
	pixels    int // skeleton pixels in the component of the path
	pathPix   int // pixels on the longest path
	branchPix int // skeleton pixels off the longest path
}

// longestPath finds the longest geodesic path of the largest skeleton component; it returns
// the path's pixel coordinates from one end to the other.
func (g *geometry) longestPath(pts [][2]float64) ([][2]float64, skeletonInfo) {
	s := &g.skel
	pts = pts[:0]
	start := int32(-1)
	bestReach := 0
	// Pick the largest component: try each unvisited skeleton pixel as a seed.
	n := s.w * s.h
	if cap(g.mark) < n {
		g.mark = make([]int32, n)
	}
	g.mark = g.mark[:n]
	clear(g.mark)
	for i := range n {
		if s.pix[i] == 0 || g.mark[i] != 0 {
			continue
		}
		_, reached := g.bfs(int32(i))
		for _, j := range g.queue {
			g.mark[j] = 1
		}
		if reached > bestReach {
			bestReach, start = reached, int32(i)
		}
	}
	if start < 0 {
		return pts, skeletonInfo{}
	}
	a, _ := g.bfs(start)
	b, reached := g.bfs(a)
	g.path = g.path[:0]
	for i := b; i >= 0; i = g.prev[i] {
		g.path = append(g.path, i)
	}
	for _, i := range g.path {
		pts = append(pts, [2]float64{float64(int(i) % s.w), float64(int(i) / s.w)})
	}
	info := skeletonInfo{pixels: reached, pathPix: len(g.path), branchPix: reached - len(g.path)}
	return pts, info
}

// branchBeyond counts the skeleton pixels of the longest path's component (after
// longestPath) that are more than minLen steps from the path along the skeleton: the parts of
// side branches beyond minLen.
func (g *geometry) branchBeyond(minLen int) int {
	if len(g.path) == 0 {
		return 0
	}
	g.bfs(g.path...)
	n := 0
	for _, i := range g.queue {
		if int(g.dist[i]) > minLen {
			n++
		}
	}
	return n
}

// polyLength is the length of a polyline.
func polyLength(p [][2]float64) float64 {
	l := 0.0
	for i := 1; i < len(p); i++ {
		l += math.Hypot(p[i][0]-p[i-1][0], p[i][1]-p[i-1][1])
	}
	return l
}

// smoothPath returns a moving average of p over 2*half+1 points, keeping both ends fixed and
// shrinking the window near them.
func smoothPath(dst, p [][2]float64, half int) [][2]float64 {
	dst = dst[:0]
	n := len(p)
	for i := range n {
		h := min(half, i, n-1-i)
		var sx, sy float64
		for k := i - h; k <= i+h; k++ {
			sx += p[k][0]
			sy += p[k][1]
		}
		c := float64(2*h + 1)
		dst = append(dst, [2]float64{sx / c, sy / c})
	}
	return dst
}

// extendEnds prolongs both ends of p along their end directions (measured over back px)
// while the extension stays inside mask, by at most maxExt px. Mask coordinates are p's.
func extendEnds(p [][2]float64, mask *bitmap, back, maxExt float64) [][2]float64 {
	if len(p) < 2 {
		return p
	}
	ext := func(end, dirFrom [2]float64) ([2]float64, bool) {
		dx, dy := end[0]-dirFrom[0], end[1]-dirFrom[1]
		l := math.Hypot(dx, dy)
		if l < 1e-9 {
			return end, false
		}
		dx, dy = dx/l, dy/l
		last := end
		moved := false
		for t := 0.5; t <= maxExt; t += 0.5 {
			q := [2]float64{end[0] + t*dx, end[1] + t*dy}
			if !mask.at(int(math.Round(q[0])), int(math.Round(q[1]))) {
				break
			}
			last, moved = q, true
		}
		return last, moved
	}
	// Direction reference: the point about back px from each end along the path.
	ref := func(fromEnd bool) [2]float64 {
		acc := 0.0
		n := len(p)
		for k := 1; k < n; k++ {
			i, j := k, k-1
			if fromEnd {
				i, j = n-1-k, n-k
			}
			acc += math.Hypot(p[i][0]-p[j][0], p[i][1]-p[j][1])
			if acc >= back {
				return p[i]
			}
		}
		if fromEnd {
			return p[0]
		}
		return p[n-1]
	}
	if q, ok := ext(p[0], ref(false)); ok {
		p = append([][2]float64{q}, p...)
	}
	if q, ok := ext(p[len(p)-1], ref(true)); ok {
		p = append(p, q)
	}
	return p
}

// resample returns n points evenly spaced by arc length along p (n >= 2, len(p) >= 1).
func resample(dst, p [][2]float64, n int) [][2]float64 {
	dst = dst[:0]
	total := polyLength(p)
	if len(p) == 1 || total == 0 {
		for range n {
			dst = append(dst, p[0])
		}
		return dst
	}
	step := total / float64(n-1)
	seg, acc := 0, 0.0 // acc: arc length at p[seg]
	for k := range n {
		target := step * float64(k)
		for seg < len(p)-2 {
			l := math.Hypot(p[seg+1][0]-p[seg][0], p[seg+1][1]-p[seg][1])
			if acc+l >= target {
				break
			}
			acc += l
			seg++
		}
		l := math.Hypot(p[seg+1][0]-p[seg][0], p[seg+1][1]-p[seg][1])
		t := 0.0
		if l > 0 {
			t = math.Min(1, math.Max(0, (target-acc)/l))
		}
		dst = append(dst, [2]float64{
			p[seg][0] + t*(p[seg+1][0]-p[seg][0]),
			p[seg][1] + t*(p[seg+1][1]-p[seg][1]),
		})
	}
	dst[n-1] = p[len(p)-1]
	return dst
}
