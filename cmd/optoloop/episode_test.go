package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	if e.Condition != "always" || e.Line != "446" || len(e.Frames) != 30 || summary.Frames != nil {
		t.Fatalf("episode %s/%s with %d frames (summary %d)", e.Condition, e.Line, len(e.Frames), len(summary.Frames))
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
