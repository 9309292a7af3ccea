package station_test

import (
	"context"
	"math"
	"testing"

	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/station"
)

// A transfer episode's plate follows from its spec: the same seed gives the same debris, clear
// of the start and the target, and the lawn where the spec puts it.
func TestSimEnvironment(t *testing.T) {
	cal := arenas.DefaultCalibration()
	sp := episode.Spec{Kind: episode.KindTransferNone, Line: "301", Seconds: 60, Seed: 4, Target: &episode.Place{XCM: 1.5},
		Environment: &episode.Environment{Name: "both", Food: &episode.Place{XCM: -0.5, YCM: 0.25}, FoodRadiusCM: 0.4, Obstacles: 12, ObstacleRadiusCM: 0.075}}
	a, err := station.SimEnvironment(sp, cal)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := station.SimEnvironment(sp, cal)
	if len(a.Obstacles) != 12 || a.Obstacles[3] != b.Obstacles[3] {
		t.Fatalf("obstacles %v and %v", a.Obstacles, b.Obstacles)
	}
	for i, o := range a.Obstacles {
		if math.Hypot(o.XMM, o.YMM) < 1.5 || math.Hypot(o.XMM-15, o.YMM) < 1.5 {
			t.Errorf("obstacle %d at (%.1f, %.1f) mm, on the start or the target", i, o.XMM, o.YMM)
		}
	}
	if f := a.Food; f == nil || f.XMM != -5 || f.YMM != 2.5 || f.RadiusMM != 4 {
		t.Fatalf("food %+v", a.Food)
	}
	sp.Seed = 5
	if c, _ := station.SimEnvironment(sp, cal); c.Obstacles[0] == a.Obstacles[0] {
		t.Fatal("another seed, the same debris")
	}
}

// Time to food: the first tracked record on the lawn, from the first record; lost records and
// plates without a lawn do not count.
func TestTimeToFood(t *testing.T) {
	cal := arenas.DefaultCalibration() // 540 px/cm: reference pixels are arena pixels
	env := &episode.Environment{Name: "food", Food: &episode.Place{XCM: 1}, FoodRadiusCM: 0.5}
	cx, cy := cal.CenterX, cal.CenterY
	recs := []replay.Record{
		{T: 10, X: cx, Y: cy, OK: true},
		{T: 11, X: cx + 540, Y: cy, OK: false}, // on the lawn, but not tracked
		{T: 12, X: cx + 200, Y: cy, OK: true},  // 0.63 cm from its centre: off
		{T: 13, X: cx + 300, Y: cy + 50, OK: true},
		{T: 14, X: cx + 540, Y: cy, OK: true},
	}
	got := station.TimeToFood(recs, cal, env)
	if got == nil || *got != 3 {
		t.Fatalf("time to food %v, want 3 s", got)
	}
	if station.TimeToFood(recs[:3], cal, env) != nil {
		t.Fatal("a time to food before the worm reached the lawn")
	}
	if station.TimeToFood(recs, cal, &episode.Environment{Name: "obstacles", Obstacles: 3, ObstacleRadiusCM: 0.1}) != nil {
		t.Fatal("a time to food without food")
	}
}

// A transfer episode runs on a station with its environment and reports its time to food;
// its spec is refused without an environment.
func TestTransferEpisode(t *testing.T) {
	s := simStation(t, "73", true)
	sp := spec(episode.KindTransferNone, "73", 3, 120)
	if _, err := s.Run(context.Background(), station.Episode{ID: "no-env", Spec: sp}); err == nil {
		t.Fatal("a transfer episode without an environment ran")
	}
	sp.Environment = &episode.Environment{Name: "food_0mm", Food: &episode.Place{XCM: 0.2}, FoodRadiusCM: 0.5}
	res, err := s.Run(context.Background(), station.Episode{ID: "food", Spec: sp, KeepFrames: true})
	if err != nil {
		t.Fatal(err)
	}
	// The worm starts on the lawn: food at once.
	if res.Outcome.TimeToFoodS == nil || *res.Outcome.TimeToFoodS != 0 || res.Track.Environment != "food_0mm" || res.Track.TimeToFoodS == nil {
		t.Fatalf("outcome %+v, track environment %q", res.Outcome, res.Track.Environment)
	}
}
