package sim

import (
	"context"
	"testing"

	"github.com/optoloop/optoloop/arenas"
)

// BenchmarkModelFrameStep is one 1/3 s frame step of the worm model (10 internal steps) without
// rendering, under random light. Aim: above 200,000 frame steps per second per core.
func BenchmarkModelFrameStep(b *testing.B) {
	m, err := NewModel(DefaultBehaviour(), mustLine(b, "446"), 17.9, 1, 0, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Advance(1.0/3, i%20 < 3)
		if i%(3*1800) == 0 {
			m.NewAnimal(0, 0, 0) // keep the worm in the plate's middle region as episodes do
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkArenaNoRender is one frame through the Arena in no-render mode (model step, midline
// snapshot, centre).
func BenchmarkArenaNoRender(b *testing.B) {
	benchArena(b, true)
}

// BenchmarkArenaRendered2160x1920 is one rendered frame of the reference camera through the
// Arena (model step, midline, render.Camera). Aim: above 300 frames per second per core.
func BenchmarkArenaRendered2160x1920(b *testing.B) {
	benchArena(b, false)
}

func benchArena(b *testing.B, noRender bool) {
	cfg := DefaultConfig(mustLine(b, "446"))
	cfg.NoRender = noRender
	cfg.Seed = 1
	a, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.NextFrame(ctx); err != nil {
			b.Fatal(err)
		}
		a.Centre()
		if err := a.SetLight(ctx, arenas.Light{On: i%20 < 3}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
