package sim

import (
	"context"
	"fmt"
	"math"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/episode"
)

// Episode configures one episode under a fixed light policy.
type Episode struct {
	// Arena configures the arena (line, seed, rendering). A new animal is placed near the plate
	// centre with a random heading unless the Arena config says otherwise.
	Arena Config
	// Policy is the fixed light policy; PolicySeed seeds its random schedule.
	Policy     episode.Policy
	PolicySeed uint64
	// TargetCM is the target's offset from the plate centre in cm (image axes).
	TargetCM [2]float64
	// Seconds is the episode's length on the arena's clock.
	Seconds float64
	// Frame, when set, is called with every delivered frame (its Pix is valid only during the
	// call) and the true pose; an error ends the episode with that error.
	Frame func(f arenas.Frame, p arenas.Pose) error
}

// Result is an episode's outcome.
type Result struct {
	episode.Metrics
	// ReversalsPerMin counts the simulator's true reversals (spontaneous, evoked and at the
	// plate edge) per minute of the episode.
	ReversalsPerMin float64 `json:"reversals_per_min"`
	// EdgeReversals is how many of the reversals the plate edge triggered.
	EdgeReversals int `json:"edge_reversals"`
	// Omegas is the number of omega turns.
	Omegas int `json:"omegas"`
}

// RunEpisode runs one episode on a new arena and returns its metrics. The position of the worm
// is its true centre (no tracking).
func RunEpisode(ctx context.Context, e Episode) (Result, error) {
	if !(e.Seconds > 0) || math.IsInf(e.Seconds, 0) {
		return Result{}, fmt.Errorf("sim: episode length %v s must be positive", e.Seconds)
	}
	a, err := New(e.Arena)
	if err != nil {
		return Result{}, err
	}
	defer a.Close()
	cal := a.Calibration()
	if d := math.Hypot(e.TargetCM[0], e.TargetCM[1]) * cal.PxPerCM; d > cal.PlateRadius {
		return Result{}, fmt.Errorf("sim: target (%.3g, %.3g) cm is outside the plate", e.TargetCM[0], e.TargetCM[1])
	}
	tx, ty := cal.CenterX+e.TargetCM[0]*cal.PxPerCM, cal.CenterY+e.TargetCM[1]*cal.PxPerCM
	acc, err := episode.NewAccumulator(cal.PxPerCM)
	if err != nil {
		return Result{}, err
	}
	sched := e.Policy.Schedule(e.PolicySeed)
	frames := int(math.Round(e.Seconds/cal.FramePeriod.Seconds())) + 1
	for i := 0; i < frames; i++ {
		f, err := a.NextFrame(ctx)
		if err != nil {
			return Result{}, err
		}
		x, y := a.Centre()
		if e.Frame != nil {
			if err := e.Frame(f, a.Pose()); err != nil {
				return Result{}, err
			}
		}
		if err := acc.Add(episode.Record{T: float64(i) * cal.FramePeriod.Seconds(), X: x, Y: y, TargetX: tx, TargetY: ty, Light: f.Light.On}); err != nil {
			return Result{}, err
		}
		if err := a.SetLight(ctx, arenas.Light{On: sched.Next()}); err != nil {
			return Result{}, err
		}
	}
	m, err := acc.Metrics()
	if err != nil {
		return Result{}, err
	}
	r := Result{Metrics: m, Omegas: a.model.Omegas(), EdgeReversals: a.model.EdgeReversals()}
	if m.Seconds > 0 {
		r.ReversalsPerMin = float64(a.model.Reversals()) / (m.Seconds / 60)
	}
	return r, nil
}
