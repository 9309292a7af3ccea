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

// Plate is an arena's plate geometry in camera pixels.
type Plate struct {
	CenterX, CenterY float64
	Radius           float64
	PxPerCM          float64
}

// TrackFrame is one frame of a worm's track.
type TrackFrame struct {
	T     float64 // seconds since the episode started
	X, Y  float64 // worm centre, camera pixels
	Light bool    // light command chosen after this frame (in force until the next frame)
	OK    bool    // tracking ok
}

// Track is one episode's track on its plate.
type Track struct {
	Label  string
	Plate  Plate
	Target [2]float64 // camera pixels
	Frames []TrackFrame
}

// Point is a position in cm relative to the plate centre, camera orientation (y down).
type Point struct{ X, Y float64 }

// Segment is a run of the path drawn in one colour: frames From..To (inclusive) joined by steps
// that all had the same light state. The step from frame i to frame i+1 takes the light state of
// frame i (the command chosen after frame i is in force until frame i+1). A lost frame (OK false,
// or a non-finite position) breaks the path: no step touches it.
type Segment struct {
	Light    bool
	From, To int
	Points   []Point
}

// TrajectoryPanel is one track as drawn.
type TrajectoryPanel struct {
	Label string
	// X, Y span the plate (cm from its centre; y inverted as in the camera image).
	X, Y Axis
	// PlateRadius is the plate's radius in cm; Target, Start and Closest positions in cm.
	PlateRadius float64
	Target      Point
	Start       Point
	HasStart    bool
	// Closest is the tracked position nearest to the target, ClosestCM its distance and
	// ClosestT its time; ClosestFrame is -1 when no frame was tracked.
	Closest      Point
	ClosestCM    float64
	ClosestT     float64
	ClosestFrame int
	Segments     []Segment
	// Aligned is true when the track was rotated about the plate centre to put the target on the
	// positive x axis (overlays of episodes with different targets).
	Aligned bool
}

// BuildTrajectory converts a track to cm relative to the plate centre and splits its path into
// light-on and light-off segments. With align the whole picture is rotated about the plate centre
// so that the target lies on the positive x axis, which lets episodes with different targets
// share one overlay.
func BuildTrajectory(tr Track, align bool) (TrajectoryPanel, error) {
	pl := tr.Plate
	if !(pl.PxPerCM > 0) || !(pl.Radius > 0) {
		return TrajectoryPanel{}, fmt.Errorf("trajectory %q: plate needs positive px_per_cm and radius, have %v and %v", tr.Label, pl.PxPerCM, pl.Radius)
	}
	rot := 0.0
	if align {
		rot = -math.Atan2(tr.Target[1]-pl.CenterY, tr.Target[0]-pl.CenterX)
	}
	sin, cos := math.Sincos(rot)
	toCM := func(x, y float64) Point {
		dx, dy := (x-pl.CenterX)/pl.PxPerCM, (y-pl.CenterY)/pl.PxPerCM
		return Point{X: dx*cos - dy*sin, Y: dx*sin + dy*cos}
	}
	r := pl.Radius / pl.PxPerCM
	lim := math.Ceil(r*10)/10 + 0.1
	p := TrajectoryPanel{
		Label:        tr.Label,
		X:            Axis{Label: "x (cm)", Min: -lim, Max: lim},
		Y:            Axis{Label: "y (cm, down)", Min: -lim, Max: lim, Inverted: true},
		PlateRadius:  r,
		Target:       toCM(tr.Target[0], tr.Target[1]),
		ClosestFrame: -1,
		ClosestCM:    math.NaN(),
		Aligned:      align,
	}
	// A frame with a non-finite position counts as lost.
	ok := func(f TrackFrame) bool { return f.OK && isFinite(f.X) && isFinite(f.Y) }
	for i, f := range tr.Frames {
		if !ok(f) {
			continue
		}
		pt := toCM(f.X, f.Y)
		if !p.HasStart {
			p.Start, p.HasStart = pt, true
		}
		if d := math.Hypot(pt.X-p.Target.X, pt.Y-p.Target.Y); p.ClosestFrame < 0 || d < p.ClosestCM {
			p.Closest, p.ClosestCM, p.ClosestT, p.ClosestFrame = pt, d, f.T, i
		}
	}
	// Segments: steps i -> i+1 with both frames tracked, grouped by the light state of frame i.
	var cur *Segment
	for i := 0; i+1 < len(tr.Frames); i++ {
		a, b := tr.Frames[i], tr.Frames[i+1]
		if !ok(a) || !ok(b) {
			cur = nil
			continue
		}
		if cur == nil || cur.Light != a.Light || cur.To != i {
			p.Segments = append(p.Segments, Segment{Light: a.Light, From: i, To: i, Points: []Point{toCM(a.X, a.Y)}})
			cur = &p.Segments[len(p.Segments)-1]
		}
		cur.To = i + 1
		cur.Points = append(cur.Points, toCM(b.X, b.Y))
	}
	return p, nil
}

// TrajectoryGrid is a set of tracks drawn as small multiples (Overlay false) or on one plate
// (Overlay true).
type TrajectoryGrid struct {
	Title   string
	Panels  []TrajectoryPanel
	Cols    int
	Overlay bool
}

// BuildTrajectories builds one panel per track as small multiples with cols columns (0: up to 5).
func BuildTrajectories(title string, tracks []Track, cols int) (TrajectoryGrid, error) {
	g := TrajectoryGrid{Title: title, Cols: cols}
	if g.Cols <= 0 {
		g.Cols = min(5, max(1, len(tracks)))
	}
	for _, tr := range tracks {
		p, err := BuildTrajectory(tr, false)
		if err != nil {
			return TrajectoryGrid{}, err
		}
		g.Panels = append(g.Panels, p)
	}
	return g, nil
}

// BuildOverlay builds one plate with every track, each rotated so that its target lies on the
// positive x axis.
func BuildOverlay(title string, tracks []Track) (TrajectoryGrid, error) {
	g := TrajectoryGrid{Title: title, Cols: 1, Overlay: true}
	for _, tr := range tracks {
		p, err := BuildTrajectory(tr, true)
		if err != nil {
			return TrajectoryGrid{}, err
		}
		g.Panels = append(g.Panels, p)
	}
	return g, nil
}

// WriteTrajectories renders tracks as small multiples (a quick look at a few episodes, e.g.
// `optoloop sim --plot`).
func WriteTrajectories(w io.Writer, f Format, title string, tracks []Track) error {
	g, err := BuildTrajectories(title, tracks, 0)
	if err != nil {
		return err
	}
	return g.Render(w, f)
}

// Colours of trajectories.
func lightOnColor() color.Color  { return color.NRGBA{R: 0, G: 110, B: 255, A: 255} }
func lightOffColor() color.Color { return color.NRGBA{R: 150, G: 150, B: 150, A: 255} }
func targetColor() color.Color   { return color.NRGBA{R: 220, G: 20, B: 20, A: 255} }
func startColor() color.Color    { return color.NRGBA{R: 0, G: 150, B: 60, A: 255} }
func closestColor() color.Color  { return color.NRGBA{R: 255, G: 140, B: 0, A: 255} }

// Size returns the figure size of the grid.
func (g TrajectoryGrid) Size() Size {
	if g.Overlay || len(g.Panels) == 0 {
		return Size{W: 380, H: 400}
	}
	rows := (len(g.Panels) + g.Cols - 1) / g.Cols
	return Size{W: 170 * float64(g.Cols), H: 175*float64(rows) + 50}
}

// Render draws the grid.
func (g TrajectoryGrid) Render(w io.Writer, f Format) error {
	return render(w, f, g.Size(), g.draw)
}

func (g TrajectoryGrid) draw(dc draw.Canvas) {
	dc = drawTitle(dc, g.Title, 12)
	dc = drawLegend(dc, []legendItem{
		{"light on", lightOnColor(), false}, {"light off", lightOffColor(), false},
		{"start", startColor(), true}, {"target (0.5 cm ring)", targetColor(), true}, {"closest approach", closestColor(), true},
	})
	if len(g.Panels) == 0 {
		st := textStyle(11)
		st.XAlign, st.YAlign = draw.XCenter, draw.YCenter
		dc.FillText(st, dc.Center(), "no episodes")
		return
	}
	if g.Overlay {
		p := g.overlayPlot()
		p.Draw(equalAspect(p, dc))
		return
	}
	rows := (len(g.Panels) + g.Cols - 1) / g.Cols
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, g.Cols)
		for c := range plots[r] {
			i := r*g.Cols + c
			if i >= len(g.Panels) {
				p := newPlot("")
				p.HideAxes()
				plots[r][c] = p
				continue
			}
			plots[r][c] = g.Panels[i].plot()
		}
	}
	cs := plot.Align(plots, draw.Tiles{Rows: rows, Cols: g.Cols, PadX: 6, PadY: 6, PadLeft: 2, PadRight: 4}, dc)
	for r := range plots {
		for c := range plots[r] {
			plots[r][c].Draw(equalAspect(plots[r][c], cs[r][c]))
		}
	}
}

// equalAspect crops c so that p's data area has equal scales on both axes (a round plate stays
// round), centring what remains.
func equalAspect(p *plot.Plot, c draw.Canvas) draw.Canvas {
	da := p.DataCanvas(c)
	w, h := da.Max.X-da.Min.X, da.Max.Y-da.Min.Y
	sx, sy := p.X.Max-p.X.Min, p.Y.Max-p.Y.Min
	if w <= 0 || h <= 0 || !(sx > 0) || !(sy > 0) {
		return c
	}
	if want := h * vg.Length(sx/sy); want < w {
		d := (w - want) / 2
		return draw.Crop(c, d, -d, 0, 0)
	}
	want := w * vg.Length(sy/sx)
	d := (h - want) / 2
	return draw.Crop(c, 0, 0, d, -d)
}

// overlayPlot draws every panel's path on one plate.
func (g TrajectoryGrid) overlayPlot() *plot.Plot {
	p := newPlot("")
	addPlate(p, g.Panels[0].PlateRadius)
	for _, pn := range g.Panels {
		pn.addPath(p, 0.8)
	}
	for _, pn := range g.Panels {
		pn.addMarks(p, false)
	}
	g.Panels[0].axes(p)
	p.Title.Text = fmt.Sprintf("%d episodes, target rotated to the right", len(g.Panels))
	p.Title.TextStyle.Font.Size = 9
	return p
}

// plot returns one panel's plot: plate, path, marks, axes (set last, after the plotters).
func (pn TrajectoryPanel) plot() *plot.Plot {
	p := newPlot("")
	addPlate(p, pn.PlateRadius)
	pn.addPath(p, 1)
	pn.addMarks(p, true)
	pn.axes(p)
	p.Title.Text = pn.Label
	p.Title.TextStyle.Font.Size = 8
	p.X.Tick.Label.Font.Size = 7
	p.Y.Tick.Label.Font.Size = 7
	p.X.Label.TextStyle.Font.Size = 7
	p.Y.Label.TextStyle.Font.Size = 7
	return p
}

func (pn TrajectoryPanel) axes(p *plot.Plot) {
	pn.X.apply(&p.X)
	pn.Y.apply(&p.Y)
}

// addPlate draws the plate outline.
func addPlate(p *plot.Plot, r float64) {
	p.Add(circle(0, 0, r, draw.LineStyle{Color: color.Black, Width: 1}))
}

func circle(cx, cy, r float64, st draw.LineStyle) *plotter.Line {
	const n = 180
	xy := make(plotter.XYs, n+1)
	for i := range xy {
		s, c := math.Sincos(2 * math.Pi * float64(i) / n)
		xy[i] = plotter.XY{X: cx + r*c, Y: cy + r*s}
	}
	l, _ := plotter.NewLine(xy)
	l.LineStyle = st
	return l
}

func (pn TrajectoryPanel) addPath(p *plot.Plot, width float64) {
	for _, s := range pn.Segments {
		xy := make(plotter.XYs, len(s.Points))
		for i, q := range s.Points {
			xy[i] = plotter.XY{X: q.X, Y: q.Y}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			continue // a NaN position: nothing to draw
		}
		l.Color = lightOffColor()
		l.Width = vg.Length(width)
		if s.Light {
			l.Color = lightOnColor()
			l.Width = vg.Length(width * 2)
		}
		// Only the Plotter: the axes are set explicitly, and a Line's per-point glyph boxes
		// would make every layout pass walk the whole track.
		p.Add(plotOnly{l})
	}
}

func (pn TrajectoryPanel) addMarks(p *plot.Plot, closest bool) {
	ring := circle(pn.Target.X, pn.Target.Y, 0.5, draw.LineStyle{Color: targetColor(), Width: 0.6, Dashes: []vg.Length{2, 2}})
	p.Add(ring)
	add := func(q Point, c color.Color, g draw.GlyphDrawer, r float64) {
		s, err := plotter.NewScatter(plotter.XYs{{X: q.X, Y: q.Y}})
		if err != nil {
			return
		}
		s.GlyphStyle = draw.GlyphStyle{Color: c, Shape: g, Radius: vg.Length(r)}
		p.Add(s)
	}
	if pn.HasStart {
		add(pn.Start, startColor(), draw.CircleGlyph{}, 2.5)
	}
	if closest && pn.ClosestFrame >= 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: pn.Closest.X, Y: pn.Closest.Y}, {X: pn.Target.X, Y: pn.Target.Y}})
		if err == nil {
			l.LineStyle = draw.LineStyle{Color: closestColor(), Width: 0.8, Dashes: []vg.Length{1, 1.5}}
			p.Add(l)
		}
		add(pn.Closest, closestColor(), draw.RingGlyph{}, 3)
	}
	add(pn.Target, targetColor(), draw.CrossGlyph{}, 3.5)
}

// legendItem is one entry of a figure-level legend: a line or a dot of a colour.
type legendItem struct {
	Text  string
	Color color.Color
	Dot   bool
}

// drawLegend writes a one-line legend at the top of dc and returns the canvas below it.
func drawLegend(dc draw.Canvas, items []legendItem) draw.Canvas {
	st := textStyle(8)
	st.XAlign, st.YAlign = draw.XLeft, draw.YCenter
	y := dc.Max.Y - 7
	x := dc.Min.X + 10
	for _, it := range items {
		if it.Dot {
			dc.DrawGlyph(draw.GlyphStyle{Color: it.Color, Shape: draw.CircleGlyph{}, Radius: 2.5}, vg.Point{X: x + 6, Y: y})
		} else {
			dc.StrokeLine2(draw.LineStyle{Color: it.Color, Width: 2}, x, y, x+12, y)
		}
		dc.FillText(st, vg.Point{X: x + 16, Y: y}, it.Text)
		x += 16 + st.Width(it.Text) + 14
	}
	return draw.Crop(dc, 0, 0, 0, -16)
}

// plotOnly hides every method of a plotter but Plot (no DataRange, no GlyphBoxes).
type plotOnly struct{ plot.Plotter }
