package charts

import (
	"fmt"
	"gonum.org/v1/plot"
	"io"
	"math"
	"slices"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg/draw"
)

// SurvivalGroup is one condition's times to an event; censored entries never had the event
// before their episode ended.
type SurvivalGroup struct {
	Name   string
	Events []Event
}

// Event is one episode: the time of the event (first within 0.5 cm) when Observed, else the
// time the episode ended (censored).
type Event struct {
	T        float64
	Observed bool
}

// Step is one point of a Kaplan-Meier curve: from time T on, the estimated share still without
// the event is S.
type Step struct {
	T, S float64
}

// SurvivalCurve is a Kaplan-Meier estimate as drawn: Steps starts at (0, 1); Censored holds the
// times of censored episodes and Marks the curve's value there.
type SurvivalCurve struct {
	Name     string
	N        int
	Events   int
	Steps    []Step
	Censored []float64
	Marks    []float64
}

// SurvivalFigure is time-to-event curves per condition.
type SurvivalFigure struct {
	Title  string
	Curves []SurvivalCurve
	X, Y   Axis
}

// KaplanMeier estimates the survival curve of events. At a time with both events and censored
// episodes, the events count first (the standard convention).
func KaplanMeier(name string, events []Event) SurvivalCurve {
	es := slices.Clone(events)
	slices.SortStableFunc(es, func(a, b Event) int {
		switch {
		case a.T < b.T:
			return -1
		case a.T > b.T:
			return 1
		case a.Observed && !b.Observed:
			return -1
		case !a.Observed && b.Observed:
			return 1
		}
		return 0
	})
	c := SurvivalCurve{Name: name, N: len(es), Steps: []Step{{T: 0, S: 1}}}
	atRisk, s := len(es), 1.0
	for i := 0; i < len(es); {
		j, d := i, 0
		for j < len(es) && es[j].T == es[i].T {
			if es[j].Observed {
				d++
			}
			j++
		}
		if d > 0 {
			s *= 1 - float64(d)/float64(atRisk)
			c.Steps = append(c.Steps, Step{T: es[i].T, S: s})
			c.Events += d
		}
		for k := i; k < j; k++ {
			if !es[k].Observed {
				c.Censored = append(c.Censored, es[k].T)
				c.Marks = append(c.Marks, s)
			}
		}
		atRisk -= j - i
		i = j
	}
	return c
}

// BuildSurvival estimates a curve per group over time (s) from 0 to the latest time of any event
// or censoring.
func BuildSurvival(title string, groups []SurvivalGroup) (SurvivalFigure, error) {
	f := SurvivalFigure{Title: title}
	tmax := 0.0
	for _, g := range groups {
		for _, e := range g.Events {
			if math.IsNaN(e.T) || e.T < 0 {
				return SurvivalFigure{}, fmt.Errorf("survival %q: group %s has time %v", title, g.Name, e.T)
			}
			tmax = math.Max(tmax, e.T)
		}
		f.Curves = append(f.Curves, KaplanMeier(g.Name, g.Events))
	}
	if tmax == 0 {
		tmax = 1
	}
	f.X = Axis{Label: "time (s)", Min: 0, Max: tmax}
	f.Y = Axis{Label: "share not yet within 0.5 cm", Min: 0, Max: 1.02}
	return f, nil
}

// Render draws the curves as steps with censoring ticks.
func (f SurvivalFigure) Render(w io.Writer, format Format) error {
	return render(w, format, Size{W: 330, H: 300}, func(dc draw.Canvas) { f.plot().Draw(dc) })
}

// plot returns the figure's plot: a step line per condition with censoring marks and a legend
// of events / episodes.
func (f SurvivalFigure) plot() *plot.Plot {
	p := newPlot(f.Title)
	p.Title.TextStyle.Font.Size = 9
	// Bottom left: where Kaplan-Meier curves rarely are (low only at late times).
	p.Legend.Left = true
	p.Legend.XOffs, p.Legend.YOffs = 6, 4
	p.Legend.TextStyle.Font.Size = 8
	for i, c := range f.Curves {
		var xy plotter.XYs
		for k, s := range c.Steps {
			if k > 0 {
				xy = append(xy, plotter.XY{X: s.T, Y: c.Steps[k-1].S})
			}
			xy = append(xy, plotter.XY{X: s.T, Y: s.S})
		}
		xy = append(xy, plotter.XY{X: f.X.Max, Y: c.Steps[len(c.Steps)-1].S})
		l, err := plotter.NewLine(xy)
		if err != nil {
			continue
		}
		l.Color = groupColor(i)
		l.Width = 1.6
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (%d/%d)", c.Name, c.Events, c.N), l)
		if len(c.Censored) > 0 {
			m := make(plotter.XYs, len(c.Censored))
			for k := range c.Censored {
				m[k] = plotter.XY{X: c.Censored[k], Y: c.Marks[k]}
			}
			s, err := plotter.NewScatter(m)
			if err == nil {
				s.GlyphStyle = draw.GlyphStyle{Color: groupColor(i), Shape: draw.PlusGlyph{}, Radius: 3}
				p.Add(s)
			}
		}
	}
	f.X.apply(&p.X)
	f.Y.apply(&p.Y)
	return p
}
