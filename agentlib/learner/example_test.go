package learner_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/optoloop/optoloop/agentlib/learner"
	"github.com/optoloop/optoloop/agentlib/obs"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/agentlib/replay"
)

// Example shows the whole cycle: records into a replay, an ensemble trained on it, and the
// ensemble acting on frames through an observation builder, as the worker does.
func Example() {
	// Collection: the worker appends one record per frame (reference pixels, radians).
	mem, err := replay.NewMemory(replay.DefaultConfig())
	if err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x, y, h := 1000.0, 900.0, 0.0
	for i := range 300 {
		light := rng.Float64() < 0.3
		_ = mem.Append(replay.Record{T: float64(i) / 3, X: x, Y: y, Body: h, Head: h, OK: true, Light: light, Episode: "e1"})
		if light {
			h += 0.4
		}
		x, y = x+10*math.Cos(h), y+10*math.Sin(h)
	}

	// Training: a small ensemble, a short schedule.
	dir, _ := os.MkdirTemp("", "learner-example")
	defer os.RemoveAll(dir)
	cfg := learner.DefaultConfig()
	cfg.Dir = dir
	cfg.Members, cfg.Updates, cfg.Round = 2, 50, 50
	l, err := learner.New(cfg, mem, nil, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		panic(err)
	}
	if err := l.Run(context.Background()); err != nil {
		panic(err)
	}

	// Acting: load the ensemble and feed frames to a builder toward a target.
	ens, err := policy.LoadDir(filepath.Join(dir, "ensemble"), policy.ReferenceArch())
	if err != nil {
		panic(err)
	}
	b := obs.NewBuilder(1500, 900)
	o := make([]float32, obs.Size)
	for i := range 20 {
		b.Push(obs.Pose{X: 1000 + 10*float64(i), Y: 900, Body: 0, Head: 0.1}, true)
	}
	b.Observation(o)
	a := ens.Act(o)
	fmt.Println(ens.Len(), l.Version(), a == 0 || a == 1)
	// Output: 2 1 true
}
