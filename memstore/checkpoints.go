package memstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/optoloop/optoloop/fleet"
)

// Checkpoints is an in-memory fleet.Checkpoints: each training task's latest checkpoint.
type Checkpoints struct {
	mu    sync.Mutex
	tasks map[name]map[string][]byte
}

// NewCheckpoints returns an empty checkpoint store.
func NewCheckpoints() *Checkpoints { return &Checkpoints{tasks: map[name]map[string][]byte{}} }

// Save replaces the task's checkpoint with a copy of files.
func (c *Checkpoints) Save(ctx context.Context, experiment, task string, files map[string][]byte) error {
	if err := errCtx(ctx, "save checkpoint"); err != nil {
		return err
	}
	if err := fleet.CheckKey("save checkpoint", experiment, task); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	for f := range files {
		if f == "" {
			return errors.New("memstore: save checkpoint: empty file name")
		}
	}
	cp := copyFiles(files)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tasks[name{experiment, task}] = cp
	return nil
}

// Load returns a copy of the task's checkpoint (fleet.ErrNotFound when none was saved).
func (c *Checkpoints) Load(ctx context.Context, experiment, task string) (map[string][]byte, error) {
	if err := errCtx(ctx, "load checkpoint"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	files, ok := c.tasks[name{experiment, task}]
	c.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("memstore: checkpoint of task %q of experiment %q: %w", task, experiment, fleet.ErrNotFound)
	}
	// Stored maps are never changed after Save (it replaces them whole), so copying outside
	// the lock is safe.
	return copyFiles(files), nil
}

func copyFiles(files map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(files))
	for k, v := range files {
		out[k] = cloneBytes(v)
	}
	return out
}

// cloneBytes copies b; a nil or empty b gives a non-nil empty slice.
func cloneBytes(b []byte) []byte { return append([]byte{}, b...) }
