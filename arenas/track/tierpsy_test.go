package track

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// TestTierpsyVideo tracks the whole tierpsy test clip (15 fps, a worm 40-50 px long, black
// outside a box around it, debris late in the clip) with continuity between frames.
func TestTierpsyVideo(t *testing.T) {
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
	tr, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var n, found, confident, jumps, swaps int
	var prev Result
	statuses := map[Status]int{}
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
				t.Logf("frame %d: head/tail swapped", n-1)
			}
		}
		prev, havePrev = r, true
	}
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
	if swaps > 3 {
		t.Errorf("%d head/tail swaps, want <= 3", swaps)
	}
}
