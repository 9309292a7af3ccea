package experiment

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseTransfer(t *testing.T) {
	s, err := Parse([]byte(minimal + "transfer: {lines: [\"301\"], episodes: 20, episode_seconds: 600, food_distances_cm: [0, 0.5, 1.0, 1.5], obstacles: 12}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Transfer{Lines: []string{"301"}, Episodes: 20, EpisodeSeconds: 600, FoodDistancesCM: []float64{0, 0.5, 1, 1.5},
		FoodRadiusCM: 0.5, Obstacles: 12, ObstacleRadiusCM: 0.075}
	if s.Transfer == nil || !reflect.DeepEqual(*s.Transfer, want) {
		t.Fatalf("transfer %+v, want %+v", s.Transfer, want)
	}
	if got := s.Transfer.Environments(); !reflect.DeepEqual(got, []string{"obstacles", "food_0mm", "food_5mm", "food_10mm", "food_15mm"}) {
		t.Fatalf("environments %v", got)
	}
	// Defaults for the omitted fields; the section survives a round trip.
	s, err = Parse([]byte(minimal + "transfer: {lines: [\"301\"], obstacles: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := DefaultTransfer(); s.Transfer.Episodes != d.Episodes || s.Transfer.EpisodeSeconds != d.EpisodeSeconds || s.Transfer.FoodRadiusCM != 0.5 {
		t.Fatalf("defaults not taken: %+v", s.Transfer)
	}
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back.Transfer, s.Transfer)
	}
	// A file without the section has none, and marshals without it.
	s, _ = Parse([]byte(minimal))
	if b, _ := Marshal(s); s.Transfer != nil || strings.Contains(string(b), "transfer") {
		t.Fatalf("transfer %+v in a file without one:\n%s", s.Transfer, b)
	}
}

func TestTransferErrors(t *testing.T) {
	tr := func(body string) string { return minimal + "transfer: {" + body + "}\n" }
	cases := []struct{ name, yaml, want string }{
		{"no lines", tr("obstacles: 3"), "transfer.lines: needs at least 1"},
		{"not own", tr(`lines: ["446"], obstacles: 3`), `transfer.lines[0]: "446" is not one of lines`},
		{"no environment", tr(`lines: ["301"]`), "transfer: needs food_distances_cm or obstacles"},
		{"episodes", tr(`lines: ["301"], obstacles: 3, episodes: 0`), "transfer.episodes: 0 must be >= 1"},
		{"seconds", tr(`lines: ["301"], obstacles: 3, episode_seconds: -1`), "transfer.episode_seconds: -1 must be > 0"},
		{"obstacles", tr(`lines: ["301"], obstacles: 101`), "transfer.obstacles: 101 must be <= 100"},
		{"obstacle radius", tr(`lines: ["301"], obstacles: 3, obstacle_radius_cm: 0.5`), "transfer.obstacle_radius_cm: 0.5 must be <= 0.3"},
		{"food radius", tr(`lines: ["301"], food_distances_cm: [0], food_radius_cm: 0`), "transfer.food_radius_cm: 0 must be > 0"},
		{"food negative", tr(`lines: ["301"], food_distances_cm: [0, -1]`), "transfer.food_distances_cm[1]: -1 must be >= 0"},
		{"food twice", tr(`lines: ["301"], food_distances_cm: [0.5, 0.5]`), "transfer.food_distances_cm[1]: 0.5 appears twice"},
		{"food off plate", tr(`lines: ["301"], food_distances_cm: [3]`), "transfer.food_distances_cm[0]: 3 cm from a target"},
		{"unknown field", tr(`lines: ["301"], obstacles: 3, walls: 2`), "transfer.walls: unknown field"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line with %q", c.name, err, c.want)
		}
	}
}

// The lawn lies at the given distance from the target, alternately on either side, and about
// as far from the start at every distance.
func TestFoodPlace(t *testing.T) {
	s := Default()
	for i := range 8 {
		_, tx, ty := s.Target(i)
		for _, d := range []float64{0, 0.5, 1, 1.5} {
			x, y := s.FoodPlace(i, d)
			if got := math.Hypot(x-tx, y-ty); math.Abs(got-d) > 1e-9 {
				t.Errorf("episode %d: lawn %.3f cm from the target, want %v", i, got, d)
			}
			if r := math.Hypot(x, y); r < 1.29 || r > 1.51 {
				t.Errorf("episode %d, %v cm: lawn %.3f cm from the start", i, d, r)
			}
		}
		x0, y0 := s.FoodPlace(i, 1)
		x1, y1 := s.FoodPlace(i+4, 1)
		if math.Abs(x0-x1) < 1e-9 && math.Abs(y0-y1) < 1e-9 {
			t.Errorf("episode %d and %d: lawn on the same side", i, i+4)
		}
	}
}
