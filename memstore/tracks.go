package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/results"
)

// trackKey identifies one attempt's track: the episode's item id and the attempt's lease token.
type trackKey struct {
	experiment, id string
	token          uint64
}

// Tracks is an in-memory fleet.Tracks: each attempt's track, by experiment, episode id and
// lease token.
type Tracks struct {
	mu     sync.Mutex
	tracks map[trackKey]results.Episode
}

// NewTracks returns an empty track store.
func NewTracks() *Tracks { return &Tracks{tracks: map[trackKey]results.Episode{}} }

// Put stores a copy of the track of the attempt under token; the key is the track's ID. Putting
// the same attempt's track again replaces it.
func (t *Tracks) Put(ctx context.Context, experiment string, token uint64, track results.Episode) error {
	if err := errCtx(ctx, "put track"); err != nil {
		return err
	}
	if err := fleet.CheckKey("put track", experiment, track.ID); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	cp := copyTrack(track)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tracks[trackKey{experiment, track.ID, token}] = cp
	return nil
}

// Get returns a copy of the track of episode id stored under token (fleet.ErrNotFound when
// absent).
func (t *Tracks) Get(ctx context.Context, experiment, id string, token uint64) (results.Episode, error) {
	if err := errCtx(ctx, "get track"); err != nil {
		return results.Episode{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.tracks[trackKey{experiment, id, token}]
	if !ok {
		return results.Episode{}, fmt.Errorf("memstore: track of episode %q (lease %d) of experiment %q: %w", id, token, experiment, fleet.ErrNotFound)
	}
	return copyTrack(e), nil
}

// copyTrack copies what an Episode shares by reference: its frames and its time to 0.5 cm.
func copyTrack(e results.Episode) results.Episode {
	e.Frames = slices.Clone(e.Frames)
	if e.TimeTo05cmS != nil {
		t := *e.TimeTo05cmS
		e.TimeTo05cmS = &t
	}
	return e
}
