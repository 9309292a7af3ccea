//go:build !race

package track

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// TestWormsPyRecording tracks the WormsPy clip (a tracking microscope: the stage follows the
// worm, which is longer than the 256 px field and often cut by its border; bright old tracks
// in the agar everywhere; no worm in frames 0-70) with --follows-worm and --px-per-cm auto: no
// ok pose in frames 0-70, every confident midline on the worm (the frame
// thresholded well below the agar), and at most 3 head/tail swaps between consecutive poses.
func TestWormsPyRecording(t *testing.T) {
	path := filepath.Join(dataDir(t, "wormspy"), "test.avi")
	bodies := wormspyBodies(t, path)
	for _, scale := range []float64{0} {
		t.Run(fmt.Sprintf("px per cm %v", scale), func(t *testing.T) {
			c := DefaultFileConfig()
			c.Video, c.FollowsWorm, c.Midline = path, true, true
			c.PxPerCM, c.AutoScale = scale, scale == 0
			var out bytes.Buffer
			sum, err := TrackFiles(context.Background(), c, &out, nil)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Scale != nil {
				t.Logf("scale %s", sum.Scale)
			}
			recs := decodeRecords(t, out.Bytes())
			if len(recs) != 830 || len(bodies) != 830 {
				t.Fatalf("%d records, %d frames, want 830", len(recs), len(bodies))
			}
			var okEmpty, ok, okOnBody, conf, confOff, swaps int
			var prev *Record
			for i := range recs {
				r := &recs[i]
				if !r.OK {
					prev = nil
					continue
				}
				if r.Frame <= 70 {
					okEmpty++
					t.Errorf("frame %d has no worm, yet an ok pose (%s, confidence %.2f, flags %v)", r.Frame, r.Status, r.Confidence, r.Flags)
				}
				ok++
				on := bodies[r.Frame].covers(r.Midline)
				if on {
					okOnBody++
				}
				if r.Confidence >= Confident {
					conf++
					if !on {
						confOff++
						t.Errorf("frame %d: a confident midline (%.2f) leaves the worm", r.Frame, r.Confidence)
					}
				}
				if prev != nil && dist(r.Head, prev.Tail) < dist(r.Head, prev.Head) {
					swaps++
					t.Logf("frame %d: head/tail swapped", r.Frame)
				}
				prev = r
			}
			t.Logf("frames %d: ok %d (midline on the worm in %d), confident %d (off the worm %d), ok in frames 0-70 %d, head/tail swaps %d",
				len(recs), ok, okOnBody, conf, confOff, okEmpty, swaps)
			if swaps > 3 {
				t.Errorf("%d head/tail swaps, want <= 3", swaps)
			}
			if ok < 400 {
				t.Errorf("an ok pose in %d frames, want the worm (in view from frame 71) in >= 400", ok)
			}
		})
	}
}

// body is a thresholded frame: pixels well below the agar's level (the worm; the old tracks
// are brighter than the agar).
type body struct {
	w, h int
	in   []bool
}

// covers reports whether every midline point lies on the body or within 1 px of it.
func (b body) covers(mid [][2]float64) bool {
	for _, p := range mid {
		x, y := int(math.Round(p[0])), int(math.Round(p[1]))
		hit := false
		for dy := -1; dy <= 1 && !hit; dy++ {
			for dx := -1; dx <= 1 && !hit; dx++ {
				nx, ny := x+dx, y+dy
				hit = nx >= 0 && ny >= 0 && nx < b.w && ny < b.h && b.in[ny*b.w+nx]
			}
		}
		if !hit {
			return false
		}
	}
	return len(mid) > 0
}

// wormspyBodies reads the clip and thresholds each frame 25 grey levels below its median.
func wormspyBodies(t *testing.T, path string) []body {
	t.Helper()
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	img, grey := gocv.NewMat(), gocv.NewMat()
	defer img.Close()
	defer grey.Close()
	var out []body
	for vc.Read(&img) && !img.Empty() {
		gocv.CvtColor(img, &grey, gocv.ColorBGRToGray)
		f := matFrame(t, grey)
		var h [256]int
		for _, v := range f.Pix {
			h[v]++
		}
		med := histQuantile(&h, len(f.Pix), 0.5)
		b := body{w: f.Width, h: f.Height, in: make([]bool, len(f.Pix))}
		for i, v := range f.Pix {
			b.in[i] = int(v) < med-25
		}
		out = append(out, b)
	}
	return out
}
