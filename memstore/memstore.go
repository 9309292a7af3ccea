// Package memstore holds in-memory implementations of the stores the fleet roles consume
// (package fleet): Replay, Params, Tracks and Checkpoints, and the live store the roles publish
// to and the dashboard reads (package live): Live. The local run (package runner) and tests use
// them where a cluster uses Redis.
//
// Every store is safe for concurrent use and copies what it is given and what it returns: a
// caller that changes a slice or map after an append, or changes what a read returned, does not
// change what is stored. Absent keys are reported with an error wrapping fleet.ErrNotFound
// (live.ErrNotFound for an absent or expired thumbnail). Nothing is durable: a store lives as
// long as its process, which is what "durable" means for a run that lives in one process.
package memstore

import (
	"context"
	"fmt"

	"github.com/optoloop/optoloop/fleet"
)

var (
	_ fleet.Replay      = (*Replay)(nil)
	_ fleet.Params      = (*Params)(nil)
	_ fleet.Tracks      = (*Tracks)(nil)
	_ fleet.Checkpoints = (*Checkpoints)(nil)
)

// name is an experiment and a key inside it (a line, an item id or a task id).
type name struct{ experiment, key string }

// notifier is a broadcast: wait returns a channel closed at the next signal.
type notifier struct {
	ch chan struct{}
}

// wait returns the channel the next signal closes. The caller holds the store's lock.
func (n *notifier) wait() <-chan struct{} {
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// signal wakes every waiter. The caller holds the store's lock.
func (n *notifier) signal() {
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// errCtx returns the context's error, wrapped, when it has ended.
func errCtx(ctx context.Context, what string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %s: %w", what, err)
	}
	return nil
}
