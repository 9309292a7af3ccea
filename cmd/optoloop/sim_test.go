package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCmd runs the root command with args and returns stdout and the error.
func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestSimBadInput(t *testing.T) {
	dir := t.TempDir()
	badCat := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badCat, []byte("lines:\n  - code: \"9\"\n    name: x\n    opsin: ChR2\n    sign: excitatory\n    neurons: [AIY]\n    wavelength_nm: 467\n    response: {speed_factor: -2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unknownField := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknownField, []byte("lines:\n  - code: \"9\"\n    name: x\n    colour: red\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	frames := filepath.Join(dir, "frames")
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown line", []string{"--line", "999"}, `unknown line "999"`},
		{"negative seconds", []string{"--seconds", "-5"}, "--seconds -5 must be positive"},
		{"zero seconds", []string{"--seconds", "0"}, "--seconds 0 must be positive"},
		{"absurd seconds", []string{"--seconds", "1e9"}, "absurd"},
		{"shorter than a frame", []string{"--seconds", "0.1"}, "shorter than one frame"},
		{"target outside plate", []string{"--target", "2.5,0"}, "outside the plate"},
		{"target malformed", []string{"--target", "north"}, `target "north"`},
		{"bad policy", []string{"--policy", "random:1.5"}, "within 0-1"},
		{"no episodes", []string{"--episodes", "0"}, "--episodes 0"},
		{"no parallel episodes", []string{"--parallel", "0"}, "--parallel 0"},
		{"bad frame-every", []string{"--frame-every", "0"}, "--frame-every 0"},
		{"frames without rendering", []string{"--no-render"}, "--frames needs rendering"},
		{"malformed catalogue", []string{"--lines-file", badCat}, `line "9": field response.speed_factor: -2 must be >= 0`},
		{"unknown catalogue field", []string{"--lines-file", unknownField}, `line "9": field colour not found`},
		{"missing catalogue", []string{"--lines-file", filepath.Join(dir, "nope.yaml")}, "lines file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"sim", "--frames", frames, "--seconds", "1"}, tt.args...)
			if tt.name == "frames without rendering" {
				args = append([]string{"sim", "--frames", frames}, tt.args...)
			}
			out, err := runCmd(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if out != "" {
				t.Fatalf("wrote output on bad input: %q", out)
			}
			if _, err := os.Stat(frames); !os.IsNotExist(err) {
				t.Fatalf("frames directory created on bad input (%v)", err)
			}
		})
	}
}

func TestSimJSON(t *testing.T) {
	out, err := runCmd(t, "sim", "--line", "301", "--episodes", "3", "--parallel", "2", "--seconds", "60",
		"--policy", "random:0.5", "--no-render", "--json", "--seed", "10")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d output lines, want 3:\n%s", len(lines), out)
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"line", "seed", "policy", "seconds", "closest_cm", "time_to_05cm_s", "light_fraction", "lost_fraction", "reversals_per_min", "mean_speed_mm_s", "final_distance_cm"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("episode %d lacks %q: %s", i, k, l)
			}
		}
		if m["line"] != "301" || m["seed"] != float64(10+i) || m["policy"] != "random:0.5" || m["seconds"] != 60.0 {
			t.Fatalf("episode %d: %s", i, l)
		}
		if lf := m["light_fraction"].(float64); lf < 0.2 || lf > 0.8 {
			t.Fatalf("episode %d light fraction %v under random:0.5", i, lf)
		}
		if m["lost_fraction"] != 0.0 || !(m["reversals_per_min"].(float64) > 0) {
			t.Fatalf("episode %d: the true pose lost frames or the simulator counted no reversal: %s", i, l)
		}
	}
	// The same command gives the same output (seeded), whatever the number of parallel episodes
	// (given here with the deprecated alias --workers).
	again, err := runCmd(t, "sim", "--line", "301", "--episodes", "3", "--workers", "1", "--seconds", "60",
		"--policy", "random:0.5", "--no-render", "--json", "--seed", "10")
	notice, again, _ := strings.Cut(again, "\n")
	if err != nil || notice != "Flag --workers has been deprecated, use --parallel" || again != out {
		t.Fatalf("not reproducible (%v):\n%s\nvs\n%s\n%s", err, out, notice, again)
	}
	// Without --json: a table with a header and one row per episode.
	table, err := runCmd(t, "sim", "--episodes", "2", "--seconds", "30", "--no-render")
	if err != nil {
		t.Fatal(err)
	}
	if rows := strings.Split(strings.TrimSpace(table), "\n"); len(rows) != 3 || !strings.Contains(rows[0], "closest_cm") {
		t.Fatalf("table:\n%s", table)
	}
}

func TestSimFrames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "frames")
	// Rendered frames are tracked: the tracker needs a few frames to settle, so 3 s (9 control
	// steps); every 4th frame's PNG (steps 0, 4 and 8: full-size PNGs are slow to encode), while
	// the track keeps every step.
	if _, err := runCmd(t, "sim", "--seconds", "3", "--frames", dir, "--frame-every", "4", "--json"); err != nil {
		t.Fatal(err)
	}
	pngs, _ := filepath.Glob(filepath.Join(dir, "episode-0000", "frame-*.png"))
	if len(pngs) != 3 {
		t.Fatalf("%d frames with --frame-every 4 over 9 steps, want 3 (steps 0, 4 and 8)", len(pngs))
	}
	track, err := os.ReadFile(filepath.Join(dir, "episode-0000", "track.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(track)), "\n")
	if len(rows) != 10 || !strings.HasSuffix(rows[0], ",tracked_ok,tracked_x_px,tracked_y_px") || !strings.Contains(string(track), ",true,") {
		t.Fatalf("track has %d lines, want header + 9 with tracked rows:\n%s", len(rows), track)
	}
	// Each PNG is the frame of a track row: rows 0, 4 and 8.
	for i, r := range rows[1:] {
		seq, _, _ := strings.Cut(r, ",")
		_, err := os.Stat(filepath.Join(dir, "episode-0000", fmt.Sprintf("frame-%05s.png", seq)))
		if (err == nil) != (i%4 == 0) {
			t.Fatalf("track row %d (%q): frame written %v, want %v", i, r, err == nil, i%4 == 0)
		}
	}
}

func TestLinesCmd(t *testing.T) {
	out, err := runCmd(t, "lines")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"281", "301", "352", "446", "336", "437", "73"} {
		if !strings.Contains(out, "\n"+code+" ") {
			t.Fatalf("line %s missing from:\n%s", code, out)
		}
	}
	out, err = runCmd(t, "lines", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	if err := json.Unmarshal([]byte(out), &lines); err != nil || len(lines) != 7 {
		t.Fatalf("json (%v): %d lines", err, len(lines))
	}
	if _, ok := lines[0]["sources"]; !ok {
		t.Fatal("json lacks sources")
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("lines: [{code: x, bogus: 1}]"), 0o644)
	if out, err := runCmd(t, "lines", "--lines-file", bad); err == nil || out != "" {
		t.Fatalf("malformed catalogue accepted: %v %q", err, out)
	}
}

func TestSimPlot(t *testing.T) {
	dir := t.TempDir()
	plot := filepath.Join(dir, "tracks.png")
	if _, err := runCmd(t, "sim", "--line", "281", "--episodes", "2", "--seconds", "30", "--no-render", "--policy", "random:0.5", "--plot", plot); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("--plot wrote no PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 200 || b.Dy() < 100 {
		t.Fatalf("plot is %v", b)
	}
	bad := filepath.Join(dir, "tracks.gif")
	if _, err := runCmd(t, "sim", "--seconds", "1", "--plot", bad); err == nil || !strings.Contains(err.Error(), "--plot") {
		t.Fatalf("a .gif plot was accepted: %v", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatal("a refused plot was written")
	}
}
