package main

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// TestCoordinatorBadStartRefused: a leader lease below 500 ms (without the override) and a
// node with an empty data dir that neither bootstraps nor joins are refused with one line.
func TestCoordinatorBadStartRefused(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("cli-secret-0123456789abcdef0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"coordinator", "--id", "c1", "--raft-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--token-file", tokenFile, "--log-level", "error", "--insecure"}
	for _, tt := range []struct {
		name, want string
		args       []string
	}{
		{"short lease", "--raft-leader-lease-timeout 250ms is below 500ms", []string{"--data-dir", filepath.Join(dir, "a"), "--bootstrap", "--raft-leader-lease-timeout", "250ms"}},
		{"no state", "holds no Raft state", []string{"--data-dir", filepath.Join(dir, "b")}},
		{"election below heartbeat", "election timeout must be >= heartbeat timeout", []string{"--data-dir", filepath.Join(dir, "c"), "--bootstrap", "--raft-election-timeout", "500ms"}},
		{"no connection per client", "max connections per client 0 must be >= 1", []string{"--data-dir", filepath.Join(dir, "d"), "--bootstrap", "--max-conns-per-client", "0"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCoordCmd(t, append(base, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line with %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "b", "raft.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused node created its Raft store: %v", err)
	}
}

// TestCoordinatorDataDirInUseExits: a second coordinator process on a data dir a running one
// holds exits within 10 s, non-zero, with one line naming the data dir; one that gets SIGTERM
// while it waits exits at once; the running node is untouched.
func TestCoordinatorDataDirInUseExits(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "optoloop")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/optoloop/optoloop/cmd/optoloop").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tokenFile := filepath.Join(tmp, "token")
	if err := os.WriteFile(tokenFile, []byte("cli-secret-0123456789abcdef0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(tmp, "data")
	args := func(extra ...string) []string {
		return append([]string{"coordinator", "--id", "c1", "--raft-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--data-dir", data, "--token-file", tokenFile, "--log-level", "error", "--insecure"}, extra...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first := exec.CommandContext(ctx, bin, args("--bootstrap")...)
	stdout, err := first.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = first.Process.Signal(syscall.SIGTERM)
		_ = first.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("first coordinator printed nothing: %v", sc.Err())
	}
	m := regexp.MustCompile(`http (http://\S+)`).FindStringSubmatch(sc.Text())
	if m == nil {
		t.Fatalf("first coordinator: %q", sc.Text())
	}
	go func() {
		for sc.Scan() {
		}
	}()

	second := exec.CommandContext(ctx, bin, args()...)
	var stderr lockedBuffer
	second.Stderr = &stderr
	t0 := time.Now()
	err = second.Run()
	took := time.Since(t0)
	t.Logf("second coordinator exited after %v: %s", took.Round(time.Millisecond), strings.TrimSpace(stderr.String()))
	var exit *exec.ExitError
	line := strings.TrimSpace(stderr.String())
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || took > 10*time.Second {
		t.Fatalf("second coordinator: %v after %v, stderr %q", err, took, line)
	}
	if want := "data dir " + data + " is in use by another process"; !strings.Contains(line, want) || strings.Count(line, "\n") != 0 {
		t.Fatalf("second coordinator's stderr %q, want one line with %q", line, want)
	}

	// SIGTERM while it waits for the lock: it exits well before the lock timeout.
	third := exec.CommandContext(ctx, bin, args()...)
	var stderr3 lockedBuffer
	third.Stderr = &stderr3
	if err := third.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- third.Wait() }()
	// It waits for the lock once it holds raft.db open.
	coordinatortest.WaitFor(t, 10*time.Second, "the third coordinator waiting on raft.db", func() bool {
		return holdsOpen(third.Process.Pid, filepath.Join(data, "raft.db"))
	})
	_ = third.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err == nil {
			t.Fatalf("third coordinator exited 0 after SIGTERM while waiting for the data dir")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("third coordinator ignored SIGTERM while waiting for the data dir")
	}

	resp, err := http.Get(m[1] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first coordinator's /healthz after the second's attempt: %s", resp.Status)
	}
}

// TestClusterRemoveCommand: `cluster remove` refuses a removal below quorum and --force
// goes through.
func TestClusterRemoveCommand(t *testing.T) {
	t.Setenv("OPTOLOOP_COORDINATOR", "")
	t.Setenv("OPTOLOOP_TOKEN", "")
	c := coordinatortest.New(t, 3, nil)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(coordinatortest.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := c.Followers()
	urls := strings.Join(c.URLs(), ",")
	remove := func(extra ...string) (string, error) {
		return runCoordCmd(t, append([]string{"cluster", "remove", "--coordinator", urls, "--token-file", tokenFile, "--tls-dir", c.TLSDir()}, extra...)...)
	}
	if out, err := remove(f[0].ID()); err != nil || !strings.Contains(out, "node "+f[0].ID()+" removed") {
		t.Fatalf("remove 3 -> 2: %v %q", err, out)
	}
	coordinatortest.WaitFor(t, 10*time.Second, f[0].ID()+" out", func() bool { return !c.InConfig(f[0].ID()) })
	if _, err := remove(f[1].ID()); err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("remove 2 -> 1: %v, want refused", err)
	}
	if !c.InConfig(f[1].ID()) {
		t.Fatal("the refused removal removed the node")
	}
	if _, err := remove(f[1].ID(), "--force"); err != nil {
		t.Fatalf("remove --force: %v", err)
	}
	coordinatortest.WaitFor(t, 10*time.Second, f[1].ID()+" out", func() bool { return !c.InConfig(f[1].ID()) })
}

// holdsOpen reports whether process pid has path open (Linux /proc).
func holdsOpen(pid int, path string) bool {
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name())); err == nil && l == path {
			return true
		}
	}
	return false
}
