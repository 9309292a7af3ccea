package traceview_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/traceview"
)

// jaegerTraceID has leading zeros, which Jaeger's JSON drops.
const (
	jaegerTraceID = "00000abc0000000100000000000000ff"
	jaegerShort   = "abc0000000100000000000000ff"
	linkedTraceID = "7fb2179ba5a317b94441ab96babb6cf1"
)

// jaegerBody has the shape of jaeger-query's GET /api/traces/{id} answer for spans that came
// in over OTLP (Jaeger v2: the collector's OTLP -> Jaeger translation): parent as the first
// CHILD_OF reference, links as FOLLOWS_FROM, status and kind as tags, events as logs with an
// "event" field, the resource as the process.
const jaegerBody = `{"data":[{"traceID":"` + jaegerShort + `","spans":[
{"traceID":"` + jaegerShort + `","spanID":"1111111111111111","operationName":"coordinator.lease","references":[],
 "startTime":1764583200000000,"duration":2000,
 "tags":[{"key":"otel.scope.name","type":"string","value":"optoloop"},{"key":"optoloop.item","type":"string","value":"demo-1.40"},
  {"key":"span.kind","type":"string","value":"server"}],
 "logs":[],"processID":"p1","warnings":null},
{"traceID":"` + jaegerShort + `","spanID":"2222222222222222","operationName":"worker.episode",
 "references":[{"refType":"CHILD_OF","traceID":"` + jaegerShort + `","spanID":"1111111111111111"},
  {"refType":"FOLLOWS_FROM","traceID":"` + linkedTraceID + `","spanID":"5bae46e0e34e5bb5"}],
 "startTime":1764583200010000,"duration":1990000,
 "tags":[{"key":"optoloop.item","type":"string","value":"demo-1.40"},{"key":"optoloop.attempt","type":"int64","value":2},
  {"key":"optoloop.failed","type":"bool","value":true},{"key":"otel.status_code","type":"string","value":"ERROR"},
  {"key":"error","type":"bool","value":true},{"key":"otel.status_description","type":"string","value":"lease lost"},
  {"key":"optoloop.score","type":"float64","value":0.25}],
 "logs":[{"timestamp":1764583200500000,"fields":[{"key":"event","type":"string","value":"light.on"}]},
  {"timestamp":1764583200900000,"fields":[{"key":"event","type":"string","value":"light.off"},{"key":"frame","type":"int64","value":12}]}],
 "processID":"p2","warnings":null}],
"processes":{"p1":{"serviceName":"coordinator","tags":[{"key":"service.instance.id","type":"string","value":"c2"}]},
 "p2":{"serviceName":"worker","tags":[{"key":"host.name","type":"string","value":"x"},{"key":"service.instance.id","type":"string","value":"w-446-0"}]}},
"warnings":null}],"total":0,"limit":0,"offset":0,"errors":null}`

const jaegerNotFound = `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}`

func jaegerServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/traces/" + jaegerTraceID, "/api/traces/" + jaegerShort:
			w.Write([]byte(jaegerBody))
		case "/api/traces/ffffffffffffffffffffffffffffffff":
			http.Error(w, "storage exploded", http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(jaegerNotFound))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestJaeger(t *testing.T) {
	ctx := context.Background()
	srv := jaegerServer(t)
	j := &traceview.Jaeger{URL: srv.URL + "/"}
	spans, err := j.Trace(ctx, jaegerTraceID)
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	lease, ep := spans[0], spans[1]
	if lease.TraceID != jaegerTraceID || lease.Service != "coordinator" || lease.Instance != "c2" || lease.Kind != "server" || lease.ParentID != "" {
		t.Errorf("lease %+v", lease)
	}
	if _, ok := lease.Attr("otel.scope.name"); ok {
		t.Error("scope tag kept as an attribute")
	}
	if ep.ParentID != "1111111111111111" || ep.Who() != "worker/w-446-0" || ep.Duration() != 1990*time.Millisecond {
		t.Errorf("episode %+v", ep)
	}
	if len(ep.Links) != 1 || ep.Links[0].TraceID != linkedTraceID || ep.Links[0].SpanID != "5bae46e0e34e5bb5" {
		t.Errorf("links %+v", ep.Links)
	}
	if ep.Status != traceview.StatusError || ep.StatusMessage != "lease lost" {
		t.Errorf("status %v %q", ep.Status, ep.StatusMessage)
	}
	if v, _ := ep.Attr("optoloop.attempt"); v != "2" {
		t.Errorf("attempt %q", v)
	}
	if v, _ := ep.Attr("optoloop.score"); v != "0.25" {
		t.Errorf("score %q", v)
	}
	if _, ok := ep.Attr("error"); ok {
		t.Error("error tag kept as an attribute")
	}
	if len(ep.Events) != 2 || ep.Events[0].Name != "light.on" || ep.Events[1].Attrs[0] != (traceview.Attr{Key: "frame", Value: "12"}) {
		t.Errorf("events %+v", ep.Events)
	}

	tree := traceview.Waterfall(spans, jaegerTraceID)
	// The linked trace is not in this Jaeger: the link stays, marked not found.
	if err := traceview.Resolve(ctx, j, tree, true); err != nil {
		t.Fatal(err)
	}
	out := render(t, tree, false)
	t.Logf("\n%s", out)
	lineWith(t, out, "  worker.episode [worker/w-446-0]", "attempt=2", "FAILED: lease lost", "events: light.on=1 light.off=1")
	lineWith(t, out, "-> linked: span 5bae46e0e34e5bb5 of trace "+linkedTraceID+" (not in the source)")

	if _, err := j.Trace(ctx, linkedTraceID); !errors.Is(err, traceview.ErrNotFound) {
		t.Errorf("unknown trace: %v, want ErrNotFound", err)
	}
	if _, err := j.Trace(ctx, "ffffffffffffffffffffffffffffffff"); err == nil || !strings.Contains(err.Error(), "storage exploded") {
		t.Errorf("a 500: %v", err)
	}
	for _, bad := range []string{"", "localhost:16686", "ftp://x"} {
		if _, err := (&traceview.Jaeger{URL: bad}).Trace(ctx, jaegerTraceID); err == nil {
			t.Errorf("URL %q accepted", bad)
		}
	}
	srv.Close()
	if _, err := j.Trace(ctx, jaegerTraceID); err == nil || errors.Is(err, traceview.ErrNotFound) {
		t.Errorf("a closed server: %v", err)
	}
}
