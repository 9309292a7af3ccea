package runner

import (
	"slices"
	"testing"

	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
)

// A transfer section runs, after evaluation, each line's agents and no-light controls in the
// obstacle and food environments through the same coordinator, workers and stations as the
// evaluation, and the report counts them per environment.
func TestRunTransfer(t *testing.T) {
	const yaml = `
name: tiny-transfer
seed: 5
lines: ["281"]
arenas_per_line: 2
collect: { hours_per_line: 0.05, episode_seconds: 180, light_probability: 0.1 }
train: { ensemble_size: 1, updates: 20, checkpoint_every: 10 }
evaluate: { episodes_per_condition: 1, episode_seconds: 30 }
transfer: { lines: ["281"], episodes: 2, episode_seconds: 180, food_distances_cm: [0, 1.5], obstacles: 12 }
`
	cfg := tinyConfig(t, yaml)
	rep := run(t, cfg)
	if len(rep.Transfer) != 3 {
		t.Fatalf("%d transfer results, want obstacles, food_0mm, food_15mm: %+v", len(rep.Transfer), rep.Transfer)
	}
	for i, env := range []string{"obstacles", "food_0mm", "food_15mm"} {
		r := rep.Transfer[i]
		if r.Line != "281" || r.Environment != env || r.Agent.N != 2 || r.None.N != 2 {
			t.Errorf("result %d: %s %s, %d agent and %d no-light episodes", i, r.Line, r.Environment, r.Agent.N, r.None.N)
		}
		if !(r.PSuccess > 0 && r.PSuccess <= 1) {
			t.Errorf("%s: Fisher p %v", env, r.PSuccess)
		}
		t.Logf("%s: agent %d/%d (median food %.0f s), none %d/%d (%.0f s), p %.3f", env, r.Agent.Successes, r.Agent.N, r.Agent.MedianTimeToFoodS,
			r.None.Successes, r.None.N, r.None.MedianTimeToFoodS, r.PSuccess)
	}
	run, err := results.Load(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string]map[episode.Kind][]uint64{}
	reached := 0
	for _, e := range run.Episodes {
		if !e.Condition.Transfers() {
			if e.Environment != "" || e.TimeToFoodS != nil {
				t.Errorf("%s (%s) has a transfer environment", e.ID, e.Condition)
			}
			continue
		}
		if seeds[e.Environment] == nil {
			seeds[e.Environment] = map[episode.Kind][]uint64{}
		}
		seeds[e.Environment][e.Condition] = append(seeds[e.Environment][e.Condition], e.Seed)
		if e.Seconds < 179 || len(e.Frames) == 0 {
			t.Errorf("%s: %v s, %d frames", e.ID, e.Seconds, len(e.Frames))
		}
		if e.TimeToFoodS != nil {
			reached++
			if e.Environment == "obstacles" {
				t.Errorf("%s: a time to food without food", e.ID)
			}
		}
		if e.Condition == episode.KindTransferNone && e.LightFraction != 0 {
			t.Errorf("%s: light on %.2f of the no-light control", e.ID, e.LightFraction)
		}
	}
	for env, by := range seeds {
		a, n := slices.Sorted(slices.Values(by[episode.KindTransfer])), slices.Sorted(slices.Values(by[episode.KindTransferNone]))
		if len(a) != 2 || len(n) != 2 {
			t.Fatalf("%s: %d agent and %d control episode files", env, len(a), len(n))
		}
		for i := range a {
			if a[i] != n[i] {
				t.Errorf("%s: agents on seeds %v, controls on %v", env, a, n)
			}
		}
	}
	// With the lawn on the target and worms started 1.5 cm away, some reach it in 3 minutes.
	if reached == 0 {
		t.Error("no worm reached a lawn")
	}
}
