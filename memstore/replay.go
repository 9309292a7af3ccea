package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/optoloop/optoloop/fleet"
)

// chunkKey identifies a chunk within one replay: an attempt (episode and lease token) and the
// chunk's number in it.
type chunkKey struct {
	episode string
	token   uint64
	seq     int
}

// replayLog is one experiment and line's replay: chunks in the order they were first appended.
type replayLog struct {
	chunks []fleet.Chunk
	seen   map[chunkKey]bool
}

// Replay is an in-memory fleet.Replay: one log of chunks per experiment and line.
type Replay struct {
	mu   sync.Mutex
	logs map[name]*replayLog
}

// NewReplay returns an empty replay.
func NewReplay() *Replay { return &Replay{logs: map[name]*replayLog{}} }

// Append stores a copy of c. Appending a chunk whose (Episode, Token, Seq) is already stored
// changes nothing, whatever its records: the first append of an attempt's chunk is the one kept.
func (r *Replay) Append(ctx context.Context, c fleet.Chunk) error {
	if err := errCtx(ctx, "append"); err != nil {
		return err
	}
	if err := fleet.CheckChunk(c); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	k := chunkKey{c.Episode, c.Token, c.Seq}
	cp := c
	cp.Records = slices.Clone(c.Records)
	r.mu.Lock()
	defer r.mu.Unlock()
	n := name{c.Experiment, c.Line}
	l := r.logs[n]
	if l == nil {
		l = &replayLog{seen: map[chunkKey]bool{}}
		r.logs[n] = l
	}
	if l.seen[k] {
		return nil
	}
	l.seen[k] = true
	l.chunks = append(l.chunks, cp)
	return nil
}

// Chunks returns copies of every chunk of an experiment's line, of every attempt, in the order
// they were first appended (none: an empty slice).
func (r *Replay) Chunks(ctx context.Context, experiment, line string) ([]fleet.Chunk, error) {
	if err := errCtx(ctx, "chunks"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.logs[name{experiment, line}]
	if l == nil {
		return []fleet.Chunk{}, nil
	}
	out := make([]fleet.Chunk, len(l.chunks))
	for i, c := range l.chunks {
		out[i] = c
		out[i].Records = slices.Clone(c.Records)
	}
	return out, nil
}
