package traceview

import (
	"fmt"
	"hash/fnv"
	"html/template"
	"io"
	"strings"
	"time"
)

// WriteHTML writes the waterfall as one self-contained HTML page (inline CSS, no script, no
// external resource): a row per span with its bar on a timeline scaled to the trace, event
// ticks on the bar, a span's links under it; with follow, the followed links section.
func (t *Tree) WriteHTML(w io.Writer, follow bool) error {
	item := t.Item()
	total := float64(t.Duration())
	pct := func(d time.Duration) float64 {
		if total <= 0 {
			return 0
		}
		return 100 * float64(d) / total
	}
	page := htmlPage{TraceID: t.TraceID, Item: item, Spans: t.Len(), Services: strings.Join(t.Services(), ", "),
		Duration: fmtDur(t.Duration()), Start: t.Start.UTC().Format("2006-01-02 15:04:05.000 UTC"), Follow: follow}
	for _, n := range t.Walk() {
		s := n.Span
		r := htmlRow{Name: s.Name, Who: s.Who(), Indent: 1.2 * float64(n.Depth), Offset: "+" + fmtDur(s.Start.Sub(t.Start)),
			Duration: fmtDur(s.Duration()), Left: pct(s.Start.Sub(t.Start)), Width: max(pct(s.Duration()), 0.2),
			Color: serviceColor(s.Service), Failed: s.Failed(), Notes: strings.TrimSpace(spanNotes(n, item)), Title: spanTitle(s)}
		if r.Left+r.Width > 100 {
			r.Width = 100 - r.Left
		}
		for _, e := range s.Events {
			r.Ticks = append(r.Ticks, htmlTick{Left: pct(e.Time.Sub(t.Start)), Title: e.Name + " at +" + fmtDur(e.Time.Sub(t.Start))})
		}
		for _, lv := range n.Links {
			r.Links = append(r.Links, t.linkText(lv))
		}
		page.Rows = append(page.Rows, r)
		if !follow {
			continue
		}
		for _, lv := range n.Links {
			f := htmlFollowed{From: s.Name + " [" + s.Who() + "]", Link: t.linkText(lv)}
			if top := lv.Top; top != nil {
				f.Top = fmt.Sprintf("%s [%s]%s %s, %d links (trace %s, span %s)", top.Name, top.Who(), attrNotes(*top, ""),
					fmtDur(top.Duration()), len(top.Links), top.TraceID, top.SpanID)
				for _, rl := range lv.TopLinks {
					if rl.Span == nil {
						f.TopLinks = append(f.TopLinks, "span "+rl.Link.SpanID+" of trace "+rl.Link.TraceID+" (not in the source)")
						continue
					}
					f.TopLinks = append(f.TopLinks, fmt.Sprintf("%s [%s]%s %s (trace %s, span %s)", rl.Span.Name, rl.Span.Who(),
						attrNotes(*rl.Span, ""), fmtDur(rl.Span.Duration()), rl.Link.TraceID, rl.Link.SpanID))
				}
			}
			page.Followed = append(page.Followed, f)
		}
	}
	return htmlTmpl.Execute(w, page)
}

type htmlPage struct {
	TraceID, Item, Services, Duration, Start string
	Spans                                    int
	Rows                                     []htmlRow
	Follow                                   bool
	Followed                                 []htmlFollowed
}

type htmlRow struct {
	Name, Who, Offset, Duration, Color, Notes, Title string
	Indent, Left, Width                              float64
	Failed                                           bool
	Ticks                                            []htmlTick
	Links                                            []string
}

type htmlTick struct {
	Left  float64
	Title string
}

type htmlFollowed struct {
	From, Link, Top string
	TopLinks        []string
}

// spanTitle is the hover text of a span: ids, every attribute, the events.
func spanTitle(s Span) string {
	var b strings.Builder
	fmt.Fprintf(&b, "span %s", s.SpanID)
	if s.ParentID != "" {
		fmt.Fprintf(&b, ", parent %s", s.ParentID)
	}
	if s.Kind != "" {
		fmt.Fprintf(&b, ", %s", s.Kind)
	}
	for _, a := range s.Attrs {
		fmt.Fprintf(&b, "\n%s = %s", a.Key, a.Value)
	}
	if s.Status != StatusUnset {
		fmt.Fprintf(&b, "\nstatus %s %s", s.Status, s.StatusMessage)
	}
	if ev := eventCounts(s.Events); ev != "" {
		fmt.Fprintf(&b, "\nevents %s", ev)
	}
	return b.String()
}

// palette colours the services: the roles of the cluster ("worker" or "optoloop-worker") have
// their own, any other service one picked by a hash of its name.
var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac"}

var roleColor = map[string]string{"coordinator": palette[0], "worker": palette[1], "learner": palette[2], "cluster": palette[3]}

// serviceColor gives each service a stable colour.
func serviceColor(service string) string {
	if c, ok := roleColor[strings.TrimPrefix(service, "optoloop-")]; ok {
		return c
	}
	h := fnv.New32a()
	h.Write([]byte(service))
	return palette[4+int(h.Sum32()%uint32(len(palette)-4))]
}

var htmlTmpl = template.Must(template.New("trace").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>trace {{.TraceID}}{{if .Item}} ({{.Item}}){{end}}</title>
<style>
body { font: 13px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
.meta { color: #555; margin-bottom: 1em; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th { text-align: left; font-weight: 600; border-bottom: 1px solid #ccc; padding: 3px 6px; }
td { padding: 2px 6px; vertical-align: top; border-bottom: 1px solid #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.who { color: #777; }
.notes { color: #444; font-size: 12px; }
.failed { color: #b00; font-weight: 600; }
.lane { position: relative; height: 16px; background: #fafafa; }
.bar { position: absolute; top: 2px; height: 12px; border-radius: 2px; min-width: 1px; }
.bar.failed { outline: 2px solid #b00; }
.tick { position: absolute; top: 0; width: 1px; height: 16px; background: #000; opacity: .55; }
.link { color: #345; font-size: 12px; }
.followed { margin-top: 2em; }
.followed li { margin-bottom: .5em; }
.followed ul ul { font-size: 12px; color: #333; }
</style>
</head>
<body>
<h1>trace {{.TraceID}}{{if .Item}} <span class="who">item {{.Item}}</span>{{end}}</h1>
<div class="meta">{{.Spans}} spans &middot; services {{.Services}} &middot; {{.Duration}} &middot; from {{.Start}}</div>
<table>
<colgroup><col style="width:30%"><col style="width:7%"><col style="width:7%"><col style="width:56%"></colgroup>
<tr><th>span</th><th>start</th><th>duration</th><th>timeline</th></tr>
{{range .Rows}}<tr title="{{.Title}}">
<td class="name" style="padding-left:{{printf "%.1f" .Indent}}em"><span{{if .Failed}} class="failed"{{end}}>{{.Name}}</span> <span class="who">{{.Who}}</span>{{if .Notes}}<div class="notes">{{.Notes}}</div>{{end}}</td>
<td class="num">{{.Offset}}</td><td class="num">{{.Duration}}</td>
<td><div class="lane"><div class="bar{{if .Failed}} failed{{end}}" style="left:{{printf "%.3f" .Left}}%;width:{{printf "%.3f" .Width}}%;background:{{.Color}}"></div>{{range .Ticks}}<div class="tick" style="left:{{printf "%.3f" .Left}}%" title="{{.Title}}"></div>{{end}}</div>
{{range .Links}}<div class="link">&rarr; linked: {{.}}</div>{{end}}</td>
</tr>
{{end}}</table>
{{if .Follow}}<div class="followed"><h2>Followed links</h2>
{{if .Followed}}<ul>{{range .Followed}}<li>{{.From}} &rarr; {{.Link}}{{if .Top}}<ul><li>{{.Top}}<ul>{{range .TopLinks}}<li>&rarr; {{.}}</li>{{end}}</ul></li></ul>{{end}}</li>
{{end}}</ul>{{else}}<p>no span of this trace has links</p>{{end}}</div>{{end}}
</body>
</html>
`))
