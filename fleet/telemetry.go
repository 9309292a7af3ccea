package fleet

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/telemetry"
)

// scope is the instrumentation scope of the roles' spans and metrics.
const scope = "github.com/optoloop/optoloop/fleet"

// chunkWriteBuckets bound the chunk write histogram (seconds): a Redis append acknowledged
// after an fsync takes a millisecond or a few; one retried while Redis restarts, seconds.
var chunkWriteBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// instruments returns fleet's tracer and meter from the providers (nil: noop).
func instruments(tp trace.TracerProvider, mp metric.MeterProvider) (trace.Tracer, metric.Meter) {
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	return tp.Tracer(scope), mp.Meter(scope)
}

// workerTel is a worker's tracer and instruments.
type workerTel struct {
	tracer     trace.Tracer
	episodes   metric.Int64Counter
	chunkWrite metric.Float64Histogram
	buffer     metric.Int64UpDownCounter
}

func newWorkerTel(tp trace.TracerProvider, mp metric.MeterProvider) (*workerTel, error) {
	tracer, m := instruments(tp, mp)
	t := &workerTel{tracer: tracer}
	var errs [3]error
	t.episodes, errs[0] = m.Int64Counter("optoloop.worker.episodes", metric.WithDescription("Episode attempts by result: done (report accepted) or failed (failed, abandoned or refused)."))
	t.chunkWrite, errs[1] = m.Float64Histogram("optoloop.replay.chunk_write", metric.WithUnit("s"),
		metric.WithDescription("Time of one successful replay append of a chunk (a store call)."), metric.WithExplicitBucketBoundaries(chunkWriteBuckets...))
	t.buffer, errs[2] = m.Int64UpDownCounter("optoloop.replay.buffer_frames", metric.WithDescription("Frames of running episodes waiting for the replay in this process."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("fleet: metrics: %w", err)
	}
	return t, nil
}

// learnerTel is a learner's tracer and instruments.
type learnerTel struct {
	tracer  trace.Tracer
	updates metric.Int64Counter
	critic  metric.Float64Gauge
	entropy metric.Float64Gauge
	version metric.Float64Gauge
}

func newLearnerTel(tp trace.TracerProvider, mp metric.MeterProvider) (*learnerTel, error) {
	tracer, m := instruments(tp, mp)
	t := &learnerTel{tracer: tracer}
	var errs [4]error
	t.updates, errs[0] = m.Int64Counter("optoloop.learner.updates", metric.WithDescription("Gradient updates done, over every member."))
	t.critic, errs[1] = m.Float64Gauge("optoloop.learner.critic_loss", metric.WithDescription("Mean critic loss (both critics, every member) over the last curve interval of the last round."))
	t.entropy, errs[2] = m.Float64Gauge("optoloop.learner.entropy", metric.WithDescription("Mean policy entropy over the last curve interval of the last round."))
	t.version, errs[3] = m.Float64Gauge("optoloop.learner.policy_version", metric.WithDescription("The last parameter version published."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("fleet: metrics: %w", err)
	}
	return t, nil
}

// attemptSpan starts the span of an attempt at item it (worker.episode or learner.task): in
// the item's trace, under its root, with the attempt's fixed span id.
func attemptSpan(ctx context.Context, tr trace.Tracer, name string, it *api.Item, holder string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	tid := telemetry.EpisodeTraceID(it.ID)
	ctx = telemetry.WithSpanIDs(telemetry.EpisodeContext(ctx, it.ID), tid, telemetry.AttemptSpanID(it.ID, it.Token))
	attrs = append(attrs, attribute.String(telemetry.AttrExperiment, it.ExperimentID), attribute.String(telemetry.AttrLine, it.Line),
		attribute.Int64(telemetry.AttrToken, int64(it.Token)), attribute.Int(telemetry.AttrAttempt, it.Attempts),
		attribute.String(telemetry.AttrHolder, holder))
	return tr.Start(ctx, name, trace.WithAttributes(attrs...))
}

// markFailed marks the span of ctx (an attempt's) failed.
func markFailed(ctx context.Context, reason string) {
	s := trace.SpanFromContext(ctx)
	s.SetAttributes(attribute.Bool(telemetry.AttrFailed, true))
	s.SetStatus(codes.Error, reason)
}

// endSpan ends s with err's status.
func endSpan(s trace.Span, err error) {
	if err != nil {
		s.SetStatus(codes.Error, err.Error())
	}
	s.End()
}
