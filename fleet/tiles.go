package fleet

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/live"
	"github.com/optoloop/optoloop/worker"
)

// tiles publishes one worker's live tile (package live) while the worker serves.
//
// Two sides share one shot (the numbers and pixels of one step, see thumbnail.go). The loop
// side, the episode's worker.Episode.Watch, takes a shot only when both hold: at least
// TileEvery has passed since the last tile began (next), and the publishing goroutine is
// idle (free); otherwise it returns at once. So the loop never waits, never queues and
// allocates nothing; taking a shot costs ~50 µs on a reference frame, at most once per
// TileEvery (a step that takes none, ~60 ns). The publishing goroutine draws the shot, encodes it, puts the tile with a
// timeout and only then frees the shot: while a store is slow the loop takes nothing.
//
// Between shots the goroutine publishes the arena's state on its own (every TileEvery it
// checks): at once (within TileEvery) when the state changed, and every refresh otherwise,
// so that an idle arena's tile does not expire. Such tiles reuse the last thumbnail when it
// would not change.
type tiles struct {
	pub              live.Publisher
	every, ttl, wait time.Duration
	refresh          time.Duration
	arena, process   string
	line             string
	log              *slog.Logger
	geo              geometry

	// The loop side.
	next    atomic.Int64  // unix ns before which no tile begins
	free    atomic.Bool   // the goroutine runs and does not use shot: the loop may fill it
	stepped atomic.Uint64 // the lease whose loop has stepped (running)
	ready   chan struct{} // cap 1: the loop filled shot
	kick    chan struct{} // cap 1: the state changed
	shot    *shot

	mu sync.Mutex
	st tileStatus

	// The goroutine's.
	paint    *painter
	seq      uint64
	lastPut  time.Time
	lastKey  thumbKey
	lastJPEG []byte
	lastVer  uint64
	lastSt   string
	failing  bool
}

// tileStatus is what the worker's goroutine says of the arena.
type tileStatus struct {
	ver      uint64 // counts changes
	gen      uint64 // counts leases
	state    string // idle, leased, failed (running is the loop's: stepped)
	draining bool
	it       api.Item
	steps    int
	version  uint64
	err      string
}

// thumbKey says what a thumbnail showed: the same key, the same picture.
type thumbKey struct {
	gen   uint64 // the lease whose target is drawn (0: none)
	shot  uint64 // the shot drawn (0: none)
	state string
	light bool
}

func newTiles(cfg WorkerConfig, log *slog.Logger) *tiles {
	if cfg.Live == nil {
		return nil
	}
	process := cfg.Process
	if process == "" {
		process = cfg.ID
	}
	g := newGeometry(cfg.Station.Calibration(), cfg.TileWidth)
	return &tiles{
		pub: cfg.Live, every: cfg.TileEvery, ttl: cfg.TileTTL, wait: cfg.TileTTL / 3, refresh: max(cfg.TileEvery, cfg.TileTTL/3),
		arena: cfg.ID, process: process, line: cfg.Station.Line(), log: log, geo: g,
		ready: make(chan struct{}, 1), kick: make(chan struct{}, 1), shot: newShot(g), paint: newPainter(g),
		st: tileStatus{state: live.StateIdle, ver: 1},
	}
}

// start runs the publishing goroutine until ctx ends or the returned stop is called (stop
// waits for it). drain closing makes the arena draining; a draining arena's last tile is
// published when stop is called.
func (t *tiles) start(ctx context.Context, drain <-chan struct{}) (stop func()) {
	if t == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t.run(ctx, drain, quit)
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

func (t *tiles) run(ctx context.Context, drain, quit <-chan struct{}) {
	select {
	case <-t.ready: // a shot of an earlier run, never published
	default:
	}
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	t.free.Store(true)
	defer t.free.Store(false)
	t.status(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-quit:
			select {
			case <-drain:
				t.update(func(s *tileStatus) { s.draining = true })
			default:
			}
			if t.current().draining && ctx.Err() == nil {
				// The last word: the arena leaves. Waits for the rate like any tile.
				if d := time.Until(time.Unix(0, t.next.Load())); d > 0 {
					timer := time.NewTimer(d)
					select {
					case <-ctx.Done():
					case <-timer.C:
					}
					timer.Stop()
				}
				t.status(ctx)
			}
			return
		case <-drain:
			drain = nil
			t.update(func(s *tileStatus) { s.draining = true })
		case <-t.ready:
			t.publish(ctx, t.shot, time.Unix(0, t.shot.at))
			t.free.Store(true)
		case <-t.kick:
			t.status(ctx)
		case <-tick.C:
			t.status(ctx)
		}
	}
}

// watch returns the loop side of lease gen's episode (worker.Episode.Watch; nil without
// tiles).
func (t *tiles) watch(gen uint64) func(worker.Tick) {
	if t == nil {
		return nil
	}
	every := int64(t.every)
	return func(tk worker.Tick) {
		if tk.Index == 0 {
			t.stepped.Store(gen)
			t.poke()
		}
		now := time.Now().UnixNano()
		if now < t.next.Load() || !t.free.CompareAndSwap(true, false) {
			return
		}
		t.next.Store(now + every)
		s := t.shot
		s.gen, s.at, s.index, s.steps = gen, now, tk.Index, tk.Steps
		s.light, s.latency, s.target = tk.Light, float64(tk.Latency)/float64(time.Millisecond), tk.TargetPx
		s.take(t.geo, &tk.Frame, &tk.Pose, tk.OK)
		s.n++
		select {
		case t.ready <- struct{}{}:
		default: // not reached: ready is empty while the shot is free
			t.free.Store(true)
		}
	}
}

// leased says the worker leased item it (an episode of steps control steps); it returns the
// lease's generation, for watch.
func (t *tiles) leased(it *api.Item, steps int) uint64 {
	if t == nil {
		return 0
	}
	var gen uint64
	t.update(func(s *tileStatus) {
		s.gen++
		gen = s.gen
		s.state, s.it, s.steps, s.version, s.err = live.StateLeased, *it, steps, 0, ""
		s.it.Failures, s.it.Result, s.it.Progress = nil, nil, nil
	})
	return gen
}

// acting records the parameter version the lease's episode acts with.
func (t *tiles) acting(version uint64) {
	if t == nil {
		return
	}
	t.update(func(s *tileStatus) { s.version = version })
}

// failed says the current lease's attempt failed because of reason (the first reason given
// stays).
func (t *tiles) failed(reason string) {
	if t == nil {
		return
	}
	t.update(func(s *tileStatus) {
		if s.gen != 0 && s.state != live.StateFailed && s.state != live.StateIdle {
			s.state, s.err = live.StateFailed, reason
		}
	})
}

// ended says lease gen's attempt ended: done (the arena is idle) or failed (if no reason was
// given yet, a generic one).
func (t *tiles) ended(gen uint64, done bool) {
	if t == nil {
		return
	}
	t.update(func(s *tileStatus) {
		switch {
		case s.gen != gen:
		case done:
			s.state, s.it, s.steps, s.version, s.err = live.StateIdle, api.Item{}, 0, 0, ""
		case s.state != live.StateFailed:
			s.state, s.err = live.StateFailed, "attempt did not complete"
		}
	})
}

func (t *tiles) update(fn func(*tileStatus)) {
	t.mu.Lock()
	fn(&t.st)
	t.st.ver++
	t.mu.Unlock()
	t.poke()
}

func (t *tiles) current() tileStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}

// poke wakes the goroutine (without waiting).
func (t *tiles) poke() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// state is the arena's state as published.
func (t *tiles) state(s tileStatus) string {
	switch {
	case s.state == live.StateLeased && t.stepped.Load() == s.gen:
		return live.StateRunning
	case s.draining && (s.state == live.StateIdle || s.state == live.StateFailed):
		return live.StateDraining
	}
	return s.state
}

// status publishes a tile of the arena's state when one is due: the state changed (but for
// running, whose tiles are the loop's), or the last tile is refresh old. The shot is drawn
// when it is the current lease's.
func (t *tiles) status(ctx context.Context) {
	now := time.Now()
	if now.UnixNano() < t.next.Load() {
		return
	}
	s := t.current()
	state := t.state(s)
	due := now.Sub(t.lastPut) >= t.refresh
	if !due && state != live.StateRunning {
		// A running arena's tiles are the loop's shots: the state alone is published only
		// when they stop coming.
		due = s.ver != t.lastVer || state != t.lastSt
	}
	if !due {
		return
	}
	if !t.free.CompareAndSwap(true, false) {
		return // a shot waits: it goes next
	}
	t.next.Store(now.UnixNano() + int64(t.every))
	t.publish(ctx, nil, now)
	t.free.Store(true)
}

// publish draws and puts the tile of time at: of shot s (the loop's), or (nil) of the state
// with the current lease's last shot, if any.
func (t *tiles) publish(ctx context.Context, s *shot, at time.Time) {
	st := t.current()
	state := t.state(st)
	if s == nil {
		if t.shot.n > 0 && t.shot.gen == st.gen && st.gen != 0 && state != live.StateIdle && state != live.StateDraining {
			s = t.shot
		}
	} else if s.gen != st.gen || (state != live.StateRunning && state != live.StateFailed) {
		s = nil // a shot of a lease that has ended
	}
	tile := live.Tile{
		Arena: t.arena, Worker: t.process, Line: t.line, State: state, DistanceCM: -1,
		Step: 0, Steps: st.steps, PolicyVersion: st.version, Error: st.err, At: at,
	}
	if state != live.StateIdle && state != live.StateDraining || st.err != "" {
		tile.Experiment, tile.Episode, tile.Kind, tile.Token = st.it.ExperimentID, st.it.ID, string(st.it.Kind), st.it.Token
	}
	key := thumbKey{state: state}
	// A collection episode has no target (learners place virtual ones): none is drawn and no
	// distance is given.
	var target *[2]float64
	if st.gen != 0 && tile.Episode != "" && st.it.Target != nil {
		c, tc := t.geo.cal, st.it.TargetCM()
		target = &[2]float64{c.CenterX + tc[0]*c.PxPerCM, c.CenterY + tc[1]*c.PxPerCM}
		key.gen = st.gen
	}
	if s != nil {
		tile.Step, tile.Steps, tile.Confidence, tile.LatencyMS = s.index+1, s.steps, finite(s.confidence), finite(s.latency)
		tile.Tracked = s.ok
		if d := math.Hypot(s.x-s.target[0], s.y-s.target[1]) / t.geo.cal.PxPerCM; target != nil && s.ok && d >= 0 && !math.IsInf(d, 0) {
			tile.DistanceCM = d
		}
		tile.Light = s.light && state == live.StateRunning
		key.shot = s.n
	}
	key.light = tile.Light
	jpg := t.lastJPEG
	if key != t.lastKey || jpg == nil {
		t.paint.draw(s, target, state, tile.Light)
		jpg = t.paint.encode()
		t.lastKey, t.lastJPEG = key, jpg
	}
	t.seq++
	tile.Seq = t.seq
	t.lastPut, t.lastVer, t.lastSt = time.Now(), st.ver, state
	pctx, cancel := context.WithTimeout(ctx, t.wait)
	err := t.pub.PutTile(pctx, tile, jpg, t.ttl)
	cancel()
	switch {
	case err == nil && t.failing:
		t.failing = false
		t.log.Info("live tiles published again")
	case err == nil, ctx.Err() != nil:
	case !t.failing:
		t.failing = true
		t.log.Warn("live tile not published (the arena's tile is lost; further failures are logged at debug)", "err", err)
	default:
		t.log.Debug("live tile not published", "err", err)
	}
}

// finite returns x, or 0 for NaN and infinities (which a store refuses).
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
