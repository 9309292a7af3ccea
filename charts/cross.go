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

// CrossFigure is the cross-evaluation heatmap: rows are animal lines, columns agent lines, each
// cell the mean closest approach (cm) annotated with its value and n. Own-line cells (animal line
// equals agent line) are framed; Best[j] is the row of the lowest value of column j (-1 when the
// column is empty).
type CrossFigure struct {
	Title       string
	Rows, Cols  []string
	Cells       [][]float64
	Annotations [][]string
	Color       ColorRange
	ColorLabel  string
	X, Y        Axis
	Best        []int
}

// BuildCross checks shapes and builds the heatmap of values[i][j] (row animals[i], column
// agents[j]); n may be nil, or has values' shape. NaN marks a missing cell.
func BuildCross(title string, animals, agents []string, values [][]float64, n [][]int) (CrossFigure, error) {
	if len(animals) == 0 || len(agents) == 0 {
		return CrossFigure{}, fmt.Errorf("cross-evaluation: no lines (%d animal lines, %d agent lines)", len(animals), len(agents))
	}
	if len(values) != len(animals) || (n != nil && len(n) != len(animals)) {
		return CrossFigure{}, fmt.Errorf("cross-evaluation: %d rows for %d animal lines", len(values), len(animals))
	}
	f := CrossFigure{Title: title, Rows: animals, Cols: agents, ColorLabel: "mean closest approach (cm)"}
	for i := range values {
		if len(values[i]) != len(agents) || (n != nil && len(n[i]) != len(agents)) {
			return CrossFigure{}, fmt.Errorf("cross-evaluation: row %s has %d columns for %d agent lines", animals[i], len(values[i]), len(agents))
		}
		row := make([]float64, len(agents))
		ann := make([]string, len(agents))
		for j, v := range values[i] {
			row[j] = v
			switch {
			case math.IsNaN(v):
				ann[j] = "n/a"
			case n != nil:
				ann[j] = fmt.Sprintf("%.2f\nn=%d", v, n[i][j])
			default:
				ann[j] = fmt.Sprintf("%.2f", v)
			}
		}
		f.Cells = append(f.Cells, row)
		f.Annotations = append(f.Annotations, ann)
	}
	f.Best = make([]int, len(agents))
	for j := range agents {
		f.Best[j] = -1
		for i := range animals {
			if v := f.Cells[i][j]; !math.IsNaN(v) && (f.Best[j] < 0 || v < f.Cells[f.Best[j]][j]) {
				f.Best[j] = i
			}
		}
	}
	lo, hi, ok := finiteRange(f.Cells...)
	if !ok {
		lo, hi = 0, 1
	}
	if hi-lo < 0.05 {
		lo, hi = lo-0.025, hi+0.025
	}
	f.Color = ColorRange{Min: math.Floor(lo*20) / 20, Max: math.Ceil(hi*20) / 20}
	f.X = Axis{Label: "agent trained on line", Min: -0.5, Max: float64(len(agents)) - 0.5}
	f.Y = Axis{Label: "animal line", Min: -0.5, Max: float64(len(animals)) - 0.5, Inverted: true}
	return f, nil
}

// Render draws the heatmap with annotations and a colour bar.
func (f CrossFigure) Render(w io.Writer, format Format) error {
	cw := 90*float64(len(f.Cols)) + 200
	ch := 70*float64(len(f.Rows)) + 110
	return render(w, format, Size{W: cw, H: ch}, func(dc draw.Canvas) {
		main := draw.Crop(dc, 0, -80, 0, 0)
		bar := draw.Crop(dc, dc.Max.X-dc.Min.X-78, -10, 40, -40)
		f.plot().Draw(main)
		cb := newPlot("")
		cb.HideX()
		cb.Y.Label.Text = f.ColorLabel
		if f.Color.Max > f.Color.Min {
			cb.Add(&plotter.ColorBar{ColorMap: newViridisMap(f.Color), Vertical: true, Colors: 64})
			cb.Y.Min, cb.Y.Max = f.Color.Min, f.Color.Max
			cb.Draw(bar)
		}
	})
}

// plot returns the heatmap's plot: cells, annotations, line names as ticks.
func (f CrossFigure) plot() *plot.Plot {
	p := newPlot(f.Title + "\nown-line cells framed")
	p.Title.TextStyle.Font.Size = 10
	p.Add(crossCells{f})
	f.X.apply(&p.X)
	f.Y.apply(&p.Y)
	xt := make(plot.ConstantTicks, len(f.Cols))
	for j, c := range f.Cols {
		xt[j] = plot.Tick{Value: float64(j), Label: c}
	}
	yt := make(plot.ConstantTicks, len(f.Rows))
	for i, r := range f.Rows {
		yt[i] = plot.Tick{Value: float64(i), Label: r}
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = xt, yt
	return p
}

type crossCells struct{ f CrossFigure }

func (cc crossCells) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	st := textStyle(9)
	st.XAlign, st.YAlign = draw.XCenter, draw.YCenter
	for i, row := range cc.f.Cells {
		for j, v := range row {
			x0, x1 := trX(float64(j)-0.5), trX(float64(j)+0.5)
			y0, y1 := trY(float64(i)-0.5), trY(float64(i)+0.5)
			rect := []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}
			c.FillPolygon(cc.f.Color.Color(v), rect)
			// Text in white on dark cells, black on light ones.
			st.Color = color.Black
			if !math.IsNaN(v) && cc.f.Color.Norm(v) < 0.55 {
				st.Color = color.White
			}
			c.FillText(st, vg.Point{X: (x0 + x1) / 2, Y: (y0 + y1) / 2}, cc.f.Annotations[i][j])
			if cc.f.Rows[i] == cc.f.Cols[j] {
				c.StrokeLines(draw.LineStyle{Color: color.NRGBA{R: 220, G: 20, B: 20, A: 255}, Width: 2.5}, append(rect, rect[0]))
			}
		}
	}
}
