package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/rig"
	"github.com/optoloop/optoloop/arenas/sim/render"
)

func runRigCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestRigConfigRoundTrip(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		args := []string{"rig", "config"}
		if asJSON {
			args = append(args, "--json")
		}
		out, err := runRigCmd(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := rig.ParseConfig([]byte(out), asJSON)
		if err != nil {
			t.Fatalf("json=%v: the printed config does not parse: %v\n%s", asJSON, err, out)
		}
		got, _ := json.Marshal(cfg.File())
		want, _ := json.Marshal(rig.DefaultConfig().File())
		if !bytes.Equal(got, want) {
			t.Fatalf("json=%v: round trip changed the config:\n%s\nwant\n%s", asJSON, got, want)
		}
	}
}

// TestRigCheck runs `rig check` on a rig whose camera is a rendered video and whose light is a
// file-backed GPIO value file.
func TestRigCheck(t *testing.T) {
	dir := t.TempDir()
	cal := arenas.Calibration{PxPerCM: 40, CenterX: 80, CenterY: 72, PlateRadius: 70, Width: 160, Height: 144, FramePeriod: 1}
	cam, err := render.New(render.DefaultConfig(cal))
	if err != nil {
		t.Fatal(err)
	}
	video := filepath.Join(dir, "plate.avi")
	vw, err := gocv.VideoWriterFile(video, "MJPG", 15, cal.Width, cal.Height, false)
	if err != nil || !vw.IsOpened() {
		t.Fatalf("video writer: %v", err)
	}
	pix := make([]byte, cal.Width*cal.Height)
	for i := 0; i < 12; i++ {
		cam.Render(pix, render.Worm{}, false)
		m, err := gocv.NewMatFromBytes(cal.Height, cal.Width, gocv.MatTypeCV8UC1, pix)
		if err != nil {
			t.Fatal(err)
		}
		if err := vw.Write(m); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	vw.Close()
	value := filepath.Join(dir, "value")
	if err := os.WriteFile(value, []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "rig.yaml")
	doc := "calibration: {px_per_cm: 40, center_x_px: 80, center_y_px: 72, plate_radius_px: 70, width_px: 160, height_px: 144, frame_period: 1ms}\n" +
		"camera: {source: " + video + ", api: any, period: 0}\n" +
		"light: {driver: gpio, gpio: {path: " + value + ", verify: true}}\n"
	if err := os.WriteFile(conf, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	pngPath := filepath.Join(dir, "first.png")
	out, err := runRigCmd(t, "rig", "check", "--config", conf, "--frames", "5", "--light", "--png", pngPath)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res rigCheck
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if res.Frames != 5 || res.MeanGrey < 60 || res.MeanGrey > 220 || res.LightOnGrey == nil || res.LightOffGrey == nil || res.Stats.Delivered != 7 {
		t.Fatalf("summary %+v", res)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 160 || b.Dy() != 144 {
		t.Fatalf("first frame PNG is %v", b)
	}
	if b, _ := os.ReadFile(value); strings.TrimSpace(string(b)) != "0" {
		t.Fatalf("light left %q after rig check", b)
	}

	// Bad input: one-line errors, nothing written.
	for _, args := range [][]string{
		{"rig", "check", "--config", conf, "--frames", "0"},
		{"rig", "check", "--config", filepath.Join(dir, "none.yaml")},
	} {
		if _, err := runRigCmd(t, args...); err == nil {
			t.Fatalf("%v: no error", args)
		}
	}
	// A recording shorter than --frames: the camera stops, a clear error, the light is off.
	_, err = runRigCmd(t, "rig", "check", "--config", conf, "--frames", "50")
	if err == nil || !strings.Contains(err.Error(), "camera failed") {
		t.Fatalf("short recording: %v, want a camera error", err)
	}
}
