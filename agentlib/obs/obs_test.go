package obs

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestEncodeLayout(t *testing.T) {
	p := make([]Pose, Frames)
	for i := range p {
		p[i] = Pose{X: 1000 + float64(i), Y: 500 - 2*float64(i), Body: 0.1 * float64(i), Head: -0.2 * float64(i)}
	}
	dst := make([]float32, Size)
	Encode(dst, p, 100, 200, 0)
	for i := range Frames {
		want := []float64{
			math.Sin(0.1 * float64(i)), math.Cos(0.1 * float64(i)),
			math.Sin(-0.2 * float64(i)), math.Cos(-0.2 * float64(i)),
			(900 + float64(i)) / 900, (300 - 2*float64(i)) / 900,
		}
		for f, w := range want {
			if got := float64(dst[f*Frames+i]); !near(got, w, 1e-6) {
				t.Fatalf("feature %d frame %d: %v, want %v", f, i, got, w)
			}
		}
	}
}

func TestEncodeRotationIsRotationAboutTarget(t *testing.T) {
	p := make([]Pose, Frames)
	q := make([]Pose, Frames)
	tx, ty, th := 300.0, -40.0, 1.1
	for i := range p {
		p[i] = Pose{X: 50 * float64(i), Y: 30 - 7*float64(i), Body: 0.3 * float64(i), Head: 2 - 0.1*float64(i)}
		dx, dy := p[i].X-tx, p[i].Y-ty
		q[i] = Pose{X: tx + dx*math.Cos(th) - dy*math.Sin(th), Y: ty + dx*math.Sin(th) + dy*math.Cos(th),
			Body: p[i].Body + th, Head: p[i].Head + th}
	}
	a := make([]float32, Size)
	b := make([]float32, Size)
	Encode(a, p, tx, ty, th)
	Encode(b, q, tx, ty, 0)
	for i := range a {
		if !near(float64(a[i]), float64(b[i]), 1e-5) {
			t.Fatalf("index %d: rotated encode %v, encode of rotated scene %v", i, a[i], b[i])
		}
	}
}

// TestMirrorIsReflectionOfTheScene: Mirror of an observation is the observation of the scene
// reflected across the horizontal line through the target (y - ty and every angle negated),
// with and without the light.
func TestMirrorIsReflectionOfTheScene(t *testing.T) {
	p := make([]Pose, Frames)
	q := make([]Pose, Frames)
	tx, ty := 300.0, -40.0
	for i := range p {
		p[i] = Pose{X: 50 * float64(i), Y: 30 - 7*float64(i), Body: 0.3 * float64(i), Head: 2 - 0.1*float64(i), Light: i%3 == 0}
		q[i] = Pose{X: p[i].X, Y: 2*ty - p[i].Y, Body: -p[i].Body, Head: -p[i].Head, Light: p[i].Light}
	}
	for _, size := range []int{Size, LightSize} {
		a := make([]float32, size)
		b := make([]float32, size)
		Encode(a, p, tx, ty, 0.7)
		Mirror(a)
		Encode(b, q, tx, ty, -0.7)
		for i := range a {
			if !near(float64(a[i]), float64(b[i]), 1e-5) {
				t.Fatalf("size %d, index %d: mirrored %v, encode of the reflected scene %v", size, i, a[i], b[i])
			}
		}
	}
}

func TestReward(t *testing.T) {
	cases := []struct {
		name                   string
		x0, y0, x1, y1, tx, ty float64
		want                   float64
	}{
		{"closer by 90 px", 500, 0, 410, 0, 0, 0, 2 * 90.0 / 900},
		{"farther by 45 px", 0, 300, 0, 345, 0, 0, -2 * 45.0 / 900},
		{"reached", 100, 100, 20, 0, 0, 0, 4},
		{"just outside", 31, 0, 30.5, 0, 0, 0, 2 * 0.5 / 900},
		{"on the radius", 31, 0, 30, 0, 0, 0, 4},
	}
	for _, c := range cases {
		if got := Reward(c.x0, c.y0, c.x1, c.y1, c.tx, c.ty); !near(got, c.want, 1e-12) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestBuilderWindowPaddingAndLostFrames(t *testing.T) {
	b := NewBuilder(10, 20)
	dst := make([]float32, Size)
	if b.Observation(dst) {
		t.Fatal("observation before any frame")
	}
	var all []Pose
	for i := range 20 {
		p := Pose{X: float64(i), Y: float64(2 * i), Body: 0.05 * float64(i), Head: 0.07 * float64(i)}
		all = append(all, p)
		b.Push(p, true)
		if !b.Observation(dst) {
			t.Fatal("no observation after a tracked frame")
		}
		want := make([]Pose, Frames)
		for k := range Frames {
			want[k] = all[max(0, len(all)-Frames+k)]
		}
		ref := make([]float32, Size)
		Encode(ref, want, 10, 20, 0)
		for k := range ref {
			if ref[k] != dst[k] {
				t.Fatalf("after %d frames index %d: %v, want %v", i+1, k, dst[k], ref[k])
			}
		}
		if b.Ready() != (i+1 >= Frames) {
			t.Fatalf("Ready %v after %d frames", b.Ready(), i+1)
		}
	}
	held := append([]float32(nil), dst...)
	b.Push(Pose{X: 1e6}, false)
	b.Observation(dst)
	for k := range dst {
		if dst[k] != held[k] {
			t.Fatal("a lost frame changed the observation")
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { b.Observation(dst) }); allocs != 0 {
		t.Fatalf("Observation allocates %v", allocs)
	}
	b.Reset(0, 0)
	if b.Observation(dst) || b.Tracked() != 0 {
		t.Fatal("Reset kept frames")
	}
}

// The light observation is the reference's 90 numbers followed by the light row; rotation leaves
// the light alone; the Builder gives each frame the light decided after the frame before it.
func TestLightObservationLayoutAndBuilder(t *testing.T) {
	p := make([]Pose, Frames)
	for i := range p {
		p[i] = Pose{X: 1000 + 3*float64(i), Y: 500, Body: 0.1 * float64(i), Head: 0.2, Light: i%4 == 1}
	}
	ref, lit := make([]float32, Size), make([]float32, LightSize)
	Encode(ref, p, 100, 200, 0.7)
	Encode(lit, p, 100, 200, 0.7)
	for i := range ref {
		if ref[i] != lit[i] {
			t.Fatalf("number %d: %v in the light observation, %v in the reference's", i, lit[i], ref[i])
		}
	}
	for i := range Frames {
		if want := float32(map[bool]int{true: 1}[p[i].Light]); lit[Size+i] != want {
			t.Fatalf("light of frame %d: %v, want %v", i, lit[Size+i], want)
		}
	}

	b := NewBuilder(0, 0)
	var decided []bool
	for i := range Frames + 5 {
		b.Push(Pose{X: float64(i), Light: true}, true) // Pose.Light is ignored: Decided rules
		on := i%3 == 0
		b.Decided(on)
		decided = append(decided, on)
	}
	b.Push(Pose{X: 99}, false) // lost: ignored, but its decision counts
	b.Decided(true)
	decided = append(decided, true)
	b.Push(Pose{X: 100}, true)
	o := make([]float32, LightSize)
	if !b.Observation(o) {
		t.Fatal("no observation")
	}
	// The window holds the tracked frames 6..19 and 100 (after the lost one); frame k was
	// captured under decision k-1; frame 100 under the lost frame's decision.
	for i := range Frames - 1 {
		k := 6 + i
		if want := float32(map[bool]int{true: 1}[decided[k-1]]); o[Size+i] != want {
			t.Fatalf("window frame %d (x=%d): light %v, want %v", i, k, o[Size+i], want)
		}
	}
	if o[Size+Frames-1] != 1 {
		t.Fatalf("newest frame captured after the lost frame's light-on: light %v", o[Size+Frames-1])
	}
}
