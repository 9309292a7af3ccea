package charts

import (
	"fmt"
	"image"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PolicyMap is a policy's P(light on) on a grid of states, as in the reference study: for each
// position of the worm relative to the target, a grid of body angle relative to the direction
// to the target x head angle relative to the body.
//
// Shapes: P has len(Y) rows of len(X) panels; each panel has len(Body) x len(Head) values:
// P[iy][ix][ib][ih] is P(light on) with the worm at (X[ix], Y[iy]) relative to the target,
// body angle Body[ib] and head angle Head[ih].
type PolicyMap struct {
	Title string
	// X, Y are the worm's positions relative to the target in cm (camera orientation: y grows
	// downwards), strictly increasing.
	X, Y []float64
	// Body is the body angle relative to the direction from the worm to the target, Head the head
	// angle relative to the body, both in degrees and strictly increasing (cell centres).
	Body, Head []float64
	P          [][][][]float64
}

// PolicyPanel is one position's heatmap as drawn.
type PolicyPanel struct {
	// X, Y is the position relative to the target in cm.
	X, Y float64
	// Label names the position, e.g. "x +0.83, y -0.83 cm".
	Label string
	// Target marks the panel at (or nearest to) the target's own position.
	Target bool
	// Cells[ih][ib] is P(light on) at head angle Head[ih] and body angle Body[ib]: rows are
	// head angles, columns body angles, as on the panel's axes.
	Cells [][]float64
}

// PolicyMapFigure is a policy map as drawn: a grid of panels (Panels[iy][ix], rows by Y, columns
// by X as on the plate), the body-angle (x) and head-angle (y) axes shared by every panel, the
// colour range and the colour bar label.
type PolicyMapFigure struct {
	Title                string
	Panels               [][]PolicyPanel
	Body, Head           []float64
	BodyAxis, HeadAxis   Axis
	Color                ColorRange
	ColorLabel           string
	PositionX, PositionY []float64
}

// minProbabilitySpan is the narrowest colour range of a policy map.
const minProbabilitySpan = 0.02

// BuildPolicyMap checks m's shapes and returns the figure's data. The colour range is chosen
// from the data (see probabilityRange).
func BuildPolicyMap(m PolicyMap) (PolicyMapFigure, error) {
	if err := m.validate(); err != nil {
		return PolicyMapFigure{}, err
	}
	var lo, hi = math.Inf(1), math.Inf(-1)
	f := PolicyMapFigure{
		Title:      m.Title,
		Body:       append([]float64(nil), m.Body...),
		Head:       append([]float64(nil), m.Head...),
		ColorLabel: "P(light on)",
		PositionX:  append([]float64(nil), m.X...),
		PositionY:  append([]float64(nil), m.Y...),
	}
	// The target panel: the one nearest to (0, 0).
	tx, ty, best := 0, 0, math.Inf(1)
	for iy, y := range m.Y {
		for ix, x := range m.X {
			if d := math.Hypot(x, y); d < best {
				tx, ty, best = ix, iy, d
			}
		}
	}
	f.Panels = make([][]PolicyPanel, len(m.Y))
	for iy, y := range m.Y {
		f.Panels[iy] = make([]PolicyPanel, len(m.X))
		for ix, x := range m.X {
			cells := make([][]float64, len(m.Head))
			for ih := range m.Head {
				cells[ih] = make([]float64, len(m.Body))
				for ib := range m.Body {
					v := m.P[iy][ix][ib][ih]
					cells[ih][ib] = v
					if !math.IsNaN(v) {
						lo, hi = math.Min(lo, v), math.Max(hi, v)
					}
				}
			}
			f.Panels[iy][ix] = PolicyPanel{
				X: x, Y: y, Cells: cells,
				Label:  fmt.Sprintf("x %+.2f, y %+.2f cm", x, y),
				Target: ix == tx && iy == ty,
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0.5, 0.5
	}
	f.Color = probabilityRange(lo, hi, minProbabilitySpan)
	f.BodyAxis = angleAxis("body angle relative to target direction (deg)", m.Body)
	f.HeadAxis = angleAxis("head angle relative to body (deg)", m.Head)
	return f, nil
}

// angleAxis spans the cells centred at cs (degrees) with ticks every 90 degrees.
func angleAxis(label string, cs []float64) Axis {
	lo, hi := cs[0], cs[len(cs)-1]
	if len(cs) > 1 {
		lo -= (cs[1] - cs[0]) / 2
		hi += (cs[len(cs)-1] - cs[len(cs)-2]) / 2
	} else {
		lo, hi = lo-0.5, hi+0.5
	}
	// Ticks every 90 degrees, away from the edges (5 % of the range), so that labels of
	// neighbouring panels do not collide.
	var ticks []float64
	margin := 0.05 * (hi - lo)
	for t := math.Ceil(lo/90) * 90; t < hi-margin; t += 90 {
		if t > lo+margin {
			ticks = append(ticks, t)
		}
	}
	return Axis{Label: label, Min: lo, Max: hi, Ticks: ticks}
}

func (m PolicyMap) validate() error {
	for _, a := range []struct {
		name string
		v    []float64
	}{{"x", m.X}, {"y", m.Y}, {"body", m.Body}, {"head", m.Head}} {
		if len(a.v) == 0 {
			return fmt.Errorf("policy map: no %s values", a.name)
		}
		for i := range a.v {
			if math.IsNaN(a.v[i]) || math.IsInf(a.v[i], 0) || (i > 0 && !(a.v[i] > a.v[i-1])) {
				return fmt.Errorf("policy map: %s values must be finite and strictly increasing", a.name)
			}
		}
	}
	if len(m.P) != len(m.Y) {
		return fmt.Errorf("policy map: %d rows of panels for %d y positions", len(m.P), len(m.Y))
	}
	for iy := range m.P {
		if len(m.P[iy]) != len(m.X) {
			return fmt.Errorf("policy map: row %d has %d panels for %d x positions", iy, len(m.P[iy]), len(m.X))
		}
		for ix := range m.P[iy] {
			if len(m.P[iy][ix]) != len(m.Body) {
				return fmt.Errorf("policy map: panel (%d, %d) has %d body angles, want %d", iy, ix, len(m.P[iy][ix]), len(m.Body))
			}
			for ib := range m.P[iy][ix] {
				if len(m.P[iy][ix][ib]) != len(m.Head) {
					return fmt.Errorf("policy map: panel (%d, %d) body %d has %d head angles, want %d", iy, ix, ib, len(m.P[iy][ix][ib]), len(m.Head))
				}
				for _, v := range m.P[iy][ix][ib] {
					if v < 0 || v > 1 {
						return fmt.Errorf("policy map: probability %v outside [0, 1] in panel (%d, %d)", v, iy, ix)
					}
				}
			}
		}
	}
	return nil
}

// WritePolicyMap builds and renders m.
func WritePolicyMap(w io.Writer, f Format, m PolicyMap) error {
	fig, err := BuildPolicyMap(m)
	if err != nil {
		return err
	}
	return fig.Render(w, f)
}

// Render draws the figure: one heatmap per position, column headers (x) on top, row headers (y)
// on the left, degree ticks on the outer panels, the target's panel framed in red, a colour bar.
func (f PolicyMapFigure) Render(w io.Writer, format Format) error {
	return render(w, format, Size{W: 860, H: 880}, f.draw)
}

func (f PolicyMapFigure) draw(dc draw.Canvas) {
	dc = drawTitle(dc, f.Title, 13)
	rows, cols := len(f.Panels), len(f.Panels[0])
	// Right strip for the colour bar, left strip for the global head-angle label, bottom strip
	// for the body-angle label, top strip for the position header.
	grid := draw.Crop(dc, 22, -95, 22, -16)
	bar := draw.Crop(dc, dc.Max.X-dc.Min.X-88, -8, 60, -60)

	plots := make([][]*plot.Plot, rows)
	for iy := range plots {
		plots[iy] = make([]*plot.Plot, cols)
		for ix := range plots[iy] {
			p := f.panelPlot(f.Panels[iy][ix], iy == 0, ix == 0, iy == rows-1)
			plots[iy][ix] = p
		}
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: 2, PadY: 2}
	cs := plot.Align(plots, tiles, grid)
	for iy := range plots {
		for ix := range plots[iy] {
			plots[iy][ix].Draw(cs[iy][ix])
			if f.Panels[iy][ix].Target {
				da := plots[iy][ix].DataCanvas(cs[iy][ix])
				red := draw.LineStyle{Color: color.NRGBA{R: 220, G: 20, B: 20, A: 255}, Width: 2}
				da.StrokeLines(red, []vg.Point{
					{X: da.Min.X, Y: da.Min.Y}, {X: da.Max.X, Y: da.Min.Y},
					{X: da.Max.X, Y: da.Max.Y}, {X: da.Min.X, Y: da.Max.Y}, {X: da.Min.X, Y: da.Min.Y},
				})
				st := textStyle(8)
				st.Color = red.Color
				st.XAlign, st.YAlign = draw.XCenter, draw.YCenter
				da.FillText(st, da.Center(), "target")
			}
		}
	}
	// Global labels.
	st := textStyle(10)
	st.XAlign, st.YAlign = draw.XCenter, draw.YBottom
	dc.FillText(st, vg.Point{X: (grid.Min.X + grid.Max.X) / 2, Y: dc.Min.Y + 2}, f.BodyAxis.Label)
	st.YAlign = draw.YTop
	dc.FillText(st, vg.Point{X: (grid.Min.X + grid.Max.X) / 2, Y: dc.Max.Y}, "worm position relative to the target: columns x (cm), rows y (cm, down)")
	st.Rotation = math.Pi / 2
	st.XAlign, st.YAlign = draw.XCenter, draw.YTop
	dc.FillText(st, vg.Point{X: dc.Min.X + 2, Y: (grid.Min.Y + grid.Max.Y) / 2}, f.HeadAxis.Label)

	// Colour bar.
	cb := newPlot("")
	cb.HideX()
	cb.Y.Label.Text = f.ColorLabel
	cb.Add(&plotter.ColorBar{ColorMap: newViridisMap(f.Color), Vertical: true, Colors: 128})
	cb.Y.Min, cb.Y.Max = f.Color.Min, f.Color.Max
	cb.Draw(bar)
}

// panelPlot makes one panel: the heatmap image with the shared angle axes; only outer panels
// carry tick labels and position headers.
func (f PolicyMapFigure) panelPlot(pn PolicyPanel, top, left, bottom bool) *plot.Plot {
	p := newPlot("")
	p.X.Tick.Label.Font.Size = 7
	p.Y.Tick.Label.Font.Size = 7
	p.X.Padding, p.Y.Padding = 0, 0
	p.X.Tick.Length, p.Y.Tick.Length = 2, 2
	if top {
		p.Title.Text = fmt.Sprintf("x %+.2f", pn.X)
		p.Title.TextStyle.Font.Size = 8
		p.Title.Padding = 2
	}
	p.Add(cellImage{f: f, cells: pn.Cells})
	f.BodyAxis.apply(&p.X)
	f.HeadAxis.apply(&p.Y)
	p.X.Label.Text = ""
	p.Y.Label.Text = ""
	if left {
		p.Y.Label.Text = fmt.Sprintf("y %+.2f", pn.Y)
		p.Y.Label.TextStyle.Font.Size = 8
		p.Y.Label.Padding = 1
	} else {
		p.Y.Tick.Marker = unlabelled(f.HeadAxis.Ticks)
	}
	if !bottom {
		p.X.Tick.Marker = unlabelled(f.BodyAxis.Ticks)
	}
	return p
}

// unlabelled returns tick marks without labels (drawn as minor ticks).
func unlabelled(vs []float64) plot.ConstantTicks {
	ts := make(plot.ConstantTicks, len(vs))
	for i, v := range vs {
		ts[i] = plot.Tick{Value: v}
	}
	return ts
}

// cellImage draws a panel's cells as one image made at the pixel size of the data area, each
// pixel taking the colour of the cell under its centre, so that cell edges stay sharp (scaling a
// small image would blur them).
type cellImage struct {
	f     PolicyMapFigure
	cells [][]float64 // [head][body], head angles from the bottom
}

func (ci cellImage) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	x0, x1 := trX(ci.f.BodyAxis.Min), trX(ci.f.BodyAxis.Max)
	y0, y1 := trY(ci.f.HeadAxis.Min), trY(ci.f.HeadAxis.Max)
	w := max(1, int(math.Round((x1 - x0).Dots(DPI))))
	h := max(1, int(math.Round((y1 - y0).Dots(DPI))))
	nr, nc := len(ci.cells), len(ci.cells[0])
	// Colours per cell, once.
	cols := make([][4]uint8, nr*nc)
	for r := range nr {
		for cc := range nc {
			col := color.NRGBAModel.Convert(ci.f.Color.Color(ci.cells[r][cc])).(color.NRGBA)
			cols[r*nc+cc] = [4]uint8{col.R, col.G, col.B, col.A}
		}
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for py := range h {
		// Image row 0 is the top: the largest head angle.
		r := nr - 1 - min(nr-1, int((float64(py)+0.5)*float64(nr)/float64(h)))
		row := img.Pix[py*img.Stride:]
		for px := range w {
			cc := min(nc-1, int((float64(px)+0.5)*float64(nc)/float64(w)))
			copy(row[px*4:px*4+4], cols[r*nc+cc][:])
		}
	}
	c.DrawImage(vg.Rectangle{Min: vg.Point{X: x0, Y: y0}, Max: vg.Point{X: x1, Y: y1}}, img)
}
