//go:build matprofile

package track

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas/sim/render"
)

// TestNoMatLeak tracks many frames (background and local threshold, found and lost, the file
// reader and overlay) and checks with gocv's MatProfile that no OpenCV matrix outlives its
// owner: the count does not grow while tracking and is back to its start after Close.
// Run with: go test -tags matprofile -run NoMatLeak ./arenas/track/
func TestNoMatLeak(t *testing.T) {
	base := gocv.MatProfile.Count()
	s := newScene(t, 4, true)
	c := [2]float64{s.cal.CenterX, s.cal.CenterY}
	tr := s.trackerWithBackground(t)
	still, err := New(DefaultConfig(s.cal), nil)
	if err != nil {
		t.Fatal(err)
	}
	var during int
	for i := range 200 {
		m, w := wormShape(49, 54, 4.5, sinuous(float64(i)/10))
		f := s.frame(uint64(i), render.Worm{Midline: shift(m, c[0]+float64(i%20), c[1]), Width: w})
		if i%17 == 0 {
			f = s.empty // lost: whole-frame search
		}
		tr.Track(f)
		still.Track(crop(f, c, 200))
		if i == 20 {
			during = gocv.MatProfile.Count()
		}
	}
	if n := gocv.MatProfile.Count(); n != during {
		t.Errorf("%d OpenCV matrices alive after 200 frames, %d after 20: a leak", n, during)
	}
	tr.Close()
	still.Close()
	cfg := DefaultFileConfig()
	cfg.Video = filepath.Join(dataDir(t, "tierpsy-test"), "test.avi")
	cfg.Overlay = filepath.Join(t.TempDir(), "ov.avi")
	var out bytes.Buffer
	if _, err := TrackFiles(context.Background(), cfg, &out, nil); err != nil {
		t.Fatal(err)
	}
	if n := gocv.MatProfile.Count(); n != base {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Errorf("%d OpenCV matrices alive after Close, %d before: a leak\n%s", n, base, b.String())
	}
}
