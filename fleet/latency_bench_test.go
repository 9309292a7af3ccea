package fleet_test

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/memstore"
	"github.com/optoloop/optoloop/station"
	"github.com/optoloop/optoloop/telemetry"
)

// camera is an arena whose frames come every period (a camera), with a pose and no pixels
// (the loop acts on it as on a simulator's without rendering). It measures the frame -> light
// latency as the loop's definition has it: from a frame's arrival (NextFrame returning) to
// the return of the light command the loop sends for it.
type camera struct {
	cal    arenas.Calibration
	period time.Duration
	start  time.Time

	mu      sync.Mutex
	seq     uint64
	light   arenas.Light
	arrived time.Time // the last frame's arrival, zero once its light was set
	lat     []time.Duration
}

func newCamera(period time.Duration) *camera {
	return &camera{cal: arenas.DefaultCalibration(), period: period, start: time.Now()}
}

func (c *camera) Calibration() arenas.Calibration { return c.cal }

func (c *camera) NextFrame(ctx context.Context) (arenas.Frame, error) {
	t := time.NewTimer(c.period)
	select {
	case <-ctx.Done():
		t.Stop()
		return arenas.Frame{}, ctx.Err()
	case <-t.C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	f := arenas.Frame{Seq: c.seq, Time: c.start.Add(time.Duration(c.seq) * c.cal.FramePeriod), Width: c.cal.Width, Height: c.cal.Height, Light: c.light}
	c.arrived = time.Now()
	return f, nil
}

func (c *camera) SetLight(_ context.Context, l arenas.Light) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.light = l
	if !c.arrived.IsZero() {
		c.lat = append(c.lat, time.Since(c.arrived))
		c.arrived = time.Time{}
	}
	return nil
}

func (c *camera) Close() error { return nil }

// Pose is a worm circling the plate's centre.
func (c *camera) Pose() arenas.Pose {
	c.mu.Lock()
	a := float64(c.seq) * 0.05
	c.mu.Unlock()
	x, y := c.cal.CenterX+200*math.Cos(a), c.cal.CenterY+200*math.Sin(a)
	return arenas.Pose{OK: true, Confidence: 1, X: x, Y: y, Head: [2]float64{x + 10, y}, Tail: [2]float64{x - 10, y}, BodyAngle: a, HeadAngle: a}
}

func (c *camera) latencies() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lat)
}

// benchYAML has more collect episodes (60 s, 180 frames each) than any benchmark runs.
const benchYAML = `
name: latency
lines: ["73"]
arenas_per_line: 1
collect: { hours_per_line: 50, episode_seconds: 60, light_probability: 0.3 }
train: { ensemble_size: 1, updates: 10, checkpoint_every: 5 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
`

// BenchmarkFrameToLight runs a fleet worker's collect episodes (coordinator.Local, memstore,
// a station on a camera delivering a frame every millisecond) and reports the loop's frame ->
// light latency, p50 and p99 in microseconds, with tracing off, on at sampling 1.0 exporting
// over OTLP/HTTP to a live receiver, on with the collector's port refused, and on with a
// collector that accepts connections and never answers. Each iteration is one frame:
//
//	go test -run '^$' -bench FrameToLight -benchtime 20000x ./fleet/
func BenchmarkFrameToLight(b *testing.B) {
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer live.Close()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	refusedURL := "http://" + refused.Addr().String()
	refused.Close()
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer hole.Close()
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c) // never read, never answered
			heldMu.Unlock()
		}
	}()
	defer func() {
		heldMu.Lock()
		for _, c := range held {
			c.Close()
		}
		heldMu.Unlock()
	}()

	for _, bc := range []struct {
		name     string
		endpoint string
	}{
		{"tracing=off", ""},
		{"tracing=on", live.URL},
		{"tracing=on/collector=refused", refusedURL},
		{"tracing=on/collector=silent", "http://" + hole.Addr().String()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tel, err := telemetry.New(b.Context(), telemetry.Config{Service: "worker", Instance: "bench", OTLPEndpoint: bc.endpoint, Sample: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = tel.Shutdown(ctx)
			}()
			if (bc.endpoint != "") != tel.Tracing() {
				b.Fatalf("tracing %v with endpoint %q", tel.Tracing(), bc.endpoint)
			}
			lat := runFrames(b, tel, b.N)
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
			b.ReportMetric(q(0.5), "p50-µs")
			b.ReportMetric(q(0.99), "p99-µs")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// runFrames runs collect episodes until n frames have had their light set, and returns every
// frame's latency.
func runFrames(b *testing.B, tel *telemetry.Telemetry, n int) []time.Duration {
	b.Helper()
	local, err := coordinator.NewLocal(coordinator.DefaultLocalConfig())
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	if _, err := local.Submit(ctx, []byte(benchYAML)); err != nil {
		b.Fatal(err)
	}
	cam := newCamera(time.Millisecond)
	scfg := station.DefaultConfig()
	scfg.ArenaID, scfg.Line, scfg.Arena = "bench", "73", cam
	scfg.TracerProvider, scfg.MeterProvider = tel.TracerProvider(), tel.MeterProvider()
	st, err := station.New(scfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	wcfg := fleet.DefaultWorkerConfig()
	wcfg.ID, wcfg.ArenaID, wcfg.Station, wcfg.Broker = "w", "bench", st, local
	wcfg.Replay, wcfg.Params, wcfg.Tracks = memstore.NewReplay(), memstore.NewParams(), memstore.NewTracks()
	wcfg.TracerProvider, wcfg.MeterProvider = tel.TracerProvider(), tel.MeterProvider()
	w, err := fleet.NewWorker(wcfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := local.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "bench", Line: "73"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for len(cam.latencies()) < n {
		worked, err := w.Step(ctx)
		if err != nil || !worked {
			b.Fatalf("step: %v %v", worked, err)
		}
	}
	return cam.latencies()
}
