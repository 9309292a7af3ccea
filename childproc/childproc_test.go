package childproc

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/optoloop/optoloop/childproc/childproctest"
)

// start starts sh -c script and kills it at the end of the test.
func start(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start(exec.Command("sh", "-c", script), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

// waitOutput waits until the process's output has a line starting with prefix and returns the
// rest of that line.
func waitOutput(t *testing.T, p *Process, prefix string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, l := range strings.Split(p.Output(), "\n") {
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return rest
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no %q in the output %q", prefix, p.Output())
		}
	}
}

// gone waits until pid is no process or a zombie (killed, waiting for a reaper that is not
// this test).
func gone(t *testing.T, pid int) {
	t.Helper()
	if left := childproctest.WaitGone(10*time.Second, pid); len(left) != 0 {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("process %d still running", pid)
	}
}

// reaped checks that p has exited and its pid is no longer a process (not even a zombie).
func reaped(t *testing.T, p *Process) {
	t.Helper()
	if !p.Exited() || p.Running() {
		t.Fatalf("exited %v, running %v", p.Exited(), p.Running())
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed")
	}
	if err := syscall.Kill(p.PID(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("pid %d: %v, want no such process (reaped)", p.PID(), err)
	}
}

func TestStopCleanExit(t *testing.T) {
	p := start(t, `trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.01; done`)
	waitOutput(t, p, "up")
	if !p.Running() || p.Exited() || p.Err() != nil {
		t.Fatalf("running process: running %v, exited %v, err %v", p.Running(), p.Exited(), p.Err())
	}
	if err := p.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	reaped(t, p)
	if !strings.Contains(p.Output(), "bye") {
		t.Errorf("output %q: no bye", p.Output())
	}
	if err := p.Stop(time.Minute); err != nil {
		t.Errorf("second stop: %v", err)
	}
	p.Kill() // does nothing
}

func TestStopExitStatus(t *testing.T) {
	p := start(t, `trap 'echo failed >&2; echo; exit 3' TERM; echo up; while :; do sleep 0.01; done`)
	waitOutput(t, p, "up")
	err := p.Stop(time.Minute)
	if err == nil || err.Error() != "stopped with exit status 3: failed" {
		t.Fatalf("stop: %v", err)
	}
	var exit *exec.ExitError
	if !errors.As(p.Err(), &exit) || exit.ExitCode() != 3 {
		t.Errorf("reaper: %v, want exit status 3", p.Err())
	}
	reaped(t, p)
	if got := p.Output(); got != "up\nfailed\n\n" {
		t.Errorf("output %q", got)
	}
}

func TestStopSummary(t *testing.T) {
	p, err := Start(exec.Command("sh", "-c", `trap 'echo a; echo b; exit 1' TERM; echo up; while :; do sleep 0.01; done`), nil,
		func(out string) string { return strings.ToUpper(strings.TrimSpace(out)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	waitOutput(t, p, "up")
	if err := p.Stop(time.Minute); err == nil || err.Error() != "stopped with exit status 1: UP\nA\nB" {
		t.Fatalf("stop: %q", err)
	}
	if got := p.Summary(); got != "UP\nA\nB" {
		t.Errorf("summary %q", got)
	}
}

func TestNilProcess(t *testing.T) {
	var p *Process
	if p.Running() {
		t.Error("nil process running")
	}
	if err := p.Stop(time.Minute); err != nil {
		t.Error(err)
	}
	p.Kill()
}

func TestLastLine(t *testing.T) {
	for out, want := range map[string]string{"": "no output", " \n\n": "no output", "a\nb\n": "b", "a\n  b  \n \n": "b", "one": "one"} {
		if got := LastLine(out); got != want {
			t.Errorf("LastLine(%q) = %q, want %q", out, got, want)
		}
	}
}

func TestStopTimeoutKills(t *testing.T) {
	p := start(t, `trap '' TERM; echo up; while :; do sleep 0.01; done`)
	waitOutput(t, p, "up")
	t0 := time.Now()
	err := p.Stop(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not stopped 200ms after SIGTERM: killed") {
		t.Fatalf("stop: %v", err)
	}
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Errorf("stopped after %v", d)
	}
	reaped(t, p)
}

func TestKill(t *testing.T) {
	p := start(t, "exec sleep 60")
	p.Kill()
	reaped(t, p)
	var exit *exec.ExitError
	if !errors.As(p.Err(), &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("killed process: %v", p.Err())
	}
	p.Kill()
	if err := p.Stop(time.Minute); err != nil {
		t.Errorf("stop after kill: %v", err)
	}
}

func TestReapsAnExit(t *testing.T) {
	p := start(t, "echo out; echo err >&2; exit 2")
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("not reaped")
	}
	reaped(t, p)
	var exit *exec.ExitError
	if !errors.As(p.Err(), &exit) || exit.ExitCode() != 2 {
		t.Errorf("reaper: %v", p.Err())
	}
	if got := p.Output(); got != "out\nerr\n" {
		t.Errorf("output %q", got)
	}
	if err := p.Stop(time.Minute); err != nil {
		t.Errorf("stop after exit: %v", err)
	}
}

func TestStartError(t *testing.T) {
	if _, err := Start(exec.Command(filepath.Join(t.TempDir(), "absent")), nil, nil); err == nil {
		t.Fatal("started a missing binary")
	}
}

func TestOwnProcessGroup(t *testing.T) {
	p := start(t, "exec sleep 60")
	pgid, err := syscall.Getpgid(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	if pgid != p.PID() || pgid == syscall.Getpgrp() {
		t.Errorf("process group %d, pid %d, ours %d", pgid, p.PID(), syscall.Getpgrp())
	}
}

// TestKillReachesTheGroup kills a shell whose background sleep is in its process group.
func TestKillReachesTheGroup(t *testing.T) {
	p := start(t, `sleep 60 & echo child $!; wait`)
	pid, err := strconv.Atoi(waitOutput(t, p, "child "))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("grandchild %d: %v", pid, err)
	}
	p.Kill()
	reaped(t, p)
	gone(t, pid)
}

// TestLogForwarded checks that the whole output reaches the log writer and only its tail is
// kept.
func TestLogForwarded(t *testing.T) {
	var log syncBuffer
	p, err := Start(exec.Command("sh", "-c", `i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done`), &log, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if p.Err() != nil {
		t.Fatal(p.Err())
	}
	all := log.String()
	if !strings.HasPrefix(all, "line 0\n") || !strings.HasSuffix(all, "line 1999\n") {
		t.Fatalf("log: %d bytes, %q...", len(all), all[:min(len(all), 20)])
	}
	if out := p.Output(); len(out) != tailSize || !strings.HasSuffix(all, out) {
		t.Errorf("output: %d bytes, want the last %d of the log", len(out), tailSize)
	}
}

// syncBuffer is a bytes.Buffer safe for the reaper's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestSlot: an empty slot has no pid and stops and kills nothing; a second Start while its
// process runs fails with ErrRunning and starts nothing; once the process is killed, Start
// runs again; a start that fails keeps the process it returns (one started, never ready).
func TestSlot(t *testing.T) {
	var s Slot
	if s.Running() || s.PID() != 0 || s.Stop(time.Second) != nil {
		t.Fatalf("empty slot: running %v, pid %d", s.Running(), s.PID())
	}
	s.Kill()
	starts := 0
	start := func() (*Process, error) {
		starts++
		return Start(exec.Command("sleep", "60"), nil, nil)
	}
	if err := s.Start(start); err != nil {
		t.Fatal(err)
	}
	first := s.PID()
	if !s.Running() || first == 0 {
		t.Fatalf("after Start: running %v, pid %d", s.Running(), first)
	}
	if err := s.Start(start); !errors.Is(err, ErrRunning) || starts != 1 || !strings.Contains(err.Error(), strconv.Itoa(first)) {
		t.Fatalf("second Start: %v after %d starts, want ErrRunning naming pid %d", err, starts, first)
	}
	s.Kill()
	if s.Running() || s.PID() != 0 {
		t.Fatalf("after Kill: running %v, pid %d", s.Running(), s.PID())
	}
	notReady := errors.New("not ready")
	if err := s.Start(func() (*Process, error) {
		p, err := start()
		if err != nil {
			return nil, err
		}
		p.Kill()
		return p, notReady
	}); !errors.Is(err, notReady) || starts != 2 {
		t.Fatalf("a start that fails: %v after %d starts", err, starts)
	}
	if s.Running() {
		t.Fatal("a killed, never ready process counts as running")
	}
	if err := s.Start(start); err != nil || !s.Running() || s.PID() == first {
		t.Fatalf("Start after a failed one: %v, running %v, pid %d", err, s.Running(), s.PID())
	}
	if err := s.Stop(5 * time.Second); err == nil || s.Running() {
		// sleep dies of SIGTERM: Stop says so.
		t.Fatalf("Stop: %v, running %v", err, s.Running())
	}
}
