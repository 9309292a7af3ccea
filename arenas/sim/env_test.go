package sim

import (
	"math"
	"testing"
)

// An empty environment is no environment: the same seed gives the same worm, draw for draw.
func TestEmptyEnvironmentChangesNothing(t *testing.T) {
	line := mustLine(t, "301")
	run := func(env *Environment) [2]float64 {
		m, err := NewModel(DefaultBehaviour(), line, 17.9, 11, 0, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		m.SetEnvironment(env)
		for i := 0; i < 900; i++ {
			m.Advance(1.0/3, i%5 < 2)
		}
		x, y := m.Centre()
		return [2]float64{x, y}
	}
	if a, b := run(nil), run(&Environment{}); a != b {
		t.Fatalf("empty environment moved the worm: %v vs %v", a, b)
	}
	food := DefaultFood(5, 0)
	if a, b := run(nil), run(&Environment{Food: &food}); a == b {
		t.Fatal("a food lawn changed nothing")
	}
}

func TestPlaceObstacles(t *testing.T) {
	from, to := [2]float64{0, 0}, [2]float64{15, 0}
	a, err := PlaceObstacles(7, 12, 0.75, 17.9, from, to)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := PlaceObstacles(7, 12, 0.75, 17.9, from, to)
	c, _ := PlaceObstacles(8, 12, 0.75, 17.9, from, to)
	if len(a) != 12 || a[0] != b[0] || a[11] != b[11] {
		t.Fatalf("not 12 or not deterministic: %v vs %v", a, b)
	}
	if a[0] == c[0] {
		t.Fatal("another seed gives the same debris")
	}
	for i, o := range a {
		if d := math.Hypot(o.XMM-from[0], o.YMM-from[1]) - o.RadiusMM; d < obstacleClearMM {
			t.Errorf("obstacle %d %.2f mm from the start", i, d)
		}
		if d := math.Hypot(o.XMM-to[0], o.YMM-to[1]) - o.RadiusMM; d < obstacleClearMM {
			t.Errorf("obstacle %d %.2f mm from the target", i, d)
		}
		if math.Hypot(o.XMM, o.YMM)+o.RadiusMM > 17.9-2 {
			t.Errorf("obstacle %d off the plate's inner part: %+v", i, o)
		}
		for j, p := range a[:i] {
			if math.Hypot(o.XMM-p.XMM, o.YMM-p.YMM) < o.RadiusMM+p.RadiusMM {
				t.Errorf("obstacles %d and %d overlap", i, j)
			}
		}
	}
	env := &Environment{Obstacles: a}
	if err := env.Validate(17.9); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		n int
		r float64
	}{{-1, 0.75}, {201, 0.75}, {12, 0}, {12, math.NaN()}, {500, 0.75}} {
		if _, err := PlaceObstacles(1, bad.n, bad.r, 17.9, from, to); err == nil {
			t.Errorf("%d obstacles of %v mm accepted", bad.n, bad.r)
		}
	}
	if _, err := PlaceObstacles(1, 150, 3, 17.9, from, to); err == nil {
		t.Error("150 obstacles of 3 mm fit between start and target")
	}
	bad := []Environment{
		{Obstacles: []Obstacle{{XMM: 17.5, RadiusMM: 1}}},
		{Obstacles: []Obstacle{{RadiusMM: 0}}},
		{Food: &Food{XMM: 30, RadiusMM: 5, GradientMM: 4, HalfC: 0.1, SpeedFactor: 0.4}},
		{Food: &Food{RadiusMM: 5, GradientMM: 0, HalfC: 0.1, SpeedFactor: 0.4}},
	}
	for i, e := range bad {
		if err := e.Validate(17.9); err == nil {
			t.Errorf("bad environment %d accepted", i)
		}
	}
}

// The body never enters debris: a dense field of 30 obstacles around the start, 20 minutes of
// forward runs (line 281 under light runs straight and fast), every midline point outside.
func TestObstaclesAreNotCrossed(t *testing.T) {
	line := mustLine(t, "281")
	contacts := 0
	for seed := uint64(1); seed <= 3; seed++ {
		obs, err := PlaceObstacles(seed, 30, 0.75, 17.9, [2]float64{0, 0}, [2]float64{8, 0})
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewModel(DefaultBehaviour(), line, 17.9, seed, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		m.SetEnvironment(&Environment{Obstacles: obs})
		mid := make([][2]float64, 50)
		for i := 0; i < 3*1200; i++ {
			m.Advance(1.0/3, true)
			m.Midline(mid)
			for k, p := range mid {
				for _, o := range obs {
					// Chords of the polyline may cut a corner of the tip's track by a little.
					if d := math.Hypot(p[0]-o.XMM, p[1]-o.YMM); d < o.RadiusMM-0.02 {
						t.Fatalf("seed %d frame %d: midline point %d %.3f mm inside an obstacle of %.2f mm", seed, i, k, o.RadiusMM-d, o.RadiusMM)
					}
				}
			}
		}
		contacts += m.Contacts()
	}
	t.Logf("%d contacts", contacts)
	if contacts < 10 {
		t.Fatalf("%d contacts with 30 pieces of debris in an hour: the test proves nothing", contacts)
	}
}

// On the lawn the worm dwells: it moves at well under half its speed off food. Around it the
// gradient draws worms in: started 4 mm from a lawn's edge, more animals reach it within 8
// minutes than reach an odourless lawn (no klinokinesis, no weathervane) from the same place.
func TestFoodDwellingAndChemotaxis(t *testing.T) {
	line := mustLine(t, "73")
	const animals = 24
	reach := func(odour bool) (reached int, onSpeed, offSpeed float64) {
		var on, off, ton, toff float64
		for seed := uint64(1); seed <= animals; seed++ {
			f := DefaultFood(9, 0)
			if !odour {
				f.KlinokinesisS, f.WeathervaneRadMM = 0, 0
			}
			m, err := NewModel(DefaultBehaviour(), line, 17.9, 100+seed, 0, 0, float64(seed))
			if err != nil {
				t.Fatal(err)
			}
			m.SetEnvironment(&Environment{Food: &f})
			px, py := m.Centre()
			got := false
			for i := 0; i < 3*480; i++ {
				m.Advance(1.0/3, false)
				x, y := m.Centre()
				d := math.Hypot(x-px, y-py)
				if m.OnFood() {
					got = true
					on, ton = on+d, ton+1.0/3
				} else {
					off, toff = off+d, toff+1.0/3
				}
				px, py = x, y
			}
			if got {
				reached++
			}
		}
		return reached, on / ton, off / toff
	}
	with, onS, offS := reach(true)
	without, _, _ := reach(false)
	t.Logf("reached the lawn: %d/%d with odour, %d/%d without; centre speed on food %.3f, off %.3f mm/s", with, animals, without, animals, onS, offS)
	if !(onS < 0.6*offS) {
		t.Errorf("speed on food %.3f mm/s, off food %.3f: no dwelling", onS, offS)
	}
	if with < without+5 {
		t.Errorf("%d animals reached the lawn with its odour, %d without: no chemotaxis", with, without)
	}
}
