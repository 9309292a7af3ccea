package charts

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// LineSamples holds a line's per-episode closest approach under the agent and each baseline.
type LineSamples struct {
	Line      string
	Agent     []float64
	Baselines []Group
}

// Effect is a line's effect size: Diff = mean(best baseline) - mean(agent) in cm (positive: the
// agent brings worms closer), with a percentile bootstrap confidence interval [Lo, Hi]. The best
// baseline is the one with the lowest mean. Diff, Lo and Hi are NaN when the agent or every
// baseline has fewer than 2 values.
type Effect struct {
	Line             string
	Baseline         string
	Diff, Lo, Hi     float64
	NAgent, NBase    int
	MeanAgent, MeanB float64
}

// EffectFigure compares effect sizes across lines.
type EffectFigure struct {
	Title   string
	Level   float64
	Effects []Effect
	X, Y    Axis
}

// BuildEffects computes each line's effect size with a bootstrap of resamples draws (agent and
// baseline resampled independently, with replacement) from a PCG seeded with seed, at confidence
// level (e.g. 0.95).
func BuildEffects(title string, lines []LineSamples, resamples int, level float64, seed uint64) (EffectFigure, error) {
	if resamples < 100 {
		return EffectFigure{}, fmt.Errorf("effect sizes: %d bootstrap resamples, need at least 100", resamples)
	}
	if !(level > 0 && level < 1) {
		return EffectFigure{}, fmt.Errorf("effect sizes: confidence level %v must be in (0, 1)", level)
	}
	rng := rand.New(rand.NewPCG(seed, 0xb007))
	f := EffectFigure{Title: title, Level: level}
	var all []float64
	for _, ls := range lines {
		e := Effect{Line: ls.Line, Diff: math.NaN(), Lo: math.NaN(), Hi: math.NaN(), MeanAgent: math.NaN(), MeanB: math.NaN()}
		agent := finite(ls.Agent)
		e.NAgent = len(agent)
		var base []float64
		for _, b := range ls.Baselines {
			v := finite(b.Values)
			if len(v) < 2 {
				continue
			}
			if m := stat.Mean(v, nil); e.Baseline == "" || m < e.MeanB {
				e.Baseline, e.MeanB, base = b.Name, m, v
			}
		}
		e.NBase = len(base)
		if len(agent) >= 2 && len(base) >= 2 {
			e.MeanAgent = stat.Mean(agent, nil)
			e.Diff = e.MeanB - e.MeanAgent
			ds := make([]float64, resamples)
			for k := range ds {
				ds[k] = resampleMean(rng, base) - resampleMean(rng, agent)
			}
			slices.Sort(ds)
			a := (1 - level) / 2
			e.Lo, e.Hi = quantile(ds, a), quantile(ds, 1-a)
			all = append(all, e.Lo, e.Hi, e.Diff)
		}
		f.Effects = append(f.Effects, e)
	}
	lo, hi, ok := finiteRange(all, []float64{0})
	if !ok {
		lo, hi = -1, 1
	}
	lo, hi = padRange(lo, hi, 0.1, 0.5)
	f.X = Axis{Label: "line", Min: -0.6, Max: float64(len(lines)) - 0.4}
	f.Y = Axis{Label: "closest approach: best baseline - agent (cm)", Min: lo, Max: hi}
	return f, nil
}

func finite(xs []float64) []float64 {
	var out []float64
	for _, v := range xs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out = append(out, v)
		}
	}
	return out
}

func resampleMean(rng *rand.Rand, xs []float64) float64 {
	s := 0.0
	for range xs {
		s += xs[rng.IntN(len(xs))]
	}
	return s / float64(len(xs))
}

// Render draws one point with its interval per line, and the zero line.
func (f EffectFigure) Render(w io.Writer, format Format) error {
	width := math.Max(360, 70*float64(len(f.Effects))+120)
	return render(w, format, Size{W: width, H: 320}, func(dc draw.Canvas) { f.plot().Draw(dc) })
}

// plot returns the figure's plot: one interval per line, lines (and their baseline) as ticks.
func (f EffectFigure) plot() *plot.Plot {
	p := newPlot(fmt.Sprintf("%s\npoint: difference of means; bar: %.0f%% bootstrap CI", f.Title, 100*f.Level))
	p.Title.TextStyle.Font.Size = 10
	p.Add(effectMarks{f})
	f.X.apply(&p.X)
	f.Y.apply(&p.Y)
	ts := make(plot.ConstantTicks, len(f.Effects))
	for i, e := range f.Effects {
		lab := e.Line
		if e.Baseline != "" {
			lab += "\nvs " + e.Baseline
		}
		if math.IsNaN(e.Diff) {
			lab += "\n(n/a)"
		}
		ts[i] = plot.Tick{Value: float64(i), Label: lab}
	}
	p.X.Tick.Marker = ts
	return p
}

type effectMarks struct{ f EffectFigure }

func (em effectMarks) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	grey := draw.LineStyle{Color: color.NRGBA{R: 150, G: 150, B: 150, A: 255}, Width: 1, Dashes: []vg.Length{3, 3}}
	c.StrokeLines(grey, c.ClipLinesXY([]vg.Point{{X: trX(em.f.X.Min), Y: trY(0)}, {X: trX(em.f.X.Max), Y: trY(0)}})...)
	for i, e := range em.f.Effects {
		if math.IsNaN(e.Diff) {
			continue
		}
		x := trX(float64(i))
		col := groupColor(0)
		line := draw.LineStyle{Color: col, Width: 1.5}
		c.StrokeLines(line, c.ClipLinesXY([]vg.Point{{X: x, Y: trY(e.Lo)}, {X: x, Y: trY(e.Hi)}})...)
		for _, v := range []float64{e.Lo, e.Hi} {
			c.StrokeLines(line, c.ClipLinesXY([]vg.Point{{X: x - 5, Y: trY(v)}, {X: x + 5, Y: trY(v)}})...)
		}
		c.DrawGlyph(draw.GlyphStyle{Color: col, Shape: draw.CircleGlyph{}, Radius: 3.5}, vg.Point{X: x, Y: trY(e.Diff)})
	}
}
