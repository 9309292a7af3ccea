package report

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/optoloop/optoloop/charts"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/results"
)

// setting is one experiment setting: a dotted key path and its value.
type setting struct{ Key, Value string }

// flattenYAML lists the scalar settings of an experiment file with their key paths; sequences of
// scalars are joined with commas.
func flattenYAML(b []byte) ([]setting, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var out []setting
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(prefix, c)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if prefix != "" {
					k = prefix + "." + k
				}
				walk(k, n.Content[i+1])
			}
		case yaml.SequenceNode:
			var vals []string
			scalars := true
			for _, c := range n.Content {
				if c.Kind != yaml.ScalarNode {
					scalars = false
					break
				}
				vals = append(vals, c.Value)
			}
			if scalars {
				out = append(out, setting{prefix, strings.Join(vals, ", ")})
				return
			}
			for i, c := range n.Content {
				walk(fmt.Sprintf("%s[%d]", prefix, i), c)
			}
		case yaml.ScalarNode:
			out = append(out, setting{prefix, n.Value})
		case yaml.AliasNode:
			if n.Alias != nil {
				walk(prefix, n.Alias)
			}
		}
	}
	walk("", &doc)
	return out, nil
}

// row is one line of the per-line table.
type row struct {
	Line                        string
	N                           [3]string
	Closest                     [3]string
	Reached                     [3]string
	PNone, PRandom              string
	RandomRate, LightFraction   string
	Members, Updates, Transfers string
	Source                      string
}

func meanSD(xs []float64) string {
	m, sd, n := results.Summarize(xs)
	switch n {
	case 0:
		return "–"
	case 1:
		return fmt.Sprintf("%.2f", m)
	}
	return fmt.Sprintf("%.2f ± %.2f", m, sd)
}

func num(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func pString(p float64) string {
	if math.IsNaN(p) {
		return "–"
	}
	return strings.TrimPrefix(strings.TrimPrefix(charts.FormatP(p), "p = "), "p ")
}

// rows builds the per-line table from report.json where it has the line, else from episodes.
func (r *run) rows() []row {
	var out []row
	for _, l := range r.order {
		rw := row{Line: l}
		groups, ps := r.closestGroups(l)
		for i, g := range groups {
			rw.N[i] = fmt.Sprint(len(g.Values))
			rw.Closest[i] = meanSD(g.Values)
		}
		for i, c := range conditions() {
			rw.Reached[i] = r.reached(l, c)
		}
		rw.PNone, rw.PRandom = pString(ps[0].P), pString(ps[1].P)
		rw.RandomRate, rw.LightFraction, rw.Members, rw.Updates, rw.Transfers = "–", "–", "–", "–", "–"
		if lr := r.lineResult(l); lr != nil {
			rw.Source = "report.json"
			rw.RandomRate = num(lr.RandomRate, 3)
			rw.LightFraction = num(lr.AgentLightFraction, 3)
			if lr.Members > 0 {
				rw.Members = fmt.Sprint(lr.Members)
			}
			if lr.Updates > 0 {
				rw.Updates = fmt.Sprint(lr.Updates)
			}
			if lr.TransitionsUsed > 0 {
				rw.Transfers = fmt.Sprint(lr.TransitionsUsed)
			}
		} else {
			rw.Source = "episode files"
			var lf []float64
			for _, e := range r.byLine[l][results.Agent] {
				lf = append(lf, e.LightFraction)
			}
			if m, _, n := results.Summarize(lf); n > 0 {
				rw.LightFraction = num(m, 3)
			}
			if eps := r.byLine[l][results.Random]; len(eps) > 0 {
				rw.RandomRate = num(eps[0].LightProbability, 3)
			}
		}
		out = append(out, rw)
	}
	return out
}

// lightUseRow is one row of the light-use table: P(light on) by the worm's state.
type lightUseRow struct {
	Line, Agent, Condition string
	Episodes               int
	All, Still             string
	Moving, StillP         [results.FacingBins]string
}

// lightUse is how the agents used the light on the animals, by state (results.LightUseOf), for
// the agent and cross-evaluation episodes.
func (r *run) lightUse() []lightUseRow {
	var eps []results.Episode
	for _, e := range r.Episodes {
		if e.Condition == results.Agent || e.Condition == results.Cross {
			eps = append(eps, e)
		}
	}
	use, err := results.LightUseOf(eps, results.DefaultLightUseConfig())
	if err != nil {
		return nil
	}
	p := func(c results.LightUseCell) string { return num(c.P(), 2) }
	var out []lightUseRow
	for _, u := range use {
		if u.AgentLine == "" {
			u.AgentLine = "–"
		}
		rw := lightUseRow{Line: u.Line, Agent: u.AgentLine, Condition: string(u.Condition), Episodes: u.Episodes, All: p(u.All()),
			Still: num(u.StillShare(), 2)}
		for i := range u.Moving {
			rw.Moving[i], rw.StillP[i] = p(u.Moving[i]), p(u.Still[i])
		}
		out = append(out, rw)
	}
	return out
}

// reached is "k/n": of the line's n episodes of the condition, k came within 0.5 cm (from
// report.json when it has the line, else from the episode files; "–" without episodes).
func (r *run) reached(l string, c episode.Kind) string {
	var times []*float64
	if lr := r.lineResult(l); lr != nil && len(lr.Conditions) > 0 {
		times = lr.Conditions[c].TimeTo05cmS
	} else {
		for _, e := range r.byLine[l][c] {
			times = append(times, e.TimeTo05cmS)
		}
	}
	if len(times) == 0 {
		return "–"
	}
	k := 0
	for _, t := range times {
		if t != nil {
			k++
		}
	}
	return fmt.Sprintf("%d/%d", k, len(times))
}

// figView is a figure as the template shows it.
type figView struct {
	Figure
	// Src is the img element's src attribute. Base64 needs no escaping inside a quoted
	// attribute, so it is written as is (html/template would escape every '+').
	Src template.HTMLAttr
}

type lineView struct {
	Line    string
	Figures []figView
}

type page struct {
	Title     string
	Generated string
	Status    string
	// Failed and Running announce an experiment that did not finish (Failed holds its
	// reason): what the report shows is then not a finished result.
	Failed, Running string
	FailedItems     []failedRow
	Dir             string
	Missing         []string
	Problems        []string
	Settings        []setting
	YAML            string
	Rows            []row
	LightUse        []lightUseRow
	Transfer        []transferRow
	Overall         []figView
	Lines           []lineView
	NFigures        int
}

// transferRow is one line and environment of the transfer phase, formatted.
type transferRow struct {
	Line, Env, Success, Agent, None, P, AgentFood, NoneFood, PFood string
}

func transferRows(ts []results.TransferResult) []transferRow {
	num := func(format string, v float64) string {
		if math.IsNaN(v) {
			return "–"
		}
		return fmt.Sprintf(format, v)
	}
	var out []transferRow
	for _, t := range ts {
		frac := func(c results.TransferCondition) string { return fmt.Sprintf("%d / %d", c.Successes, c.N) }
		out = append(out, transferRow{Line: t.Line, Env: t.Environment, Success: t.Success, Agent: frac(t.Agent), None: frac(t.None),
			P: num("%.3g", t.PSuccess), AgentFood: num("%.0f", t.Agent.MedianTimeToFoodS), NoneFood: num("%.0f", t.None.MedianTimeToFoodS), PFood: num("%.3g", t.PTimeToFood)})
	}
	return out
}

// failedRow is one item that failed for good.
type failedRow struct {
	ID, Kind, Line, Agent string
	Attempts              int
	Reasons               []string
}

// progress says how far an experiment got: its phase and how many of its items are done.
func progress(rep *results.Report) string {
	s := ""
	if rep.Phase != "" {
		s = fmt.Sprintf("phase %s", rep.Phase)
	}
	if c := rep.Items; c != nil {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%d of %d items done, %d failed, %d open", c.Done, c.Total, c.Failed, c.Open)
	}
	return s
}

func (r *run) writeHTML(w io.Writer, figs []Figure, now time.Time) error {
	p := page{Dir: r.Dir, Missing: r.missing, Problems: r.problems, Generated: now.UTC().Format(time.RFC3339)}
	name := filepath.Base(filepath.Clean(r.Dir))
	rep := r.Report
	switch {
	case rep == nil:
		p.Status = "no report.json: the experiment is still running, or it failed before writing its results"
	case rep.Status == plan.StatusFailed:
		name = rep.Name
		p.Status = fmt.Sprintf("started %s, FAILED", rep.Started.UTC().Format(time.RFC3339))
		if pr := progress(rep); pr != "" {
			p.Status += " (" + pr + ")"
		}
		p.Failed = rep.Reason
		if p.Failed == "" {
			p.Failed = "no reason recorded"
		}
	case rep.Status == plan.StatusRunning, rep.Finished.IsZero():
		name = rep.Name
		p.Status = fmt.Sprintf("started %s, not finished", rep.Started.UTC().Format(time.RFC3339))
		if rep.Status == plan.StatusRunning {
			p.Status = fmt.Sprintf("started %s, still running", rep.Started.UTC().Format(time.RFC3339))
			p.Running = progress(rep)
			if p.Running == "" {
				p.Running = "no progress recorded"
			}
		}
	default:
		name = rep.Name
		p.Status = fmt.Sprintf("started %s, finished %s (%s)", rep.Started.UTC().Format(time.RFC3339), rep.Finished.UTC().Format(time.RFC3339), rep.Finished.Sub(rep.Started).Round(time.Second))
	}
	if rep != nil {
		for _, f := range rep.Failed {
			agent := f.AgentLine
			if agent == "" {
				agent = "–"
			}
			p.FailedItems = append(p.FailedItems, failedRow{ID: f.ID, Kind: string(f.Kind), Line: f.Line, Agent: agent, Attempts: f.Attempts, Reasons: f.Reasons})
		}
	}
	p.Title = "optoloop experiment " + name
	switch {
	case p.Failed != "":
		p.Title += " (failed)"
	case p.Running != "":
		p.Title += " (still running)"
	}
	if r.Experiment != nil {
		p.YAML = string(r.Experiment)
		s, err := flattenYAML(r.Experiment)
		if err != nil {
			p.Problems = append(p.Problems, fmt.Sprintf("%s: %v (shown as text)", results.ExperimentFile, err))
		}
		p.Settings = s
	}
	p.Rows = r.rows()
	p.LightUse = r.lightUse()
	if r.Report != nil {
		p.Transfer = transferRows(r.Report.Transfer)
	}
	byLine := map[string][]figView{}
	for _, f := range figs {
		v := figView{Figure: f}
		if f.PNG != nil {
			v.Src = template.HTMLAttr(`src="data:image/png;base64,` + base64.StdEncoding.EncodeToString(f.PNG) + `"`)
			p.NFigures++
		}
		if f.Line == "" {
			p.Overall = append(p.Overall, v)
		} else {
			byLine[f.Line] = append(byLine[f.Line], v)
		}
	}
	for _, l := range r.order {
		p.Lines = append(p.Lines, lineView{Line: l, Figures: byLine[l]})
	}
	if err := pageTemplate().Execute(w, p); err != nil {
		return fmt.Errorf("report: html: %w", err)
	}
	return nil
}

func pageTemplate() *template.Template {
	return template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.4em; text-align: right; font-variant-numeric: tabular-nums; font-size: 0.9em; }
td { white-space: nowrap; }
th { background: #f3f3f3; }
td.k, th.k { text-align: left; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; max-width: 900px; }
.missing { background: #fff6e0; border: 1px solid #e8c46a; padding: 0.5em 1em; }
.problems { background: #fdecec; border: 1px solid #e59a9a; padding: 0.5em 1em; }
.failed { color: #a00; }
.wide { overflow-x: auto; }
pre { background: #f7f7f7; padding: 0.7em; overflow-x: auto; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{if .Failed}}<div class="problems" id="experiment-failed"><h2>This experiment failed</h2>
<p>Reason: {{.Failed}}.</p>
<p>The results below are what was accepted before it failed. They are not a finished result.</p></div>{{end}}
{{if .Running}}<div class="missing" id="experiment-running"><h2>This experiment is still running</h2>
<p>{{.Running}}.</p>
<p>The results below are what has been accepted so far. They are not a finished result.</p></div>{{end}}
<p id="status">{{.Status}}.<br>Run folder: <code>{{.Dir}}</code>. Report generated {{.Generated}}; {{.NFigures}} figures.</p>
<nav id="contents">Contents: <a href="#settings">settings</a>{{if .FailedItems}} · <a href="#failed-items">failed items</a>{{end}} · <a href="#lines">results per line</a>{{range .Overall}} · <a href="#fig-{{.ID}}">{{.Title}}</a>{{end}}{{range .Lines}} · <a href="#line-{{.Line}}">line {{.Line}}</a>{{end}}</nav>
{{if .Missing}}<div class="missing" id="missing"><h2>Missing parts</h2><ul>
{{range .Missing}}<li>{{.}}</li>
{{end}}</ul></div>{{end}}
{{if .Problems}}<div class="problems" id="problems"><h2>Parts that could not be read</h2><ul>
{{range .Problems}}<li>{{.}}</li>
{{end}}</ul></div>{{end}}
{{if .FailedItems}}<h2 id="failed-items">Failed items</h2>
<p>Episodes and training tasks that failed for good (their attempts spent, or ended by the experiment's failure); they count in no result below.</p>
<div class="wide"><table id="failed-table">
<tr><th class="k">item</th><th class="k">kind</th><th class="k">line</th><th class="k">agent line</th><th>attempts</th><th class="k">reasons, oldest first</th></tr>
{{range .FailedItems}}<tr><td class="k">{{.ID}}</td><td class="k">{{.Kind}}</td><td class="k">{{.Line}}</td><td class="k">{{.Agent}}</td><td>{{.Attempts}}</td><td class="k">{{range $i, $r := .Reasons}}{{if $i}}<br>{{end}}{{$r}}{{end}}</td></tr>
{{end}}</table></div>{{end}}
<h2 id="settings">Experiment settings</h2>
{{if .Settings}}<table><tr><th class="k">setting</th><th class="k">value</th></tr>
{{range .Settings}}<tr><td class="k">{{.Key}}</td><td class="k">{{.Value}}</td></tr>
{{end}}</table>{{end}}
{{if .YAML}}<details><summary>experiment.yaml</summary><pre>{{.YAML}}</pre></details>{{else}}<p>No experiment.yaml in the run folder.</p>{{end}}
<h2 id="lines">Results per line</h2>
{{if .Rows}}<div class="wide"><table id="line-table">
<tr><th class="k" rowspan="2">line</th><th colspan="3">episodes</th><th colspan="3">closest approach, cm (mean ± SD)</th><th colspan="3">reached 0.5 cm</th><th colspan="2">p (Mann-Whitney U)</th><th rowspan="2">random rate</th><th rowspan="2">agent light fraction</th><th rowspan="2">ensemble: members × updates</th><th rowspan="2">training frames</th><th class="k" rowspan="2">from</th></tr>
<tr><th>agent</th><th>none</th><th>random</th><th>agent</th><th>none</th><th>random</th><th>agent</th><th>none</th><th>random</th><th>agent vs none</th><th>agent vs random</th></tr>
{{range .Rows}}<tr><td class="k">{{.Line}}</td>{{range .N}}<td>{{.}}</td>{{end}}{{range .Closest}}<td>{{.}}</td>{{end}}{{range .Reached}}<td>{{.}}</td>{{end}}<td>{{.PNone}}</td><td>{{.PRandom}}</td><td>{{.RandomRate}}</td><td>{{.LightFraction}}</td><td>{{.Members}} × {{.Updates}}</td><td>{{.Transfers}}</td><td class="k">{{.Source}}</td></tr>
{{end}}</table></div>{{else}}<p>No line has results yet.</p>{{end}}
{{if .LightUse}}<h3 id="light-use">How the agents used the light</h3>
<p>P(light on) in the agent and cross-evaluation episodes by the worm's state when the light was chosen: moving, or still (its centre moved less than 0.15 mm over the last 15 frames, 5 s), and which way it faced, cos(body angle − direction to the target), from facing away (−1..−0.5) to facing the target (0.5..1). <code>optoloop light-use RUN_DIR</code> prints the same for every condition.</p>
<div class="wide"><table id="light-use-table">
<tr><th class="k" rowspan="2">animals</th><th class="k" rowspan="2">agents</th><th class="k" rowspan="2">condition</th><th rowspan="2">episodes</th><th rowspan="2">P(on)</th><th rowspan="2">share still</th><th colspan="4">moving: facing away … facing the target</th><th colspan="4">still: facing away … facing the target</th></tr>
<tr><th>−1..−0.5</th><th>−0.5..0</th><th>0..0.5</th><th>0.5..1</th><th>−1..−0.5</th><th>−0.5..0</th><th>0..0.5</th><th>0.5..1</th></tr>
{{range .LightUse}}<tr><td class="k">{{.Line}}</td><td class="k">{{.Agent}}</td><td class="k">{{.Condition}}</td><td>{{.Episodes}}</td><td>{{.All}}</td><td>{{.Still}}</td>{{range .Moving}}<td>{{.}}</td>{{end}}{{range .StillP}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table></div>{{end}}
{{if .Transfer}}<h3 id="transfer">Transfer: the agents unchanged in new environments</h3>
<p>Each line's trained agents against no light on the same animals (one seed per pair). Success: within 0.5 cm of the target during the episode (obstacles), the tracked centre on the lawn (food); p: two-sided Fisher exact test. Time to food: median seconds, an episode that never reached the lawn counted as its length; p: Mann-Whitney U.</p>
<div class="wide"><table id="transfer-table">
<tr><th class="k">line</th><th class="k">environment</th><th class="k">success</th><th>agent</th><th>no light</th><th>p (Fisher)</th><th>agent: time to food, s</th><th>no light: time to food, s</th><th>p (time)</th></tr>
{{range .Transfer}}<tr><td class="k">{{.Line}}</td><td class="k">{{.Env}}</td><td class="k">{{.Success}}</td><td>{{.Agent}}</td><td>{{.None}}</td><td>{{.P}}</td><td>{{.AgentFood}}</td><td>{{.NoneFood}}</td><td>{{.PFood}}</td></tr>
{{end}}</table></div>{{end}}
{{range .Overall}}{{template "fig" .}}{{end}}
{{range .Lines}}<section id="line-{{.Line}}">
<h2>Line {{.Line}}</h2>
{{if .Figures}}{{range .Figures}}{{template "fig" .}}{{end}}{{else}}<p>No figures for this line yet.</p>{{end}}
</section>
{{end}}
</body>
</html>
{{define "fig"}}<figure id="fig-{{.ID}}" data-kind="{{.Kind}}">
<h3>{{.Title}}</h3>
{{if .Src}}<img {{.Src}} alt="{{.Title}}">{{else}}<p class="failed">This figure could not be drawn: {{.Err}}</p>{{end}}
<figcaption>{{.Caption}}</figcaption>
</figure>
{{end}}`))
}
