// Package charts renders the figures of an optoloop experiment: policy maps, learning curves,
// trajectories on the plate, closest-approach distributions, time-to-target survival curves, the
// cross-evaluation heatmap and the comparison of effect sizes across lines.
//
// Charts are pure renderers. Each figure has two steps:
//
//   - a data-building step (BuildPolicyMap, BuildLearningCurves, BuildTrajectory, ...) that takes
//     plain data and returns a Figure value holding exactly what will be drawn: cell values,
//     path segments with their light flags, axis ranges and labels, colour ranges, statistics.
//     Tests inspect these values rather than pixels;
//   - a Render method that draws that value with gonum/plot and writes PNG or SVG to an io.Writer.
//
// The package imports nothing of the project: callers convert their own types (run folders,
// ensembles, learning-curve files) into the plain types defined here.
//
// Units: positions in centimetres, angles of policy maps in degrees, time in seconds. Positions
// on the plate keep the camera's orientation (x to the right, y down) so that a figure looks like
// the camera image; the y axes of plate figures are therefore inverted.
package charts

import (
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Format is an output image format.
type Format string

// Supported formats.
const (
	PNG Format = "png"
	SVG Format = "svg"
)

// DPI is the resolution of PNG output.
const DPI = 96

// ErrFormat is returned for an output format other than PNG or SVG.
var ErrFormat = errors.New("unsupported image format")

// FormatOf returns the format named by a file name's extension (.png or .svg, any case).
func FormatOf(path string) (Format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		return PNG, nil
	case ".svg":
		return SVG, nil
	}
	return "", fmt.Errorf("%w: %q (use .png or .svg)", ErrFormat, filepath.Ext(path))
}

// Axis is one axis of a figure as it is drawn.
type Axis struct {
	Label    string
	Min, Max float64
	// Inverted axes grow downwards (the camera's y).
	Inverted bool
	// Ticks holds explicit labelled tick positions; nil leaves the choice to gonum/plot.
	Ticks []float64
}

// apply sets a gonum/plot axis from a.
func (a Axis) apply(pa *plot.Axis) {
	pa.Label.Text = a.Label
	pa.Min, pa.Max = a.Min, a.Max
	if a.Inverted {
		pa.Scale = plot.InvertedScale{Normalizer: plot.LinearScale{}}
	}
	if a.Ticks != nil {
		ts := make(plot.ConstantTicks, len(a.Ticks))
		for i, v := range a.Ticks {
			ts[i] = plot.Tick{Value: v, Label: trimFloat(v)}
		}
		pa.Tick.Marker = ts
	}
}

// Size is the size of a figure in points (1/72 inch).
type Size struct{ W, H float64 }

// pixels returns the size of a PNG of s.
func (s Size) pixels() (int, int) {
	return int(math.Round(s.W / 72 * DPI)), int(math.Round(s.H / 72 * DPI))
}

// render draws with fn on a canvas of the given size and writes it to w in format f. A panic
// inside gonum/plot (which panics on inconsistent input) becomes an error.
func render(w io.Writer, f Format, size Size, fn func(dc draw.Canvas)) (err error) {
	if !(size.W > 0) || !(size.H > 0) {
		return fmt.Errorf("charts: figure size %vx%v must be positive", size.W, size.H)
	}
	var c vg.CanvasWriterTo
	wl, hl := vg.Length(size.W), vg.Length(size.H)
	switch f {
	case PNG:
		c = fastPNG{vgimg.NewWith(vgimg.UseWH(wl, hl), vgimg.UseDPI(DPI))}
	case SVG:
		c = vgsvg.NewWith(vgsvg.UseWH(wl, hl))
	default:
		return fmt.Errorf("%w: %q", ErrFormat, f)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("charts: drawing failed: %v", r)
		}
	}()
	dc := draw.New(c)
	dc.SetColor(color.White)
	fn(dc)
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("charts: write %s: %w", f, err)
	}
	return nil
}

// fastPNG writes a vgimg canvas as PNG with the fastest compression: deflate dominates the
// rendering time of a report at the default level, for files only about a third larger.
type fastPNG struct{ *vgimg.Canvas }

func (c fastPNG) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	err := enc.Encode(cw, c.Image())
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// trimFloat formats a tick value without trailing zeros.
func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}

// finiteRange returns the smallest and largest finite values of xs, and false when there are none.
func finiteRange(xs ...[]float64) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range xs {
		for _, v := range s {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			lo, hi = math.Min(lo, v), math.Max(hi, v)
			ok = true
		}
	}
	return lo, hi, ok
}

// padRange widens [lo, hi] by frac of its span on both sides (or by pad when the span is zero).
func padRange(lo, hi, frac, pad float64) (float64, float64) {
	if span := hi - lo; span > 0 {
		return lo - frac*span, hi + frac*span
	}
	return lo - pad, hi + pad
}

// textStyle is the default text style (gonum/plot's font, black) at the given size in points.
func textStyle(size float64) draw.TextStyle {
	return text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, vg.Length(size)), Handler: plot.DefaultTextHandler}
}

// newPlot returns a plot with the house defaults: a title, smaller fonts.
func newPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 11
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = 10
		a.Tick.Label.Font.Size = 9
	}
	return p
}

// drawTitle writes a figure title centred at the top of dc and returns the canvas below it.
func drawTitle(dc draw.Canvas, title string, size float64) draw.Canvas {
	if title == "" {
		return dc
	}
	st := textStyle(size)
	st.XAlign = draw.XCenter
	st.YAlign = draw.YTop
	h := st.Height(title)
	dc.FillText(st, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: dc.Max.Y - 4}, title)
	return draw.Crop(dc, 0, 0, 0, -(h + 10))
}
