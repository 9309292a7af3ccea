package charts

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// AnimalPoint is one point of a learning curve against animal time: the mean closest approach
// of N evaluation episodes, with its standard deviation, of agents trained on Hours of animal
// time.
type AnimalPoint struct {
	Hours, Mean, SD float64
	N               int
}

// AnimalSeries is one curve: a line's agents in one run (Name says which, e.g. "446 online").
// Dashed draws it dashed (e.g. offline runs); series of one Group (e.g. the line) share a
// colour.
type AnimalSeries struct {
	Name   string
	Group  string
	Points []AnimalPoint
	Dashed bool
}

// AnimalTimeFigure is closest approach against cumulative animal hours, one curve per series,
// the hours on a log axis.
type AnimalTimeFigure struct {
	Title  string
	Series []AnimalSeries
	X, Y   Axis
}

// BuildAnimalTime builds the figure. Points with a non-finite or non-positive hour or a
// non-finite mean are dropped; it fails when no point is left.
func BuildAnimalTime(title string, series []AnimalSeries) (AnimalTimeFigure, error) {
	f := AnimalTimeFigure{Title: title}
	var hs, ys []float64
	for _, s := range series {
		var keep []AnimalPoint
		for _, p := range s.Points {
			if p.Hours > 0 && !math.IsInf(p.Hours, 0) && !math.IsNaN(p.Mean) && !math.IsInf(p.Mean, 0) {
				if math.IsNaN(p.SD) || math.IsInf(p.SD, 0) {
					p.SD = 0
				}
				keep = append(keep, p)
				hs = append(hs, p.Hours)
				ys = append(ys, p.Mean-p.SD/math.Sqrt(float64(max(p.N, 1))), p.Mean+p.SD/math.Sqrt(float64(max(p.N, 1))))
			}
		}
		if len(keep) > 0 {
			f.Series = append(f.Series, AnimalSeries{Name: s.Name, Group: s.Group, Points: keep, Dashed: s.Dashed})
		}
	}
	if len(f.Series) == 0 {
		return f, fmt.Errorf("animal-time curve %q: no point with positive hours and a finite mean", title)
	}
	lo, hi, _ := finiteRange(hs)
	f.X = Axis{Label: "animal hours of training data per line (log scale)", Min: lo / 1.5, Max: hi * 1.5}
	ylo, yhi, _ := finiteRange(ys, []float64{0})
	ylo, yhi = padRange(ylo, yhi, 0.08, 0.1)
	f.Y = Axis{Label: "mean closest approach (cm), bars: standard error", Min: math.Max(0, ylo), Max: yhi}
	return f, nil
}

// Render draws the curves with their standard-error bars and a legend.
func (f AnimalTimeFigure) Render(w io.Writer, format Format) error {
	return render(w, format, Size{W: 560, H: 380}, func(dc draw.Canvas) { f.plot().Draw(dc) })
}

func (f AnimalTimeFigure) plot() *plot.Plot {
	p := newPlot(f.Title)
	f.X.apply(&p.X)
	f.Y.apply(&p.Y)
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.TextStyle = textStyle(9)
	groups, next := map[string]int{}, 0
	for _, s := range f.Series {
		g, ok := groups[s.Group]
		if !ok || s.Group == "" {
			g, next = next, next+1
			groups[s.Group] = g
		}
		col := seriesColour(g)
		xy := make(plotter.XYs, len(s.Points))
		errs := make(plotter.YErrors, len(s.Points))
		for j, pt := range s.Points {
			xy[j] = plotter.XY{X: pt.Hours, Y: pt.Mean}
			se := pt.SD / math.Sqrt(float64(max(pt.N, 1)))
			errs[j] = struct{ Low, High float64 }{se, se}
		}
		ln, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			continue
		}
		ln.Color, pts.Color = col, col
		ln.Width = vg.Points(1.5)
		if s.Dashed {
			ln.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		pts.Shape = draw.CircleGlyph{}
		pts.Radius = vg.Points(2.5)
		bars, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{xy, errs})
		if err == nil {
			bars.Color = col
			p.Add(bars)
		}
		p.Add(ln, pts)
		p.Legend.Add(s.Name, ln, pts)
	}
	return p
}

// seriesColour is the i-th of a fixed set of distinguishable colours.
func seriesColour(i int) color.Color {
	cs := []color.NRGBA{{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {148, 103, 189, 255},
		{255, 127, 14, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}}
	return cs[i%len(cs)]
}
