package station

import (
	"math"

	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/worker"
)

// SimEnvironment builds a transfer episode's environment (sp.Environment, non-nil) for the
// simulator on a plate of calibration cal: the lawn (sim.DefaultFood at the spec's place and
// radius) and the debris, placed by sim.PlaceObstacles from the episode's seed between the
// plate centre (the start) and the target. The same spec gives the same plate, so an agent's
// episode and its no-light control on one seed meet the same debris.
func SimEnvironment(sp episode.Spec, cal arenas.Calibration) (*sim.Environment, error) {
	e := sp.Environment
	env := &sim.Environment{}
	if f := e.Food; f != nil {
		food := sim.DefaultFood(10*f.XCM, 10*f.YCM)
		food.RadiusMM = 10 * e.FoodRadiusCM
		env.Food = &food
	}
	if e.Obstacles > 0 {
		t := sp.TargetCM()
		plateMM := cal.PlateRadius / cal.PxPerCM * 10
		obs, err := sim.PlaceObstacles(sp.Seed, e.Obstacles, 10*e.ObstacleRadiusCM, plateMM, [2]float64{}, [2]float64{10 * t[0], 10 * t[1]})
		if err != nil {
			return nil, err
		}
		env.Obstacles = obs
	}
	return env, nil
}

// TimeToFood returns the time from the first record to the first tracked record whose centre
// lies on the lawn of env (nil: never, or no lawn). Records are in reference pixels (package
// worker), the lawn in cm from the centre of a plate of calibration cal.
func TimeToFood(recs []replay.Record, cal arenas.Calibration, env *episode.Environment) *float64 {
	if env == nil || env.Food == nil || len(recs) == 0 {
		return nil
	}
	back := cal.PxPerCM / worker.ReferencePxPerCM
	fx, fy := cal.CenterX+env.Food.XCM*cal.PxPerCM, cal.CenterY+env.Food.YCM*cal.PxPerCM
	for _, r := range recs {
		if r.OK && math.Hypot(r.X*back-fx, r.Y*back-fy) <= env.FoodRadiusCM*cal.PxPerCM {
			t := r.T - recs[0].T
			return &t
		}
	}
	return nil
}
