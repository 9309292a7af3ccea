package results

import (
	"math"
	"testing"
)

// track returns n frames of a worm at (x0, y0) moving by (dx, dy) px per frame with body angle
// body, the light on or off.
func track(n int, x0, y0, dx, dy, body float64, light bool) []Frame {
	fs := make([]Frame, n)
	for i := range fs {
		fs[i] = Frame{T: float64(i) / 3, X: x0 + float64(i)*dx, Y: y0 + float64(i)*dy, Body: body, Light: light, OK: true}
	}
	return fs
}

func TestLightUseCountsStatesOnTracks(t *testing.T) {
	cfg := DefaultLightUseConfig()
	// Target at (1000, 0). Episode a: 30 frames moving toward it (+x, 3 px per frame) with the
	// light off, then 30 frames still at x = 90, facing away, the light on.
	a := Episode{ID: "agent-446-000", Condition: Agent, Line: "446", AgentLine: "446", PxPerCM: 540, Target: [2]float64{1000, 0}}
	a.Frames = append(track(30, 0, 0, 3, 0, 0, false), track(30, 90, 0, 0, 0, math.Pi, true)...)
	// Episode b: the same line and condition, 20 frames moving along +y, facing nearly across
	// the direction to the target (cos 0.15-0.2), with one lost frame at index 17.
	b := Episode{ID: "agent-446-001", Condition: Agent, Line: "446", AgentLine: "446", PxPerCM: 540, Target: [2]float64{1000, 0}}
	b.Frames = track(20, 0, 0, 0, 3, math.Pi/2-0.2, true)
	b.Frames[17].OK = false
	// Episode c: another condition, and an episode without a track (not counted).
	c := Episode{ID: "none-446-000", Condition: None, Line: "446", PxPerCM: 540, Target: [2]float64{1000, 0}, Frames: track(15, 0, 0, 3, 0, 0, false)}
	d := Episode{ID: "none-446-001", Condition: None, Line: "446", PxPerCM: 540}

	got, err := LightUseOf([]Episode{c, a, d, b}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Condition != Agent || got[1].Condition != None {
		t.Fatalf("groups %+v, want agent then none", got)
	}
	ag := got[0]
	if ag.Episodes != 2 || got[1].Episodes != 1 {
		t.Errorf("episodes %d, %d, want 2, 1", ag.Episodes, got[1].Episodes)
	}
	// a: frames 14..59 are counted. Frames 14..29 (16) move toward the target (42 px per
	// window, above 0.15 mm = 8.1 px), facing bin 3, the light off.
	toward := ag.Moving[3]
	if toward.On != 0 || toward.Frames != 16 {
		t.Errorf("moving toward: %+v, want 16 frames, none lit", toward)
	}
	// Frames 30..59 face away (bin 0), lit. Their window starts at frame t-14; it still spans
	// more than 8.1 px of movement while that start is before frame 28 (x = 84 of 90): frames
	// 30..41 are moving (12), 42..59 still (18).
	if ag.Moving[0].Frames != 12 || ag.Moving[0].On != 12 {
		t.Errorf("moving away: %+v, want 12 lit of 12", ag.Moving[0])
	}
	if ag.Still[0].Frames != 18 || ag.Still[0].On != 18 {
		t.Errorf("still away: %+v, want 18 lit of 18", ag.Still[0])
	}
	// b: frames 14..16 are counted (the lost frame 17 is inside every later window), bin 2.
	if ag.Moving[2].Frames != 3 || ag.Moving[2].On != 3 {
		t.Errorf("sideways: %+v, want 3 lit of 3", ag.Moving[2])
	}
	if all := ag.All(); all.Frames != 16+12+18+3 || all.On != 12+18+3 {
		t.Errorf("all %+v", all)
	}
	if c, sh := ag.StillAll(), ag.StillShare(); c.Frames != 18 || c.On != 18 || sh != 18.0/49 {
		t.Errorf("still frames %+v, share %v; want 18 of 49", c, sh)
	}
	if sh := (LightUse{}).StillShare(); !math.IsNaN(sh) {
		t.Errorf("still share without frames %v, want NaN", sh)
	}
	if p := ag.Still[0].P(); p != 1 {
		t.Errorf("P still away %v, want 1", p)
	}
	if p := ag.Still[3].P(); !math.IsNaN(p) {
		t.Errorf("P of an empty cell %v, want NaN", p)
	}
	if _, err := LightUseOf(nil, LightUseConfig{Window: 1, StillMM: 0.1}); err == nil {
		t.Error("a one-frame window was accepted")
	}
}

func TestFacingBin(t *testing.T) {
	for _, tt := range []struct {
		cos  float64
		want int
	}{{-1, 0}, {-0.51, 0}, {-0.5, 1}, {-0.01, 1}, {0, 2}, {0.49, 2}, {0.5, 3}, {1, 3}, {1.0000001, 3}, {-1.0000001, 0}} {
		if got := FacingBin(tt.cos); got != tt.want {
			t.Errorf("FacingBin(%v) = %d, want %d", tt.cos, got, tt.want)
		}
	}
}
