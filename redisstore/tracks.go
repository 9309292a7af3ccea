package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/results"
)

// Put stores the track of the attempt under token, as JSON, and returns once Redis has it in
// its append-only file; the key is the track's ID. Putting the same attempt's track again
// replaces it. A track JSON cannot hold (a NaN or infinite number) is refused.
func (s *Store) Put(ctx context.Context, experiment string, token uint64, track results.Episode) error {
	if err := errCtx(ctx, "put track"); err != nil {
		return err
	}
	if err := fleet.CheckKey("put track", experiment, track.ID); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	b, err := json.Marshal(track)
	if err != nil {
		return fmt.Errorf("redisstore: put track of episode %q (lease %d): %w", track.ID, token, err)
	}
	key := s.trackKey(experiment, track.ID, token)
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	if s.waitAOF {
		var w func() error
		if w, err = s.withWaitAOF(cctx, func(p redis.Pipeliner) { p.Set(cctx, key, b, 0) }); err == nil {
			err = w()
		}
	} else {
		err = s.rdb.Set(cctx, key, b, 0).Err()
	}
	if err != nil {
		return s.fail(ctx, fmt.Sprintf("put track of episode %q (lease %d) of experiment %q", track.ID, token, experiment), err)
	}
	return nil
}

// Get returns the track of episode id stored under token (fleet.ErrNotFound when absent).
func (s *Store) Get(ctx context.Context, experiment, id string, token uint64) (results.Episode, error) {
	if err := errCtx(ctx, "get track"); err != nil {
		return results.Episode{}, err
	}
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	b, err := s.rdb.Get(cctx, s.trackKey(experiment, id, token)).Bytes()
	if errors.Is(err, redis.Nil) {
		return results.Episode{}, fmt.Errorf("redisstore: track of episode %q (lease %d) of experiment %q: %w", id, token, experiment, fleet.ErrNotFound)
	}
	if err != nil {
		return results.Episode{}, s.fail(ctx, fmt.Sprintf("get track of episode %q (lease %d) of experiment %q", id, token, experiment), err)
	}
	var e results.Episode
	if err := json.Unmarshal(b, &e); err != nil {
		return results.Episode{}, fmt.Errorf("redisstore: track of episode %q (lease %d) of experiment %q: %w", id, token, experiment, err)
	}
	return e, nil
}

func (s *Store) trackKey(experiment, id string, token uint64) string {
	return s.key(experiment, "track", id, strconv.FormatUint(token, 10))
}
