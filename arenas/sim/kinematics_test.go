package sim

import (
	"context"
	"math"
	"testing"
)

// TestKinematics checks the wild type without light against the ranges of docs/PROTOCOL.md
// section 3, measured from the true pose at the camera's 3 Hz: forward speed 0.15-0.25 mm/s,
// reversals 1-3 per minute lasting 1-3 s, undulation 0.3-0.5 Hz, head swings of 30-50 degrees,
// a body of about 1 mm (54 px) and 3-5 px wide.
func TestKinematics(t *testing.T) {
	const animals, frames = 16, 900 // 300 s each
	var (
		fwdDist, fwdTime    float64
		revCount, revFrames int
		minutes             float64
		crossings           int
		undTime             float64
		swingSq             float64
		swingN              int
		lengthSum, widthMax float64
		lengthN             int
	)
	for s := uint64(1); s <= animals; s++ {
		cfg := DefaultConfig(mustLine(t, "73"))
		cfg.NoRender = true
		cfg.Seed = 40 + s
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		period := cfg.Calibration.FramePeriod.Seconds()
		pxmm := cfg.Calibration.PxPerCM / 10
		var rel []float64 // head minus body angle in a forward stretch
		var prevX, prevY float64
		prevState := Pause
		flush := func() {
			if len(rel) >= 24 {
				// Remove the slowly varying bend (circling) with a one-period moving average,
				// then count zero crossings with 3 degree hysteresis.
				const w = 4
				sign := 0
				for i := w; i < len(rel)-w; i++ {
					m := 0.0
					for j := i - w; j <= i+w; j++ {
						m += rel[j]
					}
					d := rel[i] - m/(2*w+1)
					swingSq += d * d
					swingN++
					if d > 0.05 && sign <= 0 {
						if sign < 0 {
							crossings++
						}
						sign = 1
					} else if d < -0.05 && sign >= 0 {
						if sign > 0 {
							crossings++
						}
						sign = -1
					}
				}
				undTime += float64(len(rel)-2*w) * period
			}
			rel = rel[:0]
		}
		for i := 0; i < frames; i++ {
			if _, err := a.NextFrame(context.Background()); err != nil {
				t.Fatal(err)
			}
			p := a.Pose()
			st := a.Model().State()
			if i > 0 && st == Forward && prevState == Forward {
				fwdDist += math.Hypot(p.X-prevX, p.Y-prevY) / pxmm
				fwdTime += period
			}
			if st == Reversal {
				revFrames++
			}
			if st == Forward {
				rel = append(rel, math.Remainder(p.HeadAngle-p.BodyAngle, 2*math.Pi))
			} else {
				flush()
			}
			prevX, prevY, prevState = p.X, p.Y, st
			if i%100 == 0 {
				l := 0.0
				for k := 1; k < len(p.Midline); k++ {
					l += math.Hypot(p.Midline[k][0]-p.Midline[k-1][0], p.Midline[k][1]-p.Midline[k-1][1])
				}
				lengthSum += l
				lengthN++
				for _, w := range a.wid {
					widthMax = math.Max(widthMax, w)
				}
			}
		}
		flush()
		m := a.Model()
		revCount += m.Reversals() - m.EdgeReversals()
		minutes += m.Seconds() / 60
		a.Close()
	}
	check := func(name string, v, lo, hi float64) {
		t.Logf("%s: %.3f (want %v-%v)", name, v, lo, hi)
		if v < lo || v > hi {
			t.Errorf("%s %.3f outside %v-%v", name, v, lo, hi)
		}
	}
	check("forward speed, mm/s", fwdDist/fwdTime, 0.15, 0.25)
	check("spontaneous reversals per minute", float64(revCount)/minutes, 1, 3)
	check("reversal duration, s (from frames in reversal)", float64(revFrames)/3/float64(revCount), 1, 3)
	check("undulation frequency, Hz", float64(crossings)/2/undTime, 0.3, 0.5)
	check("head swing amplitude, deg", math.Sqrt(2*swingSq/float64(swingN))*180/math.Pi, 30, 50)
	check("body length, px", lengthSum/float64(lengthN), 45, 65)
	check("largest body width, px", widthMax, 3, 5.5)
}
