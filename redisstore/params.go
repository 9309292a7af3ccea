package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optoloop/optoloop/fleet"
)

// Hash fields of a parameter version.
const (
	fieldBlob   = "blob"
	fieldSHA256 = "sha256"
	// fieldTrace is the W3C traceparent of the span that published the version (absent when
	// it was not traced).
	fieldTrace = "traceparent"
)

// waitRecheck is how often Wait reads the newest version besides its notifications: a
// notification published while its connection was down is lost.
const waitRecheck = 2 * time.Second

// publishScript stores a parameter version unless it is there. KEYS: the version's hash, the
// line's latest version. ARGV: blob, its SHA-256 (hex), the version, the channel and message to
// publish, the traceparent ("" for none; kept only with a new version). It returns 1 for a new version, 0 for the same bytes again and -1 for other bytes
// (nothing changed). The latest version is the largest (compared as decimal strings, so no
// float rounding).
var publishScript = redis.NewScript(`
local sum = redis.call('HGET', KEYS[1], 'sha256')
if sum then
  if sum == ARGV[2] and redis.call('HGET', KEYS[1], 'blob') == ARGV[1] then
    return 0
  end
  return -1
end
redis.call('HSET', KEYS[1], 'blob', ARGV[1], 'sha256', ARGV[2])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'traceparent', ARGV[6])
end
local latest = redis.call('GET', KEYS[2])
local v = ARGV[3]
if not latest or #v > #latest or (#v == #latest and v > latest) then
  redis.call('SET', KEYS[2], v)
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`)

// Publish stores blob as the line's version, with its SHA-256 beside it, and returns once
// Redis has it in its append-only file; a new version is announced on the experiment's
// channel. Versions number from 1 (0 is the version of a fixed light schedule, never a
// parameter version). Publishing a stored version again with the same bytes changes nothing;
// with other bytes it is an error and changes nothing.
func (s *Store) Publish(ctx context.Context, experiment, line string, version uint64, blob []byte) error {
	return s.PublishTraced(ctx, experiment, line, version, blob, "")
}

// PublishTraced is Publish that keeps traceParent (the publishing span's W3C traceparent) in
// the version's hash when the version is new.
func (s *Store) PublishTraced(ctx context.Context, experiment, line string, version uint64, blob []byte, traceParent string) error {
	if err := errCtx(ctx, "publish"); err != nil {
		return err
	}
	if err := fleet.CheckPublish(experiment, line, version, blob); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	sum := sha256.Sum256(blob)
	v := strconv.FormatUint(version, 10)
	res, err := s.eval(ctx, publishScript,
		[]string{s.key(experiment, "params", line, v), s.key(experiment, "params", line, "latest")},
		blob, hex.EncodeToString(sum[:]), v, s.channel(experiment), line+" "+v, traceParent)
	if err != nil {
		return s.fail(ctx, fmt.Sprintf("publish %s/%s version %d", experiment, line, version), err)
	}
	if res == int64(-1) {
		return fmt.Errorf("redisstore: publish %s/%s: version %d is already stored with other bytes", experiment, line, version)
	}
	return nil
}

// Fetch returns a version's blob (fleet.ErrNotFound when absent); a blob whose SHA-256 is not
// the one stored beside it is an error naming the version.
func (s *Store) Fetch(ctx context.Context, experiment, line string, version uint64) ([]byte, error) {
	if err := errCtx(ctx, "fetch"); err != nil {
		return nil, err
	}
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	v, err := s.rdb.HMGet(cctx, s.key(experiment, "params", line, strconv.FormatUint(version, 10)), fieldBlob, fieldSHA256).Result()
	if err != nil {
		return nil, s.fail(ctx, fmt.Sprintf("fetch parameters %s/%s version %d", experiment, line, version), err)
	}
	blob, ok1 := v[0].(string)
	sum, ok2 := v[1].(string)
	switch {
	case v[0] == nil && v[1] == nil:
		return nil, fmt.Errorf("redisstore: parameters %s/%s version %d: %w", experiment, line, version, fleet.ErrNotFound)
	case !ok1 || !ok2:
		return nil, fmt.Errorf("redisstore: parameters %s/%s version %d: blob or checksum missing", experiment, line, version)
	}
	if got := sha256.Sum256([]byte(blob)); hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("redisstore: parameters %s/%s version %d: the blob's SHA-256 is not the one stored with it: corrupt", experiment, line, version)
	}
	return []byte(blob), nil
}

// TraceParent returns the traceparent stored with a version ("" when it was not traced;
// fleet.ErrNotFound when the version is absent).
func (s *Store) TraceParent(ctx context.Context, experiment, line string, version uint64) (string, error) {
	if err := errCtx(ctx, "traceparent"); err != nil {
		return "", err
	}
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	v, err := s.rdb.HMGet(cctx, s.key(experiment, "params", line, strconv.FormatUint(version, 10)), fieldSHA256, fieldTrace).Result()
	if err != nil {
		return "", s.fail(ctx, fmt.Sprintf("traceparent of parameters %s/%s version %d", experiment, line, version), err)
	}
	if v[0] == nil {
		return "", fmt.Errorf("redisstore: parameters %s/%s version %d: %w", experiment, line, version, fleet.ErrNotFound)
	}
	tp, _ := v[1].(string)
	return tp, nil
}

// Latest returns the newest version published for the line (fleet.ErrNotFound when none).
func (s *Store) Latest(ctx context.Context, experiment, line string) (uint64, error) {
	if err := errCtx(ctx, "latest"); err != nil {
		return 0, err
	}
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	v, err := s.rdb.Get(cctx, s.key(experiment, "params", line, "latest")).Result()
	if errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("redisstore: parameters %s/%s: no version: %w", experiment, line, fleet.ErrNotFound)
	}
	if err != nil {
		return 0, s.fail(ctx, fmt.Sprintf("latest parameters of %s/%s", experiment, line), err)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redisstore: parameters %s/%s: latest version %q is not a number", experiment, line, v)
	}
	return n, nil
}

// Wait blocks until the line has a version at least atLeast (1: any version) and returns the
// newest. It listens to the experiment's channel and also reads the newest version every few
// seconds (a notification sent while its connection was down is lost). It returns the
// context's error, wrapped, when ctx ends first, and Redis's error when Redis cannot be read.
func (s *Store) Wait(ctx context.Context, experiment, line string, atLeast uint64) (uint64, error) {
	ps := s.rdb.Subscribe(ctx)
	defer ps.Close()
	cctx, cancel := s.cmdCtx(ctx)
	err := ps.Subscribe(cctx, s.channel(experiment))
	if err == nil {
		_, err = ps.Receive(cctx) // the subscription's confirmation
	}
	cancel()
	if err != nil {
		return 0, s.fail(ctx, fmt.Sprintf("wait for %s/%s version %d: subscribe", experiment, line, atLeast), err)
	}
	published := ps.Channel()
	tick := time.NewTicker(waitRecheck)
	defer tick.Stop()
	for {
		v, err := s.Latest(ctx, experiment, line)
		switch {
		case err == nil && v >= max(atLeast, 1):
			return v, nil
		case ctx.Err() != nil:
			return 0, fmt.Errorf("redisstore: wait for %s/%s version %d: %w", experiment, line, atLeast, ctx.Err())
		case err != nil && !errors.Is(err, fleet.ErrNotFound):
			return 0, err
		}
		select {
		case <-published:
		case <-tick.C:
		case <-ctx.Done():
			return 0, fmt.Errorf("redisstore: wait for %s/%s version %d: %w", experiment, line, atLeast, ctx.Err())
		}
	}
}

// channel is the pub/sub channel announcing an experiment's new parameter versions.
func (s *Store) channel(experiment string) string { return s.key(experiment, "params") }
