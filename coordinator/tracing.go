package coordinator

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/telemetry"
)

// The node's spans. Every item's spans are in the item's own trace (telemetry.EpisodeTraceID):
// a write that carries trace context (a worker's heartbeat, report or fail inside its episode
// span) is a child of the request's server span; one that carries none, and every lease (the
// item is known only once it is granted), is placed under the item's root span. The leader
// emits that root span itself ("episode ITEM" or "task ITEM", from the item's creation to its
// first lease), and a stand-in for an attempt whose holder vanished (its lease expired, or its
// worker registered again after a restart), with the attempt's own span id, so that what the
// lost holder did export hangs on a real parent.

// leaseRecord is a lease this node granted as leader, kept until the lease ends.
type leaseRecord struct {
	token   uint64
	holder  string
	exp     string
	typ     plan.ItemType
	attempt int
	start   time.Time
	// ended: the holder reported or failed the attempt itself (its own span says so).
	ended bool
}

// leases tracks the leases the leader granted.
type leases struct {
	mu sync.Mutex
	m  map[string]*leaseRecord
}

// serverHandler wraps h with otelhttp when the node traces: a server span for every request
// that carries a traceparent (requests without one, /metrics scrapes and polls for work, get
// none: they belong to no episode).
func (n *Node) serverHandler(h http.Handler) http.Handler {
	if n.cfg.TracerProvider == nil {
		return h
	}
	return otelhttp.NewHandler(h, "coordinator",
		otelhttp.WithTracerProvider(n.cfg.TracerProvider),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithFilter(func(r *http.Request) bool { return r.Header.Get("traceparent") != "" }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
}

// forwardTransport is the transport of the node's forwards and status calls: with tracing, it
// carries the request's trace context to the leader.
// forwardConns bounds a node's connections to the leader for forwarded writes.
const forwardConns = 64

func (n *Node) forwardTransport() http.RoundTripper {
	t := api.NewTransport()
	t.TLSClientConfig = n.clientTLS()
	// A busy follower's forwards share at most forwardConns connections to the leader (more
	// wait for one), well within the leader's per-client cap (Config.MaxConnsPerClient).
	t.MaxConnsPerHost = forwardConns
	if n.cfg.TracerProvider == nil {
		return t
	}
	return otelhttp.NewTransport(t,
		otelhttp.WithTracerProvider(n.cfg.TracerProvider),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithFilter(func(r *http.Request) bool { return trace.SpanContextFromContext(r.Context()).IsValid() }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "forward " + r.Method + " " + r.URL.Path }))
}

func itemAttrs(it *api.Item) []attribute.KeyValue {
	a := []attribute.KeyValue{attribute.String(telemetry.AttrItem, it.ID), attribute.String(telemetry.AttrExperiment, it.ExperimentID),
		attribute.String("optoloop.type", string(it.Type)), attribute.String("optoloop.phase", string(it.Phase))}
	if it.Type == plan.TypeTrain {
		a = append(a, attribute.String(telemetry.AttrTask, it.ID))
	} else {
		a = append(a, attribute.String(telemetry.AttrKind, string(it.Kind)))
	}
	if it.Line != "" {
		a = append(a, attribute.String(telemetry.AttrLine, it.Line))
	}
	return a
}

// proposeTraced replicates c, inside the span of its kind of write.
func (n *Node) proposeTraced(r *http.Request, c Command) (*api.Response, error) {
	ctx := r.Context()
	start := time.Now()
	var item, holder string
	var token uint64
	switch c.Type {
	case CmdHeartbeat:
		item, holder, token = c.Heartbeat.ItemID, c.Heartbeat.Holder, c.Heartbeat.Token
	case CmdReport:
		item, holder, token = c.Report.ItemID, c.Report.Holder, c.Report.Token
	case CmdFail:
		item, holder, token = c.Fail.ItemID, c.Fail.Holder, c.Fail.Token
	case CmdSubmit:
		return n.proposeSubmit(ctx, c, start)
	case CmdLease:
		resp, err := n.propose(ctx, c)
		if err == nil && resp != nil && resp.Code == api.CodeOK && resp.Item != nil {
			n.traceLease(ctx, resp.Item, start)
		}
		return resp, err
	}
	if item == "" {
		return n.propose(ctx, c)
	}
	if c.Type != CmdHeartbeat {
		n.holderEnded(item, token)
	}
	sctx := ctx
	if !trace.SpanContextFromContext(ctx).IsValid() {
		sctx = telemetry.EpisodeContext(ctx, item)
	}
	sctx, span := n.tracer.Start(sctx, "coordinator."+string(c.Type), trace.WithAttributes(
		attribute.String(telemetry.AttrItem, item), attribute.String(telemetry.AttrHolder, holder), attribute.Int64(telemetry.AttrToken, int64(token))))
	resp, err := n.propose(sctx, c)
	endWrite(span, resp, err)
	return resp, err
}

// endWrite ends a write's span with its outcome.
func endWrite(span trace.Span, resp *api.Response, err error) {
	switch {
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	case resp != nil && resp.Code != api.CodeOK:
		span.SetAttributes(attribute.String("optoloop.code", string(resp.Code)))
		span.SetStatus(codes.Error, resp.Error)
	}
	span.End()
}

// proposeSubmit replicates a submit in a coordinator.submit span (the request's trace), and
// gives every item the submit created a coordinator.submit span in its own trace, linked to
// the request's.
func (n *Node) proposeSubmit(ctx context.Context, c Command, start time.Time) (*api.Response, error) {
	sctx, span := n.tracer.Start(ctx, "coordinator.submit")
	resp, err := n.propose(sctx, c)
	if err == nil && resp != nil && resp.Code == api.CodeOK && span.IsRecording() {
		span.SetAttributes(attribute.String(telemetry.AttrExperiment, resp.ExperimentID))
		if v, ok := n.fsm.ExperimentView(resp.ExperimentID); ok {
			span.SetAttributes(attribute.Int("optoloop.items", len(v.Items)))
			link := trace.Link{SpanContext: span.SpanContext()}
			for i := range v.Items {
				it := &v.Items[i]
				_, s := n.tracer.Start(telemetry.EpisodeContext(context.WithoutCancel(ctx), it.ID), "coordinator.submit",
					trace.WithTimestamp(start), trace.WithLinks(link), trace.WithAttributes(itemAttrs(it)...))
				s.End()
			}
		}
	}
	endWrite(span, resp, err)
	return resp, err
}

// traceLease records a granted lease: its coordinator.lease span under the item's root, the
// root span itself at the item's first lease, and the lease for the sweep.
func (n *Node) traceLease(ctx context.Context, it *api.Item, start time.Time) {
	if !n.track(it, start) {
		return // a replayed answer to a lease already traced
	}
	leaseSpans(n.tracer, ctx, it, start)
}

// leaseSpans emits the spans of a granted lease: the item's root span at its first lease, and
// coordinator.lease under it, linked to the request's span when there is one.
func leaseSpans(tracer trace.Tracer, ctx context.Context, it *api.Item, start time.Time) {
	bg := context.WithoutCancel(ctx)
	if it.Attempts == 1 {
		name := "episode " + it.ID
		if it.Type == plan.TypeTrain {
			name = "task " + it.ID
		}
		rctx := telemetry.WithSpanIDs(bg, telemetry.EpisodeTraceID(it.ID), telemetry.EpisodeRootSpanID(it.ID))
		attrs := append(itemAttrs(it), attribute.Int("optoloop.n", it.N), attribute.Int64("optoloop.seed", int64(it.Seed)))
		_, root := tracer.Start(rctx, name, trace.WithNewRoot(), trace.WithTimestamp(it.Created), trace.WithAttributes(attrs...))
		root.End()
	}
	opts := []trace.SpanStartOption{trace.WithTimestamp(start), trace.WithAttributes(append(itemAttrs(it),
		attribute.String(telemetry.AttrHolder, it.Holder), attribute.Int64(telemetry.AttrToken, int64(it.Token)),
		attribute.Int(telemetry.AttrAttempt, it.Attempts))...)}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	_, span := tracer.Start(telemetry.EpisodeContext(bg, it.ID), "coordinator.lease", opts...)
	span.End()
}

// track records a lease the leader granted; false when it is recorded already.
func (n *Node) track(it *api.Item, start time.Time) bool {
	n.leases.mu.Lock()
	defer n.leases.mu.Unlock()
	if r := n.leases.m[it.ID]; r != nil && r.token == it.Token {
		return false
	}
	if n.leases.m == nil {
		n.leases.m = map[string]*leaseRecord{}
	}
	n.leases.m[it.ID] = &leaseRecord{token: it.Token, holder: it.Holder, exp: it.ExperimentID, typ: it.Type, attempt: it.Attempts, start: start}
	return true
}

// holderEnded notes that the holder of lease token reported or failed it itself.
func (n *Node) holderEnded(item string, token uint64) {
	n.leases.mu.Lock()
	defer n.leases.mu.Unlock()
	if r := n.leases.m[item]; r != nil && r.token == token {
		r.ended = true
	}
}

// forgetLeases drops the records (leadership lost: the next leader sweeps without them).
func (n *Node) forgetLeases() {
	n.leases.mu.Lock()
	n.leases.m = nil
	n.leases.mu.Unlock()
}

// sweepLeases, on the leader after each tick, drops the records of leases that ended and
// emits a stand-in attempt span for each one whose holder vanished: the lease expired or its
// worker registered again after a restart, so the holder's own span never ended.
func (n *Node) sweepLeases() {
	n.leases.mu.Lock()
	recs := make(map[string]*leaseRecord, len(n.leases.m))
	for id, r := range n.leases.m {
		recs[id] = r
	}
	n.leases.mu.Unlock()
	for id, r := range recs {
		it, ok := n.fsm.Item(id)
		if ok && it.State == api.StateLeased && it.Token == r.token {
			continue
		}
		n.leases.mu.Lock()
		if n.leases.m[id] == r {
			delete(n.leases.m, id)
		}
		n.leases.mu.Unlock()
		if !ok || r.ended {
			continue
		}
		if reason, lost := lostReason(it.Failures, r.token); lost {
			n.standIn(&it, r, reason)
		}
	}
}

// lostReason finds the failure of lease token that says its holder vanished.
func lostReason(failures []string, token uint64) (string, bool) {
	mark := fmt.Sprintf("lease %d): ", token)
	for _, f := range failures {
		if i := strings.Index(f, mark); i >= 0 {
			rest := f[i+len(mark):]
			if strings.HasPrefix(rest, "lease expired") || strings.HasPrefix(rest, "the worker registered again") {
				return f, true
			}
		}
	}
	return "", false
}

// standIn emits the span of a lost attempt, with the attempt's own span id, failed.
func (n *Node) standIn(it *api.Item, r *leaseRecord, reason string) {
	name := "worker.episode"
	attrs := []attribute.KeyValue{attribute.String(telemetry.AttrItem, it.ID), attribute.String(telemetry.AttrExperiment, r.exp),
		attribute.Int64(telemetry.AttrToken, int64(r.token)), attribute.Int(telemetry.AttrAttempt, r.attempt),
		attribute.String(telemetry.AttrHolder, r.holder), attribute.Bool(telemetry.AttrFailed, true), attribute.Bool(telemetry.AttrLost, true),
		attribute.String("optoloop.stand_in", "coordinator")}
	if r.typ == plan.TypeTrain {
		name = "learner.task"
		attrs = append(attrs, attribute.String(telemetry.AttrTask, it.ID))
	}
	ctx := telemetry.WithSpanIDs(telemetry.EpisodeContext(context.Background(), it.ID), telemetry.EpisodeTraceID(it.ID), telemetry.AttemptSpanID(it.ID, r.token))
	_, span := n.tracer.Start(ctx, name, trace.WithTimestamp(r.start), trace.WithAttributes(attrs...))
	span.SetStatus(codes.Error, reason)
	span.End()
	n.log.Warn("attempt lost: its holder vanished", "item", it.ID, "token", r.token, "holder", r.holder,
		"trace_id", telemetry.EpisodeTraceID(it.ID).String(), "reason", reason)
}
