//go:build !race

package track

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// helmsReference is the Helms WormTracker's own output for helms.avi: per frame its 32-point
// skeleton (head not resolved), null where it has none.
type helmsReference struct {
	PixelsPerMicron float64 `json:"pixels_per_micron"`
	Frames          map[string]*struct {
		Midline [][2]float64 `json:"midline"`
	} `json:"frames"`
}

// TestHelmsRecording tracks helms.avi (a nearly still lin-44 worm ~40 px long, rebuilt from the
// Helms tracker's crops; 436 px/cm) at its scale and with --px-per-cm auto, through
// TrackFiles as `optoloop track` does: the worm is found in every frame, and its midline lies
// within 1 px of the Helms skeleton (either order; mean distance both ways) in >= 90 % of the
// frames that have one.
func TestHelmsRecording(t *testing.T) {
	dir := dataDir(t, "helms-wormtracker")
	raw, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref helmsReference
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	for _, auto := range []bool{false, true} {
		t.Run(fmt.Sprintf("auto scale %v", auto), func(t *testing.T) {
			c := DefaultFileConfig()
			c.Video = filepath.Join(dir, "helms.avi")
			c.PxPerCM, c.AutoScale, c.Midline = 436, auto, true
			var out bytes.Buffer
			sum, err := TrackFiles(context.Background(), c, &out, nil)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Scale != nil {
				t.Logf("scale %s", sum.Scale)
				// The worm is 0.93 mm long (the reference's length_um): taken as 1 mm.
				if r := sum.Scale.PxPerCM / 436; r < 0.8 || r > 1.1 {
					t.Errorf("estimated %.0f px/cm, the recording is at 436", sum.Scale.PxPerCM)
				}
			}
			recs := decodeRecords(t, out.Bytes())
			var withRef, close1 int
			var dists []float64
			for _, r := range recs {
				if !r.OK {
					t.Errorf("frame %d: %s, want the worm found", r.Frame, r.Status)
					continue
				}
				fr := ref.Frames[strconv.Itoa(r.Frame)]
				if fr == nil || len(fr.Midline) < 2 {
					continue
				}
				withRef++
				d := meanMutualDistance(r.Midline, fr.Midline)
				dists = append(dists, d)
				if d <= 1 {
					close1++
				}
			}
			share := float64(close1) / float64(withRef)
			t.Logf("frames %d, found %d, confident %d; with a reference skeleton %d, midline within 1 px in %d (%.1f%%), median distance %.2f px",
				sum.Frames, sum.Found, sum.Confident, withRef, close1, 100*share, median(dists))
			if sum.Frames != 123 || withRef < 100 {
				t.Errorf("%d frames, %d with a reference, want 123 and >= 100", sum.Frames, withRef)
			}
			if share < 0.9 {
				t.Errorf("midline within 1 px of the Helms skeleton in %.1f%% of frames, want >= 90%%", 100*share)
			}
		})
	}
}

// meanMutualDistance is the mean distance from the points of a to the polyline b and from the
// points of b to the polyline a, averaged (order and direction do not matter).
func meanMutualDistance(a, b [][2]float64) float64 {
	if len(a) < 2 || len(b) < 2 {
		return math.Inf(1)
	}
	var s float64
	for _, p := range a {
		s += distToPolyline(p, b)
	}
	for _, p := range b {
		s += distToPolyline(p, a)
	}
	return s / float64(len(a)+len(b))
}
