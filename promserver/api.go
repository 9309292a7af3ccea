package promserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Result is the answer to an instant query.
type Result struct {
	// Type is the result's type: "vector", "scalar", "matrix" or "string".
	Type string
	// Vector holds a vector's samples, one per series, or a scalar's one sample (without
	// labels).
	Vector []Sample
	// Matrix holds a matrix's series (the answer to a range vector selector such as x[30s]).
	Matrix []Series
	// String is a string result's value.
	String string
	// Warnings are the server's warnings about the query.
	Warnings []string
}

// Sample is one value of one series.
type Sample struct {
	Metric map[string]string
	Point
}

// Series is the values of one series over time.
type Series struct {
	Metric map[string]string
	Points []Point
}

// Point is a value at a time.
type Point struct {
	Time  time.Time
	Value float64
}

// ErrNoValue is Value's error for a result that is not one number.
var ErrNoValue = errors.New("not a single value")

// Value returns the number of a scalar or of a vector of exactly one sample.
func (r Result) Value() (float64, error) {
	if (r.Type == "vector" || r.Type == "scalar") && len(r.Vector) == 1 {
		return r.Vector[0].Value, nil
	}
	return 0, fmt.Errorf("promserver: %s result of %d samples, %d series: %w", r.Type, len(r.Vector), len(r.Matrix), ErrNoValue)
}

// Query evaluates the PromQL expression promql at the server's current time
// (/api/v1/query) and returns its result.
func (s *Server) Query(ctx context.Context, promql string) (Result, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	warnings, err := s.call(ctx, http.MethodPost, "/api/v1/query", url.Values{"query": {promql}}, &data)
	if err != nil {
		return Result{}, fmt.Errorf("promserver: query %q: %w", promql, err)
	}
	r := Result{Type: data.ResultType, Warnings: warnings}
	if err := r.decode(data.Result); err != nil {
		return Result{}, fmt.Errorf("promserver: query %q: %s result: %w", promql, data.ResultType, err)
	}
	return r, nil
}

// decode reads a result of r.Type from its JSON.
func (r *Result) decode(raw json.RawMessage) error {
	switch r.Type {
	case "vector":
		var v []struct {
			Metric map[string]string `json:"metric"`
			Value  jsonPoint         `json:"value"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		for _, x := range v {
			r.Vector = append(r.Vector, Sample{Metric: x.Metric, Point: Point(x.Value)})
		}
	case "scalar":
		var p jsonPoint
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		r.Vector = []Sample{{Metric: map[string]string{}, Point: Point(p)}}
	case "matrix":
		var m []struct {
			Metric map[string]string `json:"metric"`
			Values []jsonPoint       `json:"values"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		for _, x := range m {
			ser := Series{Metric: x.Metric}
			for _, p := range x.Values {
				ser.Points = append(ser.Points, Point(p))
			}
			r.Matrix = append(r.Matrix, ser)
		}
	case "string":
		var pair [2]json.RawMessage
		if err := json.Unmarshal(raw, &pair); err != nil {
			return err
		}
		return json.Unmarshal(pair[1], &r.String)
	default:
		return fmt.Errorf("unknown result type %q", r.Type)
	}
	return nil
}

// jsonPoint is a [unix seconds, "value"] pair of the HTTP API.
type jsonPoint Point

func (p *jsonPoint) UnmarshalJSON(b []byte) error {
	var pair [2]json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	var ts float64
	if err := json.Unmarshal(pair[0], &ts); err != nil {
		return fmt.Errorf("time stamp: %w", err)
	}
	var v string
	if err := json.Unmarshal(pair[1], &v); err != nil {
		return fmt.Errorf("value: %w", err)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return fmt.Errorf("value: %w", err)
	}
	sec, frac := math.Modf(ts)
	p.Time = time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond))
	p.Value = f
	return nil
}

// Target is one scrape target as the server sees it.
type Target struct {
	// ScrapeURL is the URL scraped.
	ScrapeURL string
	// Labels are the target's labels (instance, job).
	Labels map[string]string
	// Health is "up", "down" or "unknown" (not scraped yet).
	Health string
	// LastError is the last scrape's error ("" when it succeeded).
	LastError string
	// LastScrape is when it was last scraped (zero before the first scrape).
	LastScrape time.Time
}

// Targets returns the targets the server scrapes now (/api/v1/targets, active ones), in the
// server's order.
func (s *Server) Targets(ctx context.Context) ([]Target, error) {
	var data struct {
		Active []struct {
			ScrapeURL  string            `json:"scrapeUrl"`
			Labels     map[string]string `json:"labels"`
			Health     string            `json:"health"`
			LastError  string            `json:"lastError"`
			LastScrape time.Time         `json:"lastScrape"`
		} `json:"activeTargets"`
	}
	if err := s.get(ctx, "/api/v1/targets", url.Values{"state": {"active"}}, &data); err != nil {
		return nil, fmt.Errorf("promserver: targets: %w", err)
	}
	out := make([]Target, 0, len(data.Active))
	for _, t := range data.Active {
		ls := t.LastScrape
		if ls.Year() <= 1 {
			ls = time.Time{}
		}
		out = append(out, Target{ScrapeURL: t.ScrapeURL, Labels: t.Labels, Health: t.Health, LastError: t.LastError, LastScrape: ls})
	}
	return out, nil
}

// get calls a GET endpoint of the HTTP API and decodes its data into v.
func (s *Server) get(ctx context.Context, path string, q url.Values, v any) error {
	_, err := s.call(ctx, http.MethodGet, path, q, v)
	return err
}

// apiError is an error answer of the HTTP API.
type apiError struct {
	status    string
	errorType string
	msg       string
}

func (e *apiError) Error() string {
	if e.errorType == "" {
		return fmt.Sprintf("%s: %s", e.status, e.msg)
	}
	return fmt.Sprintf("%s (%s): %s", e.errorType, e.status, e.msg)
}

// call sends a request to the HTTP API (the query in the URL for GET, as a form for POST),
// decodes the envelope's data into v and returns its warnings.
func (s *Server) call(ctx context.Context, method, path string, q url.Values, v any) ([]string, error) {
	u := s.URL() + path
	var body io.Reader
	switch {
	case method == http.MethodPost:
		body = strings.NewReader(q.Encode())
	case len(q) > 0:
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", resp.Status, err)
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Warnings  []string        `json:"warnings"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("%s: not an API answer: %q", resp.Status, truncate(b, 200))
	}
	if env.Status != "success" {
		return env.Warnings, &apiError{status: resp.Status, errorType: env.ErrorType, msg: env.Error}
	}
	dec := json.NewDecoder(bytes.NewReader(env.Data))
	if err := dec.Decode(v); err != nil {
		return env.Warnings, fmt.Errorf("decode %s: %w", path, err)
	}
	return env.Warnings, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
