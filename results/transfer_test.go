package results

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

// transferItems runs a plan with a transfer section to the end and returns its transfer items
// as done items, their outcomes from outcome (nil: the item failed).
func transferItems(t *testing.T, s experiment.Spec, outcome func(it plan.Item, i int) *episode.Outcome) []api.Item {
	t.Helper()
	p, open := plan.Start(s)
	var items []api.Item
	idx := map[string]int{}
	for len(open) > 0 {
		it := open[0]
		open = open[1:]
		r := plan.Result{PolicyVersion: 2}
		if it.Type == plan.TypeEpisode {
			r.Outcome = &episode.Outcome{Seconds: 30, Frames: 90}
		}
		if it.Phase == plan.PhaseTransfer {
			key := fmt.Sprintf("%s/%s/%s", it.Kind, it.Line, it.Environment.Name)
			o := outcome(it, idx[key])
			idx[key]++
			ai := api.Item{ID: fmt.Sprintf("e%d", it.N), Item: it, State: api.StateFailed}
			if o != nil {
				ai.State, ai.Result = api.StateDone, &api.Result{Outcome: o}
			}
			items = append(items, ai)
		}
		open = append(open, p.Done(it, r)...)
	}
	return items
}

func secs(v float64) *float64 { return &v }

func TestTransferResults(t *testing.T) {
	s := experiment.Default()
	s.Name, s.Lines = "t", []string{"301"}
	tr := experiment.DefaultTransfer()
	tr.Lines, tr.Episodes, tr.Obstacles, tr.FoodDistancesCM, tr.EpisodeSeconds = []string{"301"}, 8, 12, []float64{0.5}, 600
	s.Transfer = &tr
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	items := transferItems(t, s, func(it plan.Item, i int) *episode.Outcome {
		o := &episode.Outcome{Seconds: 600, Frames: 1800, ClosestCM: 1}
		agent := it.Kind == episode.KindTransfer
		if it.Environment.Name == experiment.EnvObstacles {
			// Agent 6 of 8 reach the target, no light 1 of 7 (one control failed).
			if !agent && i == 7 {
				return nil
			}
			if (agent && i < 6) || (!agent && i < 1) {
				o.TimeTo05cmS, o.ClosestCM = secs(100), 0.3
			}
			return o
		}
		// Food: the agent's worms reach the lawn at 50, 100, ... 250 s (5 of 8), the
		// controls' at 400 s (2 of 8).
		if agent && i < 5 {
			o.TimeToFoodS = secs(50 * float64(i+1))
		}
		if !agent && i < 2 {
			o.TimeToFoodS = secs(400)
		}
		return o
	})
	got := transferResults(s, items)
	if len(got) != 2 {
		t.Fatalf("%d results, want obstacles and food_5mm", len(got))
	}
	ob, fd := got[0], got[1]
	if ob.Environment != "obstacles" || ob.Success != "target" || !math.IsNaN(ob.FoodDistanceCM) {
		t.Errorf("obstacles result %+v", ob)
	}
	if ob.Agent.N != 8 || ob.Agent.Successes != 6 || ob.None.N != 7 || ob.None.Successes != 1 || ob.Agent.SuccessRate != 0.75 {
		t.Errorf("obstacles: agent %d/%d, none %d/%d", ob.Agent.Successes, ob.Agent.N, ob.None.Successes, ob.None.N)
	}
	if math.Abs(ob.PSuccess-0.04055944) > 1e-7 {
		t.Errorf("obstacles: Fisher p %v, want 0.0406 (6/8 against 1/7)", ob.PSuccess)
	}
	if !math.IsNaN(ob.Agent.MedianTimeToFoodS) || !math.IsNaN(ob.PTimeToFood) {
		t.Errorf("obstacles have a time to food: %v, %v", ob.Agent.MedianTimeToFoodS, ob.PTimeToFood)
	}
	if fd.Environment != "food_5mm" || fd.Success != "food" || fd.FoodDistanceCM != 0.5 {
		t.Errorf("food result %+v", fd)
	}
	if fd.Agent.Successes != 5 || fd.None.Successes != 2 {
		t.Errorf("food: agent %d, none %d reached the lawn", fd.Agent.Successes, fd.None.Successes)
	}
	// Agent: 50 100 150 200 250 600 600 600 -> median (200+250)/2; none: 400 400 600 x6 -> 600.
	if fd.Agent.MedianTimeToFoodS != 225 || fd.None.MedianTimeToFoodS != 600 {
		t.Errorf("food: median times %v and %v, want 225 and 600", fd.Agent.MedianTimeToFoodS, fd.None.MedianTimeToFoodS)
	}
	if p, _ := FisherExact(5, 3, 2, 6); fd.PSuccess != p || !(fd.PTimeToFood > 0 && fd.PTimeToFood < 0.1) {
		t.Errorf("food: p %v (want %v), time p %v", fd.PSuccess, p, fd.PTimeToFood)
	}
	// report.json: NaN as null, read back as NaN.
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var back []TransferResult
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(back[0].FoodDistanceCM) || !math.IsNaN(back[0].Agent.MedianTimeToFoodS) || back[1].Agent.MedianTimeToFoodS != 225 || back[0].PSuccess != ob.PSuccess {
		t.Errorf("round trip: %s\n%+v", b, back)
	}
	// Without a section, nothing.
	s.Transfer = nil
	if r := transferResults(s, items); r != nil {
		t.Errorf("results without a transfer section: %+v", r)
	}
}
