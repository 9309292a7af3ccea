package charts

import (
	"math"
	"testing"

	"gonum.org/v1/plot"
)

// TestPlotsUseFigureAxes checks that what is drawn uses the axes the figure data claims: gonum/plot
// widens an axis to the data of every plotter added, so axes must be set after the plotters.
func TestPlotsUseFigureAxes(t *testing.T) {
	check := func(name string, p *plot.Plot, x, y Axis, labels bool) {
		t.Helper()
		if p.X.Min != x.Min || p.X.Max != x.Max || p.Y.Min != y.Min || p.Y.Max != y.Max {
			t.Errorf("%s: plot axes x [%v, %v] y [%v, %v], figure claims x [%v, %v] y [%v, %v]",
				name, p.X.Min, p.X.Max, p.Y.Min, p.Y.Max, x.Min, x.Max, y.Min, y.Max)
		}
		if labels && (p.X.Label.Text != x.Label || p.Y.Label.Text != y.Label) {
			t.Errorf("%s: plot labels %q, %q; figure claims %q, %q", name, p.X.Label.Text, p.Y.Label.Text, x.Label, y.Label)
		}
		_, inv := p.Y.Scale.(plot.InvertedScale)
		if inv != y.Inverted {
			t.Errorf("%s: y inverted %v, figure claims %v", name, inv, y.Inverted)
		}
	}
	// A track that leaves the plate's square: the axes must still be the plate's.
	tr := lightTrack(1, 400)
	tr.Frames = append(tr.Frames, TrackFrame{T: 200, X: 5000, Y: -3000, OK: true, Light: true})
	pn, err := BuildTrajectory(tr, false)
	if err != nil {
		t.Fatal(err)
	}
	check("trajectory", pn.plot(), pn.X, pn.Y, true)
	g, _ := BuildOverlay("o", []Track{tr, lightTrack(2, 300)})
	check("overlay", g.overlayPlot(), g.Panels[0].X, g.Panels[0].Y, true)

	d, _ := BuildDistribution("d", "closest approach (cm)", []Group{{Name: "agent", Values: []float64{0.2, 0.9}}, {Name: "none", Values: []float64{1.4}}}, nil, 1)
	check("distribution", d.plot(), d.X, d.Y, true)

	s, _ := BuildSurvival("s", []SurvivalGroup{{Name: "agent", Events: []Event{{T: 10, Observed: true}, {T: 600}}}})
	check("survival", s.plot(), s.X, s.Y, true)

	c, _ := BuildCross("c", []string{"a", "b"}, []string{"a", "b"}, [][]float64{{0.2, 1}, {1.1, 0.3}}, nil)
	check("cross", c.plot(), c.X, c.Y, true)

	e, _ := BuildEffects("e", []LineSamples{{Line: "a", Agent: []float64{0.1, 0.3, 0.2}, Baselines: []Group{{Name: "none", Values: []float64{1, 1.2, 1.1}}}}}, 500, 0.95, 1)
	check("effects", e.plot(), e.X, e.Y, true)

	cu, _ := BuildLearningCurves("l", DefaultMetrics(), []MemberCurves{{Member: "0", Updates: []float64{0, 500, 1000}, Values: map[string][]float64{"critic_loss": {3, 2, math.Inf(1)}}}})
	check("curves", cu.panelPlot(0), cu.Panels[0].X, cu.Panels[0].Y, true)

	pm, _ := BuildPolicyMap(testMap(func(iy, ix, ib, ih int) float64 { return 0.3 }))
	for _, pos := range [][3]bool{{true, true, true}, {false, false, false}} {
		p := pm.panelPlot(pm.Panels[0][0], pos[0], pos[1], pos[2])
		check("policy-map panel", p, pm.BodyAxis, pm.HeadAxis, false)
	}
}
