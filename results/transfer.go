package results

import (
	"math"
	"slices"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
)

// Transfer conditions: the line's agent, unchanged, in a transfer environment, and its
// no-light control.
const (
	Transfer     = episode.KindTransfer
	TransferNone = episode.KindTransferNone
)

// TransferResult is one line's transfer episodes in one environment: the agent against no
// light on the same animals.
type TransferResult struct {
	Line        string `json:"line"`
	Environment string `json:"environment"`
	// FoodDistanceCM is the lawn's distance from the target (food environments; NaN, null in
	// report.json, for the obstacle environment).
	FoodDistanceCM float64 `json:"food_distance_cm"`
	// Success says what counts as a success: "target" (within episode.WithinCM of the target
	// during the episode: the obstacle environment) or "food" (the tracked centre on the lawn).
	Success string            `json:"success"`
	Agent   TransferCondition `json:"agent"`
	None    TransferCondition `json:"none"`
	// PSuccess is the two-sided Fisher exact test of the success counts (NaN without episodes
	// of both conditions).
	PSuccess float64 `json:"p_success"`
	// PTimeToFood is the two-sided Mann-Whitney U test of the times to food, an episode that
	// never reached the lawn counted as its length (food environments; NaN otherwise).
	PTimeToFood float64 `json:"p_time_to_food"`
}

// TransferCondition summarises one condition of a TransferResult, episodes in item order.
type TransferCondition struct {
	N           int     `json:"n"`
	Successes   int     `json:"successes"`
	SuccessRate float64 `json:"success_rate"` // NaN without episodes
	// MedianTimeToFoodS is the median time to food in food environments, an episode that never
	// reached the lawn counted as its length (so a median equal to the episode length means
	// half or more never reached it); NaN in the obstacle environment or without episodes.
	MedianTimeToFoodS float64 `json:"median_time_to_food_s"`
	// MeanClosestCM is the mean closest approach to the target.
	MeanClosestCM float64  `json:"mean_closest_cm"`
	EpisodeIDs    []string `json:"episode_ids"`
}

// transferResults gathers the done transfer episodes of spec's transfer section, per line and
// environment in plan order (nil without a section).
func transferResults(spec experiment.Spec, items []api.Item) []TransferResult {
	t := spec.Transfer
	if t == nil {
		return nil
	}
	var out []TransferResult
	for _, line := range t.Lines {
		for k, env := range t.Environments() {
			r := TransferResult{Line: line, Environment: env, FoodDistanceCM: math.NaN(), Success: "target", PTimeToFood: math.NaN()}
			food := env != experiment.EnvObstacles
			if food {
				r.FoodDistanceCM, r.Success = t.FoodDistancesCM[k-min(t.Obstacles, 1)], "food"
			}
			var times [2][]float64
			for c, kind := range []episode.Kind{Transfer, TransferNone} {
				cond := &r.Agent
				if c == 1 {
					cond = &r.None
				}
				var closest []float64
				for i := range items {
					it := &items[i]
					if !doneEpisode(it) || it.Kind != kind || it.Line != line || it.Environment == nil || it.Environment.Name != env {
						continue
					}
					o := it.Result.Outcome
					cond.N++
					cond.EpisodeIDs = append(cond.EpisodeIDs, it.ID)
					closest = append(closest, o.ClosestCM)
					if food {
						tf := it.Seconds
						if o.TimeToFoodS != nil {
							tf = *o.TimeToFoodS
							cond.Successes++
						}
						times[c] = append(times[c], tf)
					} else if o.TimeTo05cmS != nil {
						cond.Successes++
					}
				}
				cond.SuccessRate, cond.MedianTimeToFoodS = math.NaN(), math.NaN()
				if cond.N > 0 {
					cond.SuccessRate = float64(cond.Successes) / float64(cond.N)
				}
				if food {
					cond.MedianTimeToFoodS = median(times[c])
				}
				cond.MeanClosestCM, _, _ = Summarize(closest)
			}
			r.PSuccess = math.NaN()
			if r.Agent.N > 0 && r.None.N > 0 {
				r.PSuccess, _ = FisherExact(r.Agent.Successes, r.Agent.N-r.Agent.Successes, r.None.Successes, r.None.N-r.None.Successes)
			}
			if _, p, err := MannWhitneyU(times[0], times[1]); food && err == nil {
				r.PTimeToFood = p
			}
			out = append(out, r)
		}
	}
	return out
}

// median returns the median of xs (NaN when empty).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
