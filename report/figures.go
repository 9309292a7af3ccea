package report

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/optoloop/optoloop/agentlib/learner"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/charts"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
)

// Figure is one image of the report.
type Figure struct {
	// ID is unique in the report: "line-<line>-<kind>" or "<kind>" for experiment-wide figures.
	ID string
	// Line is the line the figure belongs to, "" for experiment-wide figures.
	Line    string
	Kind    string
	Title   string
	Caption string
	// PNG is the rendered image; Err says why there is none.
	PNG []byte
	Err string
}

// Figure kinds, in the order they appear per line.
const (
	KindClosest     = "closest"
	KindSurvival    = "survival"
	KindTrajectory  = "trajectories" // suffixed with -<condition>
	KindOverlay     = "overlay"      // suffixed with -<condition>
	KindCurves      = "curves"
	KindPolicyMap   = "policy-map"
	KindCross       = "cross"
	KindEffectSizes = "effect-sizes"
	KindAnimalTime  = "animal-time"
)

// ReferencePxPerCM converts the policy map's reference pixels to cm (DESIGN: 900 px = 1.667 cm).
const ReferencePxPerCM = 540

// conditions are the evaluation conditions of a line, in display order.
func conditions() []episode.Kind { return []episode.Kind{results.Agent, results.None, results.Random} }

// job builds and renders one figure.
type job struct {
	fig   Figure
	build func(buf *bytes.Buffer) error
}

// plan lists the figures of the run and how to draw each.
func (r *run) plan(cfg Config) []job {
	var jobs []job
	add := func(f Figure, build func(buf *bytes.Buffer) error) { jobs = append(jobs, job{fig: f, build: build}) }
	for li, l := range r.order {
		groups, ps := r.closestGroups(l)
		if anyValues(groups) {
			add(Figure{ID: "line-" + l + "-" + KindClosest, Line: l, Kind: KindClosest,
				Title:   "Closest approach to the target, line " + l,
				Caption: "Each point is one evaluation episode; boxes span the quartiles (median bold, triangle: mean), whiskers 1.5 IQR. p: two-sided Mann-Whitney U."},
				func(buf *bytes.Buffer) error {
					return charts.WriteDistribution(buf, charts.PNG, "line "+l+": closest approach", "closest approach (cm)", groups, ps, cfg.Seed+uint64(li))
				})
		}
		if sg := r.survivalGroups(l); sg != nil {
			add(Figure{ID: "line-" + l + "-" + KindSurvival, Line: l, Kind: KindSurvival,
				Title:   "Time to 0.5 cm, line " + l,
				Caption: "Kaplan-Meier estimate of the share of worms not yet within 0.5 cm of the target; + marks episodes that ended first (censored). Legend: episodes that reached 0.5 cm / all."},
				func(buf *bytes.Buffer) error {
					f, err := charts.BuildSurvival("line "+l+": time to 0.5 cm", sg)
					if err != nil {
						return err
					}
					return f.Render(buf, charts.PNG)
				})
		}
		for _, c := range conditions() {
			var eps []*results.Episode
			for _, e := range r.byLine[l][c] {
				if hasPlate(e) {
					eps = append(eps, e)
				}
			}
			if len(eps) == 0 {
				continue
			}
			shown := eps
			if len(shown) > cfg.MaxTrajectories {
				shown = shown[:cfg.MaxTrajectories]
			}
			tracks := make([]charts.Track, len(shown))
			for i, e := range shown {
				tracks[i] = Track(e)
			}
			all := make([]charts.Track, len(eps))
			for i, e := range eps {
				all[i] = Track(e)
			}
			note := ""
			if len(shown) < len(eps) {
				note = fmt.Sprintf(" (first %d of %d episodes)", len(shown), len(eps))
			}
			add(Figure{ID: "line-" + l + "-" + KindTrajectory + "-" + string(c), Line: l, Kind: KindTrajectory,
				Title:   fmt.Sprintf("Trajectories, line %s, %s%s", l, c, note),
				Caption: "Camera view of the plate (y down). Blue: path while the light was on; grey: off; green: start; red cross and dashed ring: target and 0.5 cm; orange ring: closest approach."},
				func(buf *bytes.Buffer) error {
					g, err := charts.BuildTrajectories(fmt.Sprintf("line %s, %s", l, c), tracks, 5)
					if err != nil {
						return err
					}
					return g.Render(buf, charts.PNG)
				})
			add(Figure{ID: "line-" + l + "-" + KindOverlay + "-" + string(c), Line: l, Kind: KindOverlay,
				Title:   fmt.Sprintf("All %s episodes of line %s, target rotated to the right", c, l),
				Caption: "Every episode of the condition on one plate, each rotated about the plate centre so that its target lies to the right."},
				func(buf *bytes.Buffer) error {
					g, err := charts.BuildOverlay(fmt.Sprintf("line %s, %s", l, c), all)
					if err != nil {
						return err
					}
					return g.Render(buf, charts.PNG)
				})
		}
		if cps, ok := r.curves[l]; ok {
			members := memberCurves(cps)
			add(Figure{ID: "line-" + l + "-" + KindCurves, Line: l, Kind: KindCurves,
				Title:   "Learning curves, line " + l,
				Caption: "One curve per ensemble member; each point is the mean over the learner's curve interval. Critic loss is the mean of the twin critics' losses."},
				func(buf *bytes.Buffer) error {
					f, err := charts.BuildLearningCurves("line "+l+" learning curves", charts.DefaultMetrics(), members)
					if err != nil {
						return err
					}
					return f.Render(buf, charts.PNG)
				})
		}
		if m, ok := r.maps[l]; ok {
			add(Figure{ID: "line-" + l + "-" + KindPolicyMap, Line: l, Kind: KindPolicyMap,
				Title:   "Policy map, line " + l,
				Caption: fmt.Sprintf("Ensemble-mean P(light on) (%d members) for a worm at each position relative to the target (panels), by body angle relative to the target direction (x) and head angle relative to the body (y). Colour range chosen from the data.", m.Members)},
				func(buf *bytes.Buffer) error {
					return charts.WritePolicyMap(buf, charts.PNG, PolicyMapChart(m, "line "+l+": P(light on)"))
				})
		}
	}
	if animals, agents, vals, ns, ok := r.cross(); ok {
		caption := "Mean closest approach (cm) of animals of each line (rows) under agents trained on each line (columns); lower is better. Red frames: the agent's own line."
		if r.Report != nil && r.Report.Cross != nil && len(r.Report.Cross.Columns) > 0 {
			c := r.Report.Cross
			cols := make([]string, len(c.Columns))
			for i, col := range c.Columns {
				p := "p unknown"
				if !math.IsNaN(col.P) {
					p = fmt.Sprintf("p %.2g", col.P)
				}
				cols[i] = fmt.Sprintf("%s's agents %s (against %s's animals, %s)", col.Agent, map[bool]string{true: "best on their own line", false: "not best on their own line"}[col.OwnBest], col.Rival, p)
			}
			caption += fmt.Sprintf(" Own line best in %d of %d columns; two-sided Mann-Whitney of the own line's episodes against the closest other line's: %s.", c.OwnBest(), len(c.Columns), strings.Join(cols, "; "))
		}
		add(Figure{ID: KindCross, Kind: KindCross, Title: "Cross-evaluation", Caption: caption},
			func(buf *bytes.Buffer) error {
				f, err := charts.BuildCross("cross-evaluation: mean closest approach", animals, agents, vals, ns)
				if err != nil {
					return err
				}
				return f.Render(buf, charts.PNG)
			})
	}
	if series, err := AnimalTimeSeries(append([]string{r.Dir}, cfg.Compare...), nil); err == nil && (len(cfg.Compare) > 0 || online(series)) {
		add(Figure{ID: KindAnimalTime, Kind: KindAnimalTime, Title: "Closest approach against animal time",
			Caption: "Mean closest approach of each line's agents against the animal hours of the training data they were trained on: an online run's evaluation checkpoints and final evaluation (solid), offline runs' final evaluations (dashed, one point per run; optoloop report --compare RUN adds runs). Bars: standard error."},
			func(buf *bytes.Buffer) error {
				f, err := charts.BuildAnimalTime("closest approach against animal time", series)
				if err != nil {
					return err
				}
				return f.Render(buf, charts.PNG)
			})
	}
	var ls []charts.LineSamples
	for _, l := range r.order {
		groups, _ := r.closestGroups(l)
		ls = append(ls, charts.LineSamples{Line: l, Agent: groups[0].Values, Baselines: groups[1:]})
	}
	if len(ls) > 0 && anyAgent(ls) {
		add(Figure{ID: KindEffectSizes, Kind: KindEffectSizes, Title: "Effect of the agent across lines",
			Caption: fmt.Sprintf("Mean closest approach under the better baseline (no light or random light, whichever came closer) minus under the agent, per line; bars: 95%% percentile bootstrap interval (%d resamples, seed %d). Above zero: the agent brings worms closer than either baseline.", cfg.Resamples, cfg.Seed)},
			func(buf *bytes.Buffer) error {
				f, err := charts.BuildEffects("agent vs best baseline", ls, cfg.Resamples, 0.95, cfg.Seed)
				if err != nil {
					return err
				}
				return f.Render(buf, charts.PNG)
			})
	}
	return jobs
}

func anyValues(gs []charts.Group) bool {
	for _, g := range gs {
		if len(g.Values) > 0 {
			return true
		}
	}
	return false
}

func anyAgent(ls []charts.LineSamples) bool {
	for _, l := range ls {
		if len(l.Agent) > 0 {
			return true
		}
	}
	return false
}

// renderAll runs the jobs on workers goroutines and returns the figures in plan order. A figure
// that fails carries its error; only a cancelled context stops the whole.
func renderAll(ctx context.Context, jobs []job, workers int) ([]Figure, error) {
	figs := make([]Figure, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				j := jobs[i]
				f := j.fig
				var buf bytes.Buffer
				if err := j.build(&buf); err != nil {
					f.Err = err.Error()
				} else {
					f.PNG = buf.Bytes()
				}
				figs[i] = f
			}
		}()
	}
	var err error
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return figs, nil
}

// closestGroups returns the closest-approach values of the line's conditions (agent, none,
// random), from report.json when it has the line, else from the episode files, and the p values.
func (r *run) closestGroups(l string) ([]charts.Group, []charts.PValue) {
	lr := r.lineResult(l)
	groups := make([]charts.Group, 0, 3)
	for _, c := range conditions() {
		g := charts.Group{Name: string(c)}
		if lr != nil && len(lr.Conditions) > 0 {
			g.Values = lr.Conditions[c].ClosestCM
		} else {
			for _, e := range r.byLine[l][c] {
				g.Values = append(g.Values, e.ClosestCM)
			}
		}
		groups = append(groups, g)
	}
	pn, pr := math.NaN(), math.NaN()
	if lr != nil && len(lr.Conditions) > 0 {
		pn, pr = lr.PAgentVsNone, lr.PAgentVsRandom
	} else {
		if _, p, err := results.MannWhitneyU(groups[0].Values, groups[1].Values); err == nil {
			pn = p
		}
		if _, p, err := results.MannWhitneyU(groups[0].Values, groups[2].Values); err == nil {
			pr = p
		}
	}
	return groups, []charts.PValue{{A: string(results.Agent), B: string(results.None), P: pn}, {A: string(results.Agent), B: string(results.Random), P: pr}}
}

func (r *run) lineResult(l string) *results.LineResult {
	if r.Report == nil {
		return nil
	}
	for i := range r.Report.Lines {
		if r.Report.Lines[i].Line == l {
			return &r.Report.Lines[i]
		}
	}
	return nil
}

// survivalGroups returns the time-to-0.5 cm events of the line's episodes, nil without episodes.
func (r *run) survivalGroups(l string) []charts.SurvivalGroup {
	var out []charts.SurvivalGroup
	n := 0
	for _, c := range conditions() {
		g := charts.SurvivalGroup{Name: string(c)}
		for _, e := range r.byLine[l][c] {
			if e.TimeTo05cmS != nil {
				g.Events = append(g.Events, charts.Event{T: *e.TimeTo05cmS, Observed: true})
			} else {
				g.Events = append(g.Events, charts.Event{T: e.Seconds})
			}
			n++
		}
		out = append(out, g)
	}
	if n == 0 {
		return nil
	}
	return out
}

// cross returns the cross-evaluation from report.json, or computed from cross-evaluation
// episodes (with the agent condition on the diagonal) when report.json lacks it.
func (r *run) cross() (animals, agents []string, vals [][]float64, ns [][]int, ok bool) {
	if r.Report != nil && r.Report.Cross != nil && len(r.Report.Cross.Animals) > 0 {
		c := r.Report.Cross
		return c.Animals, c.Agents, c.ClosestCM, c.N, true
	}
	sum := map[[2]string]float64{}
	cnt := map[[2]string]int{}
	an, ag := map[string]bool{}, map[string]bool{}
	for i := range r.Episodes {
		e := &r.Episodes[i]
		if e.Condition != results.Cross || e.AgentLine == "" {
			continue
		}
		k := [2]string{e.Line, e.AgentLine}
		sum[k] += e.ClosestCM
		cnt[k]++
		an[e.Line], ag[e.AgentLine] = true, true
	}
	if len(cnt) == 0 {
		return nil, nil, nil, nil, false
	}
	for l := range an {
		animals = append(animals, l)
	}
	for l := range ag {
		agents = append(agents, l)
	}
	sort.Strings(animals)
	sort.Strings(agents)
	for _, a := range animals {
		row, nrow := make([]float64, len(agents)), make([]int, len(agents))
		for j, g := range agents {
			k := [2]string{a, g}
			if a == g && cnt[k] == 0 {
				for _, e := range r.byLine[a][results.Agent] {
					sum[k] += e.ClosestCM
					cnt[k]++
				}
			}
			row[j], nrow[j] = math.NaN(), cnt[k]
			if cnt[k] > 0 {
				row[j] = sum[k] / float64(cnt[k])
			}
		}
		vals, ns = append(vals, row), append(ns, nrow)
	}
	return animals, agents, vals, ns, true
}

// hasPlate reports whether an episode records the plate geometry its track is drawn on.
func hasPlate(e *results.Episode) bool { return e.PxPerCM > 0 && e.PlateRadius > 0 }

// Track converts an episode's track to the chart type (for charts.BuildTrajectory,
// charts.WriteTrajectories and the like); the label names the episode and its closest approach.
func Track(e *results.Episode) charts.Track {
	t := charts.Track{
		Label:  fmt.Sprintf("%s: %.2f cm", e.ID, e.ClosestCM),
		Plate:  charts.Plate{CenterX: e.PlateCenter[0], CenterY: e.PlateCenter[1], Radius: e.PlateRadius, PxPerCM: e.PxPerCM},
		Target: e.Target,
		Frames: make([]charts.TrackFrame, len(e.Frames)),
	}
	for i, f := range e.Frames {
		t.Frames[i] = charts.TrackFrame{T: f.T, X: f.X, Y: f.Y, Light: f.Light, OK: f.OK}
	}
	return t
}

// memberCurves groups learning-curve points by member, in update order.
func memberCurves(ps []learner.CurvePoint) []charts.MemberCurves {
	by := map[int]*charts.MemberCurves{}
	var ids []int
	for _, p := range ps {
		m := by[p.Member]
		if m == nil {
			m = &charts.MemberCurves{Member: fmt.Sprint(p.Member), Values: map[string][]float64{}}
			by[p.Member] = m
			ids = append(ids, p.Member)
		}
		m.Updates = append(m.Updates, float64(p.Update))
		m.Values["critic_loss"] = append(m.Values["critic_loss"], (p.Q1Loss+p.Q2Loss)/2)
		m.Values["actor_entropy"] = append(m.Values["actor_entropy"], p.Entropy)
		m.Values["temperature"] = append(m.Values["temperature"], p.Alpha)
		m.Values["mean_q"] = append(m.Values["mean_q"], p.MeanQ)
	}
	sort.Ints(ids)
	out := make([]charts.MemberCurves, len(ids))
	for i, id := range ids {
		out[i] = *by[id]
	}
	return out
}

// PolicyMapChart converts an agentlib policy map to the chart's plain type: positions from
// reference pixels to cm (ReferencePxPerCM), angles in degrees as they are.
func PolicyMapChart(m *policy.Map, title string) charts.PolicyMap {
	cm := func(px []float64) []float64 {
		out := make([]float64, len(px))
		for i, v := range px {
			out[i] = v / ReferencePxPerCM
		}
		return out
	}
	return charts.PolicyMap{Title: title, X: cm(m.XRelPx), Y: cm(m.YRelPx), Body: m.BodyRelDeg, Head: m.HeadRelDeg, P: m.POn}
}
