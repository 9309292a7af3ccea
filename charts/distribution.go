package charts

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Group is one condition's per-episode values.
type Group struct {
	Name   string
	Values []float64
}

// PValue is a test between two groups.
type PValue struct {
	A, B string
	P    float64
}

// Box is a group's summary as drawn: the box spans the quartiles (see quantile), whiskers
// reach the most extreme values within 1.5 IQR of the box.
type Box struct {
	Name                 string
	N                    int
	Values               []float64 // finite values, in the given order
	Jitter               []float64 // horizontal offset of each point, within +-0.2
	Mean, Median         float64
	Q1, Q3               float64
	WhiskerLo, WhiskerHi float64
}

// DistributionFigure is a per-line comparison of conditions: points and boxes per group, with n
// in the category labels and the p values in the subtitle.
type DistributionFigure struct {
	Title    string
	Subtitle string
	Boxes    []Box
	PValues  []PValue
	X, Y     Axis
	// Categories are the x labels, one per box ("agent\nn=10").
	Categories []string
}

// BuildDistribution summarises groups (NaN and infinite values are dropped) for a points-and-box
// figure of yLabel. The points' horizontal jitter is drawn from a PCG seeded with seed.
func BuildDistribution(title, yLabel string, groups []Group, ps []PValue, seed uint64) (DistributionFigure, error) {
	if len(groups) == 0 {
		return DistributionFigure{}, fmt.Errorf("distribution %q: no groups", title)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	f := DistributionFigure{Title: title, PValues: ps}
	var all []float64
	for _, g := range groups {
		b := Box{Name: g.Name, Mean: math.NaN(), Median: math.NaN(), Q1: math.NaN(), Q3: math.NaN(), WhiskerLo: math.NaN(), WhiskerHi: math.NaN()}
		for _, v := range g.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				b.Values = append(b.Values, v)
				b.Jitter = append(b.Jitter, (rng.Float64()-0.5)*0.4)
			}
		}
		b.N = len(b.Values)
		if b.N > 0 {
			s := slices.Clone(b.Values)
			slices.Sort(s)
			b.Mean = stat.Mean(s, nil)
			b.Median, b.Q1, b.Q3 = quantile(s, 0.5), quantile(s, 0.25), quantile(s, 0.75)
			iqr := b.Q3 - b.Q1
			b.WhiskerLo, b.WhiskerHi = b.Q1, b.Q3
			for _, v := range s {
				if v >= b.Q1-1.5*iqr && v < b.WhiskerLo {
					b.WhiskerLo = v
				}
				if v <= b.Q3+1.5*iqr && v > b.WhiskerHi {
					b.WhiskerHi = v
				}
			}
			all = append(all, s...)
		}
		f.Boxes = append(f.Boxes, b)
		f.Categories = append(f.Categories, fmt.Sprintf("%s\nn=%d", g.Name, b.N))
	}
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s vs %s: %s", p.A, p.B, FormatP(p.P)))
	}
	f.Subtitle = strings.Join(parts, "; ")
	lo, hi, ok := finiteRange(all)
	if !ok {
		lo, hi = 0, 1
	}
	lo = math.Min(0, lo)
	_, hi = padRange(lo, hi, 0.08, 0.5)
	f.Y = Axis{Label: yLabel, Min: lo, Max: hi}
	f.X = Axis{Label: "condition", Min: -0.6, Max: float64(len(groups)) - 0.4}
	return f, nil
}

// quantile is the p-quantile of sorted values by linear interpolation between order statistics
// at (n-1)p (type 7 of Hyndman and Fan; R's and NumPy's default). sorted must not be empty.
func quantile(sorted []float64, p float64) float64 {
	h := float64(len(sorted)-1) * p
	lo := int(math.Floor(h))
	if lo+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// FormatP formats a p value: "p = 0.032", "p < 0.001", "p n/a" for NaN.
func FormatP(p float64) string {
	switch {
	case math.IsNaN(p):
		return "p n/a"
	case p < 0.001:
		return "p < 0.001"
	}
	return fmt.Sprintf("p = %.3f", p)
}

// WriteDistribution builds and renders a distribution figure.
func WriteDistribution(w io.Writer, f Format, title, yLabel string, groups []Group, ps []PValue, seed uint64) error {
	fig, err := BuildDistribution(title, yLabel, groups, ps, seed)
	if err != nil {
		return err
	}
	return fig.Render(w, f)
}

// groupColor is the colour of group i.
func groupColor(i int) color.Color {
	cs := []color.NRGBA{{R: 0, G: 110, B: 255, A: 255}, {R: 90, G: 90, B: 90, A: 255}, {R: 230, G: 120, B: 0, A: 255}, {R: 150, G: 50, B: 170, A: 255}, {R: 0, G: 150, B: 60, A: 255}}
	return cs[i%len(cs)]
}

// Render draws the figure.
func (f DistributionFigure) Render(w io.Writer, format Format) error {
	return render(w, format, Size{W: 330, H: 300}, func(dc draw.Canvas) { f.plot().Draw(dc) })
}

// plot returns the figure's plot: boxes and points, categories with n as x ticks.
func (f DistributionFigure) plot() *plot.Plot {
	p := newPlot(f.Title)
	if f.Subtitle != "" {
		p.Title.Text += "\n" + f.Subtitle
	}
	p.Title.TextStyle.Font.Size = 9
	p.Add(boxesPlotter{f})
	f.X.apply(&p.X)
	f.Y.apply(&p.Y)
	ticks := make(plot.ConstantTicks, len(f.Categories))
	for i, c := range f.Categories {
		ticks[i] = plot.Tick{Value: float64(i), Label: c}
	}
	p.X.Tick.Marker = ticks
	return p
}

// boxesPlotter draws the boxes and points of a DistributionFigure.
type boxesPlotter struct{ f DistributionFigure }

func (b boxesPlotter) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	line := draw.LineStyle{Color: color.Black, Width: 1}
	for i, bx := range b.f.Boxes {
		x := float64(i)
		if bx.N > 0 {
			l, r := trX(x-0.3), trX(x+0.3)
			q1, q3, md := trY(bx.Q1), trY(bx.Q3), trY(bx.Median)
			c.StrokeLines(line, c.ClipLinesXY([]vg.Point{{X: l, Y: q1}, {X: r, Y: q1}, {X: r, Y: q3}, {X: l, Y: q3}, {X: l, Y: q1}})...)
			c.StrokeLines(draw.LineStyle{Color: color.Black, Width: 2}, c.ClipLinesXY([]vg.Point{{X: l, Y: md}, {X: r, Y: md}})...)
			xm := trX(x)
			c.StrokeLines(line, c.ClipLinesXY([]vg.Point{{X: xm, Y: q3}, {X: xm, Y: trY(bx.WhiskerHi)}})...)
			c.StrokeLines(line, c.ClipLinesXY([]vg.Point{{X: xm, Y: q1}, {X: xm, Y: trY(bx.WhiskerLo)}})...)
			// Mean: a diamond outline.
			c.DrawGlyph(draw.GlyphStyle{Color: color.Black, Shape: draw.PyramidGlyph{}, Radius: 2.5}, vg.Point{X: trX(x + 0.38), Y: trY(bx.Mean)})
		}
		col := groupColor(i)
		for j, v := range bx.Values {
			pt := vg.Point{X: trX(x + bx.Jitter[j]), Y: trY(v)}
			if c.Contains(pt) {
				c.DrawGlyph(draw.GlyphStyle{Color: col, Shape: draw.CircleGlyph{}, Radius: 2.6}, pt)
			}
		}
	}
}
