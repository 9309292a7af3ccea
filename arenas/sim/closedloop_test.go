package sim

import (
	"context"
	"math"
	"testing"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/episode"
)

// closedLoop runs one episode in which policy decides the light from the true pose each frame
// and returns its metrics and the body angle's total signed rotation (radians, unwrapped).
func closedLoop(t testing.TB, line Line, seed uint64, targetCM [2]float64, seconds float64, policy func(p arenas.Pose, tx, ty float64) bool) (episode.Metrics, float64) {
	t.Helper()
	cfg := DefaultConfig(line)
	cfg.NoRender = true
	cfg.Seed = seed
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cal := a.Calibration()
	tx, ty := cal.CenterX+targetCM[0]*cal.PxPerCM, cal.CenterY+targetCM[1]*cal.PxPerCM
	acc, _ := episode.NewAccumulator(cal.PxPerCM)
	ctx := context.Background()
	frames := int(seconds/cal.FramePeriod.Seconds()) + 1
	var rot, prev float64
	for i := 0; i < frames; i++ {
		f, err := a.NextFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p := a.Pose()
		if i > 0 {
			rot += math.Remainder(p.BodyAngle-prev, 2*math.Pi)
		}
		prev = p.BodyAngle
		if err := acc.Add(episode.Record{T: float64(i) * cal.FramePeriod.Seconds(), X: p.X, Y: p.Y, TargetX: tx, TargetY: ty, Light: f.Light.On}); err != nil {
			t.Fatal(err)
		}
		if err := a.SetLight(ctx, arenas.Light{On: policy(p, tx, ty)}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := acc.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	return m, rot
}

// facingAway: light when the body points more than 90 degrees away from the target.
func facingAway(p arenas.Pose, tx, ty float64) bool {
	return math.Cos(p.BodyAngle-math.Atan2(ty-p.Y, tx-p.X)) < 0
}

// headLeft/headRight: light while the head is swung to one side of the body axis.
func headSide(sign float64) func(p arenas.Pose, tx, ty float64) bool {
	return func(p arenas.Pose, _, _ float64) bool { return sign*math.Sin(p.HeadAngle-p.BodyAngle) > 0.2 }
}
