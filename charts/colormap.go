package charts

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot/palette"
)

// Viridis returns the colour of the perceptually uniform viridis map at t, clamped to [0, 1]:
// dark blue-violet at 0, green at 0.5, yellow at 1.
func Viridis(t float64) color.NRGBA {
	if math.IsNaN(t) {
		t = 0
	}
	t = math.Max(0, math.Min(1, t))
	// Degree-6 polynomial fit of matplotlib's viridis (Matt Zucker, shadertoy WlfXRN):
	// channel(t) = sum_k c[k] t^k for t in [0, 1].
	coeffs := [3][7]float64{
		{0.2777273272234177, 0.1050930431085774, -0.3308618287255563, -4.634230498983486, 6.228269936347081, 4.776384997670288, -5.435455855934631},
		{0.005407344544966578, 1.404613529898575, 0.214847559468213, -5.799100973351585, 14.17993336680509, -13.74514537774601, 4.645852612178535},
		{0.3340998053353061, 1.384590162594685, 0.09509516302823659, -19.33244095627987, 56.69055260068105, -65.35303263337234, 26.3124352495832},
	}
	var ch [3]uint8
	for i, c := range coeffs {
		v := c[6]
		for k := 5; k >= 0; k-- {
			v = v*t + c[k]
		}
		ch[i] = uint8(math.Round(255 * math.Max(0, math.Min(1, v))))
	}
	return color.NRGBA{R: ch[0], G: ch[1], B: ch[2], A: 255}
}

// ColorRange is the data range a colour map spans.
type ColorRange struct{ Min, Max float64 }

// Norm maps v into [0, 1] over the range (clamped).
func (r ColorRange) Norm(v float64) float64 {
	if !(r.Max > r.Min) {
		return 0.5
	}
	return math.Max(0, math.Min(1, (v-r.Min)/(r.Max-r.Min)))
}

// Color is the viridis colour of v in the range; NaN is light grey.
func (r ColorRange) Color(v float64) color.Color {
	if math.IsNaN(v) {
		return color.NRGBA{R: 210, G: 210, B: 210, A: 255}
	}
	return Viridis(r.Norm(v))
}

// probabilityRange chooses the colour range of probabilities from the data: from the smallest to
// the largest finite value, rounded outwards to steps of 0.01, at least minSpan wide (centred on
// the data) and inside [0, 1]. Unlike a fixed 0.45-0.55 range it neither hides strong policies
// nor inflates noise in flat ones beyond minSpan.
func probabilityRange(lo, hi, minSpan float64) ColorRange {
	lo = math.Floor(lo*100+1e-9) / 100
	hi = math.Ceil(hi*100-1e-9) / 100
	if hi-lo < minSpan {
		mid := (lo + hi) / 2
		lo, hi = mid-minSpan/2, mid+minSpan/2
	}
	if lo < 0 {
		hi, lo = math.Min(1, hi-lo), 0
	}
	if hi > 1 {
		lo, hi = math.Max(0, lo-(hi-1)), 1
	}
	return ColorRange{Min: lo, Max: hi}
}

// viridisMap is a palette.ColorMap of viridis over a range, for gonum/plot's colour bar.
type viridisMap struct {
	min, max, alpha float64
}

func newViridisMap(r ColorRange) *viridisMap { return &viridisMap{min: r.Min, max: r.Max, alpha: 1} }

func (m *viridisMap) At(v float64) (color.Color, error) {
	if v < m.min || v > m.max || math.IsNaN(v) {
		return nil, fmt.Errorf("charts: %v outside colour range [%v, %v]", v, m.min, m.max)
	}
	c := Viridis((v - m.min) / (m.max - m.min))
	c.A = uint8(math.Round(255 * m.alpha))
	return c, nil
}
func (m *viridisMap) SetMax(v float64)   { m.max = v }
func (m *viridisMap) SetMin(v float64)   { m.min = v }
func (m *viridisMap) Max() float64       { return m.max }
func (m *viridisMap) Min() float64       { return m.min }
func (m *viridisMap) SetAlpha(a float64) { m.alpha = a }
func (m *viridisMap) Alpha() float64     { return m.alpha }
func (m *viridisMap) Palette(n int) palette.Palette {
	cs := make([]color.Color, n)
	for i := range cs {
		t := 0.0
		if n > 1 {
			t = float64(i) / float64(n-1)
		}
		cs[i] = Viridis(t)
	}
	return viridisPalette(cs)
}

type viridisPalette []color.Color

func (p viridisPalette) Colors() []color.Color { return p }
