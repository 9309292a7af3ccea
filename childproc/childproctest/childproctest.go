// Package childproctest helps tests of processes that manage child processes (childproc,
// redisserver, promserver, cluster): whether a pid is gone, waiting until pids are gone, and
// the check that a server started by a process dies when that process is killed.
package childproctest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Gone reports whether process pid no longer runs: kill(pid, 0) fails, or the process is a
// zombie (or dead) nobody has reaped yet, such as an orphan whose new parent does not reap.
func Gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// WaitGone waits up to timeout until every pid is Gone (looking again every 10 ms) and returns
// those still running.
func WaitGone(timeout time.Duration, pids ...int) []int {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		var left []int
		for _, p := range pids {
			if !Gone(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-deadline:
			return left
		}
	}
}

// DiesWithParent checks that a server a process starts dies when that process is SIGKILLed
// (Pdeathsig). The calling test (named test) runs its own binary again with env set to a
// temporary folder; in that child, DiesWithParent calls start with the folder, prints the
// server's pid and blocks until killed (it never returns). In the test itself it kills the
// child and waits up to 10 s for the server to be gone, SIGKILLing it and failing otherwise.
func DiesWithParent(t *testing.T, test, env string, start func(dir string) (pid int, err error)) {
	if dir := os.Getenv(env); dir != "" {
		pid, err := start(dir)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("pid", pid)
		select {} // until the test kills this parent
	}
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env+"="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "pid "))
	if err != nil {
		t.Fatalf("child said %q", line)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("server %d not running: %v", pid, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	// The server was the child's child: once orphaned and killed it is reaped by init (or a
	// subreaper), so wait until the pid is gone.
	if left := WaitGone(10*time.Second, pid); len(left) != 0 {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("server %d still running 10s after its parent was killed", pid)
	}
}
