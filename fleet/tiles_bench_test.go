package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/live"
	"github.com/optoloop/optoloop/station"
	"github.com/optoloop/optoloop/worker"
)

// The CPU a worker spends on its live tile, at the reference rig's 2160x1920 frames (rendered
// by the simulator) and without rendering. core-% is the share of one core a worker spends at
// the default rate (DefaultWorkerConfig's TileEvery): ns per tile x tiles per second / 1e9.
// The store's own cost is left out but for the tile's JSON encoding, which redisstore does on
// the worker (the publisher here encodes and discards).
//
//	go test ./fleet/ -run '^$' -bench 'Tile|LoopStep' -benchtime 2s

// discard is a live.Publisher that encodes the tile as redisstore does and drops it.
type discard struct{}

func (discard) PutTile(_ context.Context, t live.Tile, _ []byte, _ time.Duration) error {
	_, err := json.Marshal(t)
	return err
}

func (discard) AppendCurve(context.Context, string, string, string, []live.CurvePoint) error {
	return errors.New("discard: no curves")
}

// calStation is a Station that only has a calibration and a line (tiles need nothing more).
type calStation struct{ cal arenas.Calibration }

func (s calStation) Line() string                    { return "446" }
func (s calStation) Calibration() arenas.Calibration { return s.cal }
func (s calStation) Run(context.Context, station.Episode) (station.Result, error) {
	return station.Result{}, errors.New("calStation runs no episode")
}

// benchFrame returns the simulator's 40th frame of a reference arena and the true pose.
func benchFrame(b *testing.B, render bool) (arenas.Frame, arenas.Pose, arenas.Calibration) {
	b.Helper()
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		b.Fatal(err)
	}
	l, err := cat.Line("446")
	if err != nil {
		b.Fatal(err)
	}
	cfg := sim.DefaultConfig(l)
	cfg.Seed, cfg.NoRender = 3, !render
	a, err := sim.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	var f arenas.Frame
	for range 40 {
		if f, err = a.NextFrame(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	f.Pix = append([]byte(nil), f.Pix...)
	return f, a.Pose(), a.Calibration()
}

func benchTiles(b *testing.B, cal arenas.Calibration) (*tiles, WorkerConfig) {
	b.Helper()
	cfg := DefaultWorkerConfig()
	cfg.ID, cfg.Station, cfg.Live = "bench", calStation{cal}, discard{}
	return newTiles(cfg, slog.New(slog.DiscardHandler)), cfg
}

// benchItem is a random-light episode of 60 s.
func benchItem() plan.Item {
	return plan.Item{Type: plan.TypeEpisode, Spec: episode.Spec{Kind: episode.KindRandom, Line: "446", Seconds: 60, LightProbability: 0.5}}
}

// reportShare reports the share of a core of a cost of ns per tile at the default rate.
func reportShare(b *testing.B, nsPerTile float64, tilesPerSecond float64) {
	b.ReportMetric(nsPerTile, "ns/tile")
	b.ReportMetric(nsPerTile*tilesPerSecond/1e9*100, "core-%")
}

// BenchmarkTile is one running tile: the loop copies the step (subsampled view and inset
// crop), the publishing goroutine draws, encodes and puts it.
func BenchmarkTile(b *testing.B) {
	for _, render := range []bool{true, false} {
		b.Run(map[bool]string{true: "rendered", false: "unrendered"}[render], func(b *testing.B) {
			f, p, cal := benchFrame(b, render)
			t, cfg := benchTiles(b, cal)
			gen := t.leased(&api.Item{ID: "e.1", ExperimentID: "e", Token: 1, Item: benchItem()}, 180)
			t.stepped.Store(gen)
			target := [2]float64{cal.CenterX + 0.5*cal.PxPerCM, cal.CenterY - cal.PxPerCM}
			ctx := context.Background()
			var bytes int
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				s := t.shot
				s.gen, s.at, s.index, s.steps, s.light, s.target = gen, time.Now().UnixNano(), i%180, 180, i%2 == 0, target
				s.take(t.geo, &f, &p, true)
				s.n++
				t.publish(ctx, s, time.Unix(0, s.at))
				bytes = len(t.lastJPEG)
			}
			reportShare(b, float64(b.Elapsed().Nanoseconds())/float64(b.N), float64(time.Second)/float64(cfg.TileEvery))
			b.ReportMetric(float64(bytes), "jpeg-bytes")
		})
	}
}

// BenchmarkTileShot is the loop's part of a tile: copying what it needs of the step.
func BenchmarkTileShot(b *testing.B) {
	for _, render := range []bool{true, false} {
		b.Run(map[bool]string{true: "rendered", false: "unrendered"}[render], func(b *testing.B) {
			f, p, cal := benchFrame(b, render)
			t, cfg := benchTiles(b, cal)
			b.ReportAllocs()
			for b.Loop() {
				t.shot.take(t.geo, &f, &p, true)
			}
			reportShare(b, float64(b.Elapsed().Nanoseconds())/float64(b.N), float64(time.Second)/float64(cfg.TileEvery))
		})
	}
}

// BenchmarkTileIdle is an idle arena's refresh: the thumbnail does not change, only the
// tile's time and number; one every max(TileEvery, TileTTL/3).
func BenchmarkTileIdle(b *testing.B) {
	t, cfg := benchTiles(b, arenas.DefaultCalibration())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		t.publish(ctx, nil, time.Now())
	}
	reportShare(b, float64(b.Elapsed().Nanoseconds())/float64(b.N), float64(time.Second)/float64(max(cfg.TileEvery, cfg.TileTTL/3)))
}

// BenchmarkTileWatch is the loop's hook at a step that takes no shot (the rate's gate): what
// every step pays.
func BenchmarkTileWatch(b *testing.B) {
	f, p, cal := benchFrame(b, true)
	t, _ := benchTiles(b, cal)
	t.next.Store(time.Now().Add(time.Hour).UnixNano())
	t.free.Store(true)
	fn := t.watch(1)
	tk := worker.Tick{Index: 1, Steps: 180, Frame: f, Pose: p, OK: true, Light: true, Latency: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		fn(tk)
	}
}

// BenchmarkLoopStep is the closed loop's step on a station without rendering (the cheapest
// step, where the hook weighs most) with the tiles' hook off and on (a worker's tiles
// publishing to discard at the default rate); ns/step over 180-step episodes.
func BenchmarkLoopStep(b *testing.B) {
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		b.Fatal(err)
	}
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "hook-off", true: "hook-on"}[on], func(b *testing.B) {
			scfg := station.DefaultConfig()
			scfg.Catalogue, scfg.Line, scfg.NoRender = cat, "446", true
			st, err := station.New(scfg)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			t, _ := benchTiles(b, st.Calibration())
			ctx, cancel := context.WithCancel(context.Background())
			stop := t.start(ctx, nil)
			defer func() { cancel(); stop() }()
			spec := episode.Spec{Kind: episode.KindRandom, Line: "446", Seconds: 60, LightProbability: 0.5, Target: &episode.Place{YCM: -1}}
			steps := 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				spec.Seed = uint64(i)
				e := station.Episode{ID: "b", Spec: spec}
				if on {
					e.Watch = t.watch(t.leased(&api.Item{ID: "b", Item: benchItem()}, 180))
				}
				res, err := st.Run(ctx, e)
				if err != nil {
					b.Fatal(err)
				}
				steps += res.Outcome.Frames
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(steps), "ns/step")
		})
	}
}
