package track

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
)

// dataDir returns ../shared/data next to the repository root, skipping the test when absent.
func dataDir(t testing.TB, sub string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root (go.mod) not found; skipping the real-recording test")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "data", sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real recordings not available at %s (%v); skipping", p, err)
	}
	return p
}

// readGrey decodes an image file into a grey frame.
func readGrey(t testing.TB, path string) arenas.Frame {
	t.Helper()
	m := gocv.IMRead(path, gocv.IMReadGrayScale)
	defer m.Close()
	if m.Empty() {
		t.Fatalf("cannot decode %s", path)
	}
	return matFrame(t, m)
}

func matFrame(t testing.TB, m gocv.Mat) arenas.Frame {
	t.Helper()
	b, err := m.DataPtrUint8()
	if err != nil {
		t.Fatal(err)
	}
	return arenas.Frame{Width: m.Cols(), Height: m.Rows(), Pix: append([]byte(nil), b...)}
}

type wormposeTruth struct {
	Frames []struct {
		Frame    int          `json:"frame"`
		File     string       `json:"file"`
		Skeleton [][2]float64 `json:"skeleton"`
		Width    []float64    `json:"width"`
	} `json:"frames"`
}

// distToPolyline is the distance from p to the polyline q.
func distToPolyline(p [2]float64, q [][2]float64) float64 {
	best := math.Inf(1)
	for i := 1; i < len(q); i++ {
		a, b := q[i-1], q[i]
		dx, dy := b[0]-a[0], b[1]-a[1]
		l2 := dx*dx + dy*dy
		s := 0.0
		if l2 > 0 {
			s = math.Max(0, math.Min(1, ((p[0]-a[0])*dx+(p[1]-a[1])*dy)/l2))
		}
		best = math.Min(best, math.Hypot(p[0]-a[0]-s*dx, p[1]-a[1]-s*dy))
	}
	return best
}

func dist(a, b [2]float64) float64 { return math.Hypot(a[0]-b[0], a[1]-b[1]) }

// smallRig is the reference rig's scale (540 px/cm) on a quarter of its frame (1080x960, a
// plate of 0.83 cm radius), so that the tests render a quarter of the pixels.
func smallRig() arenas.Calibration {
	c := arenas.DefaultCalibration()
	c.Width, c.Height = 1080, 960
	c.CenterX, c.CenterY = 540, 480
	c.PlateRadius = 450
	return c
}
