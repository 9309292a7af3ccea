package coordinator

import (
	"context"
	"log/slog"
	"sync"
	"testing"
)

// recorder is a slog handler keeping every record.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) find(msg string) (slog.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Message == msg {
			return rec, true
		}
	}
	return slog.Record{}, false
}

// TestRaftLogLevels: hashicorp/raft's warnings and errors reach slog at their own level, with
// their key-value pairs; lines below RaftLogLevel are dropped.
func TestRaftLogLevels(t *testing.T) {
	rec := &recorder{}
	rl := newRaftLogger(slog.New(rec), slog.LevelWarn)
	rl.Warn("failed to contact", "server-id", "n2", "time", "1.5s")
	rl.Error("failed to heartbeat to", "peer", "127.0.0.1:7001", "error", "dial tcp: refused")
	rl.Info("entering follower state")
	rl.Named("snapshot").Warn("snapshot slow")

	w, ok := rec.find("failed to contact")
	if !ok || w.Level != slog.LevelWarn {
		t.Fatalf("warning: %v %v (records %v)", w.Level, ok, rec.recs)
	}
	attrs := map[string]string{}
	w.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	if attrs["component"] != "raft" || attrs["server-id"] != "n2" || attrs["time"] != "1.5s" {
		t.Fatalf("warning attributes %v", attrs)
	}
	if e, ok := rec.find("failed to heartbeat to"); !ok || e.Level != slog.LevelError {
		t.Fatalf("error: %v %v", e.Level, ok)
	}
	if _, ok := rec.find("entering follower state"); ok {
		t.Fatal("an info line passed a warn level")
	}
	if s, ok := rec.find("snapshot slow"); !ok || s.Level != slog.LevelWarn {
		t.Fatalf("named logger's warning: %v %v", s.Level, ok)
	}

	rec2 := &recorder{}
	newRaftLogger(slog.New(rec2), slog.LevelDebug).Debug("appending entries")
	if d, ok := rec2.find("appending entries"); !ok || d.Level != slog.LevelDebug {
		t.Fatalf("debug: %v %v", d.Level, ok)
	}
}
