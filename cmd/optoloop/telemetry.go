package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/telemetry"
)

// telemetryOptions are the tracing and metrics flags of the long-running commands.
type telemetryOptions struct {
	otlpEndpoint string
	traceDir     string
	sample       float64
	metricsAddr  string
}

// register adds --otlp-endpoint, --trace-dir and --trace-sample, and with metricsAddr
// --metrics-addr.
func (o *telemetryOptions) register(cmd *cobra.Command, metricsAddr bool) {
	f := cmd.Flags()
	f.StringVar(&o.otlpEndpoint, "otlp-endpoint", "", "send spans over OTLP/HTTP to this collector, http(s)://host:port (default: $OTEL_EXPORTER_OTLP_ENDPOINT; headers from $OTEL_EXPORTER_OTLP_HEADERS)")
	f.StringVar(&o.traceDir, "trace-dir", "", "also write spans as OTLP JSON lines to a file in this folder (read them with optoloop trace ID --trace-dir)")
	f.Float64Var(&o.sample, "trace-sample", 0, "share of episode traces recorded, 0-1 (default 1, or $OTEL_TRACES_SAMPLER_ARG)")
	if metricsAddr {
		f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics (host:port; port 0 picks one, printed on stdout)")
	}
}

func (o *telemetryOptions) check() error {
	if o.sample < 0 || o.sample > 1 {
		return fmt.Errorf("--trace-sample %v must be within 0-1", o.sample)
	}
	if o.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(o.metricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr %q: %w", o.metricsAddr, err)
		}
	}
	return nil
}

// open builds the process's telemetry (service is its role, instance its id) and returns it
// with the function that flushes and stops it (bounded: an unreachable collector does not hold
// the exit).
func (o *telemetryOptions) open(ctx context.Context, service, instance string, log *slog.Logger) (*telemetry.Telemetry, func(), error) {
	if err := o.check(); err != nil {
		return nil, nil, err
	}
	tel, err := telemetry.New(ctx, telemetry.Config{Service: service, Instance: instance, OTLPEndpoint: o.otlpEndpoint,
		TraceDir: o.traceDir, Sample: o.sample, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	if tel.Tracing() {
		log.Info("tracing", "service", "optoloop-"+service, "instance", instance, "sample", tel.SampleRatio(), "trace_file", tel.TraceFile())
	}
	shutdown := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("telemetry shutdown", "err", err)
		}
	}
	return tel, shutdown, nil
}

// serveMetrics serves tel's metrics at --metrics-addr (when set) until the returned stop is
// called, and prints "metrics http://ADDR/metrics" on out once listening.
func (o *telemetryOptions) serveMetrics(tel *telemetry.Telemetry, out io.Writer, log *slog.Logger) (stop func(), err error) {
	if o.metricsAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", o.metricsAddr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.MetricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server", "err", err)
		}
	}()
	fmt.Fprintf(out, "metrics http://%s/metrics\n", ln.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
