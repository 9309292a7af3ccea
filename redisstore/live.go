package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optoloop/optoloop/live"
)

var (
	_ live.Publisher = (*Store)(nil)
	_ live.Reader    = (*Store)(nil)
)

// CurveTTL is how long a training task's curve is kept after its last append (each append
// starts it again): long enough to outlive any experiment, short enough that curves do not pile
// up forever.
const CurveTTL = 30 * 24 * time.Hour

// Hash fields of a tile.
const (
	fieldTile = "tile" // the live.Tile as JSON
	fieldJPEG = "jpeg" // the thumbnail (absent: none)
)

// putTileScript replaces an arena's tile whole and indexes it, in one step. It reads the
// server's clock, so that the index's scores and the keys' expiry agree. KEYS: the tile's
// hash, the index. ARGV: the arena id, the TTL in milliseconds, the tile's JSON and, when there
// is a thumbnail, the JPEG. The index (arena id scored by expiry in Unix milliseconds, rounded
// up so that no id leaves it before its TTL has passed) drops the ids expired and expires
// itself with its last tile.
var putTileScript = redis.NewScript(`
local t = redis.call('TIME')
local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('DEL', KEYS[1])
if ARGV[4] then
  redis.call('HSET', KEYS[1], 'tile', ARGV[3], 'jpeg', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'tile', ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%d', math.floor(us / 1000)))
redis.call('ZADD', KEYS[2], string.format('%d', math.ceil(us / 1000) + tonumber(ARGV[2])), ARGV[1])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], string.format('%d', tonumber(last[2]) + 1))
return 1
`)

// liveTilesScript drops the index's expired arena ids (by the server's clock) and returns the
// others. KEYS: the index.
var liveTilesScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

// appendCurveScript appends to a task's curve the points whose update is above the curve's
// last (read from the last point's JSON), in order, keeps the newest ones, records the task's
// line and starts the TTL of both keys again; all in one step, so that concurrent or repeated
// appends never fold a curve back. KEYS: the curve's list, the experiment's hash of task ->
// line. ARGV: the task, the line, the number of points kept, the TTL in milliseconds, then the
// update and JSON of each point. It returns the number of points appended.
var appendCurveScript = redis.NewScript(`
local last
local tail = redis.call('LINDEX', KEYS[1], -1)
if tail then
  last = tonumber(cjson.decode(tail)['update'])
end
local keep = {}
for i = 5, #ARGV, 2 do
  local u = tonumber(ARGV[i])
  if last == nil or u > last then
    keep[#keep + 1] = ARGV[i + 1]
    last = u
  end
end
if #keep == 0 then
  return 0
end
for i = 1, #keep, 200 do
  redis.call('RPUSH', KEYS[1], unpack(keep, i, math.min(i + 199, #keep)))
end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return #keep
`)

// PutTile replaces arena t.Arena's tile and thumbnail (nil or empty jpeg: none) in one step;
// both expire after ttl (kept to the millisecond). An invalid tile (live.Tile.Validate, or a
// number that is NaN or infinite), a JPEG over live.MaxThumbnailBytes or a TTL under a
// millisecond is refused and changes nothing. A tile is not worth an fsync of its own: PutTile
// returns once Redis has run the write, without WAITAOF.
func (s *Store) PutTile(ctx context.Context, t live.Tile, jpeg []byte, ttl time.Duration) error {
	if err := errCtx(ctx, "put tile"); err != nil {
		return err
	}
	if err := live.CheckTile(t, jpeg, ttl); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("redisstore: put tile %s: %w", t.Arena, err)
	}
	args := []any{t.Arena, ttl.Milliseconds(), b}
	if len(jpeg) > 0 {
		args = append(args, jpeg)
	}
	if _, err := s.run(ctx, putTileScript, []string{s.tileKey(t.Arena), s.tilesKey()}, args...); err != nil {
		return s.fail(ctx, fmt.Sprintf("put tile of arena %q", t.Arena), err)
	}
	return nil
}

// Tiles returns every unexpired tile, ordered by arena id (none: an empty slice): the index's
// live arena ids, then their tiles in one pipeline (a tile that expired in between is left
// out). A tile that does not decode is an error naming its arena.
func (s *Store) Tiles(ctx context.Context) ([]live.Tile, error) {
	if err := errCtx(ctx, "tiles"); err != nil {
		return nil, err
	}
	res, err := s.run(ctx, liveTilesScript, []string{s.tilesKey()})
	if err != nil {
		return nil, s.fail(ctx, "list tiles", err)
	}
	ids, _ := res.([]any)
	out := make([]live.Tile, 0, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			a, _ := id.(string)
			cmds[i] = p.HGet(cctx, s.tileKey(a), fieldTile)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.fail(ctx, "read tiles", err)
	}
	for i, c := range cmds {
		b, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, s.fail(ctx, fmt.Sprintf("read tile of arena %q", ids[i]), err)
		}
		var t live.Tile
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, fmt.Errorf("redisstore: tile of arena %q: %w: %v", ids[i], errCorrupt, err)
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b live.Tile) int { return cmp.Compare(a.Arena, b.Arena) })
	return out, nil
}

// Thumbnail returns an arena's JPEG (live.ErrNotFound when it has none or its tile expired).
func (s *Store) Thumbnail(ctx context.Context, arena string) ([]byte, error) {
	if err := errCtx(ctx, "thumbnail"); err != nil {
		return nil, err
	}
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	b, err := s.rdb.HGet(cctx, s.tileKey(arena), fieldJPEG).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: thumbnail of arena %q: %w", arena, live.ErrNotFound)
	}
	if err != nil {
		return nil, s.fail(ctx, fmt.Sprintf("thumbnail of arena %q", arena), err)
	}
	return b, nil
}

// AppendCurve adds points to the task's curve in one step, in order, dropping each point whose
// Update is not above the curve's last, and keeps the newest live.MaxCurvePoints; the curve
// takes line when a point is kept, and is kept CurveTTL after its last append. An append
// without an experiment or a task, or with a number that is NaN or infinite, is refused and
// changes nothing. A curve is a copy of what the learner checkpoints: AppendCurve returns once
// Redis has run the write, without WAITAOF.
func (s *Store) AppendCurve(ctx context.Context, experiment, task, line string, points []live.CurvePoint) error {
	if err := errCtx(ctx, "append curve"); err != nil {
		return err
	}
	if err := live.CheckCurve(experiment, task, points); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	if len(points) == 0 {
		return nil
	}
	args := make([]any, 0, 4+2*len(points))
	args = append(args, task, line, live.MaxCurvePoints, CurveTTL.Milliseconds())
	for _, p := range points {
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("redisstore: append curve of %s/%s: point at update %d: %w", experiment, task, p.Update, err)
		}
		args = append(args, strconv.FormatInt(p.Update, 10), b)
	}
	if _, err := s.run(ctx, appendCurveScript, []string{s.key(experiment, "curve", task), s.key(experiment, "curves")}, args...); err != nil {
		return s.fail(ctx, fmt.Sprintf("append curve of task %q of experiment %q", task, experiment), err)
	}
	return nil
}

// Curves returns the curves of an experiment's tasks, ordered by task id (none: an empty
// slice): the experiment's tasks, then their points in one pipeline (a curve that expired is
// left out). A point that does not decode is an error naming its task.
func (s *Store) Curves(ctx context.Context, experiment string) ([]live.Curve, error) {
	if err := errCtx(ctx, "curves"); err != nil {
		return nil, err
	}
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	lines, err := s.rdb.HGetAll(cctx, s.key(experiment, "curves")).Result()
	if err != nil {
		return nil, s.fail(ctx, fmt.Sprintf("curves of experiment %q", experiment), err)
	}
	out := []live.Curve{}
	if len(lines) == 0 {
		return out, nil
	}
	tasks := slices.Sorted(maps.Keys(lines))
	cmds := make([]*redis.StringSliceCmd, len(tasks))
	_, err = s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
		for i, task := range tasks {
			cmds[i] = p.LRange(cctx, s.key(experiment, "curve", task), 0, -1)
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, fmt.Sprintf("read curves of experiment %q", experiment), err)
	}
	for i, task := range tasks {
		els := cmds[i].Val()
		if len(els) == 0 {
			continue
		}
		c := live.Curve{Experiment: experiment, Task: task, Line: lines[task], Points: make([]live.CurvePoint, len(els))}
		for j, e := range els {
			if err := json.Unmarshal([]byte(e), &c.Points[j]); err != nil {
				return nil, fmt.Errorf("redisstore: curve of task %q of experiment %q: point %d: %w: %v", task, experiment, j, errCorrupt, err)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// run runs a script whose writes need no fsync of their own (the live data): no WAITAOF.
func (s *Store) run(ctx context.Context, sc *redis.Script, keys []string, args ...any) (any, error) {
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	return sc.Run(cctx, s.rdb, keys, args...).Result()
}

// tileKey is an arena's tile hash. Tiles belong to no experiment: their keys have the empty
// experiment, which no experiment's keys have (fleet.CheckKey refuses it).
func (s *Store) tileKey(arena string) string { return s.key("", "tile", arena) }

// tilesKey is the index of the arenas' tiles.
func (s *Store) tilesKey() string { return s.key("", "tiles") }
