package track

import (
	"math"
	"testing"
)

// drawCapsule sets the pixels of b within r of the segment a-b.
func drawCapsule(bm *bitmap, a, b [2]float64, r float64) {
	for y := 1; y < bm.h-1; y++ {
		for x := 1; x < bm.w-1; x++ {
			p := [2]float64{float64(x), float64(y)}
			if distToPolyline(p, [][2]float64{a, b}) <= r {
				bm.pix[y*bm.w+x] = 1
			}
		}
	}
}

// TestSkeletonPath checks the midline of a straight bar (5 px wide, 60 px long) with a small
// hole, a spur and without them: the longest path, prolonged to the tips, spans the bar.
func TestSkeletonPath(t *testing.T) {
	tests := []struct {
		name       string
		hole, spur bool
		wantHole   bool
	}{
		{"plain bar", false, false, false},
		{"small hole is filled", true, false, false},
		{"spur is passed by", false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g geometry
			var b bitmap
			b.reset(80, 30)
			drawCapsule(&b, [2]float64{10, 15}, [2]float64{70, 15}, 2.6)
			if tt.spur {
				drawCapsule(&b, [2]float64{40, 15}, [2]float64{44, 26}, 1.2)
			}
			if tt.hole {
				b.pix[15*b.w+30] = 0
				b.pix[15*b.w+31] = 0
			}
			if hole := g.fillHoles(&b, 4); (hole > 0) != tt.wantHole {
				t.Fatalf("largest open hole %d", hole)
			}
			g.thin(&b)
			path, info := g.longestPath(nil)
			if len(path) < 2 {
				t.Fatal("no path")
			}
			sm := smoothPath(nil, path, 2)
			ext := extendEnds(sm, &b, 4, 6)
			mid := resample(nil, ext, 49)
			l := polyLength(mid)
			if math.Abs(l-64) > 3 {
				t.Errorf("midline length %.1f, want ~64 (bar plus its rounded ends)", l)
			}
			for _, p := range mid {
				if math.Abs(p[1]-15) > 1.5 {
					t.Fatalf("midline point %v off the bar's axis", p)
				}
			}
			if tt.spur && info.branchPix == 0 {
				t.Error("the spur left no branch pixels")
			}
			// Evenly spaced.
			for i := 2; i < len(mid); i++ {
				if d := dist(mid[i], mid[i-1]) - dist(mid[1], mid[0]); math.Abs(d) > 0.2 {
					t.Fatalf("uneven spacing at %d: %.2f", i, d)
				}
			}
		})
	}
}

// TestLoopKeepsHole: a ring (a worm lying in a closed loop) keeps its hole.
func TestLoopKeepsHole(t *testing.T) {
	var g geometry
	var b bitmap
	b.reset(60, 60)
	for y := range 60 {
		for x := range 60 {
			r := math.Hypot(float64(x)-30, float64(y)-30)
			if r >= 10 && r <= 15 && x > 0 && y > 0 && x < 59 && y < 59 {
				b.pix[y*60+x] = 1
			}
		}
	}
	if hole := g.fillHoles(&b, 12); hole < 200 {
		t.Errorf("largest hole %d px, want the ring's ~300", hole)
	}
}
