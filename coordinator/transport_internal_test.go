package coordinator

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// LockedBuffer is a log sink safe for concurrent writers (exported for the package's external
// tests too).
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRefusalLogSumsUpRefusalsPerWindow: the first refusal is logged at once with its remote;
// those after it within the window are one summary line with their count at the window's end.
func TestRefusalLogSumsUpRefusalsPerWindow(t *testing.T) {
	var buf LockedBuffer
	r := &refusalLog{log: slog.New(slog.NewTextHandler(&buf, nil)), every: 50 * time.Millisecond}
	defer r.stop()
	r.refused("10.0.0.9:1", "tls: bad certificate")
	for range 99 {
		r.refused("10.0.0.9:2", "tls: no certificate")
	}
	if got := strings.Count(buf.String(), "raft: refused"); got != 1 {
		t.Fatalf("%d lines right after 100 refusals, want 1:\n%s", got, buf.String())
	}
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(buf.String(), "count=99") {
		select {
		case <-deadline:
			t.Fatalf("no summary line with count=99:\n%s", buf.String())
		case <-tick.C:
		}
	}
	if got := strings.Count(buf.String(), "raft: refused"); got != 2 {
		t.Fatalf("%d lines, want 2:\n%s", got, buf.String())
	}
}
