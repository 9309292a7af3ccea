package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// child is one incarnation of a supervised process (a restart is a new child of the same name).
type child struct {
	name string
	role Role
	cmd  *exec.Cmd
	pid  int
	log  *sink
	done chan struct{} // closed once the process is reaped, its output drained and its exit recorded
	err  error         // cmd.Wait's error, set before done is closed
	// ended is set once the process is reaped (before its exit is recorded, so that the
	// record already shows it not running).
	ended atomic.Bool

	mu       sync.Mutex
	expected bool // the supervisor stopped or killed it: its exit is no fault
}

// exited reports whether the process has been reaped.
func (ch *child) exited() bool {
	select {
	case <-ch.done:
		return true
	default:
		return false
	}
}

// expect marks the coming exit as one the supervisor asked for.
func (ch *child) expect() {
	ch.mu.Lock()
	ch.expected = true
	ch.mu.Unlock()
}

func (ch *child) wasExpected() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.expected
}

// signal sends sig to the child's process group (the child and anything it forked).
func (ch *child) signal(sig syscall.Signal) {
	if ch.exited() {
		return
	}
	if err := syscall.Kill(-ch.pid, sig); err != nil {
		_ = ch.cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs the group, and waits until the process is
// reaped (at most 10 s after SIGKILL).
func (ch *child) stop(grace time.Duration) error {
	ch.expect()
	ch.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-ch.done:
		return nil
	case <-t.C:
	}
	return ch.kill()
}

// kill SIGKILLs the process group and waits (at most 10 s) until the process is reaped.
func (ch *child) kill() error {
	ch.expect()
	ch.signal(syscall.SIGKILL)
	select {
	case <-ch.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("cluster: %s (pid %d) not reaped 10 s after SIGKILL", ch.name, ch.pid)
	}
}

// spawner starts every child from one goroutine locked to its OS thread. A child's Pdeathsig
// fires when the thread that forked it ends: Go does not end its threads while the process
// lives, except a locked thread whose goroutine returns, which is what the spawner does once
// the cluster is closed, so every child is SIGKILLed when the supervisor dies, and at the
// latest when Close has finished.
type spawner struct {
	reqs chan func()
	once sync.Once
	done chan struct{}
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan func()), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with the goroutine.
		defer close(s.done)
		for f := range s.reqs {
			f()
		}
	}()
	return s
}

// do runs f on the spawner's thread and returns its error; after close it refuses.
func (s *spawner) do(f func() error) (err error) {
	reply := make(chan error, 1)
	defer func() {
		if recover() != nil { // send on a closed channel: the spawner is closed
			err = errors.New("cluster: closed")
		}
	}()
	s.reqs <- func() { reply <- f() }
	return <-reply
}

func (s *spawner) close() {
	s.once.Do(func() { close(s.reqs) })
	<-s.done
}

// sink takes a child's output: every line goes to its log file and, when set, to a shared
// writer with the child's name in front; the last lines are kept for error messages; watchers
// see each line as it comes.
type sink struct {
	file   *os.File
	prefix *prefixWriter

	mu       sync.Mutex
	last     []string
	watchers []func(string)
	partial  []byte
}

const keepLines = 20

// watch calls f with every line written from now on (from the reading goroutine).
func (s *sink) watch(f func(string)) {
	s.mu.Lock()
	s.watchers = append(s.watchers, f)
	s.mu.Unlock()
}

// read copies r line by line until EOF.
func (s *sink) read(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			s.line(strings.TrimRight(line, "\n"))
		}
		if err != nil {
			return
		}
	}
}

func (s *sink) line(l string) {
	if s.file != nil {
		_, _ = s.file.WriteString(l + "\n")
	}
	if s.prefix != nil {
		s.prefix.line(l)
	}
	s.mu.Lock()
	s.last = append(s.last, l)
	if len(s.last) > keepLines {
		s.last = s.last[len(s.last)-keepLines:]
	}
	ws := s.watchers
	s.mu.Unlock()
	for _, w := range ws {
		w(l)
	}
}

// tail returns the last lines the child wrote, one per line.
func (s *sink) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.last) == 0 {
		return "(no output)"
	}
	return strings.Join(s.last, "\n")
}

// Write makes a sink an io.Writer (redis-server's log reaches it that way); a line split over
// writes is passed on once its end has come.
func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.partial = append(s.partial, p...)
	var lines []string
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(s.partial[:i]))
		s.partial = s.partial[i+1:]
	}
	s.mu.Unlock()
	for _, l := range lines {
		s.line(l)
	}
	return len(p), nil
}

// prefixWriter writes whole lines, each with a name in front, to one writer shared by every
// child (so lines of different children do not interleave within a line).
type prefixWriter struct {
	mu   *sync.Mutex
	w    io.Writer
	name string
}

func (p *prefixWriter) line(l string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = fmt.Fprintf(p.w, "%-10s| %s\n", p.name, l)
}
