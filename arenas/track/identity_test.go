package track

import (
	"math"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas"
)

// straightWorm is a straight midline of 49 points with its head at head, pointing along dir.
func straightWorm(head [2]float64, dir, length float64) [][2]float64 {
	mid := make([][2]float64, 49)
	for i := range mid {
		s := length * float64(i) / 48
		mid[i] = [2]float64{head[0] - s*math.Cos(dir), head[1] - s*math.Sin(dir)}
	}
	return mid
}

// TestIdentityRules drives the head/tail logic with a straight worm sliding along its axis at
// 3 frames per second: settling by the first motion, continuity, the 10 s backwards rule and
// a fresh settling after a loss.
func TestIdentityRules(t *testing.T) {
	cfg := DefaultConfig(arenas.DefaultCalibration())
	const length = 54.0
	period := cfg.Calibration.FramePeriod
	t0 := time.Unix(1000, 0)
	type step struct {
		frames  int
		speed   float64 // px/s along the worm's true head direction (negative: reversal)
		lost    bool    // frames without a worm
		settled bool    // expected after the step
		headOK  bool    // tracker's head is the true head after the step
		swaps   int     // total swaps by the 10 s rule after the step
	}
	tests := []struct {
		name     string
		reversed bool // the tracker first sees the midline tail first
		steps    []step
	}{
		{"settles forward, keeps a short reversal", false, []step{
			{frames: 6, speed: 10, settled: true, headOK: true},
			{frames: 9, speed: -10, settled: true, headOK: true}, // 3 s reversal
			{frames: 30, speed: 10, settled: true, headOK: true},
		}},
		{"settles when first seen tail first", true, []step{
			{frames: 1, speed: 10, settled: false, headOK: false},
			{frames: 6, speed: 10, settled: true, headOK: true},
		}},
		{"no motion, no settling", true, []step{
			{frames: 30, speed: 0, settled: false, headOK: false},
		}},
		{"backwards for 10 s swaps once", false, []step{
			{frames: 6, speed: 10, settled: true, headOK: true},
			{frames: 29, speed: -10, settled: true, headOK: true},
			{frames: 2, speed: -10, settled: true, headOK: false, swaps: 1},
			{frames: 20, speed: -10, settled: true, headOK: false, swaps: 1},
		}},
		{"slow backwards creep below the floor never swaps", false, []step{
			{frames: 6, speed: 10, settled: true, headOK: true},
			{frames: 60, speed: -1, settled: true, headOK: true},
		}},
		{"a long loss unsettles, motion settles again", false, []step{
			{frames: 6, speed: 10, settled: true, headOK: true},
			{frames: 6, lost: true},
			{frames: 1, speed: 10, settled: false, headOK: true},
			{frames: 6, speed: 10, settled: true, headOK: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var id identity
			head := [2]float64{500, 500}
			dir := 0.3
			now := t0
			for k, st := range tt.steps {
				var lastHead [2]float64
				for range st.frames {
					now = now.Add(period)
					head[0] += st.speed * period.Seconds() * math.Cos(dir)
					head[1] += st.speed * period.Seconds() * math.Sin(dir)
					if st.lost {
						id.lostAt(now)
						continue
					}
					mid := straightWorm(head, dir, length)
					if tt.reversed && k == 0 && !id.have {
						for i, j := 0, len(mid)-1; i < j; i, j = i+1, j-1 {
							mid[i], mid[j] = mid[j], mid[i]
						}
					}
					c := [2]float64{}
					c[0], c[1] = centre(mid)
					out, _ := id.orient(mid, make([]float64, len(mid)), make([]float64, len(mid)), c, now, cfg, length, false)
					lastHead = out[0]
				}
				if st.lost {
					continue
				}
				if id.settled != st.settled {
					t.Errorf("step %d: settled %v, want %v", k, id.settled, st.settled)
				}
				if got := dist(lastHead, head) < 1; got != st.headOK {
					t.Errorf("step %d: head on the true head %v, want %v", k, got, st.headOK)
				}
				if id.swaps != st.swaps {
					t.Errorf("step %d: %d swaps by the 10 s rule, want %d", k, id.swaps, st.swaps)
				}
			}
		})
	}
}
