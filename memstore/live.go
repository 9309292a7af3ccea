package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/optoloop/optoloop/live"
)

var (
	_ live.Publisher = (*Live)(nil)
	_ live.Reader    = (*Live)(nil)
)

// liveTile is an arena's tile, its thumbnail (nil: none) and when both expire.
type liveTile struct {
	tile    live.Tile
	jpeg    []byte
	expires time.Time
}

// liveCurve is a training task's curve: its line and its newest points, by increasing Update.
type liveCurve struct {
	line   string
	points []live.CurvePoint
}

// Live is an in-memory live.Publisher and live.Reader: each arena's tile and thumbnail until
// its TTL passes (by the process's clock; expired tiles are never returned, and are dropped at
// the next put or read), and each training task's curve (kept as long as the process).
type Live struct {
	mu     sync.Mutex
	tiles  map[string]liveTile
	curves map[name]*liveCurve
}

// NewLive returns an empty live store.
func NewLive() *Live { return &Live{tiles: map[string]liveTile{}, curves: map[name]*liveCurve{}} }

// PutTile replaces arena t.Arena's tile and thumbnail with copies of t and jpeg (nil or empty:
// no thumbnail); both expire after ttl. An invalid tile (live.Tile.Validate, or a number that
// is NaN or infinite), a JPEG over live.MaxThumbnailBytes or a TTL under a millisecond is
// refused and changes nothing.
func (l *Live) PutTile(ctx context.Context, t live.Tile, jpeg []byte, ttl time.Duration) error {
	if err := errCtx(ctx, "put tile"); err != nil {
		return err
	}
	if err := live.CheckTile(t, jpeg, ttl); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	var cp []byte
	if len(jpeg) > 0 {
		cp = cloneBytes(jpeg)
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	l.tiles[t.Arena] = liveTile{tile: t, jpeg: cp, expires: now.Add(ttl)}
	return nil
}

// Tiles returns every unexpired tile, ordered by arena id (none: an empty slice).
func (l *Live) Tiles(ctx context.Context) ([]live.Tile, error) {
	if err := errCtx(ctx, "tiles"); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.prune(time.Now())
	out := make([]live.Tile, 0, len(l.tiles))
	for _, t := range l.tiles {
		out = append(out, t.tile)
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b live.Tile) int { return cmp.Compare(a.Arena, b.Arena) })
	return out, nil
}

// Thumbnail returns a copy of an arena's JPEG (live.ErrNotFound when it has none or its tile
// expired).
func (l *Live) Thumbnail(ctx context.Context, arena string) ([]byte, error) {
	if err := errCtx(ctx, "thumbnail"); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.tiles[arena]
	if ok && !time.Now().Before(t.expires) {
		delete(l.tiles, arena)
		ok = false
	}
	if !ok || t.jpeg == nil {
		return nil, fmt.Errorf("memstore: thumbnail of arena %q: %w", arena, live.ErrNotFound)
	}
	// Stored thumbnails are never changed (a put replaces them whole).
	return cloneBytes(t.jpeg), nil
}

// prune drops the tiles expired at now. The caller holds l.mu.
func (l *Live) prune(now time.Time) {
	for a, t := range l.tiles {
		if !now.Before(t.expires) {
			delete(l.tiles, a)
		}
	}
}

// AppendCurve adds copies of points to the task's curve, in order, dropping each point whose
// Update is not above the curve's last, and keeps the newest live.MaxCurvePoints. The curve
// takes line when a point is kept. An append without an experiment or a task, or with a number
// that is NaN or infinite, is refused and changes nothing.
func (l *Live) AppendCurve(ctx context.Context, experiment, task, line string, points []live.CurvePoint) error {
	if err := errCtx(ctx, "append curve"); err != nil {
		return err
	}
	if err := live.CheckCurve(experiment, task, points); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	if len(points) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := name{experiment, task}
	c := l.curves[n]
	if c == nil {
		c = &liveCurve{}
	}
	kept := false
	for _, p := range points {
		if k := len(c.points); k > 0 && p.Update <= c.points[k-1].Update {
			continue
		}
		c.points, kept = append(c.points, p), true
	}
	if !kept {
		return nil
	}
	if extra := len(c.points) - live.MaxCurvePoints; extra > 0 {
		c.points = slices.Clone(c.points[extra:])
	}
	c.line = line
	l.curves[n] = c
	return nil
}

// Curves returns copies of the curves of an experiment's tasks, ordered by task id (none: an
// empty slice).
func (l *Live) Curves(ctx context.Context, experiment string) ([]live.Curve, error) {
	if err := errCtx(ctx, "curves"); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []live.Curve{}
	for n, c := range l.curves {
		if n.experiment == experiment {
			out = append(out, live.Curve{Experiment: experiment, Task: n.key, Line: c.line, Points: slices.Clone(c.points)})
		}
	}
	slices.SortFunc(out, func(a, b live.Curve) int { return cmp.Compare(a.Task, b.Task) })
	return out, nil
}
