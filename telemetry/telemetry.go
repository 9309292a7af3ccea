package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Config says where a process's telemetry goes.
type Config struct {
	// Service is the process's role: "coordinator", "worker", "learner", "cluster", "run".
	// The resource's service.name is "optoloop-"+Service (OTEL_SERVICE_NAME overrides).
	Service string
	// Instance is the process's id (service.instance.id), e.g. a node or worker id.
	Instance string
	// OTLPEndpoint is the OTLP/HTTP collector, "http(s)://host:port" (the traces path
	// /v1/traces is added unless the URL has it); "" takes OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// or OTEL_EXPORTER_OTLP_ENDPOINT, and with neither set nothing is sent over OTLP.
	OTLPEndpoint string
	// TraceDir, when set, receives the spans as OTLP JSON lines (see the package comment).
	TraceDir string
	// Sample is the share of episode traces recorded, in [0, 1]; 0 takes OTEL_TRACES_SAMPLER
	// (and OTEL_TRACES_SAMPLER_ARG) when set, else 1.
	Sample float64
	// Logger receives export failures (rate limited; never a header value). Default: discard.
	Logger *slog.Logger
}

// Telemetry is one process's providers. A nil *Telemetry gives noop providers.
type Telemetry struct {
	cfg     Config
	log     *slog.Logger
	tp      *sdktrace.TracerProvider // nil: no trace exporter configured
	mp      *sdkmetric.MeterProvider
	reg     *prometheus.Registry
	handler http.Handler
	files   *fileExporter
	ratio   float64

	shutdownOnce sync.Once
	shutdownErr  error
}

// DefaultSpanLinks is the most links one span keeps: a training task links to every episode
// of its snapshot (the SDK's own default is 128).
const DefaultSpanLinks = 16384

// New builds the providers. With neither an OTLP endpoint (flag or environment) nor a trace
// dir, the tracer provider is a noop; the meter provider and the metrics handler always work.
func New(ctx context.Context, cfg Config) (*Telemetry, error) {
	t := &Telemetry{cfg: cfg, log: cfg.Logger}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Sample < 0 || cfg.Sample > 1 {
		return nil, fmt.Errorf("telemetry: sample %v must be within 0-1", cfg.Sample)
	}
	ratio, err := sampleRatio(cfg.Sample)
	if err != nil {
		return nil, err
	}
	t.ratio = ratio
	res, err := t.resource(ctx)
	if err != nil {
		return nil, err
	}

	// Metrics: always, into a registry of our own.
	t.reg = prometheus.NewRegistry()
	t.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(t.reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	t.handler = promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{})

	// Traces: only when something receives them.
	var exporters []sdktrace.SpanExporter
	endpoint, err := otlpEndpoint(cfg.OTLPEndpoint)
	if err != nil {
		return nil, err
	}
	if endpoint != "" {
		var opts []otlptracehttp.Option
		if cfg.OTLPEndpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
		}
		e, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
		}
		exporters = append(exporters, &loggingExporter{SpanExporter: e, name: "otlp " + redactURL(endpoint), log: t.log})
	}
	if cfg.TraceDir != "" {
		f, err := newFileExporter(cfg.TraceDir, cfg.Service, cfg.Instance)
		if err != nil {
			return nil, err
		}
		t.files = f
		exporters = append(exporters, &loggingExporter{SpanExporter: f, name: "trace dir " + cfg.TraceDir, log: t.log})
	}
	if len(exporters) > 0 {
		opts := []sdktrace.TracerProviderOption{
			sdktrace.WithResource(res),
			sdktrace.WithSampler(NewSampler(ratio)),
			sdktrace.WithIDGenerator(idGenerator{}),
			sdktrace.WithRawSpanLimits(spanLimits()),
		}
		for _, e := range exporters {
			// The batch processor drops spans when its queue is full: the caller never blocks.
			opts = append(opts, sdktrace.WithBatcher(e, sdktrace.WithBatchTimeout(time.Second), sdktrace.WithMaxQueueSize(8192)))
		}
		t.tp = sdktrace.NewTracerProvider(opts...)
	}
	return t, nil
}

func spanLimits() sdktrace.SpanLimits {
	l := sdktrace.NewSpanLimits() // OTEL_SPAN_*_LIMIT honoured
	if os.Getenv("OTEL_SPAN_LINK_COUNT_LIMIT") == "" {
		l.LinkCountLimit = DefaultSpanLinks
	}
	return l
}

// NewSampler returns ParentBased(TraceIDRatioBased(ratio)) whose remote sampled parents are
// sampled by the same ratio: since the ratio sampler decides from the trace id alone, every
// process with the same ratio keeps or drops the same episode traces.
func NewSampler(ratio float64) sdktrace.Sampler {
	r := sdktrace.TraceIDRatioBased(ratio)
	return sdktrace.ParentBased(r, sdktrace.WithRemoteParentSampled(r))
}

// sampleRatio is the configured ratio: the flag's, else OTEL_TRACES_SAMPLER(_ARG)'s, else 1.
func sampleRatio(flag float64) (float64, error) {
	if flag > 0 {
		return flag, nil
	}
	s := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER_ARG"))
	switch s {
	case "", "always_on", "parentbased_always_on":
		return 1, nil
	case "always_off", "parentbased_always_off":
		return 0, nil
	case "traceidratio", "parentbased_traceidratio":
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG %q must be a ratio within 0-1", arg)
		}
		return r, nil
	}
	return 0, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER %q is not supported (always_on, always_off, traceidratio and their parentbased_ forms)", s)
}

// otlpEndpoint is the traces URL to send to ("" for none): the flag's (with /v1/traces added
// to a base URL), else the environment's (the exporter reads it itself).
func otlpEndpoint(flag string) (string, error) {
	if flag == "" {
		if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")), "none") {
			return "", nil
		}
		for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
			if v := strings.TrimSpace(os.Getenv(k)); v != "" {
				return v, nil
			}
		}
		return "", nil
	}
	u, err := url.Parse(flag)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("telemetry: otlp endpoint %q must be an http(s)://host:port URL", redactURL(flag))
	}
	switch p := strings.TrimRight(u.Path, "/"); {
	case p == "":
		u.Path = "/v1/traces"
	case !strings.HasSuffix(p, "/v1/traces"):
		u.Path = p + "/v1/traces"
	}
	return u.String(), nil
}

// redactURL drops a URL's user information and query (they may hold credentials).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

func (t *Telemetry) resource(ctx context.Context) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{attribute.String("service.name", "optoloop-"+t.cfg.Service), attribute.String(AttrRole, t.cfg.Service)}
	if t.cfg.Service == "" {
		attrs[0] = attribute.String("service.name", "optoloop")
	}
	if t.cfg.Instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", t.cfg.Instance))
	}
	// Later detectors win: the environment overrides the flags' names.
	r, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithHost(), resource.WithProcessPID(),
		resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return r, nil
}

// TracerProvider returns the tracer provider (a noop one when nothing receives spans).
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t == nil || t.tp == nil {
		return tracenoop.NewTracerProvider()
	}
	return t.tp
}

// Tracing reports whether spans go anywhere.
func (t *Telemetry) Tracing() bool { return t != nil && t.tp != nil }

// MeterProvider returns the meter provider.
func (t *Telemetry) MeterProvider() metric.MeterProvider {
	if t == nil {
		return metricnoop.NewMeterProvider()
	}
	return t.mp
}

// MetricsHandler serves the metrics as Prometheus text (404 for a nil Telemetry).
func (t *Telemetry) MetricsHandler() http.Handler {
	if t == nil {
		return http.NotFoundHandler()
	}
	return t.handler
}

// Registry is the Prometheus registry the metrics are exported into (for tests and for
// collectors of a process's own).
func (t *Telemetry) Registry() *prometheus.Registry {
	if t == nil {
		return nil
	}
	return t.reg
}

// Propagator returns the W3C TraceContext propagator the process uses in HTTP headers.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// SampleRatio returns the share of traces kept.
func (t *Telemetry) SampleRatio() float64 {
	if t == nil {
		return 0
	}
	return t.ratio
}

// TraceFile returns the file the trace dir exporter writes ("" without a trace dir).
func (t *Telemetry) TraceFile() string {
	if t == nil || t.files == nil {
		return ""
	}
	return t.files.path
}

// ForceFlush exports every span ended so far.
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	if t == nil || t.tp == nil {
		return nil
	}
	return t.tp.ForceFlush(ctx)
}

// Shutdown exports the spans still queued (until ctx ends: bound it, an unreachable collector
// would otherwise hold it), closes the exporters and stops the meter provider. Calling it
// again returns the same.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.shutdownOnce.Do(func() {
		var errs []error
		if t.tp != nil {
			if err := t.tp.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("telemetry: traces: %w", err))
			}
		}
		if t.mp != nil {
			if err := t.mp.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("telemetry: metrics: %w", err))
			}
		}
		t.shutdownErr = errors.Join(errs...)
	})
	return t.shutdownErr
}

// loggingExporter logs its exporter's failures (the first, then at most one a minute with the
// count) and hides them from the batch processor, which would hand them to the global error
// handler.
type loggingExporter struct {
	sdktrace.SpanExporter
	name string
	log  *slog.Logger

	mu     sync.Mutex
	last   time.Time
	failed int
	spans  int
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failed++
	e.spans += len(spans)
	if time.Since(e.last) >= time.Minute {
		e.log.Warn("telemetry: span export failed; spans dropped", "exporter", e.name, "batches", e.failed, "spans", e.spans, "err", err)
		e.last, e.failed, e.spans = time.Now(), 0, 0
	}
	return nil
}
