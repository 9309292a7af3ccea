package traceview

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Dir is a trace directory (--trace-dir): files *.jsonl whose every line is one OTLP
// ExportTraceServiceRequest in the OTLP/JSON encoding. All of its spans are read once, by
// OpenDir.
type Dir struct {
	path    string
	byTrace map[string][]Span
	// Skipped lists the lines that could not be read ("file:line: reason"), such as the last,
	// partly written line of a process that was killed.
	Skipped []string
}

// OpenDir reads every *.jsonl file of dir. It fails when dir cannot be read or holds no
// such file; a line that is not an ExportTraceServiceRequest is skipped and listed in Skipped.
func OpenDir(dir string) (*Dir, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("trace dir: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("trace dir %s: not a directory", dir)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("trace dir %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("trace dir %s: no *.jsonl trace files", dir)
	}
	d := &Dir{path: dir, byTrace: map[string][]Span{}}
	for _, f := range files {
		if err := d.readFile(f); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *Dir) readFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("trace dir: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			spans, perr := ParseRequest(b)
			if perr != nil {
				d.Skipped = append(d.Skipped, fmt.Sprintf("%s:%d: %v", filepath.Base(name), line, perr))
			}
			for _, s := range spans {
				d.byTrace[s.TraceID] = append(d.byTrace[s.TraceID], s)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("trace dir: read %s: %w", name, err)
		}
	}
}

// Trace returns the spans of traceID found in the directory.
func (d *Dir) Trace(_ context.Context, traceID string) ([]Span, error) {
	id, err := NormalizeTraceID(traceID)
	if err != nil {
		return nil, err
	}
	spans := d.byTrace[id]
	if len(spans) == 0 {
		return nil, fmt.Errorf("trace %s in %s: %w", id, d.path, ErrNotFound)
	}
	return slices.Clone(spans), nil
}

// TraceIDs returns the ids of every trace in the directory, sorted.
func (d *Dir) TraceIDs() []string {
	ids := make([]string, 0, len(d.byTrace))
	for id := range d.byTrace {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// ParseRequest decodes one OTLP/JSON ExportTraceServiceRequest (as written by protojson or by
// an OTLP/JSON exporter) into spans. It accepts lowerCamelCase and snake_case field names, ids
// in hex (as OTLP/JSON specifies) or base64 (protojson's encoding of bytes), numbers as JSON
// numbers or strings, and enums as numbers or names.
func ParseRequest(b []byte) ([]Span, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	top, ok := root.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an ExportTraceServiceRequest: a JSON %T", root)
	}
	rss, ok := field(top, "resourceSpans").([]any)
	if !ok {
		return nil, fmt.Errorf("not an ExportTraceServiceRequest: no resourceSpans")
	}
	var out []Span
	for _, rsv := range rss {
		rs, _ := rsv.(map[string]any)
		var service, instance string
		if res, ok := field(rs, "resource").(map[string]any); ok {
			for _, a := range attrs(field(res, "attributes")) {
				switch a.Key {
				case "service.name":
					service = a.Value
				case "service.instance.id":
					instance = a.Value
				}
			}
		}
		scopes, _ := field(rs, "scopeSpans").([]any)
		if old, ok := field(rs, "instrumentationLibrarySpans").([]any); ok {
			scopes = append(scopes, old...)
		}
		for _, ssv := range scopes {
			ss, _ := ssv.(map[string]any)
			spans, _ := field(ss, "spans").([]any)
			for _, sv := range spans {
				m, ok := sv.(map[string]any)
				if !ok {
					return out, fmt.Errorf("span is a JSON %T", sv)
				}
				s, err := parseSpan(m)
				if err != nil {
					return out, err
				}
				s.Service, s.Instance = service, instance
				out = append(out, s)
			}
		}
	}
	return out, nil
}

func parseSpan(m map[string]any) (Span, error) {
	var s Span
	var err error
	if s.TraceID, err = otlpID(field(m, "traceId"), 16); err != nil || s.TraceID == "" {
		return s, fmt.Errorf("span traceId: %v", orMissing(err))
	}
	if s.SpanID, err = otlpID(field(m, "spanId"), 8); err != nil || s.SpanID == "" {
		return s, fmt.Errorf("span spanId: %v", orMissing(err))
	}
	if s.ParentID, err = otlpID(field(m, "parentSpanId"), 8); err != nil {
		return s, fmt.Errorf("span parentSpanId: %w", err)
	}
	s.Name = str(field(m, "name"))
	s.Kind = spanKind(field(m, "kind"))
	s.Start = unixNano(field(m, "startTimeUnixNano"))
	s.End = unixNano(field(m, "endTimeUnixNano"))
	s.Attrs = attrs(field(m, "attributes"))
	evs, _ := field(m, "events").([]any)
	for _, ev := range evs {
		e, _ := ev.(map[string]any)
		s.Events = append(s.Events, Event{Name: str(field(e, "name")), Time: unixNano(field(e, "timeUnixNano")), Attrs: attrs(field(e, "attributes"))})
	}
	links, _ := field(m, "links").([]any)
	for _, lv := range links {
		l, _ := lv.(map[string]any)
		t, err := otlpID(field(l, "traceId"), 16)
		if err != nil {
			return s, fmt.Errorf("link traceId: %w", err)
		}
		sp, err := otlpID(field(l, "spanId"), 8)
		if err != nil {
			return s, fmt.Errorf("link spanId: %w", err)
		}
		s.Links = append(s.Links, Link{TraceID: t, SpanID: sp, Attrs: attrs(field(l, "attributes"))})
	}
	if st, ok := field(m, "status").(map[string]any); ok {
		s.StatusMessage = str(field(st, "message"))
		switch c := str(field(st, "code")); c {
		case "1", "STATUS_CODE_OK":
			s.Status = StatusOK
		case "2", "STATUS_CODE_ERROR":
			s.Status = StatusError
		}
	}
	return s, nil
}

func orMissing(err error) error {
	if err == nil {
		return fmt.Errorf("missing")
	}
	return err
}

// field returns m[name], or m[snake_case(name)].
func field(m map[string]any, name string) any {
	if v, ok := m[name]; ok {
		return v
	}
	var b strings.Builder
	for _, r := range name {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return m[b.String()]
}

// otlpID decodes an id of n bytes given in hex or base64; "" (or all zeros) gives "".
func otlpID(v any, n int) (string, error) {
	s := str(v)
	if s == "" {
		return "", nil
	}
	var b []byte
	if len(s) == 2*n {
		b, _ = hex.DecodeString(s)
	}
	if b == nil {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if d, err := enc.DecodeString(s); err == nil && len(d) == n {
				b = d
				break
			}
		}
	}
	if b == nil {
		return "", fmt.Errorf("%q is neither %d hex digits nor %d bytes in base64", s, 2*n, n)
	}
	if bytes.Equal(b, make([]byte, n)) {
		return "", nil
	}
	return hex.EncodeToString(b), nil
}

// str renders a JSON scalar as text.
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	default:
		return fmt.Sprint(x)
	}
}

func unixNano(v any) time.Time {
	n, err := strconv.ParseUint(str(v), 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n))
}

func spanKind(v any) string {
	switch str(v) {
	case "1", "SPAN_KIND_INTERNAL":
		return "internal"
	case "2", "SPAN_KIND_SERVER":
		return "server"
	case "3", "SPAN_KIND_CLIENT":
		return "client"
	case "4", "SPAN_KIND_PRODUCER":
		return "producer"
	case "5", "SPAN_KIND_CONSUMER":
		return "consumer"
	}
	return ""
}

// attrs decodes a list of OTLP KeyValue.
func attrs(v any) []Attr {
	list, _ := v.([]any)
	var out []Attr
	for _, kv := range list {
		m, _ := kv.(map[string]any)
		if m == nil {
			continue
		}
		out = append(out, Attr{Key: str(field(m, "key")), Value: anyValue(field(m, "value"))})
	}
	return out
}

// anyValue renders an OTLP AnyValue as text.
func anyValue(v any) string {
	m, _ := v.(map[string]any)
	if m == nil {
		return str(v)
	}
	if x, ok := field(m, "arrayValue").(map[string]any); ok {
		vals, _ := field(x, "values").([]any)
		parts := make([]string, len(vals))
		for i, e := range vals {
			parts[i] = anyValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	if x, ok := field(m, "kvlistValue").(map[string]any); ok {
		var parts []string
		for _, a := range attrs(field(x, "values")) {
			parts = append(parts, a.Key+"="+a.Value)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	for _, k := range []string{"stringValue", "boolValue", "intValue", "doubleValue", "bytesValue"} {
		if x, ok := m[k]; ok {
			return str(x)
		}
		if x := field(m, k); x != nil {
			return str(x)
		}
	}
	return ""
}
