package charts

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg/draw"
)

// Metric is one learning-curve quantity: Key names it in MemberCurves.Values, Label on the axis.
type Metric struct {
	Key, Label string
}

// DefaultMetrics are the learning curves of a soft actor-critic ensemble member.
func DefaultMetrics() []Metric {
	return []Metric{
		{Key: "critic_loss", Label: "critic loss"},
		{Key: "actor_entropy", Label: "actor entropy (nats)"},
		{Key: "temperature", Label: "temperature (alpha)"},
		{Key: "mean_q", Label: "mean Q"},
	}
}

// MemberCurves is one ensemble member's learning curves: Values[key][i] at update Updates[i].
type MemberCurves struct {
	Member  string
	Updates []float64
	Values  map[string][]float64
}

// Series is one member's curve of one metric as drawn (non-finite points dropped).
type Series struct {
	Member string
	X, Y   []float64
}

// CurvePanel is one metric: a curve per member, on shared axes.
type CurvePanel struct {
	Metric Metric
	X, Y   Axis
	Series []Series
}

// CurvesFigure is an ensemble's learning curves, one panel per metric.
type CurvesFigure struct {
	Title  string
	Panels []CurvePanel
}

// BuildLearningCurves builds one panel per metric with a curve per member. A member lacking a
// metric has no curve in that panel; lengths of Updates and Values must match.
func BuildLearningCurves(title string, metrics []Metric, members []MemberCurves) (CurvesFigure, error) {
	if len(metrics) == 0 {
		return CurvesFigure{}, fmt.Errorf("learning curves %q: no metrics", title)
	}
	f := CurvesFigure{Title: title}
	for _, m := range metrics {
		pn := CurvePanel{Metric: m}
		var xs, ys [][]float64
		for _, mc := range members {
			v, ok := mc.Values[m.Key]
			if !ok {
				continue
			}
			if len(v) != len(mc.Updates) {
				return CurvesFigure{}, fmt.Errorf("learning curves %q: member %s has %d %s values for %d updates", title, mc.Member, len(v), m.Key, len(mc.Updates))
			}
			s := Series{Member: mc.Member}
			for i := range v {
				if isFinite(v[i]) && isFinite(mc.Updates[i]) {
					s.X = append(s.X, mc.Updates[i])
					s.Y = append(s.Y, v[i])
				}
			}
			pn.Series = append(pn.Series, s)
			xs, ys = append(xs, s.X), append(ys, s.Y)
		}
		xlo, xhi, ok := finiteRange(xs...)
		if !ok {
			xlo, xhi = 0, 1
		}
		ylo, yhi, ok := finiteRange(ys...)
		if !ok {
			ylo, yhi = 0, 1
		}
		ylo, yhi = padRange(ylo, yhi, 0.05, 0.5)
		if xhi == xlo {
			xhi = xlo + 1
		}
		pn.X = Axis{Label: "updates", Min: xlo, Max: xhi}
		pn.Y = Axis{Label: m.Label, Min: ylo, Max: yhi}
		f.Panels = append(f.Panels, pn)
	}
	return f, nil
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Render draws the panels two per row, members in viridis colours.
func (f CurvesFigure) Render(w io.Writer, format Format) error {
	cols := min(2, len(f.Panels))
	rows := (len(f.Panels) + cols - 1) / cols
	return render(w, format, Size{W: 640, H: 220*float64(rows) + 30}, func(dc draw.Canvas) {
		nm := 0
		for _, pn := range f.Panels {
			nm = max(nm, len(pn.Series))
		}
		dc = drawTitle(dc, fmt.Sprintf("%s (%d members)", f.Title, nm), 12)
		plots := make([][]*plot.Plot, rows)
		for r := range plots {
			plots[r] = make([]*plot.Plot, cols)
			for c := range plots[r] {
				i := r*cols + c
				if i >= len(f.Panels) {
					p := newPlot("")
					p.HideAxes()
					plots[r][c] = p
					continue
				}
				plots[r][c] = f.panelPlot(i)
			}
		}
		cs := plot.Align(plots, draw.Tiles{Rows: rows, Cols: cols, PadX: 14, PadY: 10, PadLeft: 4, PadRight: 6}, dc)
		for r := range plots {
			for c := range plots[r] {
				plots[r][c].Draw(cs[r][c])
			}
		}
	})
}

// panelPlot returns the plot of panel i: one line per member, coloured along viridis.
func (f CurvesFigure) panelPlot(i int) *plot.Plot {
	p := newPlot("")
	pn := f.Panels[i]
	for k, s := range pn.Series {
		if len(s.X) == 0 {
			continue
		}
		xy := make(plotter.XYs, len(s.X))
		for j := range s.X {
			xy[j] = plotter.XY{X: s.X[j], Y: s.Y[j]}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			continue
		}
		col := Viridis(float64(k) / math.Max(1, float64(len(pn.Series)-1)) * 0.9)
		col.A = 200
		l.LineStyle = draw.LineStyle{Color: color.Color(col), Width: 0.9}
		p.Add(plotOnly{l})
	}
	pn.X.apply(&p.X)
	pn.Y.apply(&p.Y)
	p.Title.Text = pn.Metric.Label
	p.Title.TextStyle.Font.Size = 10
	return p
}
