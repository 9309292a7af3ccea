package cluster_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/optoloop/optoloop/childproc/childproctest"
	"github.com/optoloop/optoloop/cluster"
	"github.com/optoloop/optoloop/results"
)

// tinyYAML is a quick experiment for the command's tests: one line, two arenas.
const tinyYAML = `
name: tiny
seed: 2
lines: ["73"]
arenas_per_line: 2
collect: { hours_per_line: 0.0222, episode_seconds: 20, light_probability: 0.3 }
train: { ensemble_size: 1, updates: 200, checkpoint_every: 100, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
`

// needClusterCommand skips unless the built optoloop has `cluster up`.
func needClusterCommand(t *testing.T) {
	t.Helper()
	needCluster(t)
	if out, err := exec.Command(binary, "cluster", "up", "--help").CombinedOutput(); err != nil {
		t.Skipf("optoloop has no `cluster up` command (cmd/optoloop/root.go must add newClusterCmd()): %v: %s", err, strings.TrimSpace(string(out)))
	}
}

// TestClusterUpCommand runs `optoloop cluster up` to its end, and again interrupted by SIGINT
// (Ctrl-C) in the middle of collection: the first writes the run folder, both leave no process
// running.
func TestClusterUpCommand(t *testing.T) {
	needClusterCommand(t)
	dir := t.TempDir()
	exp := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(exp, []byte(tinyYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, interrupt := range []bool{false, true} {
		name := map[bool]string{false: "to-the-end", true: "interrupted"}[interrupt]
		t.Run(name, func(t *testing.T) {
			cdir, out := filepath.Join(dir, name, "cluster"), filepath.Join(dir, name, "run")
			args := []string{"cluster", "up", exp, "--no-render", "--workers", "2", "--dir", cdir, "--out", out}
			if interrupt {
				args = append(args, "--pace", "1")
			}
			cmd := exec.Command(binary, args...)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stdout strings.Builder
			cmd.Stdout = &stdout
			t0 := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			var log strings.Builder
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if interrupt && strings.Contains(sc.Text(), "msg=submitted") {
					if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
						t.Fatal(err)
					}
				}
			}
			err = cmd.Wait()
			t.Logf("cluster up (%s) ended after %v: %v", name, time.Since(t0).Round(time.Millisecond), err)
			if interrupt {
				if err == nil || !strings.Contains(log.String(), "interrupted") {
					t.Errorf("an interrupted cluster up ended with %v:\n%s", err, log.String())
				}
			} else {
				if err != nil {
					t.Fatalf("cluster up: %v\n%s", err, log.String())
				}
				if !strings.Contains(stdout.String(), "run folder: "+out) {
					t.Errorf("stdout does not name the run folder:\n%s", stdout.String())
				}
				run, err := results.Load(out)
				if err != nil || len(run.Missing) != 0 || run.Report.Finished.IsZero() {
					t.Fatalf("run folder %s: %v, missing %v", out, err, run.Missing)
				}
			}
			all, err := cluster.ReadProcesses(cdir)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) < 7 {
				t.Errorf("processes.json lists %d processes, want at least 7", len(all))
			}
			if left := childproctest.WaitGone(0, pids(all)...); len(left) != 0 {
				t.Fatalf("processes %v still exist after cluster up ended", left)
			}
		})
	}
}
