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

// TestClusterCertsWritesTheLayout: `cluster certs` writes the CA (key 0600) and a 0700 folder
// per node, worker and learner with its 0600 key, refuses to replace the CA unless asked, and
// refuses bad input with one line, writing nothing.
func TestClusterCertsWritesTheLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	out, err := runClusterCmd(t, "certs", "--out", dir, "--nodes", "c1=10.0.0.5,c2,c3", "--workers", "w1,w2", "--learners", "l1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "--tls-dir "+filepath.Join(dir, "w2")) {
		t.Errorf("output does not name w2's folder:\n%s", out)
	}
	perm := func(p string) os.FileMode {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	if m := perm(filepath.Join(dir, "ca-key.pem")); m != 0o600 {
		t.Errorf("ca-key.pem %v", m)
	}
	for _, n := range []string{"c1", "c2", "c3", "w1", "w2", "l1"} {
		if m := perm(filepath.Join(dir, n)); m != 0o700 {
			t.Errorf("%s/ %v", n, m)
		}
		if m := perm(filepath.Join(dir, n, "key.pem")); m != 0o600 {
			t.Errorf("%s/key.pem %v", n, m)
		}
		for _, f := range []string{"ca.pem", "cert.pem"} {
			perm(filepath.Join(dir, n, f))
		}
	}
	if _, err := runClusterCmd(t, "certs", "--out", dir, "--workers", "w3"); err == nil || !strings.Contains(err.Error(), "already holds a CA") {
		t.Fatalf("second run: %v", err)
	}
	if _, err := runClusterCmd(t, "certs", "--out", dir, "--workers", "w3", "--add"); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	for _, args := range [][]string{
		{"--nodes", "c1"},
		{"--out", bad},
		{"--out", bad, "--nodes", "c1=not a host"},
		{"--out", bad, "--nodes", "c1", "--workers", "c1"},
		{"--out", bad, "--workers", "../w"},
	} {
		_, err := runClusterCmd(t, append([]string{"certs"}, args...)...)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("certs %v: %v, want a one-line error", args, err)
		}
		if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("certs %v wrote %s", args, bad)
		}
	}
}
