package track

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
)

// benchFrames renders n consecutive frames of a simulated reference-rig arena (2160x1920) and
// returns them with a tracker whose background was built on the same arena.
func benchFrames(b *testing.B, n int) ([]arenas.Frame, *Tracker) {
	b.Helper()
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		b.Fatal(err)
	}
	line, err := cat.Line("446")
	if err != nil {
		b.Fatal(err)
	}
	cfg := sim.DefaultConfig(line)
	cfg.Seed = 5
	a, err := sim.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	tcfg := DefaultConfig(a.Calibration())
	tcfg.BackgroundFrames = 10
	obs, err := NewObserver(a, tcfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { obs.Close() })
	if err := obs.Prepare(context.Background()); err != nil {
		b.Fatal(err)
	}
	frames := make([]arenas.Frame, n)
	for i := range frames {
		f, err := a.NextFrame(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		f.Pix = append([]byte(nil), f.Pix...)
		frames[i] = f
	}
	return frames, obs.Tracker()
}

// frameTimer records the wall-clock and CPU time of each tracked frame.
type frameTimer struct {
	wall, cpu  []time.Duration
	t0, c0     time.Duration
	start      time.Time
	cpuMissing bool
}

func (ft *frameTimer) begin() {
	ft.start = time.Now()
	c, ok := cpuTime()
	ft.c0, ft.cpuMissing = c, ft.cpuMissing || !ok
}

func (ft *frameTimer) end() {
	ft.wall = append(ft.wall, time.Since(ft.start))
	c, _ := cpuTime()
	ft.cpu = append(ft.cpu, c-ft.c0)
}

// report adds the median and 99th percentile of the per-frame wall-clock times and, where
// measured, of the per-frame CPU times (robust to other jobs on a shared machine).
func (ft *frameTimer) report(b *testing.B) {
	pct := func(d []time.Duration, q float64) float64 {
		d = append([]time.Duration(nil), d...)
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[int(q*float64(len(d)-1))]) / 1e6
	}
	b.ReportMetric(pct(ft.wall, 0.5), "p50-ms")
	b.ReportMetric(pct(ft.wall, 0.99), "p99-ms")
	if !ft.cpuMissing {
		b.ReportMetric(pct(ft.cpu, 0.5), "cpu-p50-ms")
		b.ReportMetric(pct(ft.cpu, 0.99), "cpu-p99-ms")
	}
}

// BenchmarkTrack2160x1920 is the steady state: each 2160x1920 frame of a moving simulated worm
// is tracked in the region around the last position (the frames play forwards and backwards so
// that the worm never jumps). Run with -cpu 1.
func BenchmarkTrack2160x1920(b *testing.B) {
	frames, tr := benchFrames(b, 16)
	tr.Track(frames[0])
	var ft frameTimer
	found := 0
	b.ResetTimer()
	for i := range b.N {
		k := i % 30 // 0..15..1: ping-pong over the 16 frames
		if k >= 16 {
			k = 30 - k
		}
		f := frames[k]
		f.Seq = uint64(i + 1)
		f.Time = f.Time.Add(time.Duration(i) * time.Second / 3)
		ft.begin()
		r := tr.Track(f)
		ft.end()
		if r.OK {
			found++
		}
	}
	b.StopTimer()
	if found < b.N*9/10 {
		b.Fatalf("worm found in %d of %d frames", found, b.N)
	}
	ft.report(b)
}

// BenchmarkTrackLost2160x1920 is the worst case: the worm was lost (Reset before every frame),
// so the whole plate is searched in every frame, coarse to fine (findLost). Run with -cpu 1.
func BenchmarkTrackLost2160x1920(b *testing.B) {
	frames, tr := benchFrames(b, 4)
	tr.Reset()
	tr.Track(frames[0])
	if tr.coarse.factor < 2 {
		b.Fatalf("the lost-worm search downsamples by %d: not the coarse search", tr.coarse.factor)
	}
	var ft frameTimer
	b.ResetTimer()
	for i := range b.N {
		tr.Reset()
		ft.begin()
		r := tr.Track(frames[i%len(frames)])
		ft.end()
		if !r.OK {
			b.Fatalf("worm not found: %v", r.Status)
		}
	}
	b.StopTimer()
	ft.report(b)
}
