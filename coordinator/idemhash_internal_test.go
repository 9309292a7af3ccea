package coordinator

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

// TestFSMKeyHashSurvivesSnapshot: a key's request hash is kept in the snapshot, so a node
// restored from it still refuses the key with another request (CodeKeyReused, nothing
// changed) and replays it with the same; a snapshot written before keys had hashes (no "hash"
// field) still loads, and its keys replay for any request.
func TestFSMKeyHashSurvivesSnapshot(t *testing.T) {
	h := newFSMHarness(t)
	h.worker("w", "301")
	reg := func(arena, hash string) Command {
		return Command{Type: CmdRegisterWorker, Key: "k1", KeyHash: hash, RegisterWorker: &api.RegisterWorkerCmd{ID: "v", ArenaID: arena, Line: "446"}}
	}
	first := h.ok(reg("a1", "hash-a"))
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sink.String(), `"hash":"hash-a"`) {
		t.Fatalf("snapshot holds no key hash: %.300s", sink.String())
	}
	for name, b := range map[string][]byte{
		"current": sink.Bytes(),
		"old":     bytes.ReplaceAll(sink.Bytes(), []byte(`,"hash":"hash-a"`), nil),
	} {
		g := &fsmHarness{t: t, f: NewFSM(), index: h.index, now: h.now}
		if err := g.f.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			t.Fatalf("%s snapshot: %v", name, err)
		}
		r := g.apply(reg("a2", "hash-b"))
		switch name {
		case "current":
			if !errors.Is(r.Err(), api.ErrKeyReused) || !strings.Contains(r.Error, `"k1"`) {
				t.Fatalf("restored: same key, other request: %v, want key reused", r.Err())
			}
			if r := g.ok(reg("a1", "hash-a")); r.Index != first.Index {
				t.Fatalf("restored: same key and request: index %d, want the first's %d", r.Index, first.Index)
			}
		case "old":
			if r.Err() != nil || r.Index != first.Index {
				t.Fatalf("old snapshot: the key replays for any request: %v index %d", r.Err(), r.Index)
			}
		}
		if w := g.f.Workers(); len(w) != 2 || w[0].ID != "v" || w[0].ArenaID != "a1" {
			t.Fatalf("%s snapshot: workers %+v, want v still on a1", name, w)
		}
	}
}

// TestLocalRefusesReusedKey: Local binds a key to its call's payload as the HTTP API binds it
// to the request: the same key with another payload is ErrKeyReused and changes nothing.
func TestLocalRefusesReusedKey(t *testing.T) {
	l, err := NewLocal(DefaultLocalConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := api.WithIdempotencyKey(t.Context(), "k")
	if err := l.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a1", Line: "301"}); err != nil {
		t.Fatal(err)
	}
	if err := l.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a1", Line: "301"}); err != nil {
		t.Fatalf("same key, same call: %v", err)
	}
	if _, err := l.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode}); !errors.Is(err, api.ErrKeyReused) {
		t.Fatalf("same key, another call: %v, want key reused", err)
	}
	if err := l.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a2", Line: "301"}); !errors.Is(err, api.ErrKeyReused) {
		t.Fatalf("same key, another body: %v, want key reused", err)
	}
	if w := l.FSM().Workers(); len(w) != 1 || w[0].ArenaID != "a1" {
		t.Fatalf("workers %+v, want w on a1", w)
	}
}
