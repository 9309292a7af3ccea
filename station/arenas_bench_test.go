package station_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/station"
)

// benchEpisodeSeconds is the length of a benchmark episode: long enough (10,800 frames) that
// no episode ends while frames are counted, except at a few arenas on a very long -benchtime;
// an arena whose episode ends starts the next one, as a worker does.
const benchEpisodeSeconds = 3600

// BenchmarkArenas runs n simulated arenas in one process, as a worker process with --arenas n
// does: n stations of one line on the reference camera (2160x1920 frames rendered and
// tracked: NoRender false), each running random-light episodes at the same time, as fast as
// the CPU allows (--pace 0). Every arena's first episode sets up its arena and tracker before
// the timer starts; then one iteration is n frames, taken from whichever arenas produce them.
// It reports
//
//   - frames/s: the frames of all arenas together per second of wall time;
//   - realtime-arenas: frames/s / 3 Hz, how many arenas at the real 3 Hz frame rate this
//     machine could serve;
//   - realtime-arenas/core: the same divided by GOMAXPROCS;
//   - realtime-arenas/cpu-s: frames per second of the process's CPU time (every thread) / 3 Hz,
//     how many real-time arenas one core kept busy could serve: steadier than the wall-clock
//     figures on a machine shared with other work;
//   - setup-ms/episode: the wall time from an episode's start to its first frame (a new
//     animal's arena, camera tables and tracker background), averaged over the first episodes,
//     which set up together: at n > 1 they share the cores; setup-cpu-ms/episode is the
//     process's CPU time until every arena's first frame, per arena;
//   - rss-MB: the process's resident memory while the n arenas run.
//
// Command: go test -run '^$' -bench Arenas ./station
func BenchmarkArenas(b *testing.B) {
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { benchArenas(b, cat, n) })
	}
}

func benchArenas(b *testing.B, cat *sim.Catalogue, n int) {
	const line = "446"
	cpuSetup := cpuTime(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		started sync.WaitGroup // every arena's first frame
		done    sync.WaitGroup // every arena's goroutine
		setupMu sync.Mutex
		setup   time.Duration // summed over the first episodes
	)
	frames := make(chan struct{}) // one send per frame: the arenas step as the loop counts
	errs := make(chan error, n)
	started.Add(n)
	for i := range n {
		cfg := station.DefaultConfig()
		cfg.ArenaID = fmt.Sprintf("bench-%d", i)
		cfg.Catalogue = cat
		cfg.Line = line
		s, err := station.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		done.Add(1)
		go func() {
			defer done.Done()
			defer s.Close()
			first := true
			for ep := 0; ctx.Err() == nil; ep++ {
				t0 := time.Now()
				e := station.Episode{
					ID: fmt.Sprintf("bench-%d-%d", i, ep),
					Spec: episode.Spec{Kind: episode.KindRandom, Line: line, Seed: uint64(1000*i + ep + 1),
						Seconds: benchEpisodeSeconds, LightProbability: 0.3, Target: &episode.Place{Name: "up", YCM: -1.5}},
					OnStep: func(station.Step) error {
						if first {
							setupMu.Lock()
							setup += time.Since(t0)
							setupMu.Unlock()
							first = false
							started.Done()
						}
						select {
						case frames <- struct{}{}:
							return nil
						case <-ctx.Done():
							return ctx.Err()
						}
					},
				}
				if _, err := s.Run(ctx, e); err != nil && ctx.Err() == nil {
					errs <- err
					if first {
						started.Done() // let the benchmark see the error instead of waiting
					}
					return
				}
			}
		}()
	}
	started.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	t0, cpu0 := time.Now(), cpuTime(b)
	for b.Loop() {
		for range n {
			select {
			case <-frames:
			case err := <-errs:
				b.Fatal(err)
			}
		}
	}
	elapsed, cpu := time.Since(t0).Seconds(), (cpuTime(b) - cpu0).Seconds()
	rss, rssErr := residentMB()
	cancel()
	done.Wait()
	if err := errors.Join(drain(errs)...); err != nil {
		b.Fatal(err)
	}
	fps := float64(b.N*n) / elapsed
	b.ReportMetric(fps, "frames/s")
	b.ReportMetric(fps/3, "realtime-arenas")
	b.ReportMetric(fps/3/float64(runtime.GOMAXPROCS(0)), "realtime-arenas/core")
	if cpu > 0 {
		b.ReportMetric(float64(b.N*n)/cpu/3, "realtime-arenas/cpu-s")
	}
	b.ReportMetric(float64(setup.Milliseconds())/float64(n), "setup-ms/episode")
	b.ReportMetric(float64((cpu0-cpuSetup).Milliseconds())/float64(n), "setup-cpu-ms/episode")
	if rssErr == nil {
		b.ReportMetric(rss, "rss-MB")
	}
}

// cpuTime is the process's CPU time so far (every thread: OpenCV's too).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// residentMB is the process's resident memory in MB (Linux: VmRSS of /proc/self/status), the
// arenas' frames and tracker buffers included (OpenCV's memory is not Go heap).
func residentMB() (float64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f kB", &kb); err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}

// drain returns what errs holds now.
func drain(errs chan error) []error {
	var out []error
	for {
		select {
		case err := <-errs:
			out = append(out, err)
		default:
			return out
		}
	}
}
