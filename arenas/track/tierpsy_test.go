package track

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// TestTierpsyVideo tracks the whole tierpsy test clip (15 fps, a worm 40-50 px long, black
// outside a box around it, debris late in the clip) with continuity between frames. The
// clip's field of view follows the worm (its centre stays in the middle of the frame), so the
// worm's motion in the frame says nothing about its head: identity rests on continuity
// (MotionIdentity off). With the motion rules on it is tracked too, and must not fail.
func TestTierpsyVideo(t *testing.T) {
	for _, motion := range []bool{false, true} {
		t.Run(fmt.Sprintf("motion identity %v", motion), func(t *testing.T) {
			swaps := trackTierpsy(t, motion)
			if !motion && swaps > 3 {
				t.Errorf("%d head/tail swaps, want <= 3", swaps)
			}
		})
	}
}

// trackTierpsy tracks the clip and checks it; it returns the number of head/tail swaps.
func trackTierpsy(t *testing.T, motion bool) int {
	path := filepath.Join(dataDir(t, "tierpsy-test"), "test.avi")
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	img, grey := gocv.NewMat(), gocv.NewMat()
	defer img.Close()
	defer grey.Close()
	cal := stillCalibration(128, 96, 450)
	cal.FramePeriod = time.Second / 15
	cfg := DefaultConfig(cal)
	cfg.PlateMask = false
	cfg.MotionIdentity = motion
	cfg.RequireSettled = motion
	tr, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var n, found, confident, jumps, swaps int
	var prev Result
	statuses := map[Status]int{}
	lo, hi := [2]float64{math.Inf(1), math.Inf(1)}, [2]float64{math.Inf(-1), math.Inf(-1)}
	havePrev := false
	maxJump := 0.0
	for vc.Read(&img) {
		if img.Empty() {
			break
		}
		gocv.CvtColor(img, &grey, gocv.ColorBGRToGray)
		f := matFrame(t, grey)
		f.Seq = uint64(n)
		r := tr.Track(f)
		n++
		if !r.OK {
			statuses[r.Status]++
			continue
		}
		found++
		lo[0], lo[1] = math.Min(lo[0], r.X), math.Min(lo[1], r.Y)
		hi[0], hi[1] = math.Max(hi[0], r.X), math.Max(hi[1], r.Y)
		if r.Confidence >= Confident {
			confident++
		}
		if havePrev {
			j := math.Hypot(r.X-prev.X, r.Y-prev.Y)
			maxJump = math.Max(maxJump, j)
			if j > r.Length/4 {
				jumps++
				t.Logf("frame %d: centre jumped %.1f px (body length %.1f)", n-1, j, r.Length)
			}
			if dist(r.Head, prev.Tail) < dist(r.Head, prev.Head) {
				swaps++
				t.Logf("frame %d: head/tail swapped (settled %v -> %v, guessed %v)", n-1, prev.Settled, r.Settled, tr.id.guessed)
			}
		}
		prev, havePrev = r, true
	}
	t.Logf("centre stayed within x %.0f-%.0f, y %.0f-%.0f of the %dx%d frame", lo[0], hi[0], lo[1], hi[1], 128, 96)
	t.Logf("frames %d, found %d, confident %d, not found %v, largest centre step %.2f px, jumps %d, swaps %d (of which by the 10 s rule %d)",
		n, found, confident, statuses, maxJump, jumps, swaps, tr.id.swaps)
	if n != 563 {
		t.Errorf("read %d frames, want 563", n)
	}
	if found < n*9/10 {
		t.Errorf("worm found in %d of %d frames, want >= 90%%", found, n)
	}
	if jumps > 0 {
		t.Errorf("%d centre jumps over a quarter body length", jumps)
	}
	return swaps
}
