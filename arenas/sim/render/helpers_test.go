package render

import "math"

// testWorm returns a worm of n=50 points centred on (cx, cy), body direction dir (radians),
// length L px, largest width wmax px, bent as a sine wave of amplitude amp px (one wavelength
// of 0.65 L), with a taper that is zero at both tips.
func testWorm(cx, cy, dir, L, wmax, amp float64) Worm {
	const n = 50
	w := Worm{Midline: make([][2]float64, n), Width: make([]float64, n)}
	cd, sd := math.Cos(dir), math.Sin(dir)
	for i := 0; i < n; i++ {
		u := float64(i) / (n - 1) // 0 at the head
		a := L * (0.5 - u)
		b := amp * math.Sin(2*math.Pi*u*L/(0.65*L))
		w.Midline[i] = [2]float64{cx + a*cd - b*sd, cy + a*sd + b*cd}
		w.Width[i] = wmax * math.Sqrt(math.Sin(math.Pi*u))
	}
	return w
}
