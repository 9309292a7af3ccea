package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runClusterCmd runs `cluster ARGS...` (the command alone, whether or not the root has it).
func runClusterCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newClusterCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestClusterUpBadInput: every refused input is a one-line error naming the problem, and
// nothing is started or written: no cluster folder, no run folder.
func TestClusterUpBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "name: x\nlines: [\"446\", \"73\"]\narenas_per_line: 2\n")
	finished := filepath.Join(dir, "finished")
	if err := os.MkdirAll(finished, 0o755); err != nil {
		t.Fatal(err)
	}
	write("finished/report.json", "{}")
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"missing file", []string{filepath.Join(dir, "missing.yaml")}, "experiment file"},
		{"invalid experiment", []string{write("bad.yaml", "name: x\nlines: [\"446\"]\ncollect: {hourz: 1}\n")}, "collect.hourz"},
		{"not yaml", []string{write("garbage.yaml", "{{{")}, "garbage.yaml"},
		{"unknown line", []string{write("unknown.yaml", "name: x\nlines: [\"446\", \"999\"]\n")}, `"999"`},
		{"fewer workers than lines", []string{good, "--workers", "1"}, "--workers 1: at least one worker process per line"},
		{"more workers than arenas", []string{good, "--workers", "5"}, "--workers 5: at most one worker process per arena"},
		{"no learner", []string{good, "--learners", "0"}, "--learners 0"},
		{"negative pace", []string{good, "--pace", "-1"}, "--pace"},
		{"bad log level", []string{good, "--log-level", "loud"}, "--log-level"},
		{"bad lines file", []string{good, "--lines-file", filepath.Join(dir, "nope.yaml")}, "nope.yaml"},
		{"finished run folder", []string{good, "--out", finished}, "already holds a report"},
		{"trace url without a dashboard", []string{good, "--trace-url", "http://127.0.0.1:16686/trace/{trace_id}"}, "--trace-url needs --dashboard"},
		{"trace url without its id", []string{good, "--dashboard", "127.0.0.1:0", "--trace-url", "http://127.0.0.1:16686/"}, "{trace_id}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clusterDir := filepath.Join(dir, "cluster-"+strings.ReplaceAll(tt.name, " ", "-"))
			args := append([]string{"up"}, tt.args...)
			args = append(args, "--dir", clusterDir)
			if !strings.Contains(strings.Join(tt.args, " "), "--out") {
				args = append(args, "--out", filepath.Join(dir, "run-"+strings.ReplaceAll(tt.name, " ", "-")))
			}
			_, err := runClusterCmd(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line containing %q", err, tt.wantErr)
			}
			if _, err := os.Stat(clusterDir); !errors.Is(err, os.ErrNotExist) {
				t.Error("a refused input created the cluster folder")
			}
			if _, err := os.Stat(filepath.Join(dir, "run-"+strings.ReplaceAll(tt.name, " ", "-"))); !errors.Is(err, os.ErrNotExist) {
				t.Error("a refused input created the run folder")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(finished, "report.html")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused run wrote into a finished run folder")
	}
}
