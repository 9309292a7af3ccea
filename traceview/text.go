package traceview

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// TextOptions shape the text waterfall.
type TextOptions struct {
	// BarWidth is the width of the timeline in characters (default 40).
	BarWidth int
	// MaxLinks is how many links are listed under a span (default 5; the rest are counted).
	MaxLinks int
	// Follow adds the section of followed links (Resolve with follow): the training span of
	// each linked span and the spans it links to.
	Follow bool
}

// WriteText writes the waterfall as text: a header, then one line per span (start offset,
// duration, a bar scaled to the trace's length, the span's name indented by its depth, its
// service/instance, key attributes, failure, counted events), its links under it.
func (t *Tree) WriteText(w io.Writer, o TextOptions) error {
	if o.BarWidth <= 0 {
		o.BarWidth = 40
	}
	if o.MaxLinks <= 0 {
		o.MaxLinks = 5
	}
	bw := bufio.NewWriter(w)
	item := t.Item()
	head := "trace " + t.TraceID
	if item != "" {
		head += " (item " + item + ")"
	}
	fmt.Fprintf(bw, "%s: %d spans, services %s, %s, from %s\n", head, t.Len(), strings.Join(t.Services(), ", "),
		fmtDur(t.Duration()), t.Start.UTC().Format("2006-01-02 15:04:05.000 UTC"))
	fmt.Fprintf(bw, "%9s %9s  %-*s  %s\n", "START", "DURATION", o.BarWidth+2, "TIMELINE", "SPAN")
	for _, n := range t.Walk() {
		s := n.Span
		indent := strings.Repeat("  ", n.Depth)
		fmt.Fprintf(bw, "%9s %9s  %s  %s%s [%s]%s\n", "+"+fmtDur(s.Start.Sub(t.Start)), fmtDur(s.Duration()),
			t.bar(s, o.BarWidth), indent, s.Name, s.Who(), spanNotes(n, item))
		for i, lv := range n.Links {
			if i == o.MaxLinks {
				fmt.Fprintf(bw, "%*s%s  ... and %d more links (--links lists them)\n", 22+o.BarWidth, "", indent, len(n.Links)-i)
				break
			}
			fmt.Fprintf(bw, "%*s%s  -> linked: %s\n", 22+o.BarWidth, "", indent, t.linkText(lv))
		}
	}
	if o.Follow {
		t.writeFollowed(bw)
	}
	return bw.Flush()
}

// writeFollowed lists, for every link of the trace, the training span above the linked span
// and the spans that one links to.
func (t *Tree) writeFollowed(w io.Writer) {
	fmt.Fprintln(w)
	n := 0
	for _, node := range t.Walk() {
		for _, lv := range node.Links {
			n++
			fmt.Fprintf(w, "%s [%s] -> %s\n", node.Span.Name, node.Span.Who(), t.linkText(lv))
			if lv.Top == nil {
				continue
			}
			top := lv.Top
			fmt.Fprintf(w, "  %s [%s]%s %s, %d links (trace %s, span %s)\n", top.Name, top.Who(), attrNotes(*top, ""),
				fmtDur(top.Duration()), len(top.Links), top.TraceID, top.SpanID)
			for _, r := range lv.TopLinks {
				if r.Span == nil {
					fmt.Fprintf(w, "    -> span %s of trace %s (not in the source)\n", r.Link.SpanID, r.Link.TraceID)
					continue
				}
				fmt.Fprintf(w, "    -> %s [%s]%s %s (trace %s, span %s)\n", r.Span.Name, r.Span.Who(), attrNotes(*r.Span, ""),
					fmtDur(r.Span.Duration()), r.Link.TraceID, r.Link.SpanID)
			}
		}
	}
	if n == 0 {
		fmt.Fprintln(w, "no span of this trace has links")
	} else if !t.Resolved {
		fmt.Fprintln(w, "(links not looked up)")
	}
}

func (t *Tree) linkText(lv *LinkView) string {
	ids := fmt.Sprintf("(trace %s, span %s)", lv.Link.TraceID, lv.Link.SpanID)
	if lv.Target == nil {
		if t.Resolved {
			return "span " + lv.Link.SpanID + " of trace " + lv.Link.TraceID + " (not in the source)"
		}
		return ids
	}
	s := *lv.Target
	out := fmt.Sprintf("%s [%s]%s %s %s", s.Name, s.Who(), attrNotes(s, ""), fmtDur(s.Duration()), ids)
	if lv.Top != nil && lv.Top.SpanID != s.SpanID {
		out += fmt.Sprintf(" in %s%s (%d links)", lv.Top.Name, attrNotes(*lv.Top, ""), len(lv.Top.Links))
	}
	return out
}

// bar draws the span's extent on a timeline of width characters scaled to the trace.
func (t *Tree) bar(s Span, width int) string {
	total := float64(t.Duration())
	from, to := 0, width
	if total > 0 {
		from = int(math.Floor(float64(s.Start.Sub(t.Start)) / total * float64(width)))
		to = int(math.Ceil(float64(s.End.Sub(t.Start)) / total * float64(width)))
	}
	from = min(max(from, 0), width-1)
	to = min(max(to, from+1), width)
	return "|" + strings.Repeat(" ", from) + strings.Repeat("=", to-from) + strings.Repeat(" ", width-to) + "|"
}

// spanNotes: key attributes, failure and counted events of a span.
func spanNotes(n *Node, item string) string {
	s := n.Span
	out := attrNotes(s, item)
	if ev := eventCounts(s.Events); ev != "" {
		out += "  events: " + ev
	}
	if n.Orphan {
		out += "  (parent " + s.ParentID + " not in the trace)"
	}
	return out
}

// keyAttrs are the attributes a line shows (without their "optoloop." prefix), in this order;
// the HTML page's hover text has them all.
var keyAttrs = []string{"item", "task", "kind", "attempt", "token", "policy_version", "chunk.seq", "lost"}

// attrNotes renders a span's key attributes (optoloop.item only when it is not the trace's
// item) and its failure.
func attrNotes(s Span, item string) string {
	var parts []string
	for _, k := range keyAttrs {
		v, ok := s.Attr("optoloop." + k)
		if !ok || (k == "item" && v == item) {
			continue
		}
		parts = append(parts, k+"="+v)
	}
	if s.Failed() {
		f := "FAILED"
		if s.StatusMessage != "" {
			f += ": " + s.StatusMessage
		}
		parts = append(parts, f)
	}
	if len(parts) == 0 {
		return ""
	}
	return "  " + strings.Join(parts, " ")
}

// eventCounts renders "light.on=3 light.off=3" in the order the names first occur.
func eventCounts(evs []Event) string {
	var names []string
	count := map[string]int{}
	for _, e := range evs {
		if count[e.Name] == 0 {
			names = append(names, e.Name)
		}
		count[e.Name]++
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%d", n, count[n])
	}
	return strings.Join(parts, " ")
}

// fmtDur renders a duration compactly: 850us, 12.3ms, 4.207s, 20m05.5s.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dus", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%.3fs", d.Seconds())
	default:
		return fmt.Sprintf("%dm%04.1fs", int(d.Minutes()), (d % time.Minute).Seconds())
	}
}
