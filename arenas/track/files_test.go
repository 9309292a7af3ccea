package track

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas/sim/render"
)

func decodeRecords(t *testing.T, out []byte) []Record {
	t.Helper()
	var recs []Record
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestTrackFilesVideo tracks the tierpsy clip through TrackFiles with an overlay video.
func TestTrackFilesVideo(t *testing.T) {
	video := filepath.Join(dataDir(t, "tierpsy-test"), "test.avi")
	ov := filepath.Join(t.TempDir(), "overlay.avi")
	c := DefaultFileConfig()
	c.Video, c.Overlay, c.PxPerCM, c.FollowsWorm = video, ov, 450, true
	var out bytes.Buffer
	sum, err := TrackFiles(context.Background(), c, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := decodeRecords(t, out.Bytes())
	if sum.Frames != 563 || len(recs) != 563 {
		t.Fatalf("%d frames, %d records, want 563", sum.Frames, len(recs))
	}
	if hint := sum.ScaleHint(); hint != "" {
		t.Errorf("scale hint %q at the right scale", hint)
	}
	ok := 0
	for i, r := range recs {
		if r.Frame != i {
			t.Fatalf("record %d has frame %d", i, r.Frame)
		}
		if r.Midline != nil {
			t.Fatalf("record %d has a midline without --midline", i)
		}
		if r.OK {
			ok++
		}
	}
	if ok < 500 {
		t.Errorf("worm found in %d of 563 frames", ok)
	}
	vc, err := gocv.VideoCaptureFile(ov)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	img := gocv.NewMat()
	defer img.Close()
	frames, green := 0, 0
	for vc.Read(&img) && !img.Empty() {
		if frames == 100 {
			for y := range img.Rows() {
				for x := range img.Cols() {
					v := img.GetVecbAt(y, x)
					if int(v[1]) > int(v[2])+60 && int(v[1]) > int(v[0])+60 {
						green++
					}
				}
			}
		}
		frames++
	}
	if frames != 563 {
		t.Errorf("overlay video has %d frames, want 563", frames)
	}
	if green < 20 {
		t.Errorf("overlay frame 100 has %d green (midline) pixels", green)
	}
}

// TestTrackFilesImages tracks a directory of rendered still images, each on its own.
func TestTrackFilesImages(t *testing.T) {
	s := newScene(t, 9, false)
	dir := t.TempDir()
	c := [2]float64{s.cal.CenterX, s.cal.CenterY}
	for i := range 3 {
		m, w := wormShape(49, 54, 4.5, sinuous(float64(i)))
		f := crop(s.frame(0, render.Worm{Midline: shift(m, c[0], c[1]), Width: w}), [2]float64{c[0] + 27, c[1]}, 120)
		mat, err := gocv.NewMatFromBytes(f.Height, f.Width, gocv.MatTypeCV8U, f.Pix)
		if err != nil {
			t.Fatal(err)
		}
		if !gocv.IMWrite(filepath.Join(dir, []string{"b.png", "a.png", "c.png"}[i]), mat) {
			t.Fatal("cannot write test image")
		}
		mat.Close()
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultFileConfig()
	cfg.Images, cfg.Midline, cfg.QuantizeDeg = dir, true, 30
	cfg.Overlay = filepath.Join(t.TempDir(), "ov")
	var out bytes.Buffer
	sum, err := TrackFiles(context.Background(), cfg, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := decodeRecords(t, out.Bytes())
	if len(recs) != 3 || sum.Found != 3 || sum.Confident != 3 {
		t.Fatalf("%d records, summary %+v, want 3 found confidently", len(recs), sum)
	}
	for i, r := range recs {
		if want := []string{"a.png", "b.png", "c.png"}[i]; r.File != want {
			t.Errorf("record %d is %q, want %q (sorted)", i, r.File, want)
		}
		if !r.OK || r.Confidence < Confident || len(r.Midline) != 49 {
			t.Errorf("record %d: ok %v conf %v, %d midline points", i, r.OK, r.Confidence, len(r.Midline))
		}
		for _, a := range []float64{r.BodyAngleDeg, r.HeadAngleDeg} {
			if q := a / 30; math.Abs(q-math.Round(q)) > 1e-6 {
				t.Errorf("record %d: angle %v not quantized to 30 deg", i, a)
			}
		}
		if _, err := os.Stat(filepath.Join(cfg.Overlay, []string{"000000.png", "000001.png", "000002.png"}[i])); err != nil {
			t.Errorf("overlay image %d: %v", i, err)
		}
	}
	// At twice the scale the worms are 0.5 mm long, a larva's length: still tracked.
	cfg.PxPerCM, cfg.Overlay = 1080, ""
	sum, err = TrackFiles(context.Background(), cfg, &bytes.Buffer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Confident != 3 || sum.ScaleHint() != "" {
		t.Errorf("at twice the scale: summary %+v, hint %q", sum, sum.ScaleHint())
	}
	// At six times the scale they would be 0.17 mm long, shorter than any worm: no worm found
	// and a hint.
	cfg.PxPerCM = 3240
	sum, err = TrackFiles(context.Background(), cfg, &bytes.Buffer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Confident != 0 || !strings.Contains(sum.ScaleHint(), "--px-per-cm") {
		t.Errorf("at a wrong scale: summary %+v, hint %q", sum, sum.ScaleHint())
	}
	// Auto: the scale estimated from the images (the worms are 1 mm at 540 px/cm), said why.
	cfg.PxPerCM, cfg.AutoScale = 0, true
	out.Reset()
	sum, err = TrackFiles(context.Background(), cfg, &out, nil)
	for _, r := range decodeRecords(t, out.Bytes()) {
		t.Logf("auto: %s ok %v conf %v flags %v", r.File, r.OK, r.Confidence, r.Flags)
	}
	if err != nil {
		t.Fatal(err)
	}
	if sum.Scale == nil || math.Abs(sum.Scale.PxPerCM/540-1) > 0.15 || sum.Confident != 3 || !strings.Contains(sum.Scale.String(), "px long") {
		t.Errorf("auto scale: summary %+v, estimate %+v", sum, sum.Scale)
	} else {
		t.Logf("auto scale: %s", sum.Scale)
	}
}

// TestTrackFilesErrors checks that unusable input gives a clear error.
func TestTrackFilesErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	corrupt := filepath.Join(dir, "corrupt")
	for _, d := range []string{empty, corrupt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(corrupt, "00001.png"), []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.avi")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("garbage "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		c    FileConfig
		want string
	}{
		{"no input", FileConfig{PxPerCM: 540}, "exactly one"},
		{"two inputs", FileConfig{Video: garbage, Images: empty, PxPerCM: 540}, "exactly one"},
		{"bad scale", FileConfig{Images: empty, PxPerCM: -1}, "px per cm"},
		{"missing video", FileConfig{Video: filepath.Join(dir, "none.avi"), PxPerCM: 540}, "none.avi"},
		{"directory as video", FileConfig{Video: dir, PxPerCM: 540}, "is a directory"},
		{"garbage video", FileConfig{Video: garbage, PxPerCM: 540}, "garbage.avi"},
		{"missing directory", FileConfig{Images: filepath.Join(dir, "none"), PxPerCM: 540}, "none"},
		{"directory without images", FileConfig{Images: empty, PxPerCM: 540}, "no images"},
		{"corrupt image", FileConfig{Images: corrupt, PxPerCM: 540}, "00001.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := TrackFiles(context.Background(), tt.c, &out, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
