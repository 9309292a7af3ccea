// Package telemetry builds a process's OpenTelemetry providers from its flags and the standard
// OTEL_* environment variables, and holds the conventions every optoloop process shares:
// episode trace ids, attempt span ids, W3C trace context as text, span attribute names and
// the trace-dir file format.
//
// Nothing here is global: New returns a Telemetry whose TracerProvider, MeterProvider and
// MetricsHandler the command passes on in the Configs of the packages it wires (a nil provider
// there means noop). No otel.Set* function is ever called.
//
// # Traces
//
// The tracer provider (go.opentelemetry.io/otel/sdk/trace) has a resource naming the process
// (service.name "optoloop-"+Service, service.instance.id Instance, optoloop.role Service;
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override), a sampler
// ParentBased(TraceIDRatioBased(Sample)) whose remote sampled parents are sampled by the same
// ratio (so every process decides the same for an episode's trace id), and one batch span
// processor per exporter: OTLP/HTTP (Config.OTLPEndpoint or OTEL_EXPORTER_OTLP_ENDPOINT /
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, headers from OTEL_EXPORTER_OTLP_HEADERS) and the trace
// dir (Config.TraceDir). A batch processor never blocks the caller: a full queue drops spans,
// so a control loop never waits for an exporter, reachable or not.
//
// # Episode traces
//
// Every episode (and training task) is one trace whose id is computed from its item id
// (EpisodeTraceID), so no process has to carry a minted id: the coordinator, the workers and
// the learners all compute it. The trace's root span has a fixed id (EpisodeRootSpanID) and
// each attempt's span (worker.episode, learner.task) has a fixed id from the item and its lease
// token (AttemptSpanID): the coordinator emits the root span at the item's first lease, and a
// stand-in attempt span when a lease expires under a holder that vanished, so that the spans a
// killed worker did end hang on a real parent. A span with a fixed id is started with
// WithSpanIDs (honoured by the providers this package builds).
//
// # Trace dir
//
// With Config.TraceDir set, spans are also written to TRACEDIR/<service>-<instance>-<pid>.jsonl:
// each line one OTLP ExportTraceServiceRequest in the OTLP/JSON encoding (hex trace and span
// ids, enums as numbers); MarshalJSONLine and UnmarshalJSONLine convert a line.
//
// # Metrics
//
// The meter provider exports through the OTel Prometheus exporter into a registry of its own
// (with the Go runtime and process collectors); MetricsHandler serves it as Prometheus text.
// Metrics are on whatever the trace configuration: a zero Config still has them.
package telemetry
