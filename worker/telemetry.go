package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// scope is the instrumentation scope of the loop's spans and metrics.
const scope = "github.com/optoloop/optoloop/worker"

// ArrivalObserver is an Observer that knows when the frame its last NextPose returned reached
// the computer (its arena's NextFrame returned, before tracking). The loop measures a frame's
// frame -> light latency from then to the return of the light command; with an Observer that
// does not know, from NextPose's return.
type ArrivalObserver interface {
	Arrived() time.Time
}

// Light and tracking changes, as events of the worker.loop span.
var (
	lightEvent    = map[bool]string{true: "light.on", false: "light.off"}
	trackingEvent = map[bool]string{true: "tracking.found", false: "tracking.lost"}
)

// LatencyBuckets are the bucket bounds (seconds) of the frame -> light latency histogram.
var LatencyBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// Metrics are the closed loop's instruments: optoloop_worker_frames_total,
// optoloop_worker_tracking_lost_frames_total, optoloop_worker_light_on_frames_total and the
// histogram optoloop_worker_frame_to_light_seconds. A nil *Metrics records nothing.
type Metrics struct {
	frames, lost, lightOn metric.Int64Counter
	toLight               metric.Float64Histogram
}

// NewMetrics makes the loop's instruments with mp (nil: a nil *Metrics, recording nothing).
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	if mp == nil {
		return nil, nil
	}
	m := mp.Meter(scope)
	var out Metrics
	var errs [4]error
	out.frames, errs[0] = m.Int64Counter("optoloop.worker.frames", metric.WithDescription("Control steps run (frames acted on)."))
	out.lost, errs[1] = m.Int64Counter("optoloop.worker.tracking_lost_frames", metric.WithDescription("Control steps without a usable pose."))
	out.lightOn, errs[2] = m.Int64Counter("optoloop.worker.light_on_frames", metric.WithDescription("Control steps whose chosen light was on."))
	out.toLight, errs[3] = m.Float64Histogram("optoloop.worker.frame_to_light", metric.WithUnit("s"),
		metric.WithDescription("Time from a frame's arrival to the return of the light command it decided."),
		metric.WithExplicitBucketBoundaries(LatencyBuckets...))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("worker: metrics: %w", err)
	}
	return &out, nil
}

// counts are the frames an episode has added to the counters so far.
type counts struct{ frames, lost, lightOn int }

// add brings the counters up to the episode's totals (the loop adds them once a chunk, not
// every frame).
func (m *Metrics) add(ctx context.Context, c *counts, frames, lost, lightOn int) {
	if m == nil {
		return
	}
	if d := frames - c.frames; d >= 0 {
		m.frames.Add(ctx, int64(d))
	}
	if d := lost - c.lost; d >= 0 {
		m.lost.Add(ctx, int64(d))
	}
	if d := lightOn - c.lightOn; d >= 0 {
		m.lightOn.Add(ctx, int64(d))
	}
	*c = counts{frames, lost, lightOn}
}

func (m *Metrics) latency(ctx context.Context, d time.Duration) {
	if m == nil {
		return
	}
	m.toLight.Record(ctx, d.Seconds())
}
