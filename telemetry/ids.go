package telemetry

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Span attribute names shared by every process (and the trace reader).
const (
	// AttrItem is the episode's (or task's) item id, on every span of an episode.
	AttrItem = "optoloop.item"
	// AttrTask is the training task's item id, on every training span.
	AttrTask = "optoloop.task"
	// AttrExperiment is the experiment id.
	AttrExperiment = "optoloop.experiment"
	// AttrToken and AttrAttempt are the lease token and attempt number of an attempt's span.
	AttrToken   = "optoloop.token"
	AttrAttempt = "optoloop.attempt"
	// AttrFailed marks an attempt that failed (its status is Error too); AttrLost one whose
	// holder vanished (the coordinator's stand-in span for it).
	AttrFailed = "optoloop.failed"
	AttrLost   = "optoloop.lost"
	// AttrHolder is the worker or learner id that held the lease.
	AttrHolder = "optoloop.holder"
	// AttrKind and AttrLine are the episode's kind and line.
	AttrKind = "optoloop.kind"
	AttrLine = "optoloop.line"
	// AttrChunkSeq numbers a replay.append span's chunk.
	AttrChunkSeq = "optoloop.chunk.seq"
	// AttrPolicyVersion is a parameter version (learner.publish, an acting episode).
	AttrPolicyVersion = "optoloop.policy_version"
	// AttrRole is the resource attribute naming the process's role.
	AttrRole = "optoloop.role"
)

// EpisodeTraceID is the trace id of item itemID's trace (an episode or a training task): the
// first 16 bytes of SHA-256("optoloop episode " + itemID).
func EpisodeTraceID(itemID string) trace.TraceID {
	sum := sha256.Sum256([]byte("optoloop episode " + itemID))
	var id trace.TraceID
	copy(id[:], sum[:16])
	return id
}

// EpisodeRootSpanID is the span id of the root span of item itemID's trace (the coordinator
// emits it, named "episode ITEM" or "task ITEM", at the item's first lease): the first 8
// bytes of SHA-256("optoloop episode root " + itemID).
func EpisodeRootSpanID(itemID string) trace.SpanID {
	return spanID("optoloop episode root " + itemID)
}

// AttemptSpanID is the span id of the attempt at item itemID under lease token (its
// worker.episode or learner.task span): the first 8 bytes of SHA-256("optoloop attempt " +
// itemID + "/" + token in decimal).
func AttemptSpanID(itemID string, token uint64) trace.SpanID {
	return spanID("optoloop attempt " + itemID + "/" + strconv.FormatUint(token, 10))
}

func spanID(s string) trace.SpanID {
	sum := sha256.Sum256([]byte(s))
	var id trace.SpanID
	copy(id[:], sum[:8])
	if !id.IsValid() {
		id[7] = 1
	}
	return id
}

// EpisodeRoot returns the span context of item itemID's root span (remote, sampled: the
// providers of this package sample it by their ratio on the trace id).
func EpisodeRoot(itemID string) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: EpisodeTraceID(itemID), SpanID: EpisodeRootSpanID(itemID), TraceFlags: trace.FlagsSampled, Remote: true,
	})
}

// Attempt returns the span context of the attempt at itemID under token (see AttemptSpanID).
func Attempt(itemID string, token uint64) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: EpisodeTraceID(itemID), SpanID: AttemptSpanID(itemID, token), TraceFlags: trace.FlagsSampled, Remote: true,
	})
}

// EpisodeContext returns ctx whose span is item itemID's root span (as a remote parent): a
// span started from it is in the item's trace.
func EpisodeContext(ctx context.Context, itemID string) context.Context {
	return trace.ContextWithRemoteSpanContext(ctx, EpisodeRoot(itemID))
}

// forcedIDs are the ids the next span started with a context holds takes.
type forcedIDs struct {
	tid  trace.TraceID
	sid  trace.SpanID
	used atomic.Bool
}

type forcedKey struct{}

// WithSpanIDs returns ctx with which the next span started (by a provider of this package)
// takes trace id tid and span id sid: with a parent of trace tid (a span under
// EpisodeContext), or as a new root (trace.WithNewRoot). Only that one span takes them; spans
// started later from the same context get random ids. Other providers ignore it.
func WithSpanIDs(ctx context.Context, tid trace.TraceID, sid trace.SpanID) context.Context {
	return context.WithValue(ctx, forcedKey{}, &forcedIDs{tid: tid, sid: sid})
}

func forced(ctx context.Context, tid trace.TraceID) (*forcedIDs, bool) {
	f, _ := ctx.Value(forcedKey{}).(*forcedIDs)
	if f == nil || (tid.IsValid() && f.tid != tid) || !f.used.CompareAndSwap(false, true) {
		return nil, false
	}
	return f, true
}

// idGenerator draws random ids, except for a span started under WithSpanIDs.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if f, ok := forced(ctx, trace.TraceID{}); ok {
		return f.tid, f.sid
	}
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, randomSpanID()
}

func (idGenerator) NewSpanID(ctx context.Context, tid trace.TraceID) trace.SpanID {
	if f, ok := forced(ctx, tid); ok {
		return f.sid
	}
	return randomSpanID()
}

func randomSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}

// TraceParent returns the W3C traceparent of span context sc ("" when sc is not valid).
func TraceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return c["traceparent"]
}

// ContextTraceParent returns the traceparent of ctx's span ("" when it has none).
func ContextTraceParent(ctx context.Context) string {
	return TraceParent(trace.SpanContextFromContext(ctx))
}

// ParseTraceParent parses a W3C traceparent into a (remote) span context.
func ParseTraceParent(tp string) (trace.SpanContext, error) {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return sc, fmt.Errorf("telemetry: traceparent %q is not valid", tp)
	}
	return sc, nil
}

// ContextWithTraceParent returns ctx whose remote parent is traceparent tp (ctx unchanged when
// tp is empty or not valid).
func ContextWithTraceParent(ctx context.Context, tp string) context.Context {
	if tp == "" {
		return ctx
	}
	sc, err := ParseTraceParent(tp)
	if err != nil {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}
