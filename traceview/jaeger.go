package traceview

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Jaeger reads traces from jaeger-query's HTTP API (GET /api/traces/{traceID}, the JSON the
// Jaeger UI reads), which Jaeger v1 and v2 both serve.
type Jaeger struct {
	// URL is the query service's base URL, e.g. http://127.0.0.1:16686.
	URL string
	// Client does the requests; nil means http.DefaultClient.
	Client *http.Client
}

// Trace returns the spans of traceID. A trace Jaeger does not have is an error wrapping
// ErrNotFound.
func (j *Jaeger) Trace(ctx context.Context, traceID string) ([]Span, error) {
	id, err := NormalizeTraceID(traceID)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(j.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("jaeger URL %q: want http(s)://host:port", j.URL)
	}
	u := base.JoinPath("api", "traces", id)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	cl := j.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("jaeger: read %s: %w", u, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("trace %s in jaeger at %s: %w", id, j.URL, ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger: GET %s: %s: %s", u, resp.Status, firstLine(body))
	}
	spans, err := ParseJaeger(body)
	if err != nil {
		return nil, fmt.Errorf("jaeger: GET %s: %w", u, err)
	}
	var out []Span
	for _, s := range spans {
		if s.TraceID == id {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("trace %s in jaeger at %s: %w", id, j.URL, ErrNotFound)
	}
	return out, nil
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// The JSON of jaeger-query's /api/traces (Jaeger's "UI model").
type (
	jaegerResponse struct {
		Data   []jaegerTrace `json:"data"`
		Errors []struct {
			Code int    `json:"code"`
			Msg  string `json:"msg"`
		} `json:"errors"`
	}
	jaegerTrace struct {
		TraceID   string                   `json:"traceID"`
		Spans     []jaegerSpan             `json:"spans"`
		Processes map[string]jaegerProcess `json:"processes"`
	}
	jaegerSpan struct {
		TraceID       string `json:"traceID"`
		SpanID        string `json:"spanID"`
		ParentSpanID  string `json:"parentSpanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		StartTime uint64         `json:"startTime"` // µs since the Unix epoch
		Duration  uint64         `json:"duration"`  // µs
		Tags      []jaegerKV     `json:"tags"`
		Logs      []jaegerLog    `json:"logs"`
		ProcessID string         `json:"processID"`
		Process   *jaegerProcess `json:"process"`
	}
	jaegerProcess struct {
		ServiceName string     `json:"serviceName"`
		Tags        []jaegerKV `json:"tags"`
	}
	jaegerLog struct {
		Timestamp uint64     `json:"timestamp"`
		Fields    []jaegerKV `json:"fields"`
	}
	jaegerKV struct {
		Key   string `json:"key"`
		Type  string `json:"type"`
		Value any    `json:"value"`
	}
)

// ParseJaeger decodes a response of jaeger-query's /api/traces into spans. Jaeger's
// translation of OTLP is undone: the first CHILD_OF reference of the same trace is the parent,
// the other references are links; tags span.kind, otel.status_code, otel.status_description and
// error become the kind and status; a log's "event" field is the event's name; the process's
// service.instance.id tag is the instance.
func ParseJaeger(body []byte) ([]Span, error) {
	var r jaegerResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("not a Jaeger traces response: %w", err)
	}
	if len(r.Data) == 0 && len(r.Errors) > 0 {
		return nil, fmt.Errorf("jaeger error %d: %s", r.Errors[0].Code, r.Errors[0].Msg)
	}
	var out []Span
	for _, t := range r.Data {
		for _, js := range t.Spans {
			s, err := jaegerToSpan(js, t.Processes)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func jaegerToSpan(js jaegerSpan, procs map[string]jaegerProcess) (Span, error) {
	var s Span
	var err error
	if s.TraceID, err = normalizeHex(js.TraceID, 16); err != nil {
		return s, fmt.Errorf("span traceID: %w", err)
	}
	if s.SpanID, err = normalizeHex(js.SpanID, 8); err != nil {
		return s, fmt.Errorf("span spanID: %w", err)
	}
	s.Name = js.OperationName
	s.Start = time.UnixMicro(int64(js.StartTime))
	s.End = s.Start.Add(time.Duration(js.Duration) * time.Microsecond)
	if js.ParentSpanID != "" {
		if p, err := normalizeHex(js.ParentSpanID, 8); err == nil && p != strings.Repeat("0", 16) {
			s.ParentID = p
		}
	}
	for _, ref := range js.References {
		t, err := normalizeHex(ref.TraceID, 16)
		if err != nil {
			return s, fmt.Errorf("reference traceID: %w", err)
		}
		sp, err := normalizeHex(ref.SpanID, 8)
		if err != nil {
			return s, fmt.Errorf("reference spanID: %w", err)
		}
		if ref.RefType == "CHILD_OF" && t == s.TraceID && (s.ParentID == "" || s.ParentID == sp) {
			s.ParentID = sp
			continue
		}
		s.Links = append(s.Links, Link{TraceID: t, SpanID: sp})
	}
	var errTag bool
	for _, kv := range js.Tags {
		v := jaegerValue(kv)
		switch kv.Key {
		case "span.kind":
			s.Kind = v
		case "otel.status_code":
			switch v {
			case "ERROR":
				s.Status = StatusError
			case "OK":
				s.Status = StatusOK
			}
		case "otel.status_description":
			s.StatusMessage = v
		case "error":
			errTag = v == "true"
		case "otel.scope.name", "otel.scope.version", "otel.library.name", "otel.library.version", "internal.span.format":
		default:
			s.Attrs = append(s.Attrs, Attr{Key: kv.Key, Value: v})
		}
	}
	if errTag && s.Status == StatusUnset {
		s.Status = StatusError
	}
	for _, l := range js.Logs {
		e := Event{Time: time.UnixMicro(int64(l.Timestamp))}
		for _, kv := range l.Fields {
			if kv.Key == "event" && e.Name == "" {
				e.Name = jaegerValue(kv)
				continue
			}
			e.Attrs = append(e.Attrs, Attr{Key: kv.Key, Value: jaegerValue(kv)})
		}
		s.Events = append(s.Events, e)
	}
	p := js.Process
	if p == nil {
		if pp, ok := procs[js.ProcessID]; ok {
			p = &pp
		}
	}
	if p != nil {
		s.Service = p.ServiceName
		for _, kv := range p.Tags {
			if kv.Key == "service.instance.id" {
				s.Instance = jaegerValue(kv)
			}
		}
	}
	return s, nil
}

func jaegerValue(kv jaegerKV) string {
	switch v := kv.Value.(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		return v.String()
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}
