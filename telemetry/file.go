package telemetry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// fileExporter appends each batch of spans to its file as one OTLP/JSON line.
type fileExporter struct {
	path string

	mu     sync.Mutex
	f      *os.File
	closed bool
}

// TraceFileName is the trace dir file of a process: <service>-<instance>-<pid>.jsonl, with
// characters other than letters, digits, '.', '_' and '-' replaced by '_'.
func TraceFileName(service, instance string, pid int) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
				return r
			}
			return '_'
		}, s)
	}
	if service == "" {
		service = "optoloop"
	}
	if instance == "" {
		instance = "process"
	}
	return fmt.Sprintf("%s-%s-%d.jsonl", clean(service), clean(instance), pid)
}

func newFileExporter(dir, service, instance string) (*fileExporter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("telemetry: trace dir: %w", err)
	}
	path := filepath.Join(dir, TraceFileName(service, instance, os.Getpid()))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("telemetry: trace file: %w", err)
	}
	return &fileExporter{path: path, f: f}, nil
}

// ExportSpans writes the spans as one line (one write, so concurrent writers of other files
// and readers of this one never see half a line).
func (e *fileExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	line, err := MarshalJSONLine(Request(spans))
	if err != nil {
		return err
	}
	line = append(line, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("telemetry: trace file closed")
	}
	if _, err := e.f.Write(line); err != nil {
		return fmt.Errorf("telemetry: trace file: %w", err)
	}
	return nil
}

// Shutdown syncs and closes the file.
func (e *fileExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return errors.Join(e.f.Sync(), e.f.Close())
}

// Request converts ended spans to an OTLP export request: one ResourceSpans per resource and
// one ScopeSpans per instrumentation scope, in the spans' order.
func Request(spans []sdktrace.ReadOnlySpan) *coltracepb.ExportTraceServiceRequest {
	type scopeKey struct {
		res   *resource.Resource
		scope instrumentation.Scope
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	resIdx := map[attribute.Distinct]*tracepb.ResourceSpans{}
	scopeIdx := map[*tracepb.ResourceSpans]map[string]*tracepb.ScopeSpans{}
	for _, s := range spans {
		res := s.Resource()
		var key attribute.Distinct
		if res != nil {
			key = res.Equivalent()
		}
		rs := resIdx[key]
		if rs == nil {
			rs = &tracepb.ResourceSpans{Resource: &resourcepb.Resource{}}
			if res != nil {
				rs.Resource.Attributes = keyValues(res.Attributes())
				rs.SchemaUrl = res.SchemaURL()
			}
			resIdx[key] = rs
			scopeIdx[rs] = map[string]*tracepb.ScopeSpans{}
			req.ResourceSpans = append(req.ResourceSpans, rs)
		}
		sc := s.InstrumentationScope()
		sk := sc.Name + "\x00" + sc.Version + "\x00" + sc.SchemaURL
		ss := scopeIdx[rs][sk]
		if ss == nil {
			ss = &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: sc.Name, Version: sc.Version}, SchemaUrl: sc.SchemaURL}
			if n := sc.Attributes.Len(); n > 0 {
				ss.Scope.Attributes = keyValues(sc.Attributes.ToSlice())
			}
			scopeIdx[rs][sk] = ss
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		ss.Spans = append(ss.Spans, Span(s))
	}
	return req
}

// OTLP span flags: whether the parent (or a link's target) is known to be remote, and is.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// Span converts one ended span to its OTLP message.
func Span(s sdktrace.ReadOnlySpan) *tracepb.Span {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	out := &tracepb.Span{
		TraceId:                tid[:],
		SpanId:                 sid[:],
		TraceState:             sc.TraceState().String(),
		Name:                   s.Name(),
		Kind:                   tracepb.Span_SpanKind(s.SpanKind()),
		StartTimeUnixNano:      unixNano(s.StartTime().UnixNano()),
		EndTimeUnixNano:        unixNano(s.EndTime().UnixNano()),
		Attributes:             keyValues(s.Attributes()),
		DroppedAttributesCount: uint32(s.DroppedAttributes()),
		DroppedEventsCount:     uint32(s.DroppedEvents()),
		DroppedLinksCount:      uint32(s.DroppedLinks()),
		Flags:                  uint32(sc.TraceFlags()) | flagHasIsRemote,
	}
	if p := s.Parent(); p.SpanID().IsValid() {
		psid := p.SpanID()
		out.ParentSpanId = psid[:]
		if p.IsRemote() {
			out.Flags |= flagIsRemote
		}
	}
	for _, e := range s.Events() {
		out.Events = append(out.Events, &tracepb.Span_Event{
			TimeUnixNano: unixNano(e.Time.UnixNano()), Name: e.Name,
			Attributes: keyValues(e.Attributes), DroppedAttributesCount: uint32(e.DroppedAttributeCount),
		})
	}
	for _, l := range s.Links() {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		fl := uint32(l.SpanContext.TraceFlags()) | flagHasIsRemote
		if l.SpanContext.IsRemote() {
			fl |= flagIsRemote
		}
		out.Links = append(out.Links, &tracepb.Span_Link{
			TraceId: ltid[:], SpanId: lsid[:], TraceState: l.SpanContext.TraceState().String(),
			Attributes: keyValues(l.Attributes), DroppedAttributesCount: uint32(l.DroppedAttributeCount), Flags: fl,
		})
	}
	st := s.Status()
	switch st.Code {
	case codes.Error:
		out.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: st.Description}
	case codes.Ok:
		out.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}
	default:
		out.Status = &tracepb.Status{}
	}
	return out
}

func unixNano(n int64) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func keyValues(kvs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: anyValue(kv.Value)})
	}
	return out
}

func anyValue(v attribute.Value) *commonpb.AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.AsString()}}
	case attribute.BOOLSLICE:
		return array(v.AsBoolSlice(), func(b bool) *commonpb.AnyValue { return anyValue(attribute.BoolValue(b)) })
	case attribute.INT64SLICE:
		return array(v.AsInt64Slice(), func(n int64) *commonpb.AnyValue { return anyValue(attribute.Int64Value(n)) })
	case attribute.FLOAT64SLICE:
		return array(v.AsFloat64Slice(), func(f float64) *commonpb.AnyValue { return anyValue(attribute.Float64Value(f)) })
	case attribute.STRINGSLICE:
		return array(v.AsStringSlice(), func(s string) *commonpb.AnyValue { return anyValue(attribute.StringValue(s)) })
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.Emit()}}
}

func array[T any](xs []T, f func(T) *commonpb.AnyValue) *commonpb.AnyValue {
	vs := make([]*commonpb.AnyValue, len(xs))
	for i, x := range xs {
		vs[i] = f(x)
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
}

// idField matches an id field of the protojson encoding: bytes are base64 there, hex in OTLP/JSON.
var (
	idFieldB64 = regexp.MustCompile(`"(traceId|spanId|parentSpanId)":"([A-Za-z0-9+/=]*)"`)
	idFieldHex = regexp.MustCompile(`"(traceId|spanId|parentSpanId)":"([0-9a-fA-F]*)"`)
)

// MarshalJSONLine encodes req in the OTLP/JSON encoding (protojson with enums as numbers and
// trace and span ids as hex), on one line without a newline.
func MarshalJSONLine(req *coltracepb.ExportTraceServiceRequest) ([]byte, error) {
	b, err := protojson.MarshalOptions{UseEnumNumbers: true}.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("telemetry: otlp json: %w", err)
	}
	// protojson's output is not stable in its spacing: compact it to one line.
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("telemetry: otlp json: %w", err)
	}
	var convErr error
	out := idFieldB64.ReplaceAllFunc(buf.Bytes(), func(m []byte) []byte {
		sub := idFieldB64.FindSubmatch(m)
		raw, err := base64.StdEncoding.DecodeString(string(sub[2]))
		if err != nil {
			convErr = err
			return m
		}
		return fmt.Appendf(nil, `"%s":"%s"`, sub[1], hex.EncodeToString(raw))
	})
	if convErr != nil {
		return nil, fmt.Errorf("telemetry: otlp json ids: %w", convErr)
	}
	return out, nil
}

// UnmarshalJSONLine decodes one line of a trace dir file (OTLP/JSON: hex ids, enums as
// numbers or names). Unknown fields are ignored.
func UnmarshalJSONLine(line []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, line); err != nil {
		return nil, fmt.Errorf("telemetry: otlp json: %w", err)
	}
	var convErr error
	b := idFieldHex.ReplaceAllFunc(compact.Bytes(), func(m []byte) []byte {
		sub := idFieldHex.FindSubmatch(m)
		raw, err := hex.DecodeString(string(sub[2]))
		if err != nil {
			convErr = err
			return m
		}
		return fmt.Appendf(nil, `"%s":"%s"`, sub[1], base64.StdEncoding.EncodeToString(raw))
	})
	if convErr != nil {
		return nil, fmt.Errorf("telemetry: otlp json ids: %w", convErr)
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, req); err != nil {
		return nil, fmt.Errorf("telemetry: otlp json: %w", err)
	}
	return req, nil
}
