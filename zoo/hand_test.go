package zoo

import (
	"math"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/agentlib/obs"
)

// observation encodes 15 frames of a worm at the origin with body angle body and the head at
// headRel(i) radians from the body at frame i, the target at (tx, ty) reference pixels, as the
// worker's builder does (obs.Encode), the scene rotated by theta about the target.
func observation(body float64, headRel func(i int) float64, tx, ty, theta float64) []float32 {
	p := make([]obs.Pose, obs.Frames)
	for i := range p {
		p[i] = obs.Pose{X: 0, Y: 0, Body: body, Head: body + headRel(i)}
	}
	o := make([]float32, obs.Size)
	obs.Encode(o, p, tx, ty, theta)
	return o
}

func straight(int) float64 { return 0 }

func TestHandFamily(t *testing.T) {
	fam := HandFamily()
	if len(fam) < 10 || len(fam) > 30 {
		t.Fatalf("%d policies", len(fam))
	}
	names := map[string]bool{}
	triggers := map[Trigger]bool{}
	pulses := 0
	for _, p := range fam {
		if err := p.Validate(); err != nil {
			t.Error(err)
		}
		if names[p.Name] {
			t.Errorf("policy name %s twice", p.Name)
		}
		names[p.Name] = true
		triggers[p.Trigger] = true
		if p.Pulse > 0 {
			pulses++
		}
	}
	if len(triggers) != 6 || pulses == 0 {
		t.Errorf("triggers %v, %d pulsed policies", triggers, pulses)
	}
	for _, bad := range []HandPolicy{{Trigger: FacingAway}, {Name: "x", Trigger: "sideways"}, {Name: "x", Trigger: FacingAway, Threshold: math.NaN()}, {Name: "x", Trigger: FacingAway, Pulse: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

// TestHandFeatures reads facing, target side and the head-swing proxy from constructed
// observations, and checks that they do not change when the scene is rotated about the target
// (as the agents' augmentation rotates it).
func TestHandFeatures(t *testing.T) {
	swingUp := func(i int) float64 { // head swung to the positive side at the newest frame, rising
		return 0.4 * math.Sin(2*math.Pi*float64(i-13)/8.4)
	}
	tests := []struct {
		name               string
		body               float64
		head               func(int) float64
		tx, ty             float64
		facing, side       float64
		swingPos, swingInc bool
	}{
		{"facing the target", 0, straight, 900, 0, 1, 1, false, false},
		{"facing away", math.Pi - 0.1, straight, 900, 0, math.Cos(math.Pi - 0.1), -1, false, false},
		{"target on the positive side", 0, straight, 0, 900, 0, 1, false, false},
		{"target on the negative side", 0, straight, 0, -900, 0, -1, false, false},
		{"head swinging up to the positive side", 0, swingUp, 0, 900, 0, 1, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, theta := range []float64{0, 1, -2.5} {
				f := Features(observation(tt.body, tt.head, tt.tx, tt.ty, theta))
				if math.Abs(f.Facing-tt.facing) > 1e-5 || f.TargetSide != tt.side {
					t.Fatalf("theta %v: facing %v side %v, want %v %v", theta, f.Facing, f.TargetSide, tt.facing, tt.side)
				}
				if (f.Swing > 0.1) != tt.swingPos || (f.SwingRate > 0.01) != tt.swingInc {
					t.Fatalf("theta %v: swing %v rate %v, want positive %v rising %v", theta, f.Swing, f.SwingRate, tt.swingPos, tt.swingInc)
				}
			}
		})
	}
}

// TestHandPolicies checks that each trigger lights where it says, and that pulses have their
// length and refractory time.
func TestHandPolicies(t *testing.T) {
	swingUp := func(i int) float64 { return 0.4 * math.Sin(2*math.Pi*float64(i-13)/8.4) }
	toward := observation(0, straight, 900, 0, 0)     // facing the target
	away := observation(math.Pi, straight, 900, 0, 0) // facing away
	side := observation(0, straight, 900, 100, 0)     // facing cos ~0.99, target slightly positive
	upPos := observation(0, swingUp, 300, 900, 0)     // head up on the target's side
	upNeg := observation(0, swingUp, 300, -900, 0)    // head up on the other side
	act := func(p HandPolicy, o []float32) int { return p.New().Act(o) }
	tests := []struct {
		p    HandPolicy
		o    []float32
		want int
	}{
		{HandPolicy{Name: "a", Trigger: FacingAway, Threshold: -0.5}, away, 1},
		{HandPolicy{Name: "a", Trigger: FacingAway, Threshold: -0.5}, toward, 0},
		{HandPolicy{Name: "t", Trigger: FacingToward, Threshold: 0.8}, toward, 1},
		{HandPolicy{Name: "t", Trigger: FacingToward, Threshold: 0.8}, away, 0},
		{HandPolicy{Name: "t", Trigger: FacingToward, Threshold: 0.995}, side, 0},
		{HandPolicy{Name: "h", Trigger: HeadTargetSide}, upPos, 1},
		{HandPolicy{Name: "h", Trigger: HeadTargetSide}, upNeg, 0},
		{HandPolicy{Name: "o", Trigger: HeadOtherSide}, upNeg, 1},
		{HandPolicy{Name: "o", Trigger: HeadOtherSide}, upPos, 0},
		{HandPolicy{Name: "s", Trigger: SwingTargetSide, Threshold: 0.05}, upPos, 1},
		{HandPolicy{Name: "s", Trigger: SwingTargetSide, Threshold: 0.05}, upNeg, 0},
		{HandPolicy{Name: "so", Trigger: SwingOtherSide, Threshold: 0.05}, upNeg, 1},
		{HandPolicy{Name: "so", Trigger: SwingOtherSide, Threshold: 0.05}, toward, 0},
	}
	for _, tt := range tests {
		if got := act(tt.p, tt.o); got != tt.want {
			t.Errorf("%s %s%+g: light %d, want %d", tt.p.Name, tt.p.Trigger, tt.p.Threshold, got, tt.want)
		}
	}
	// A 1 s pulse (3 frames) at most every 3 frames + 9 off, while facing away throughout.
	p := HandPolicy{Name: "pulse", Trigger: FacingAway, Threshold: 0, Pulse: 3, Refractory: 9}.New()
	var got strings.Builder
	for range 27 {
		got.WriteByte("01"[p.Act(away)])
	}
	if want := "111000000000111000000000111"; got.String() != want {
		t.Errorf("pulses %s, want %s", got.String(), want)
	}
	// A pulse runs to its end even when the trigger stops holding, and none starts without it.
	p = HandPolicy{Name: "pulse", Trigger: FacingAway, Threshold: 0, Pulse: 2, Refractory: 1}.New()
	got.Reset()
	for _, o := range [][]float32{away, toward, toward, away, away, away, toward} {
		got.WriteByte("01"[p.Act(o)])
	}
	if want := "1101100"; got.String() != want {
		t.Errorf("pulses %s, want %s", got.String(), want)
	}
	defer func() {
		if recover() == nil {
			t.Error("a short observation did not panic")
		}
	}()
	HandFamily()[0].New().Act(make([]float32, 10))
}
