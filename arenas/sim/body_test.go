package sim

import (
	"math"
	"testing"
)

func polyLength(p [][2]float64) float64 {
	l := 0.0
	for i := 1; i < len(p); i++ {
		l += math.Hypot(p[i][0]-p[i-1][0], p[i][1]-p[i-1][1])
	}
	return l
}

// The body keeps its length and its points follow the head's track (follow-the-leader): after
// the head has moved along a circle, every vertex lies on that circle.
func TestBodyFollowsTheLeader(t *testing.T) {
	var bd body
	const L, r = 1.0, 0.5
	bd.reset(r, 0, math.Pi/2, L, 49) // head at (r, 0) heading +y: tangent to the circle
	// Drive the head once around the circle in small steps.
	th := 0.0
	for i := 0; i < 4000; i++ {
		d := 2 * math.Pi * r / 4000
		th += d / r
		hx, hy := bd.head()
		bd.moveHead(r*math.Cos(th)-hx, r*math.Sin(th)-hy)
	}
	if math.Abs(bd.total-L) > 1e-9 {
		t.Fatalf("body length %v, want %v", bd.total, L)
	}
	mid := make([][2]float64, 50)
	bd.resample(mid)
	if l := polyLength(mid); math.Abs(l-L) > 0.01 {
		t.Fatalf("resampled length %v", l)
	}
	for i, p := range mid {
		if d := math.Abs(math.Hypot(p[0], p[1]) - r); d > 2e-3 {
			t.Fatalf("point %d is %.4f mm off the head's track", i, d)
		}
	}
	// Reversal: the tail leads back along the same track.
	for i := 0; i < 200; i++ {
		tx, ty := bd.tail()
		a := math.Atan2(ty, tx) - 0.001
		bd.moveTail(r*math.Cos(a)-tx, r*math.Sin(a)-ty)
	}
	bd.resample(mid)
	for i, p := range mid {
		if d := math.Abs(math.Hypot(p[0], p[1]) - r); d > 2e-3 {
			t.Fatalf("after reversing, point %d is %.4f mm off the track", i, d)
		}
	}
	if math.Abs(bd.total-L) > 1e-6 {
		t.Fatalf("body length %v after reversal", bd.total)
	}
}

func TestPoseOf(t *testing.T) {
	// A straight worm along +x with its head on the right.
	mid := make([][2]float64, 50)
	w := make([]float64, 50)
	for i := range mid {
		mid[i] = [2]float64{100 - float64(i), 50}
		w[i] = 4
	}
	p := PoseOf(mid, w)
	if math.Abs(p.BodyAngle) > 1e-9 || math.Abs(p.HeadAngle) > 1e-9 || p.Coiled {
		t.Fatalf("straight worm: %+v", p)
	}
	if math.Abs(p.X-75.5) > 1e-9 || p.Y != 50 {
		t.Fatalf("centre (%v, %v)", p.X, p.Y)
	}
	// Reversed order: the head is on the left, angles point left.
	for i := range mid {
		mid[i][0] = float64(i)
	}
	p = PoseOf(mid, w)
	if math.Abs(math.Abs(p.BodyAngle)-math.Pi) > 1e-9 {
		t.Fatalf("body angle %v, want pi", p.BodyAngle)
	}
	// A coil: a circle whose ends overlap.
	for i := range mid {
		a := 2.2 * math.Pi * float64(i) / 49
		mid[i] = [2]float64{100 + 9*math.Cos(a), 100 + 9*math.Sin(a)}
	}
	if p = PoseOf(mid, w); !p.Coiled {
		t.Fatal("coiled worm not flagged")
	}
	// Head angle follows the head: a worm bent 90 degrees near the head.
	for i := range mid {
		if i < 5 {
			mid[i] = [2]float64{50, 50 - float64(5-i)}
		} else {
			mid[i] = [2]float64{50 - float64(i-5), 50}
		}
	}
	p = PoseOf(mid, w)
	if math.Abs(p.HeadAngle+math.Pi/2) > 1e-9 {
		t.Fatalf("head angle %v, want -pi/2 (up in image axes)", p.HeadAngle)
	}
}

// Same seed, same worm; another seed, another one.
func TestModelDeterministic(t *testing.T) {
	line := mustLine(t, "301")
	run := func(seed uint64) [2]float64 {
		m, err := NewModel(DefaultBehaviour(), line, 17.9, seed, 0, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 600; i++ {
			m.Advance(1.0/3, i%7 < 2)
		}
		x, y := m.Centre()
		return [2]float64{x, y}
	}
	if a, b := run(5), run(5); a != b {
		t.Fatalf("same seed: %v vs %v", a, b)
	}
	if a, b := run(5), run(6); a == b {
		t.Fatal("different seeds give the same worm")
	}
	// Without light, every line's animal of a seed is the same animal.
	dark := func(code string) [2]float64 {
		m, err := NewModel(DefaultBehaviour(), mustLine(t, code), 17.9, 9, 0, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 900; i++ {
			m.Advance(1.0/3, false)
		}
		x, y := m.Centre()
		return [2]float64{x, y}
	}
	ref := dark("73")
	for _, code := range []string{"281", "301", "352", "446", "336", "437"} {
		if got := dark(code); got != ref {
			t.Errorf("line %s without light differs from the wild type: %v vs %v", code, got, ref)
		}
	}
}

// The worm never leaves the plate, even in long runs.
func TestStaysOnPlate(t *testing.T) {
	line := mustLine(t, "281")
	const R = 17.9
	for seed := uint64(1); seed <= 4; seed++ {
		m, err := NewModel(DefaultBehaviour(), line, R, seed, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		mid := make([][2]float64, 50)
		for i := 0; i < 3*1800; i++ {
			m.Advance(1.0/3, true) // 281 under light runs straight and fast
			m.Midline(mid)
			for _, p := range mid {
				if math.Hypot(p[0], p[1]) > R+1e-6 {
					t.Fatalf("seed %d frame %d: body at %.3f mm from the centre, plate %v", seed, i, math.Hypot(p[0], p[1]), R)
				}
			}
		}
	}
}
