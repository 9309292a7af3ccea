package traceview

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Tree is a trace as a waterfall: its spans as a forest ordered by start time.
type Tree struct {
	TraceID    string
	Start, End time.Time
	// Roots are the spans without a parent in the trace, by start time. A span whose parent is
	// missing (its process died before exporting it) is a root with Orphan set.
	Roots []*Node
	// Resolved is set once Resolve has looked the links up in a source.
	Resolved bool
}

// Node is one span of a Tree.
type Node struct {
	Span     Span
	Depth    int
	Children []*Node
	// Orphan: the span names a parent that is not in the trace.
	Orphan bool
	// Links are the span's links, in the span's order (looked up by Resolve).
	Links []*LinkView
}

// LinkView is one link of a span, with what Resolve found of it.
type LinkView struct {
	Link Link
	// Target is the linked span, nil when the source does not hold it (or before Resolve).
	Target *Span
	// Top is the nearest span at or above Target in its trace that has links of its own (the
	// learner.task above a learner.publish), or nil.
	Top *Span
	// TopLinks are Top's links, each with its span when found; filled by Resolve with follow.
	TopLinks []Resolved
}

// Resolved is a link and the span it points to (nil: not in the source).
type Resolved struct {
	Link Link
	Span *Span
}

// Waterfall builds the tree of the spans of traceID among spans (spans of other traces are
// ignored; a span id seen twice is kept once, preferring a span to the coordinator's
// optoloop.lost stand-in for it). Children and roots are ordered by start time.
func Waterfall(spans []Span, traceID string) *Tree {
	id, err := NormalizeTraceID(traceID)
	if err != nil {
		id = traceID
	}
	t := &Tree{TraceID: id}
	nodes := map[string]*Node{}
	var order []*Node
	for _, s := range spans {
		if s.TraceID != id {
			continue
		}
		n := &Node{Span: s}
		for _, l := range s.Links {
			n.Links = append(n.Links, &LinkView{Link: l})
		}
		if old, dup := nodes[s.SpanID]; dup {
			// The coordinator's stand-in for an attempt whose holder vanished has the
			// attempt's span id: the attempt's own span, when it arrived, is kept instead.
			if lost(old.Span) && !lost(s) {
				*old = *n
			}
			continue
		}
		nodes[s.SpanID] = n
		order = append(order, n)
		if t.Start.IsZero() || s.Start.Before(t.Start) {
			t.Start = s.Start
		}
		if s.End.After(t.End) {
			t.End = s.End
		}
	}
	for _, n := range order {
		if p, ok := nodes[n.Span.ParentID]; ok && n.Span.ParentID != "" && p != n {
			p.Children = append(p.Children, n)
			continue
		}
		n.Orphan = n.Span.ParentID != ""
		t.Roots = append(t.Roots, n)
	}
	byStart := func(a, b *Node) int {
		if c := a.Span.Start.Compare(b.Span.Start); c != 0 {
			return c
		}
		if c := strings.Compare(a.Span.Name, b.Span.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Span.SpanID, b.Span.SpanID)
	}
	var sortDepth func(ns []*Node, depth int, seen map[*Node]bool)
	sortDepth = func(ns []*Node, depth int, seen map[*Node]bool) {
		slices.SortFunc(ns, byStart)
		for _, n := range ns {
			if seen[n] {
				continue
			}
			seen[n] = true
			n.Depth = depth
			sortDepth(n.Children, depth+1, seen)
		}
	}
	seen := map[*Node]bool{}
	sortDepth(t.Roots, 0, seen)
	// Spans in a parent cycle (only in a corrupt trace) are reachable from no root: list them
	// as orphans rather than lose them.
	for _, n := range order {
		if !seen[n] {
			n.Orphan, n.Children = true, nil
			t.Roots = append(t.Roots, n)
			seen[n] = true
		}
	}
	return t
}

func lost(s Span) bool {
	v, _ := s.Attr("optoloop.lost")
	return v == "true"
}

// Walk returns the nodes depth first, each before its children.
func (t *Tree) Walk() []*Node {
	var out []*Node
	var walk func(ns []*Node)
	walk = func(ns []*Node) {
		for _, n := range ns {
			out = append(out, n)
			walk(n.Children)
		}
	}
	walk(t.Roots)
	return out
}

// Len is the number of spans in the tree.
func (t *Tree) Len() int { return len(t.Walk()) }

// Duration is the trace's length, from its first start to its last end.
func (t *Tree) Duration() time.Duration {
	if t.End.Before(t.Start) {
		return 0
	}
	return t.End.Sub(t.Start)
}

// Item returns the optoloop.item attribute most spans of the trace carry ("" if none).
func (t *Tree) Item() string {
	count := map[string]int{}
	best := ""
	for _, n := range t.Walk() {
		if v, ok := n.Span.Attr("optoloop.item"); ok && v != "" {
			count[v]++
			if count[v] > count[best] || (count[v] == count[best] && v < best) {
				best = v
			}
		}
	}
	return best
}

// Services returns the distinct services of the trace's spans, sorted.
func (t *Tree) Services() []string {
	var out []string
	for _, n := range t.Walk() {
		if n.Span.Service != "" && !slices.Contains(out, n.Span.Service) {
			out = append(out, n.Span.Service)
		}
	}
	slices.Sort(out)
	return out
}

// Resolve looks every link of the tree up in src: the linked span and, above it in its
// trace, the nearest span with links of its own (Top). With follow it also looks up Top's
// links (from an evaluation episode, the learner.task of its policy version and every episode
// the task used). A linked trace src does not hold is left unresolved; other errors of src are
// returned.
func Resolve(ctx context.Context, src Source, t *Tree, follow bool) error {
	c := &traceCache{src: src, traces: map[string]map[string]Span{}}
	for _, n := range t.Walk() {
		for _, lv := range n.Links {
			target, trace, err := c.span(ctx, lv.Link)
			if err != nil {
				return err
			}
			if target == nil {
				continue
			}
			lv.Target = target
			for s := target; s != nil; {
				if len(s.Links) > 0 {
					lv.Top = s
					break
				}
				p, ok := trace[s.ParentID]
				if !ok || s.ParentID == "" || p.SpanID == s.SpanID {
					break
				}
				s = &p
			}
			if !follow || lv.Top == nil || lv.Top.TraceID == t.TraceID {
				continue
			}
			for _, l := range lv.Top.Links {
				s, _, err := c.span(ctx, l)
				if err != nil {
					return err
				}
				lv.TopLinks = append(lv.TopLinks, Resolved{Link: l, Span: s})
			}
		}
	}
	t.Resolved = true
	return nil
}

// traceCache fetches each trace of a source once.
type traceCache struct {
	src    Source
	traces map[string]map[string]Span // trace id -> span id -> span; nil map: not found
}

func (c *traceCache) span(ctx context.Context, l Link) (*Span, map[string]Span, error) {
	if l.TraceID == "" || l.SpanID == "" {
		return nil, nil, nil
	}
	trace, ok := c.traces[l.TraceID]
	if !ok {
		spans, err := c.src.Trace(ctx, l.TraceID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, nil, fmt.Errorf("linked trace %s: %w", l.TraceID, err)
		}
		if len(spans) > 0 {
			trace = make(map[string]Span, len(spans))
			for _, s := range spans {
				if _, dup := trace[s.SpanID]; !dup {
					trace[s.SpanID] = s
				}
			}
		}
		c.traces[l.TraceID] = trace
	}
	s, ok := trace[l.SpanID]
	if !ok {
		return nil, trace, nil
	}
	return &s, trace, nil
}
