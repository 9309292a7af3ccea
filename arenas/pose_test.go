package arenas

import (
	"math"
	"testing"
)

func TestBodyAndHeadAngle(t *testing.T) {
	// A straight worm along +x with its head at the right end, and a bent head.
	straight := make([][2]float64, 21)
	for i := range straight {
		straight[i] = [2]float64{100 - float64(i)*2.5, 50}
	}
	bent := make([][2]float64, 21)
	copy(bent, straight)
	// Front 10 % (2 of 20 segments) turned to point down (+y).
	bent[0] = [2]float64{95, 55}
	bent[1] = [2]float64{95, 52.5}
	tests := []struct {
		name       string
		mid        [][2]float64
		body, head float64
	}{
		{"straight, head right", straight, 0, 0},
		{"straight, head left", reversed(straight), math.Pi, math.Pi},
		{"head bent down", bent, 0, math.Pi / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BodyAngle(tt.mid); math.Abs(math.Remainder(got-tt.body, 2*math.Pi)) > 0.05 {
				t.Errorf("body angle %.3f, want %.3f", got, tt.body)
			}
			if got := HeadAngle(tt.mid); math.Abs(math.Remainder(got-tt.head, 2*math.Pi)) > 1e-9 {
				t.Errorf("head angle %.3f, want %.3f", got, tt.head)
			}
		})
	}
}

func reversed(m [][2]float64) [][2]float64 {
	r := make([][2]float64, len(m))
	for i, p := range m {
		r[len(m)-1-i] = p
	}
	return r
}
