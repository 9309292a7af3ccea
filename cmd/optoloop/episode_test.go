package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
)

func TestEpisodeOnSimulatedArena(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ep.json")
	stdout, err := runCmd(t, "episode", "--line", "446", "--policy", "always", "--seconds", "10", "--target", "left", "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	var summary results.Episode
	if err := json.Unmarshal([]byte(stdout), &summary); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var e results.Episode
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	// always is random light at P = 1.
	if e.Condition != episode.KindRandom || e.LightProbability != 1 || e.Line != "446" || len(e.Frames) != 30 || summary.Frames != nil {
		t.Fatalf("episode %s at %v/%s with %d frames (summary %d)", e.Condition, e.LightProbability, e.Line, len(e.Frames), len(summary.Frames))
	}
	// left: 1.5 cm from the plate centre toward -x.
	if want := e.PlateCenter[0] - 1.5*e.PxPerCM; e.Target[0] != want || e.Target[1] != e.PlateCenter[1] {
		t.Fatalf("target %v, want (%v, %v)", e.Target, want, e.PlateCenter[1])
	}
	for i, f := range e.Frames {
		if f.OK && !f.Light {
			t.Fatalf("frame %d: light off under an always-on policy", i)
		}
	}
	if summary.ClosestCM != e.ClosestCM || e.ClosestCM <= 0 {
		t.Fatalf("closest %v vs %v", summary.ClosestCM, e.ClosestCM)
	}
}

func TestEpisodeBadInput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "ep.json")
	badEnsemble := filepath.Join(dir, "ens")
	if err := os.MkdirAll(badEnsemble, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no arena", []string{"--policy", "none"}, "exactly one of --rig and --line"},
		{"two arenas", []string{"--rig", "r.yaml", "--line", "446", "--policy", "none"}, "exactly one of --rig and --line"},
		{"no policy", []string{"--line", "446"}, "exactly one of --policy and --ensemble"},
		{"unknown line", []string{"--line", "999", "--policy", "none"}, `unknown line "999"`},
		{"bad policy", []string{"--line", "446", "--policy", "sometimes"}, "--policy"},
		{"agent line without an ensemble", []string{"--line", "446", "--policy", "none", "--agent-line", "301"}, "--agent-line"},
		{"empty ensemble folder", []string{"--line", "446", "--ensemble", badEnsemble}, "--ensemble"},
		{"negative seconds", []string{"--line", "446", "--policy", "none", "--seconds", "-1"}, "--seconds"},
		{"target outside the plate", []string{"--line", "446", "--policy", "none", "--target", "3,0"}, "outside"},
		{"missing rig config", []string{"--rig", filepath.Join(dir, "nope.yaml"), "--policy", "none"}, "nope.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"episode", "--seconds", "3", "--out", out}, tt.args...)
			_, err := runCmd(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a refused episode wrote its output file")
			}
		})
	}
}

// TestEpisodeWithEnsemble: an ensemble of the animals' own line runs an agent episode, another
// line's a cross episode.
func TestEpisodeWithEnsemble(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ensemble")
	saveRandomEnsemble(t, dir, 8, 1)
	for _, tt := range []struct {
		agentLine string
		kind      episode.Kind
		wantAgent string
	}{
		{"", episode.KindAgent, "446"},
		{"301", episode.KindCross, "301"},
	} {
		t.Run(string(tt.kind), func(t *testing.T) {
			args := []string{"episode", "--line", "446", "--ensemble", dir, "--seconds", "6", "--id", "ens", "--no-render"}
			if tt.agentLine != "" {
				args = append(args, "--agent-line", tt.agentLine)
			}
			stdout, err := runCmd(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			var e results.Episode
			if err := json.Unmarshal([]byte(stdout), &e); err != nil {
				t.Fatalf("stdout %q: %v", stdout, err)
			}
			if e.ID != "ens" || e.Condition != tt.kind || e.Line != "446" || e.AgentLine != tt.wantAgent || e.LightProbability != 0 {
				t.Fatalf("episode %+v", e)
			}
		})
	}
}

// TestEpisodeOnRig runs an episode on a rig whose camera plays a recorded simulated plate and
// whose light is a file-backed GPIO value file; the light is off afterwards.
// rigFixture writes a rig file whose camera is a 40-frame video of a simulated 446 plate (640 x
// 640 at 540 px/cm, 3 Hz) and whose light is a GPIO value file (holding "0"); it returns both
// paths.
func rigFixture(t *testing.T) (conf, value string) {
	t.Helper()
	dir := t.TempDir()
	cal := arenas.Calibration{PxPerCM: 540, CenterX: 320, CenterY: 320, PlateRadius: 300, Width: 640, Height: 640, FramePeriod: time.Second / 3}
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	l, err := cat.Line("446")
	if err != nil {
		t.Fatal(err)
	}
	scfg := sim.DefaultConfig(l)
	scfg.Calibration = cal
	a, err := sim.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	video := filepath.Join(dir, "plate.avi")
	vw, err := gocv.VideoWriterFile(video, "MJPG", 3, cal.Width, cal.Height, false)
	if err != nil || !vw.IsOpened() {
		t.Fatalf("video writer: %v", err)
	}
	for range 40 {
		f, err := a.NextFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m, err := gocv.NewMatFromBytes(f.Height, f.Width, gocv.MatTypeCV8UC1, f.Pix)
		if err != nil {
			t.Fatal(err)
		}
		err = vw.Write(m)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	vw.Close()
	value = filepath.Join(dir, "value")
	if err := os.WriteFile(value, []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf = filepath.Join(dir, "rig.yaml")
	doc := "calibration: {px_per_cm: 540, center_x_px: 320, center_y_px: 320, plate_radius_px: 300, width_px: 640, height_px: 640, frame_period: 333ms}\n" +
		"camera: {source: " + video + ", api: any, period: 0}\n" +
		"light: {driver: gpio, gpio: {path: " + value + ", verify: true}}\n"
	if err := os.WriteFile(conf, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf, value
}

func TestEpisodeOnRig(t *testing.T) {
	conf, value := rigFixture(t)
	stdout, err := runCmd(t, "episode", "--rig", conf, "--policy", "random:0.5", "--seconds", "3", "--target", "0.2,0", "--id", "rig-ep")
	if err != nil {
		t.Fatal(err)
	}
	var e results.Episode
	if err := json.Unmarshal([]byte(stdout), &e); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	if e.ID != "rig-ep" || e.Line != "rig" || e.Condition != episode.KindRandom || e.LightProbability != 0.5 || e.PxPerCM != 540 || e.LostFraction == 1 {
		t.Fatalf("episode %+v", e)
	}
	if b, _ := os.ReadFile(value); strings.TrimSpace(string(b)) != "0" {
		t.Fatalf("light left %q after the episode", b)
	}
	// A target off this rig's plate (0.56 cm radius) is refused before the rig runs.
	if _, err := runCmd(t, "episode", "--rig", conf, "--policy", "none", "--seconds", "3", "--target", "up"); err == nil || !strings.Contains(err.Error(), "outside the plate") {
		t.Fatalf("error %v, want a target outside the plate", err)
	}
}
