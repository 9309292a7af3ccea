package childproc

import (
	"io"
	"sync"
)

// tailSize is how much of a process's output a tail keeps.
const tailSize = 8 << 10

// tail forwards a process's output to w and keeps its last tailSize bytes, for error messages.
type tail struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// Write keeps p's end and forwards p to w; it never fails, so a failing log writer does not
// stop the process.
func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailSize:]...)
	}
	t.w.Write(p) //nolint:errcheck // a failing log writer must not stop the server
	return len(p), nil
}

// String returns the output kept.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
