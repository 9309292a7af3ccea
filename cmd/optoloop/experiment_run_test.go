package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/results"
)

func TestExperimentRunBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"unknown field", "name: x\nlines: [\"446\"]\ncollect: {hourz: 1}\n", "collect.hourz"},
		{"negative hours", "name: x\nlines: [\"446\"]\ncollect: {hours_per_line: -1}\n", "collect.hours_per_line"},
		{"unknown line", "name: x\nlines: [\"446\", \"999\"]\n", `"999"`},
		{"not yaml", "{{{", "experiment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, "exp.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "run-"+strings.ReplaceAll(tt.name, " ", "-"))
			_, err := runCmd(t, "experiment", "run", file, "--out", out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a refused experiment created its run folder")
			}
		})
	}
	if _, err := runCmd(t, "experiment", "run", filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("a missing experiment file was accepted")
	}
}

func TestExperimentRunWritesTableAndReport(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "exp.yaml")
	spec := `name: cli
lines: ["73"]
collect: {hours_per_line: 0.05, episode_seconds: 180}
train: {ensemble_size: 2, updates: 20, checkpoint_every: 20}
evaluate: {episodes_per_condition: 2, episode_seconds: 30}
`
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	stdout, err := runCmd(t, "experiment", "run", file, "--out", out, "--no-render")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LINE", "73 ", "run folder: " + out, "report: " + filepath.Join(out, "report.html")} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	run, err := results.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if run.Report == nil || run.Report.Finished.IsZero() || len(run.Missing) != 0 {
		t.Fatalf("run folder incomplete: missing %v", run.Missing)
	}
	if _, err := os.Stat(filepath.Join(out, "report.html")); err != nil {
		t.Fatal(err)
	}
}
