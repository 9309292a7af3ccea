package charts

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// checkImage renders with fn in both formats and checks that the PNG decodes to the figure's
// size and the SVG is well-formed XML with an svg root.
func checkImage(t *testing.T, size Size, fn func(w io.Writer, f Format) error) {
	t.Helper()
	var b bytes.Buffer
	if err := fn(&b, PNG); err != nil {
		t.Fatalf("render png: %v", err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatalf("decode png: %v", err)
	}
	wantW, wantH := size.pixels()
	if got := img.Bounds(); abs(got.Dx()-wantW) > 1 || abs(got.Dy()-wantH) > 1 {
		t.Errorf("png is %dx%d, want %dx%d", got.Dx(), got.Dy(), wantW, wantH)
	}
	b.Reset()
	if err := fn(&b, SVG); err != nil {
		t.Fatalf("render svg: %v", err)
	}
	d := xml.NewDecoder(&b)
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("svg root element %q", root)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestViridis(t *testing.T) {
	// matplotlib's viridis runs from #440154 to #fde725.
	near := func(a, b uint8) bool { return abs(int(a)-int(b)) <= 6 }
	for _, c := range []struct {
		t       float64
		r, g, b uint8
	}{{0, 0x44, 0x01, 0x54}, {1, 0xfd, 0xe7, 0x25}, {-3, 0x44, 0x01, 0x54}, {7, 0xfd, 0xe7, 0x25}} {
		got := Viridis(c.t)
		if !near(got.R, c.r) || !near(got.G, c.g) || !near(got.B, c.b) {
			t.Errorf("Viridis(%v) = %v, want about #%02x%02x%02x", c.t, got, c.r, c.g, c.b)
		}
	}
	// Perceptually ordered: luminance rises monotonically.
	prev := -1.0
	for i := range 256 {
		c := Viridis(float64(i) / 255)
		l := 0.2126*float64(c.R) + 0.7152*float64(c.G) + 0.0722*float64(c.B)
		if l < prev-0.5 {
			t.Fatalf("luminance falls at %d/255: %v after %v", i, l, prev)
		}
		prev = l
	}
}

// testMap returns a 9x9x36x36 map whose every value is distinct and known.
func testMap(val func(iy, ix, ib, ih int) float64) PolicyMap {
	m := PolicyMap{Title: "test"}
	for i := range 9 {
		m.X = append(m.X, (-1+float64(i)/4)*900/540)
		m.Y = append(m.Y, (-1+float64(i)/4)*900/540)
	}
	for i := range 36 {
		m.Body = append(m.Body, -175+10*float64(i))
		m.Head = append(m.Head, -175+10*float64(i))
	}
	m.P = make([][][][]float64, 9)
	for iy := range m.P {
		m.P[iy] = make([][][]float64, 9)
		for ix := range m.P[iy] {
			m.P[iy][ix] = make([][]float64, 36)
			for ib := range 36 {
				m.P[iy][ix][ib] = make([]float64, 36)
				for ih := range 36 {
					m.P[iy][ix][ib][ih] = val(iy, ix, ib, ih)
				}
			}
		}
	}
	return m
}

func TestPolicyMapCells(t *testing.T) {
	val := func(iy, ix, ib, ih int) float64 {
		return 0.05 + 0.9*float64(((iy*9+ix)*36+ib)*36+ih)/float64(9*9*36*36)
	}
	m := testMap(val)
	f, err := BuildPolicyMap(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Panels) != 9 || len(f.Panels[0]) != 9 {
		t.Fatalf("panels %dx%d, want 9x9", len(f.Panels), len(f.Panels[0]))
	}
	targets := 0
	for iy := range 9 {
		for ix := range 9 {
			pn := f.Panels[iy][ix]
			if pn.X != m.X[ix] || pn.Y != m.Y[iy] {
				t.Fatalf("panel (%d,%d) at (%v,%v), want (%v,%v)", iy, ix, pn.X, pn.Y, m.X[ix], m.Y[iy])
			}
			if pn.Target {
				targets++
				if ix != 4 || iy != 4 {
					t.Errorf("target marked on panel (%d,%d), want (4,4)", iy, ix)
				}
			}
			if len(pn.Cells) != 36 || len(pn.Cells[0]) != 36 {
				t.Fatalf("panel cells %dx%d", len(pn.Cells), len(pn.Cells[0]))
			}
			for ih := range 36 {
				for ib := range 36 {
					if got, want := pn.Cells[ih][ib], val(iy, ix, ib, ih); got != want {
						t.Fatalf("panel (%d,%d) cell head %d body %d = %v, want %v", iy, ix, ih, ib, got, want)
					}
				}
			}
		}
	}
	if targets != 1 {
		t.Errorf("%d target panels, want 1", targets)
	}
	// Strong policy: the colour range covers the data, not the reference's 0.45-0.55.
	if f.Color.Min > 0.05 || f.Color.Max < 0.95 || f.Color.Min < 0.04 || f.Color.Max > 0.96 {
		t.Errorf("colour range %+v, want about [0.05, 0.95]", f.Color)
	}
	for _, a := range []struct {
		ax   Axis
		word string
	}{{f.BodyAxis, "body"}, {f.HeadAxis, "head"}} {
		if a.ax.Min != -180 || a.ax.Max != 180 || !strings.Contains(a.ax.Label, a.word) || !strings.Contains(a.ax.Label, "(deg)") {
			t.Errorf("%s axis %+v: want -180..180 labelled in degrees", a.word, a.ax)
		}
		if len(a.ax.Ticks) != 3 || a.ax.Ticks[0] != -90 || a.ax.Ticks[1] != 0 || a.ax.Ticks[2] != 90 {
			t.Errorf("%s ticks %v, want -90 0 90", a.word, a.ax.Ticks)
		}
	}
	checkImage(t, Size{W: 860, H: 880}, f.Render)
}

func TestPolicyMapColorRange(t *testing.T) {
	for _, c := range []struct {
		name     string
		lo, hi   float64
		min, max float64
	}{
		{"flat", 0.5, 0.5, 0.49, 0.51},
		{"weak", 0.48, 0.53, 0.48, 0.53},
		{"strong", 0.01, 0.99, 0.01, 0.99},
		{"near zero", 0, 0.005, 0, 0.02},
		{"near one", 0.999, 1, 0.98, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := testMap(func(iy, ix, ib, ih int) float64 {
				if (ib+ih)%2 == 0 {
					return c.lo
				}
				return c.hi
			})
			f, err := BuildPolicyMap(m)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(f.Color.Min-c.min) > 1e-9 || math.Abs(f.Color.Max-c.max) > 1e-9 {
				t.Errorf("colour range %+v, want [%v, %v]", f.Color, c.min, c.max)
			}
		})
	}
}

func TestPolicyMapRejectsBadShapes(t *testing.T) {
	ok := func() PolicyMap { return testMap(func(int, int, int, int) float64 { return 0.5 }) }
	for _, c := range []struct {
		name string
		mod  func(m *PolicyMap)
	}{
		{"missing row", func(m *PolicyMap) { m.P = m.P[:8] }},
		{"missing panel", func(m *PolicyMap) { m.P[3] = m.P[3][:8] }},
		{"missing body angle", func(m *PolicyMap) { m.P[1][2] = m.P[1][2][:35] }},
		{"missing head angle", func(m *PolicyMap) { m.P[1][2][3] = m.P[1][2][3][:35] }},
		{"probability above 1", func(m *PolicyMap) { m.P[0][0][0][0] = 1.5 }},
		{"unsorted x", func(m *PolicyMap) { m.X[2], m.X[3] = m.X[3], m.X[2] }},
		{"no head angles", func(m *PolicyMap) { m.Head = nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := ok()
			c.mod(&m)
			if _, err := BuildPolicyMap(m); err == nil {
				t.Fatal("no error")
			}
		})
	}
	if _, err := BuildPolicyMap(ok()); err != nil {
		t.Fatalf("valid map refused: %v", err)
	}
}

// lightTrack is a track with a known light pattern, lost frames and a target.
func lightTrack(seed uint64, n int) Track {
	rng := rand.New(rand.NewPCG(seed, 2))
	tr := Track{Label: "ep", Plate: Plate{CenterX: 1080, CenterY: 960, Radius: 970, PxPerCM: 540}, Target: [2]float64{1080, 960 - 810}}
	x, y, h := 1000.0, 1000.0, 0.3
	light := false
	for i := range n {
		h += rng.NormFloat64() * 0.3
		x += 2 * math.Cos(h)
		y += 2 * math.Sin(h)
		if i%3 == 0 {
			light = rng.Float64() < 0.3
		}
		tr.Frames = append(tr.Frames, TrackFrame{T: float64(i) / 3, X: x, Y: y, Light: light, OK: rng.Float64() > 0.05})
	}
	return tr
}

func TestTrajectorySegmentsFollowLight(t *testing.T) {
	tr := lightTrack(7, 1800)
	p, err := BuildTrajectory(tr, false)
	if err != nil {
		t.Fatal(err)
	}
	covered := make([]int, len(tr.Frames))
	onSteps := 0
	for _, s := range p.Segments {
		if s.To <= s.From || len(s.Points) != s.To-s.From+1 {
			t.Fatalf("segment %d..%d with %d points", s.From, s.To, len(s.Points))
		}
		for i := s.From; i <= s.To; i++ {
			f := tr.Frames[i]
			if !f.OK {
				t.Fatalf("segment %d..%d touches lost frame %d", s.From, s.To, i)
			}
			q := s.Points[i-s.From]
			if math.Abs(q.X-(f.X-1080)/540) > 1e-12 || math.Abs(q.Y-(f.Y-960)/540) > 1e-12 {
				t.Fatalf("frame %d drawn at %+v", i, q)
			}
			if i < s.To {
				covered[i]++
				if f.Light != s.Light {
					t.Fatalf("step %d->%d drawn light=%v but the light record says %v", i, i+1, s.Light, f.Light)
				}
				if s.Light {
					onSteps++
				}
			}
		}
	}
	wantOn := 0
	for i := 0; i+1 < len(tr.Frames); i++ {
		both := tr.Frames[i].OK && tr.Frames[i+1].OK
		if both && covered[i] != 1 {
			t.Fatalf("step %d drawn %d times, want once", i, covered[i])
		}
		if !both && covered[i] != 0 {
			t.Fatalf("step %d across a lost frame is drawn", i)
		}
		if both && tr.Frames[i].Light {
			wantOn++
		}
	}
	if onSteps != wantOn || wantOn == 0 {
		t.Errorf("%d light-on steps drawn, record has %d", onSteps, wantOn)
	}
	// Closest approach: the tracked frame nearest to the target.
	best, bi := math.Inf(1), -1
	for i, f := range tr.Frames {
		if d := math.Hypot(f.X-tr.Target[0], f.Y-tr.Target[1]) / 540; f.OK && d < best {
			best, bi = d, i
		}
	}
	if p.ClosestFrame != bi || math.Abs(p.ClosestCM-best) > 1e-9 || p.ClosestT != tr.Frames[bi].T {
		t.Errorf("closest approach frame %d at %v cm, want frame %d at %v cm", p.ClosestFrame, p.ClosestCM, bi, best)
	}
	// Axes: the plate fits, y grows downwards like the camera's, labels name the units.
	if r := p.PlateRadius; math.Abs(r-970.0/540) > 1e-12 || p.X.Min > -r || p.X.Max < r || p.Y.Min > -r || p.Y.Max < r {
		t.Errorf("axes %+v %+v do not hold the plate of radius %v", p.X, p.Y, r)
	}
	if !p.Y.Inverted || p.X.Inverted || p.X.Label != "x (cm)" || !strings.HasPrefix(p.Y.Label, "y (cm") {
		t.Errorf("axes %+v %+v", p.X, p.Y)
	}
	if p.Target != (Point{X: 0, Y: -1.5}) {
		t.Errorf("target at %+v, want (0, -1.5) cm", p.Target)
	}
}

func TestTrajectoryAligned(t *testing.T) {
	tr := lightTrack(3, 300)
	a, err := BuildTrajectory(tr, true)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := BuildTrajectory(tr, false)
	if math.Abs(a.Target.Y) > 1e-12 || math.Abs(a.Target.X-1.5) > 1e-12 {
		t.Errorf("aligned target at %+v, want (1.5, 0)", a.Target)
	}
	if math.Abs(a.ClosestCM-p.ClosestCM) > 1e-9 || len(a.Segments) != len(p.Segments) {
		t.Errorf("alignment changed the track: closest %v vs %v, %d vs %d segments", a.ClosestCM, p.ClosestCM, len(a.Segments), len(p.Segments))
	}
	for k := range a.Segments {
		for j, q := range a.Segments[k].Points {
			o := p.Segments[k].Points[j]
			if math.Abs(math.Hypot(q.X, q.Y)-math.Hypot(o.X, o.Y)) > 1e-9 {
				t.Fatalf("rotation changed the distance from the plate centre")
			}
		}
	}
}

func TestTrajectoryEdgeCases(t *testing.T) {
	pl := Plate{CenterX: 100, CenterY: 100, Radius: 90, PxPerCM: 50}
	for _, c := range []struct {
		name     string
		frames   []TrackFrame
		segments int
		closest  int
	}{
		{"empty", nil, 0, -1},
		{"all lost", []TrackFrame{{X: 1, Y: 1}, {X: 2, Y: 2}}, 0, -1},
		{"single frame", []TrackFrame{{X: 100, Y: 100, OK: true}}, 0, 0},
		{"light switches", []TrackFrame{{X: 100, Y: 100, OK: true}, {X: 101, Y: 100, OK: true, Light: true}, {X: 102, Y: 100, OK: true, Light: true}, {X: 103, Y: 100, OK: true}}, 2, 3},
		{"NaN position", []TrackFrame{{X: 100, Y: 100, OK: true}, {X: math.NaN(), Y: 100, OK: true}, {X: 103, Y: 100, OK: true}, {X: 104, Y: 100, OK: true}}, 1, 3},
		{"gap", []TrackFrame{{X: 100, Y: 100, OK: true}, {X: 101, Y: 100, OK: true}, {X: 102, Y: 100}, {X: 103, Y: 100, OK: true}, {X: 104, Y: 100, OK: true}}, 2, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := BuildTrajectory(Track{Plate: pl, Target: [2]float64{150, 100}, Frames: c.frames}, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Segments) != c.segments || p.ClosestFrame != c.closest {
				t.Errorf("%d segments, closest frame %d; want %d, %d", len(p.Segments), p.ClosestFrame, c.segments, c.closest)
			}
			g := TrajectoryGrid{Panels: []TrajectoryPanel{p}, Cols: 1}
			checkImage(t, g.Size(), g.Render)
		})
	}
	if _, err := BuildTrajectory(Track{Plate: Plate{Radius: 10}}, false); err == nil {
		t.Error("plate without a scale accepted")
	}
}

func TestTrajectoryFiguresRender(t *testing.T) {
	var trs []Track
	for i := range 7 {
		trs = append(trs, lightTrack(uint64(i), 600))
	}
	g, err := BuildTrajectories("line 301, agent", trs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g.Cols != 5 || len(g.Panels) != 7 || g.Overlay {
		t.Errorf("grid %d cols, %d panels", g.Cols, len(g.Panels))
	}
	checkImage(t, g.Size(), g.Render)
	o, err := BuildOverlay("line 301, agent", trs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range o.Panels {
		if !p.Aligned {
			t.Fatal("overlay panel not aligned to its target")
		}
	}
	checkImage(t, o.Size(), o.Render)
	empty, _ := BuildTrajectories("none", nil, 0)
	checkImage(t, empty.Size(), empty.Render)
	var b bytes.Buffer
	if err := WriteTrajectories(&b, "gif", "x", trs); !errors.Is(err, ErrFormat) {
		t.Errorf("gif: %v, want ErrFormat", err)
	}
}

func TestDistribution(t *testing.T) {
	groups := []Group{
		{Name: "agent", Values: []float64{0.2, 0.4, 0.1, 0.3, 0.5, math.NaN()}},
		{Name: "none", Values: []float64{1.1, 1.3, 1.2, 1.0, 1.4, 1.2, 4.0}},
		{Name: "random", Values: nil},
	}
	ps := []PValue{{A: "agent", B: "none", P: 0.0021}, {A: "agent", B: "random", P: math.NaN()}}
	f, err := BuildDistribution("line 446", "closest approach (cm)", groups, ps, 9)
	if err != nil {
		t.Fatal(err)
	}
	a, n, r := f.Boxes[0], f.Boxes[1], f.Boxes[2]
	if a.N != 5 || n.N != 7 || r.N != 0 {
		t.Errorf("n = %d %d %d, want 5 7 0 (NaN dropped)", a.N, n.N, r.N)
	}
	if a.Median != 0.3 || math.Abs(a.Mean-0.3) > 1e-12 || math.Abs(a.Q1-0.2) > 1e-12 || math.Abs(a.Q3-0.4) > 1e-12 {
		t.Errorf("agent box %+v", a)
	}
	if n.WhiskerHi >= 4 || n.WhiskerHi != 1.4 {
		t.Errorf("outlier 4.0 inside the whisker (%v)", n.WhiskerHi)
	}
	for _, b := range f.Boxes {
		for j, v := range b.Values {
			if math.Abs(b.Jitter[j]) > 0.2 || v < f.Y.Min || v > f.Y.Max {
				t.Fatalf("point %v (jitter %v) outside the axes %+v", v, b.Jitter[j], f.Y)
			}
		}
	}
	if f.Y.Min != 0 || f.Y.Label != "closest approach (cm)" {
		t.Errorf("y axis %+v", f.Y)
	}
	if want := []string{"agent\nn=5", "none\nn=7", "random\nn=0"}; strings.Join(f.Categories, "|") != strings.Join(want, "|") {
		t.Errorf("categories %q", f.Categories)
	}
	if f.Subtitle != "agent vs none: p = 0.002; agent vs random: p n/a" {
		t.Errorf("subtitle %q", f.Subtitle)
	}
	g, _ := BuildDistribution("line 446", "cm", groups, ps, 9)
	if g.Boxes[1].Jitter[3] != f.Boxes[1].Jitter[3] {
		t.Error("same seed, different jitter")
	}
	checkImage(t, Size{W: 330, H: 300}, f.Render)
	if _, err := BuildDistribution("x", "y", nil, nil, 1); err == nil {
		t.Error("no groups accepted")
	}
}

func TestKaplanMeier(t *testing.T) {
	c := KaplanMeier("agent", []Event{{T: 3, Observed: true}, {T: 1, Observed: true}, {T: 4}, {T: 2}, {T: 3, Observed: true}})
	want := []Step{{0, 1}, {1, 0.8}, {3, 0.8 / 3}}
	if len(c.Steps) != len(want) {
		t.Fatalf("steps %v, want %v", c.Steps, want)
	}
	for i := range want {
		if c.Steps[i].T != want[i].T || math.Abs(c.Steps[i].S-want[i].S) > 1e-12 {
			t.Errorf("step %d = %v, want %v", i, c.Steps[i], want[i])
		}
	}
	if c.N != 5 || c.Events != 3 || len(c.Censored) != 2 || c.Censored[0] != 2 || c.Censored[1] != 4 || c.Marks[0] != 0.8 || math.Abs(c.Marks[1]-0.8/3) > 1e-12 {
		t.Errorf("curve %+v", c)
	}
	// A censored episode at the time of an event is still at risk for it.
	c = KaplanMeier("x", []Event{{T: 5}, {T: 5, Observed: true}})
	if c.Steps[1].S != 0.5 {
		t.Errorf("tie: S = %v, want 0.5", c.Steps[1].S)
	}
	f, err := BuildSurvival("time to 0.5 cm", []SurvivalGroup{{Name: "agent", Events: []Event{{T: 30, Observed: true}, {T: 600}}}, {Name: "none", Events: []Event{{T: 600}}}})
	if err != nil {
		t.Fatal(err)
	}
	if f.X.Min != 0 || f.X.Max != 600 || f.X.Label != "time (s)" || f.Y.Min != 0 || f.Y.Max < 1 {
		t.Errorf("axes %+v %+v", f.X, f.Y)
	}
	if len(f.Curves[1].Steps) != 1 {
		t.Errorf("no events: steps %v", f.Curves[1].Steps)
	}
	checkImage(t, Size{W: 330, H: 300}, f.Render)
	if _, err := BuildSurvival("x", []SurvivalGroup{{Name: "a", Events: []Event{{T: math.NaN()}}}}); err == nil {
		t.Error("NaN time accepted")
	}
}

func TestCross(t *testing.T) {
	lines := []string{"281", "301", "352"}
	v := [][]float64{{0.28, 1.35, 1.52}, {1.48, 0.16, 0.87}, {1.09, 0.28, math.NaN()}}
	n := [][]int{{10, 10, 10}, {10, 10, 10}, {10, 10, 0}}
	f, err := BuildCross("cross", lines, lines, v, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		for j := range v[i] {
			if g := f.Cells[i][j]; g != v[i][j] && !(math.IsNaN(g) && math.IsNaN(v[i][j])) {
				t.Errorf("cell %d,%d = %v, want %v", i, j, g, v[i][j])
			}
		}
	}
	if f.Annotations[1][1] != "0.16\nn=10" || f.Annotations[2][2] != "n/a" {
		t.Errorf("annotations %q", f.Annotations)
	}
	if f.Best[0] != 0 || f.Best[1] != 1 || f.Best[2] != 1 {
		t.Errorf("best rows per column %v, want [0 1 1]", f.Best)
	}
	if f.Color.Min > 0.16 || f.Color.Max < 1.52 || !f.Y.Inverted || f.Y.Label != "animal line" || f.X.Label != "agent trained on line" {
		t.Errorf("figure %+v", f)
	}
	checkImage(t, Size{W: 90*3 + 200, H: 70*3 + 110}, f.Render)
	if _, err := BuildCross("x", lines, lines, v[:2], nil); err == nil {
		t.Error("missing row accepted")
	}
	if _, err := BuildCross("x", lines, lines[:2], v, nil); err == nil {
		t.Error("extra column accepted")
	}
}

func TestEffects(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	sample := func(mean float64, n int) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = mean + 0.3*rng.NormFloat64()
		}
		return xs
	}
	lines := []LineSamples{
		{Line: "446", Agent: sample(0.4, 20), Baselines: []Group{{Name: "none", Values: sample(1.25, 20)}, {Name: "random", Values: sample(0.86, 20)}}},
		{Line: "73", Agent: sample(1.2, 20), Baselines: []Group{{Name: "none", Values: sample(1.2, 20)}, {Name: "random", Values: sample(1.3, 20)}}},
		{Line: "301", Agent: []float64{0.5}, Baselines: []Group{{Name: "none", Values: sample(1, 5)}}},
	}
	f, err := BuildEffects("effect", lines, 2000, 0.95, 42)
	if err != nil {
		t.Fatal(err)
	}
	e := f.Effects[0]
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	if e.Baseline != "random" || math.Abs(e.Diff-(mean(lines[0].Baselines[1].Values)-mean(lines[0].Agent))) > 1e-12 {
		t.Errorf("446: %+v, want best baseline random and the difference of means", e)
	}
	if !(e.Lo < e.Diff && e.Diff < e.Hi && e.Lo > 0) {
		t.Errorf("446 CI [%v, %v] around %v should exclude 0", e.Lo, e.Hi, e.Diff)
	}
	if w := f.Effects[1]; w.Baseline != "none" || !(w.Lo < 0 && w.Hi > 0) {
		t.Errorf("73 (no effect): %+v, CI should contain 0", w)
	}
	if u := f.Effects[2]; !math.IsNaN(u.Diff) || u.NAgent != 1 {
		t.Errorf("301 with one agent episode: %+v, want NaN", u)
	}
	g, _ := BuildEffects("effect", lines, 2000, 0.95, 42)
	if g.Effects[0].Lo != e.Lo {
		t.Error("same seed, different interval")
	}
	if f.Y.Min > e.Lo || f.Y.Max < e.Hi || f.Y.Min > 0 || !strings.Contains(f.Y.Label, "baseline - agent") {
		t.Errorf("y axis %+v", f.Y)
	}
	checkImage(t, Size{W: 360, H: 320}, f.Render)
	if _, err := BuildEffects("x", lines, 10, 0.95, 1); err == nil {
		t.Error("10 resamples accepted")
	}
}

func TestLearningCurves(t *testing.T) {
	var ms []MemberCurves
	for k := range 3 {
		m := MemberCurves{Member: string(rune('a' + k)), Values: map[string][]float64{}}
		for i := range 50 {
			u := float64(i * 100)
			m.Updates = append(m.Updates, u)
			m.Values["critic_loss"] = append(m.Values["critic_loss"], math.Exp(-u/1000)+float64(k))
			m.Values["temperature"] = append(m.Values["temperature"], 1/(1+u))
		}
		ms = append(ms, m)
	}
	ms[1].Values["temperature"][10] = math.NaN()
	f, err := BuildLearningCurves("line 301", DefaultMetrics(), ms)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Panels) != 4 {
		t.Fatalf("%d panels", len(f.Panels))
	}
	cl := f.Panels[0]
	if cl.Metric.Key != "critic_loss" || len(cl.Series) != 3 || cl.Series[2].Y[0] != 3 || cl.X.Min != 0 || cl.X.Max != 4900 || cl.X.Label != "updates" {
		t.Errorf("critic panel %+v", cl)
	}
	if cl.Y.Min > 0 || cl.Y.Max < 3 || cl.Y.Label != "critic loss" {
		t.Errorf("critic y axis %+v", cl.Y)
	}
	if n := len(f.Panels[2].Series[1].X); n != 49 {
		t.Errorf("NaN kept: %d points", n)
	}
	if len(f.Panels[1].Series) != 0 {
		t.Errorf("members without entropy drawn")
	}
	checkImage(t, Size{W: 640, H: 470}, f.Render)
	ms[0].Values["critic_loss"] = ms[0].Values["critic_loss"][:3]
	if _, err := BuildLearningCurves("x", DefaultMetrics(), ms); err == nil {
		t.Error("length mismatch accepted")
	}
}

func TestFormatOf(t *testing.T) {
	for _, c := range []struct {
		path string
		f    Format
		err  bool
	}{{"a/map.png", PNG, false}, {"MAP.SVG", SVG, false}, {"map.pdf", "", true}, {"map", "", true}} {
		f, err := FormatOf(c.path)
		if f != c.f || (err != nil) != c.err || (err != nil && !errors.Is(err, ErrFormat)) {
			t.Errorf("FormatOf(%q) = %q, %v", c.path, f, err)
		}
	}
}

func TestAnimalTimeFigure(t *testing.T) {
	online := AnimalSeries{Name: "446 online", Points: []AnimalPoint{{Hours: 0.25, Mean: 0.9, SD: 0.4, N: 4}, {Hours: 0.5, Mean: 0.6, SD: 0.3, N: 4}, {Hours: 1, Mean: 0.3, SD: 0.4, N: 20}}}
	offline := AnimalSeries{Name: "446 offline", Dashed: true, Points: []AnimalPoint{{Hours: 1, Mean: 0.6, SD: 0.6, N: 20}, {Hours: 20, Mean: 0.35, SD: 0.5, N: 20},
		{Hours: 0, Mean: 1}, {Hours: 2, Mean: math.NaN()}}}
	f, err := BuildAnimalTime("t", []AnimalSeries{online, offline})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Series) != 2 || len(f.Series[1].Points) != 2 {
		t.Fatalf("series %+v: the point at 0 h and the NaN mean must be dropped", f.Series)
	}
	if !(f.X.Min < 0.25 && f.X.Max > 20 && f.Y.Min >= 0 && f.Y.Max > 0.9) {
		t.Fatalf("axes %+v %+v do not hold the points", f.X, f.Y)
	}
	for _, format := range []Format{PNG, SVG} {
		var buf bytes.Buffer
		if err := f.Render(&buf, format); err != nil || buf.Len() < 1000 {
			t.Fatalf("%v: %d bytes, %v", format, buf.Len(), err)
		}
	}
	if _, err := BuildAnimalTime("t", []AnimalSeries{{Name: "x", Points: []AnimalPoint{{Hours: -1, Mean: 1}}}}); err == nil {
		t.Fatal("a figure without a usable point was built")
	}
}
