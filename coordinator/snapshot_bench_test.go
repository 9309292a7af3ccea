//go:build !race

package coordinator

import (
	"encoding/json"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/optoloop/optoloop/coordinator/api"
)

// discardSink is a snapshot sink that throws the bytes away.
type discardSink struct{}

func (discardSink) Write(p []byte) (int, error) { return len(p), nil }
func (discardSink) Close() error                { return nil }
func (discardSink) ID() string                  { return "discard" }
func (discardSink) Cancel() error               { return nil }

var _ raft.SnapshotSink = discardSink{}

// BenchmarkFSMSnapshot measures, on a state of 250,000 items, how long Snapshot holds the FSM
// (the write stall: "snapshot"), how long Persist then encodes outside any lock ("persist"),
// and for comparison what encoding the whole state under the lock took before
// ("marshal-under-lock", the old Snapshot).
func BenchmarkFSMSnapshot(b *testing.B) {
	f := NewFSM()
	spec := "name: big\nlines: [\"301\"]\ncollect: {hours_per_line: 1000, episode_seconds: 14.4}\nevaluate: {episodes_per_condition: 1}\n"
	data, _ := json.Marshal(Command{Type: CmdSubmit, Time: t0, Submit: &api.SubmitCmd{Spec: spec, MaxAttempts: 3}})
	if r := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data}).(*api.Response); r.Code != api.CodeOK {
		b.Fatal(r.Error)
	}
	b.Logf("%d items", len(f.st.Items))
	b.Run("snapshot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.Snapshot(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("persist", func(b *testing.B) {
		b.ReportAllocs()
		snap, _ := f.Snapshot()
		for b.Loop() {
			if err := snap.Persist(discardSink{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("marshal-under-lock", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f.mu.Lock()
			out, err := json.Marshal(f.st)
			f.mu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Discard.Write(out)
		}
	})
}
