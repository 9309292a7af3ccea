// Package childproc is a server process this process starts and owns: it is in a process group
// of its own, killed by the kernel when its parent dies (Linux Pdeathsig), reaped by a
// goroutine, stopped with SIGTERM and then SIGKILL, and the tail of its output is kept for error
// messages. It also has the listen-address, free-port and 0600-file helpers those servers need.
//
// Errors carry no package prefix: the server package that uses them adds its own.
package childproc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// waitDelay bounds how long the reaper waits for the output pipes to close after the process
// exited (a grandchild may hold them).
const waitDelay = 5 * time.Second

// Process is one started child process and its reaper. Its methods are safe for concurrent use.
// Running, Stop and Kill also take a nil *Process: a process never started.
type Process struct {
	cmd     *exec.Cmd
	out     *tail
	summary func(output string) string
	done    chan struct{} // closed once the process is reaped
	err     error         // cmd.Wait's error, set before done is closed
}

// Start starts cmd in a process group of its own (on Linux, killed with SIGKILL when this
// process dies) with its standard output and error both forwarded to log (nil: discarded) and
// their tail kept, and reaps it in a goroutine. summary turns the tail of the output into the
// line that says why the process stopped, for Summary and Stop's errors (nil: LastLine).
// Start sets cmd's Stdout, Stderr, SysProcAttr and WaitDelay; the error is cmd.Start's.
func Start(cmd *exec.Cmd, log io.Writer, summary func(output string) string) (*Process, error) {
	if log == nil {
		log = io.Discard
	}
	if summary == nil {
		summary = LastLine
	}
	out := &tail{w: log}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, out: out, summary: summary, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process id (also after the process exited).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done returns a channel closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Running reports whether the process was started and has not exited yet (false for nil).
func (p *Process) Running() bool { return p != nil && !p.Exited() }

// Exited reports whether the process has exited and been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns the reaper's error (cmd.Wait's: an *exec.ExitError for a non-zero exit or a
// signal); nil while the process runs.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Output returns the last few KiB of the process's output (standard output and error
// interleaved as written), raw.
func (p *Process) Output() string { return p.out.String() }

// Summary returns the summary (given to Start) of the output: why the process stopped.
func (p *Process) Summary() string { return p.summary(p.Output()) }

// LastLine returns the last non-blank line of output, trimmed ("no output" when there is none).
func LastLine(output string) string {
	lines := strings.Split(output, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return "no output"
}

// Stop sends the process SIGTERM and waits for it to exit; one that has not exited after
// timeout is killed with Kill. Stopping a process that is not running does nothing. Stop
// returns nil on a zero exit status, "stopped with <status>: <Summary>" for another status or a
// signal, or an error saying that it could not signal or reap the process, or had to kill it.
func (p *Process) Stop(timeout time.Duration) error {
	if !p.Running() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop: %w", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.Kill()
		return fmt.Errorf("not stopped %v after SIGTERM: killed", timeout)
	}
	var exit *exec.ExitError
	switch {
	case p.err == nil:
		return nil
	case errors.As(p.err, &exit):
		return fmt.Errorf("stopped with %v: %s", p.err, p.Summary())
	default:
		return fmt.Errorf("stop: %w", p.err)
	}
}

// Kill sends SIGKILL to the process's group (the process and any child it forked that stayed in
// the group) and waits until the process is reaped. Killing a process that is not running does
// nothing.
func (p *Process) Kill() {
	if !p.Running() {
		return
	}
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		p.cmd.Process.Kill() //nolint:errcheck // the process may have exited already
	}
	<-p.done
}

// Slot is the current incarnation of a server that is stopped and started again: at most one
// process runs in it at a time. Its methods are safe for concurrent use; the zero Slot holds
// no process.
type Slot struct {
	mu sync.Mutex
	p  *Process // nil before the first start
}

// ErrRunning is returned (wrapped) by Slot.Start when the slot's process runs.
var ErrRunning = errors.New("already running")

// Start calls start unless the slot's process runs (ErrRunning, with its pid) and
// keeps the process start returns (also with an error: one started but never ready, which
// start has killed). The slot stays locked while start runs, so two Starts never start two
// processes.
func (s *Slot) Start(start func() (*Process, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p.Running() {
		return fmt.Errorf("%w (pid %d)", ErrRunning, s.p.PID())
	}
	p, err := start()
	if p != nil {
		s.p = p
	}
	return err
}

// Running reports whether the slot's process runs (started and not yet exited).
func (s *Slot) Running() bool { return s.current().Running() }

// PID returns the process id of the running process (0 when none runs).
func (s *Slot) PID() int {
	p := s.current()
	if !p.Running() {
		return 0
	}
	return p.PID()
}

// Stop stops the slot's process (Process.Stop); with none running it does nothing.
func (s *Slot) Stop(timeout time.Duration) error { return s.current().Stop(timeout) }

// Kill kills the slot's process (Process.Kill); with none running it does nothing.
func (s *Slot) Kill() { s.current().Kill() }

func (s *Slot) current() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}
