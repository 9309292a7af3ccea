// Package traceview reads the spans of a trace, from the OTLP/JSON files processes write with
// --trace-dir or from Jaeger's query API, and renders a trace as a waterfall (text or a
// self-contained HTML page), with the spans it links to: from an evaluation episode to the
// training that made its agent, and from there to the episodes whose data it used.
package traceview

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) by a Source that holds no span of the asked trace.
var ErrNotFound = errors.New("trace not found")

// Source gives the spans of one trace.
type Source interface {
	// Trace returns every span of trace traceID (32 lowercase hex digits); an error wrapping
	// ErrNotFound when the source holds none.
	Trace(ctx context.Context, traceID string) ([]Span, error)
}

// Status is a span's status code.
type Status int

// The span status codes of OpenTelemetry.
const (
	StatusUnset Status = iota
	StatusOK
	StatusError
)

// String returns "unset", "ok" or "error".
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusError:
		return "error"
	default:
		return "unset"
	}
}

// Attr is one attribute, its value rendered as text.
type Attr struct {
	Key, Value string
}

// Event is a timed event of a span (light.on, tracking.lost, ...).
type Event struct {
	Name  string
	Time  time.Time
	Attrs []Attr
}

// Link is a span link: a reference to a span of (usually) another trace.
type Link struct {
	TraceID, SpanID string
	Attrs           []Attr
}

// Span is one span, whichever source it came from. Ids are lowercase hex (32 digits for a
// trace, 16 for a span); ParentID is "" for a root span.
type Span struct {
	TraceID, SpanID, ParentID string
	Name                      string
	// Kind is "server", "client", "internal", "producer", "consumer" or "".
	Kind string
	// Service and Instance are the resource's service.name and service.instance.id.
	Service, Instance string
	Start, End        time.Time
	Attrs             []Attr
	Events            []Event
	Links             []Link
	Status            Status
	StatusMessage     string
}

// Duration is End - Start (0 if End is before Start).
func (s Span) Duration() time.Duration {
	if s.End.Before(s.Start) {
		return 0
	}
	return s.End.Sub(s.Start)
}

// Attr returns the value of attribute key and whether the span has it.
func (s Span) Attr(key string) (string, bool) {
	for _, a := range s.Attrs {
		if a.Key == key {
			return a.Value, true
		}
	}
	return "", false
}

// Failed reports whether the span has status Error or attribute optoloop.failed=true.
func (s Span) Failed() bool {
	v, _ := s.Attr("optoloop.failed")
	return s.Status == StatusError || v == "true"
}

// Who is "service/instance" (or the one of them that is set).
func (s Span) Who() string {
	switch {
	case s.Service != "" && s.Instance != "":
		return s.Service + "/" + s.Instance
	case s.Service != "":
		return s.Service
	default:
		return s.Instance
	}
}

// NormalizeTraceID checks a trace id of up to 32 hex digits and returns it as 32 lowercase
// digits (Jaeger drops leading zeros).
func NormalizeTraceID(id string) (string, error) {
	return normalizeHex(id, 16)
}

func normalizeHex(id string, n int) (string, error) {
	s := strings.ToLower(strings.TrimSpace(id))
	if s == "" || len(s) > 2*n {
		return "", fmt.Errorf("id %q: want up to %d hex digits", id, 2*n)
	}
	s = strings.Repeat("0", 2*n-len(s)) + s
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("id %q: want hex digits", id)
	}
	return s, nil
}
