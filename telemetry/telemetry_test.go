package telemetry_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/optoloop/optoloop/telemetry"
)

func TestEpisodeTraceID(t *testing.T) {
	sum := sha256.Sum256([]byte("optoloop episode exp-1/e0042"))
	got := telemetry.EpisodeTraceID("exp-1/e0042")
	if string(got[:]) != string(sum[:16]) {
		t.Fatalf("EpisodeTraceID = %s, want the first 16 bytes of %x", got, sum)
	}
	if got != telemetry.EpisodeTraceID("exp-1/e0042") || got == telemetry.EpisodeTraceID("exp-1/e0043") || !got.IsValid() {
		t.Fatal("EpisodeTraceID is not a deterministic, distinct, valid id")
	}
	root := sha256.Sum256([]byte("optoloop episode root exp-1/e0042"))
	if r := telemetry.EpisodeRootSpanID("exp-1/e0042"); string(r[:]) != string(root[:8]) {
		t.Fatalf("EpisodeRootSpanID = %s", r)
	}
	if telemetry.AttemptSpanID("x", 1) == telemetry.AttemptSpanID("x", 2) {
		t.Fatal("attempts of one item share a span id")
	}
	sc := telemetry.EpisodeRoot("exp-1/e0042")
	if !sc.IsValid() || !sc.IsRemote() || sc.TraceID() != got {
		t.Fatalf("EpisodeRoot = %+v", sc)
	}
}

func TestTraceParent(t *testing.T) {
	sc := telemetry.Attempt("a/b", 7)
	tp := telemetry.TraceParent(sc)
	if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"; tp != want {
		t.Fatalf("TraceParent = %q, want %q", tp, want)
	}
	back, err := telemetry.ParseTraceParent(tp)
	if err != nil || back.TraceID() != sc.TraceID() || back.SpanID() != sc.SpanID() || !back.IsSampled() {
		t.Fatalf("ParseTraceParent(%q) = %+v, %v", tp, back, err)
	}
	if _, err := telemetry.ParseTraceParent("nonsense"); err == nil {
		t.Fatal("a bad traceparent parsed")
	}
	if telemetry.TraceParent(trace.SpanContext{}) != "" {
		t.Fatal("an invalid span context has a traceparent")
	}
	ctx := telemetry.ContextWithTraceParent(context.Background(), tp)
	if trace.SpanContextFromContext(ctx).SpanID() != sc.SpanID() {
		t.Fatal("ContextWithTraceParent lost the parent")
	}
}

// TestFileExporterRoundTrip writes spans through the trace dir exporter and reads them back:
// ids (fixed ones too), parents, attributes, events, links and status survive.
func TestFileExporterRoundTrip(t *testing.T) {
	dir := t.TempDir()
	tel, err := telemetry.New(t.Context(), telemetry.Config{Service: "worker", Instance: "w/0", TraceDir: dir, Sample: 1})
	if err != nil {
		t.Fatal(err)
	}
	tr := tel.TracerProvider().Tracer("test")
	item := "exp/e1"
	ctx := telemetry.WithSpanIDs(telemetry.EpisodeContext(t.Context(), item), telemetry.EpisodeTraceID(item), telemetry.AttemptSpanID(item, 3))
	link := telemetry.Attempt("exp/e0", 1)
	ctx, ep := tr.Start(ctx, "worker.episode", trace.WithAttributes(attribute.String(telemetry.AttrItem, item), attribute.Int64(telemetry.AttrToken, 3),
		attribute.StringSlice("tags", []string{"a", "b"}), attribute.Float64("f", 0.5), attribute.Bool("ok", true)),
		trace.WithLinks(trace.Link{SpanContext: link, Attributes: []attribute.KeyValue{attribute.String(telemetry.AttrItem, "exp/e0")}}))
	_, child := tr.Start(ctx, "replay.append", trace.WithAttributes(attribute.Int(telemetry.AttrChunkSeq, 0)))
	child.End()
	ep.AddEvent("light.on", trace.WithAttributes(attribute.Int("frame", 12)))
	ep.SetStatus(codes.Error, "arena failed")
	ep.End()
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	file := tel.TraceFile()
	if filepath.Dir(file) != dir || !strings.HasPrefix(filepath.Base(file), "worker-w_0-") || !strings.HasSuffix(file, ".jsonl") {
		t.Fatalf("trace file %s", file)
	}
	spans := readSpans(t, file)
	if len(spans) != 2 {
		t.Fatalf("%d spans in %s, want 2", len(spans), file)
	}
	ap, epSpan := spans["replay.append"], spans["worker.episode"]
	if ap == nil || epSpan == nil {
		t.Fatalf("spans %v", spans)
	}
	tid, sid := telemetry.EpisodeTraceID(item), telemetry.AttemptSpanID(item, 3)
	root := telemetry.EpisodeRootSpanID(item)
	switch {
	case string(epSpan.TraceId) != string(tid[:]) || string(epSpan.SpanId) != string(sid[:]):
		t.Errorf("worker.episode ids %x/%x, want %s/%s", epSpan.TraceId, epSpan.SpanId, tid, sid)
	case string(epSpan.ParentSpanId) != string(root[:]):
		t.Errorf("worker.episode parent %x, want the root %s", epSpan.ParentSpanId, root)
	case string(ap.ParentSpanId) != string(sid[:]) || string(ap.TraceId) != string(tid[:]) || string(ap.SpanId) == string(sid[:]):
		t.Errorf("replay.append ids %x/%x parent %x", ap.TraceId, ap.SpanId, ap.ParentSpanId)
	case epSpan.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || epSpan.Status.GetMessage() != "arena failed":
		t.Errorf("status %v", epSpan.Status)
	case len(epSpan.Events) != 1 || epSpan.Events[0].Name != "light.on" || epSpan.Events[0].Attributes[0].Value.GetIntValue() != 12:
		t.Errorf("events %v", epSpan.Events)
	case len(epSpan.Links) != 1 || hexOf(epSpan.Links[0].SpanId) != link.SpanID().String() || hexOf(epSpan.Links[0].TraceId) != link.TraceID().String():
		t.Errorf("links %v", epSpan.Links)
	case epSpan.StartTimeUnixNano == 0 || epSpan.EndTimeUnixNano < epSpan.StartTimeUnixNano:
		t.Errorf("times %d-%d", epSpan.StartTimeUnixNano, epSpan.EndTimeUnixNano)
	}
	attrs := map[string]string{}
	for _, kv := range epSpan.Attributes {
		attrs[kv.Key] = kv.Value.String()
	}
	for _, k := range []string{telemetry.AttrItem, telemetry.AttrToken, "tags", "f", "ok"} {
		if attrs[k] == "" {
			t.Errorf("attribute %s missing: %v", k, attrs)
		}
	}
	// The file is OTLP/JSON: hex ids, as a person (or jq) reads them.
	b, _ := os.ReadFile(file)
	if !strings.Contains(string(b), `"traceId":"`+tid.String()+`"`) || !strings.Contains(string(b), `"spanId":"`+sid.String()+`"`) {
		t.Errorf("the file does not hold hex ids:\n%s", b)
	}
	if !strings.Contains(string(b), `"service.name"`) || !strings.Contains(string(b), "optoloop-worker") {
		t.Errorf("the file does not name the service:\n%s", b)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// readSpans decodes every line of a trace dir file, keyed by span name.
func readSpans(t *testing.T, path string) map[string]*tracepb.Span {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]*tracepb.Span{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		req, err := telemetry.UnmarshalJSONLine(sc.Bytes())
		if err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out[s.Name] = s
				}
			}
		}
	}
	return out
}

// TestSampler: the ratio sampler decides from the trace id alone, so two processes keep the
// same episodes; a ratio of 0 keeps none and 1 keeps all.
func TestSampler(t *testing.T) {
	half := telemetry.NewSampler(0.5)
	other := telemetry.NewSampler(0.5)
	kept := 0
	for i := range 400 {
		item := "exp/e" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		ctx := telemetry.EpisodeContext(context.Background(), item)
		p := sdktrace.SamplingParameters{ParentContext: ctx, TraceID: telemetry.EpisodeTraceID(item), Name: "worker.episode"}
		a, b := half.ShouldSample(p).Decision, other.ShouldSample(p).Decision
		if a != b {
			t.Fatalf("%s: two samplers of ratio 0.5 disagree", item)
		}
		if a == sdktrace.RecordAndSample {
			kept++
		}
		if telemetry.NewSampler(0).ShouldSample(p).Decision != sdktrace.Drop || telemetry.NewSampler(1).ShouldSample(p).Decision != sdktrace.RecordAndSample {
			t.Fatalf("%s: ratio 0 or 1 does not drop or keep", item)
		}
	}
	if kept < 120 || kept > 280 {
		t.Fatalf("ratio 0.5 kept %d of 400 episode traces", kept)
	}
	// A parent that was not sampled is not sampled under it.
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: telemetry.EpisodeTraceID("x"), SpanID: telemetry.EpisodeRootSpanID("x"), Remote: true})
	p := sdktrace.SamplingParameters{ParentContext: trace.ContextWithRemoteSpanContext(context.Background(), unsampled), TraceID: unsampled.TraceID()}
	if telemetry.NewSampler(1).ShouldSample(p).Decision != sdktrace.Drop {
		t.Fatal("a span under an unsampled parent was sampled")
	}
}

func TestSampleFromEnvironment(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
	tel, err := telemetry.New(t.Context(), telemetry.Config{Service: "worker", TraceDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(t.Context())
	if r := tel.SampleRatio(); r != 0.25 {
		t.Fatalf("ratio %v from the environment, want 0.25", r)
	}
	tel2, err := telemetry.New(t.Context(), telemetry.Config{Service: "worker", Sample: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if r := tel2.SampleRatio(); r != 0.5 {
		t.Fatalf("ratio %v with a flag, want the flag's 0.5", r)
	}
	t.Setenv("OTEL_TRACES_SAMPLER", "jaeger_remote")
	if _, err := telemetry.New(t.Context(), telemetry.Config{Service: "worker"}); err == nil {
		t.Fatal("an unsupported sampler was accepted")
	}
}

func TestNoTracingWithoutExporter(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tel, err := telemetry.New(t.Context(), telemetry.Config{Service: "coordinator"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(t.Context())
	if tel.Tracing() {
		t.Fatal("tracing without an exporter")
	}
	_, s := tel.TracerProvider().Tracer("x").Start(t.Context(), "s")
	if s.IsRecording() {
		t.Fatal("a noop provider records")
	}
	var nilTel *telemetry.Telemetry
	if nilTel.Tracing() || nilTel.TracerProvider() == nil || nilTel.MeterProvider() == nil || nilTel.Shutdown(t.Context()) != nil {
		t.Fatal("a nil Telemetry is not a noop")
	}
}

// TestOTLPExport sends spans over OTLP/HTTP to a receiver that decodes the protocol.
func TestOTLPExport(t *testing.T) {
	var mu sync.Mutex
	var got []*tracepb.Span
	var header string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(b, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		header = r.Header.Get("X-Test")
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				got = append(got, ss.Spans...)
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "X-Test=secret-value")
	tel, err := telemetry.New(t.Context(), telemetry.Config{Service: "learner", Instance: "l0", OTLPEndpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, s := tel.TracerProvider().Tracer("x").Start(telemetry.EpisodeContext(t.Context(), "exp/t1"), "learner.task")
	s.End()
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	tid := telemetry.EpisodeTraceID("exp/t1")
	if len(got) != 1 || got[0].Name != "learner.task" || string(got[0].TraceId) != string(tid[:]) {
		t.Fatalf("received %v", got)
	}
	if header != "secret-value" {
		t.Fatalf("OTEL_EXPORTER_OTLP_HEADERS not sent (got %q)", header)
	}
}

// TestMetricNames: the Prometheus exposition names come out as the contract says.
func TestMetricNames(t *testing.T) {
	tel, err := telemetry.New(t.Context(), telemetry.Config{Service: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(t.Context())
	m := tel.MeterProvider().Meter("test")
	c, _ := m.Int64Counter("optoloop.worker.frames")
	h, _ := m.Float64Histogram("optoloop.worker.frame_to_light", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.001, 0.01))
	g, _ := m.Float64Gauge("optoloop.learner.critic_loss")
	u, _ := m.Int64UpDownCounter("optoloop.replay.buffer_frames")
	c.Add(t.Context(), 3)
	h.Record(t.Context(), 0.002)
	g.Record(t.Context(), 1.5)
	u.Add(t.Context(), 90)
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"optoloop_worker_frames_total 3\n",
		`optoloop_worker_frame_to_light_seconds_bucket{le="0.01"} 1`,
		"optoloop_worker_frame_to_light_seconds_count 1\n",
		"optoloop_learner_critic_loss 1.5\n",
		"optoloop_replay_buffer_frames 90\n",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestBadEndpoint(t *testing.T) {
	_, err := telemetry.New(t.Context(), telemetry.Config{Service: "w", OTLPEndpoint: "grpc://collector:4317"})
	if err == nil {
		t.Fatal("a non-http endpoint was accepted")
	}
	if _, err := telemetry.New(t.Context(), telemetry.Config{Service: "w", Sample: 2}); err == nil {
		t.Fatal("sample 2 accepted")
	}
}
