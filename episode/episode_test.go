package episode

import (
	"math"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    Policy
		wantErr string
	}{
		{in: "none", want: Policy{Kind: None}},
		{in: "always", want: Policy{Kind: Always}},
		{in: "random:0.15", want: Policy{Kind: Random, P: 0.15}},
		{in: "random:1", want: Policy{Kind: Random, P: 1}},
		{in: "random:0", want: Policy{Kind: Random, P: 0}},
		{in: "random:1.5", wantErr: "within 0-1"},
		{in: "random:-0.1", wantErr: "within 0-1"},
		{in: "random:NaN", wantErr: "within 0-1"},
		{in: "random:", wantErr: "within 0-1"},
		{in: "random", wantErr: "want none, always or random:P"},
		{in: "sometimes", wantErr: "want none, always or random:P"},
		{in: "", wantErr: "want none"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePolicy(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePolicy(%q) error %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePolicy(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if back, err := ParsePolicy(got.String()); err != nil || back != got {
				t.Fatalf("String %q does not parse back: %+v %v", got.String(), back, err)
			}
		})
	}
}

func TestScheduleRandomBlocks(t *testing.T) {
	for _, p := range []float64{0.1, 0.15, 0.5} {
		s := Policy{Kind: Random, P: p}.Schedule(42)
		const n = 60000
		lights := make([]bool, n)
		on := 0
		for i := range lights {
			lights[i] = s.Next()
			if lights[i] {
				on++
			}
		}
		for i := 0; i < n; i += BlockFrames {
			for j := 1; j < BlockFrames; j++ {
				if lights[i+j] != lights[i] {
					t.Fatalf("P=%v: block at frame %d not constant", p, i)
				}
			}
		}
		// Binomial over n/3 blocks: 4 SD bound.
		blocks := float64(n / BlockFrames)
		sd := math.Sqrt(p * (1 - p) / blocks)
		if f := float64(on) / n; math.Abs(f-p) > 4*sd {
			t.Fatalf("P=%v: light fraction %.4f", p, f)
		}
		// Same seed, same sequence; another seed, another one.
		a, b, c := Policy{Kind: Random, P: p}.Schedule(7), Policy{Kind: Random, P: p}.Schedule(7), Policy{Kind: Random, P: p}.Schedule(8)
		same, diff := true, false
		for i := 0; i < 3000; i++ {
			x, y, z := a.Next(), b.Next(), c.Next()
			same = same && x == y
			diff = diff || x != z
		}
		if !same || !diff {
			t.Fatalf("P=%v: seeding: same %v, differs with another seed %v", p, same, diff)
		}
	}
}

func TestScheduleFixed(t *testing.T) {
	n, a := Policy{Kind: None}.Schedule(1), Policy{Kind: Always}.Schedule(1)
	for i := 0; i < 100; i++ {
		if n.Next() || !a.Next() {
			t.Fatalf("frame %d: none or always wrong", i)
		}
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		x, y    float64 // episode 0
		rotate  bool
		wantErr bool
	}{
		{in: "", x: 0, y: -1.5, rotate: true},
		{in: "up", x: 0, y: -1.5},
		{in: "down", x: 0, y: 1.5},
		{in: "left", x: -1.5, y: 0},
		{in: "right", x: 1.5, y: 0},
		{in: "0.3,-1.2", x: 0.3, y: -1.2},
		{in: "1,x", wantErr: true},
		{in: "north", wantErr: true},
		{in: "NaN,1", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if (err != nil) != tt.wantErr {
			t.Fatalf("ParseTarget(%q): %v", tt.in, err)
		}
		if err != nil {
			continue
		}
		x, y := got.ForEpisode(0)
		if got.Rotate != tt.rotate || math.Abs(x-tt.x) > 1e-12 || math.Abs(y-tt.y) > 1e-12 {
			t.Fatalf("ParseTarget(%q) episode 0 = %v,%v rotate %v", tt.in, x, y, got.Rotate)
		}
	}
	r, _ := ParseTarget("")
	seen := map[[2]float64]bool{}
	for i := 0; i < 4; i++ {
		x, y := r.ForEpisode(i)
		seen[[2]float64{x, y}] = true
	}
	if len(seen) != 4 {
		t.Fatalf("rotation visits %d targets, want 4", len(seen))
	}
	far, _ := ParseTarget("3,3")
	if far.Check(1.8) == nil {
		t.Fatal("target 4.2 cm from the centre accepted on a 1.8 cm plate")
	}
	if r.Check(1.8) != nil {
		t.Fatal("default target rejected")
	}
}

func TestCompute(t *testing.T) {
	const pxcm = 540
	// The worm moves along x from 0 to 540 px (1 cm) in 10 s toward a target at 810 px.
	var recs []Record
	for i := 0; i <= 30; i++ {
		recs = append(recs, Record{T: float64(i) / 3, X: float64(i) * 18, Y: 0, TargetX: 810, Light: i%3 == 0})
	}
	m, err := Compute(recs, pxcm)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(m.Seconds, 10) || !near(m.ClosestCM, 0.5) || !near(m.FinalDistanceCM, 0.5) {
		t.Fatalf("metrics %+v", m)
	}
	if m.TimeToWithinS == nil || !near(*m.TimeToWithinS, 10) {
		t.Fatalf("time to 0.5 cm %v, want 10", m.TimeToWithinS)
	}
	if !near(m.MeanSpeedMMs, 1) {
		t.Fatalf("mean speed %v mm/s, want 1", m.MeanSpeedMMs)
	}
	if !near(m.LightFraction, 11.0/31) {
		t.Fatalf("light fraction %v", m.LightFraction)
	}
	// Never within 0.5 cm: nil.
	m, err = Compute(recs[:20], pxcm)
	if err != nil || m.TimeToWithinS != nil {
		t.Fatalf("time to 0.5 cm %v (err %v), want nil", m.TimeToWithinS, err)
	}
	if _, err := Compute(nil, pxcm); err == nil {
		t.Fatal("no records accepted")
	}
	if _, err := Compute([]Record{{T: 2}, {T: 1}}, pxcm); err == nil {
		t.Fatal("records out of order accepted")
	}
	if _, err := Compute([]Record{{T: 1, X: math.NaN()}}, pxcm); err == nil {
		t.Fatal("NaN accepted")
	}
	if _, err := Compute(recs, 0); err == nil {
		t.Fatal("zero scale accepted")
	}
}

func TestSpecDecisionFrames(t *testing.T) {
	agent := Spec{Kind: KindAgent, Line: "301", AgentLine: "301", Seconds: 60, Seed: 1}
	for _, n := range []int{0, 1, BlockFrames, MaxDecisionFrames} {
		s := agent
		s.DecisionFrames = n
		if err := s.Validate(); err != nil {
			t.Errorf("decision frames %d: %v", n, err)
		}
	}
	for _, n := range []int{-1, MaxDecisionFrames + 1} {
		s := agent
		s.DecisionFrames = n
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "decision frames") {
			t.Errorf("decision frames %d: %v, want refused", n, err)
		}
	}
	none := Spec{Kind: KindNone, Line: "301", Seconds: 60, Seed: 1, DecisionFrames: BlockFrames}
	if err := none.Validate(); err == nil || !strings.Contains(err.Error(), "fixed light policy") {
		t.Errorf("a no-light episode with decision frames: %v, want refused", err)
	}
}
