package childproc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDiesWithItsParent runs this test binary as a parent that starts a sleep, writes its pid
// to a file and waits; the parent is then killed with SIGKILL, and the kernel kills the sleep
// too (Pdeathsig).
func TestDiesWithItsParent(t *testing.T) {
	if pidFile := os.Getenv("CHILDPROC_TEST_PID_FILE"); pidFile != "" {
		p, err := Start(exec.Command("sleep", "60"), nil, nil)
		if err == nil {
			err = os.WriteFile(pidFile, []byte(strconv.Itoa(p.PID())), 0o600)
		}
		if err != nil {
			os.Exit(1)
		}
		<-p.Done()
		os.Exit(0)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	parent := exec.Command(os.Args[0], "-test.run=^TestDiesWithItsParent$")
	parent.Env = append(os.Environ(), "CHILDPROC_TEST_PID_FILE="+pidFile)
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- parent.Wait() }()
	t.Cleanup(func() {
		parent.Process.Kill()
		<-exited
	})
	var pid int
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for pid == 0 {
		if b, err := os.ReadFile(pidFile); err == nil && len(b) > 0 {
			if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				t.Fatalf("pid file %q", b)
			}
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("parent exited: %v", err)
		case <-deadline:
			t.Fatal("no pid file")
		case <-tick.C:
		}
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("child %d not running: %v", pid, err)
	}
	parent.Process.Kill()
	gone(t, pid)
}
