package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/live"
	"github.com/optoloop/optoloop/station"
)

// The tests of this file run a worker with a live publisher that records what it is given
// (or fails, or blocks until its context ends). Episodes run paced (station.Config.Realtime at
// tilePace times real time) so that a 20 s episode lasts long enough on the wall clock for
// several tiles at tileEvery.

const (
	tileEvery = 40 * time.Millisecond
	tilePace  = 40 // a 20 s episode (60 frames) in 0.5 s
)

// published is one PutTile call.
type published struct {
	tile live.Tile
	jpeg []byte
	ttl  time.Duration
}

// tileRecorder is a live.Publisher that keeps every tile; with fail set it returns fail
// instead, and with block it blocks until the put's context ends.
type tileRecorder struct {
	t     *testing.T
	fail  error
	block bool

	mu       sync.Mutex
	puts     []published
	calls    int
	noLimit  int // puts without a deadline
	inFlight atomic.Int32
	changed  chan struct{}
}

func newTileRecorder(t *testing.T) *tileRecorder {
	return &tileRecorder{t: t, changed: make(chan struct{}, 1)}
}

func (r *tileRecorder) PutTile(ctx context.Context, tl live.Tile, jpg []byte, ttl time.Duration) error {
	r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	r.mu.Lock()
	r.calls++
	if _, ok := ctx.Deadline(); !ok {
		r.noLimit++
	}
	r.mu.Unlock()
	defer func() {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}()
	switch {
	case r.block:
		<-ctx.Done()
		return ctx.Err()
	case r.fail != nil:
		return r.fail
	}
	if err := tl.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	r.puts = append(r.puts, published{tl, jpg, ttl})
	r.mu.Unlock()
	return nil
}

func (r *tileRecorder) AppendCurve(context.Context, string, string, string, []live.CurvePoint) error {
	r.t.Error("a worker appended a learning curve")
	return errors.New("workers publish no curves")
}

func (r *tileRecorder) tiles() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.puts)
}

func (r *tileRecorder) counts() (calls, noLimit int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, r.noLimit
}

// waitCtx waits until cond holds of the tiles published or ctx ends.
func (r *tileRecorder) waitCtx(ctx context.Context, cond func([]published) bool) {
	for !cond(r.tiles()) {
		select {
		case <-r.changed:
		case <-ctx.Done():
			return
		}
	}
}

// leaseGate is a broker that calls before (told whether an attempt was failed yet) ahead of
// every lease.
type leaseGate struct {
	fleet.Broker
	before func(ctx context.Context, failed bool)
	failed atomic.Bool
}

func (b *leaseGate) Fail(ctx context.Context, c api.FailCmd) (*api.Item, error) {
	b.failed.Store(true)
	return b.Broker.Fail(ctx, c)
}

func (b *leaseGate) Lease(ctx context.Context, req api.LeaseRequest) (*api.Item, error) {
	b.before(ctx, b.failed.Load())
	return b.Broker.Lease(ctx, req)
}

// afterFirstTile is a lease gate holding the first lease until a tile was published, so
// that the arena is seen idle first.
func afterFirstTile(b fleet.Broker, rec *tileRecorder) *leaseGate {
	return &leaseGate{Broker: b, before: func(ctx context.Context, _ bool) {
		rec.waitCtx(ctx, func(ps []published) bool { return len(ps) > 0 })
	}}
}

// waitFor waits until cond holds of the tiles published (10 s at most).
func (r *tileRecorder) waitFor(t *testing.T, what string, cond func([]published) bool) []published {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if ps := r.tiles(); cond(ps) {
			return ps
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("no %s within 10 s", what)
		}
	}
}

// tileStation opens a paced simulated station of line: rendered on a 640x640 camera
// (thumbnails 320x320) or, without rendering, the reference rig's 2160x1920 (308x274).
func tileStation(t *testing.T, line string, render bool) (*station.Station, image.Point) {
	t.Helper()
	cfg := station.DefaultConfig()
	cfg.ArenaID = "tiles-" + line
	cfg.Catalogue = catalogue(t)
	cfg.Line = line
	cfg.Worker.ChunkFrames = chunkFrames
	cfg.Realtime, cfg.Speed = true, tilePace
	size := image.Pt(308, 274) // 2160x1920 subsampled by 7 (the least factor within 320 px)
	if render {
		cfg.Calibration = arenas.Calibration{PxPerCM: 540, CenterX: 320, CenterY: 320, PlateRadius: 300, Width: 640, Height: 640, FramePeriod: time.Second / 3}
		size = image.Pt(320, 320)
	} else {
		cfg.NoRender = true
	}
	s, err := station.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, size
}

// tileWorker returns a worker of broker b on st publishing to pub (nil: no tiles).
func tileWorker(t *testing.T, w *world, b fleet.Broker, id string, st fleet.Station, pub live.Publisher, log *slog.Logger) *fleet.Worker {
	t.Helper()
	cfg := fleet.DefaultWorkerConfig()
	cfg.ID, cfg.ArenaID, cfg.Process = id, "arena-"+id, "proc-"+id
	cfg.Station = st
	cfg.Broker = b
	cfg.Replay, cfg.Params, cfg.Tracks = w.replay, w.params, w.tracks
	cfg.LeaseTTL, cfg.Poll, cfg.ReportBackoff = testTTL, 20*time.Millisecond, time.Millisecond
	cfg.Live, cfg.TileEvery, cfg.TileTTL = pub, tileEvery, 3*tileEvery
	cfg.Logger = log
	wk, err := fleet.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return wk
}

// serveUntilDone runs wk until items 0..n-1 of w are done, then stops it and waits for Run.
func serveUntilDone(t *testing.T, w *world, wk *fleet.Worker, n int, whileDone func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- wk.Run(ctx) }()
	for {
		changed := w.local.Changed()
		all := true
		for i := range n {
			all = all && w.item(t, i).State == api.StateDone
		}
		if all {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("the worker did not run the episodes")
		}
	}
	if whileDone != nil {
		whileDone()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// decodeTile decodes a thumbnail and reports the light its border shows and whether it has
// the head markers (red blots in the view and in the inset).
func decodeTile(t *testing.T, p published, size image.Point) (light, head bool) {
	t.Helper()
	if len(p.jpeg) == 0 || len(p.jpeg) > live.MaxThumbnailBytes {
		t.Fatalf("tile %d: a thumbnail of %d bytes", p.tile.Seq, len(p.jpeg))
	}
	img, err := jpeg.Decode(bytes.NewReader(p.jpeg))
	if err != nil {
		t.Fatalf("tile %d: %v", p.tile.Seq, err)
	}
	if got := img.Bounds().Size(); got != size {
		t.Fatalf("tile %d: thumbnail %v, want %v", p.tile.Seq, got, size)
	}
	r, g, b, _ := img.At(1, size.Y/2).RGBA()
	light = b>>8 > 200 && r>>8 < 120
	if !light && (r>>8 > 80 || g>>8 > 80 || b>>8 > 80) {
		t.Fatalf("tile %d: border colour %d %d %d is neither the light on's nor off's", p.tile.Seq, r>>8, g>>8, b>>8)
	}
	red := 0
	for y := range size.Y {
		for x := range size.X {
			r, g, b, _ := img.At(x, y).RGBA()
			if r>>8 > 200 && g>>8 < 110 && b>>8 < 110 {
				red++
			}
		}
	}
	// The head is a 3x3 blot in the view and a 5x5 one in the inset: ~35 px once encoded, ~10
	// without the inset.
	return light, red >= 20
}

// TestWorkerPublishesTiles runs collect episodes on a worker with a recording publisher,
// without rendering (two) and with it (one, on a small camera): tiles come at most one per TileEvery, numbered from 1; the
// arena goes idle -> leased/running -> idle; within an episode the step grows and the
// distance changes; every thumbnail decodes to the expected size, its border shows the
// tile's light and a tracked worm's head is drawn; an idle tile is refreshed before it
// expires.
func TestWorkerPublishesTiles(t *testing.T) {
	for _, render := range []bool{false, true} {
		t.Run(map[bool]string{false: "no render", true: "rendered"}[render], func(t *testing.T) {
			episodes := 2
			if render {
				episodes = 1
			}
			w := newWorld(t, collectYAML(`"446"`, episodes))
			st, size := tileStation(t, "446", render)
			rec := newTileRecorder(t)
			wk := tileWorker(t, w, afterFirstTile(w.local, rec), "wt", st, rec, nil)
			serveUntilDone(t, w, wk, episodes, func() {
				// Idle again, and refreshed: two idle tiles after the episodes.
				rec.waitFor(t, "idle tiles after the episodes", func(ps []published) bool {
					idle := 0
					for i := len(ps) - 1; i >= 0 && ps[i].tile.State == live.StateIdle; i-- {
						idle++
					}
					return idle >= 2 && slices.ContainsFunc(ps, func(p published) bool { return p.tile.State == live.StateRunning })
				})
			})
			ps := rec.tiles()
			if ps[0].tile.State != live.StateIdle {
				t.Errorf("first tile %s, want idle", ps[0].tile.State)
			}
			perEpisode := map[string][]live.Tile{}
			var states []string
			for i, p := range ps {
				tl := p.tile
				if tl.Seq != uint64(i+1) {
					t.Fatalf("tile %d has seq %d", i, tl.Seq)
				}
				if i > 0 {
					if gap := tl.At.Sub(ps[i-1].tile.At); gap < tileEvery {
						t.Fatalf("tiles %d and %d %v apart, want at least %v", i, i+1, gap, tileEvery)
					}
				}
				if tl.Arena != "wt" || tl.Worker != "proc-wt" || tl.Line != "446" || p.ttl != 3*tileEvery {
					t.Fatalf("tile %+v with ttl %v", tl, p.ttl)
				}
				light, head := decodeTile(t, p, size)
				if light != tl.Light {
					t.Errorf("tile %d: light %v, its border says %v", tl.Seq, tl.Light, light)
				}
				if tl.State == live.StateRunning && tl.Tracked && !head {
					t.Errorf("tile %d: worm tracked but no head drawn", tl.Seq)
				}
				if tl.State == live.StateIdle && (head || tl.Episode != "" || tl.Step != 0 || tl.DistanceCM >= 0 || tl.Tracked || tl.Light) {
					t.Errorf("idle tile %+v (head drawn %v)", tl, head)
				}
				if len(states) == 0 || states[len(states)-1] != tl.State {
					states = append(states, tl.State)
				}
				if tl.Episode != "" {
					perEpisode[tl.Episode] = append(perEpisode[tl.Episode], tl)
				}
			}
			t.Logf("%d tiles; states %v", len(ps), states)
			if states[len(states)-1] != live.StateIdle {
				t.Errorf("states %v, want the last idle", states)
			}
			for n := range episodes {
				it := w.item(t, n)
				tls := perEpisode[it.ID]
				recs := concat(w.chunksOf(t, "446", it.ID, it.Result.Token))
				var steps []int
				confs := map[float64]bool{}
				for _, tl := range tls {
					if tl.State != live.StateLeased && tl.State != live.StateRunning {
						t.Errorf("episode %s: a %s tile", it.ID, tl.State)
					}
					if tl.Experiment != w.id || tl.Kind != "collect" || tl.Token != it.Result.Token || tl.Steps != 60 || tl.PolicyVersion != 0 {
						t.Errorf("episode %s: tile %+v", it.ID, tl)
					}
					if tl.State == live.StateRunning && tl.Step > 0 {
						// The light and tracking the tile says are the loop's at its step.
						if r := recs[tl.Step-1]; tl.Light != r.Light || tl.Tracked != r.OK {
							t.Errorf("episode %s: tile at step %d: light %v, tracked %v; the record: light %v, tracked %v", it.ID, tl.Step, tl.Light, tl.Tracked, r.Light, r.OK)
						}
						// A collection episode has no target: no distance.
						if tl.DistanceCM != -1 {
							t.Errorf("episode %s: collection tile at step %d %v cm from a target", it.ID, tl.Step, tl.DistanceCM)
						}
					}
					if tl.State == live.StateRunning {
						steps = append(steps, tl.Step)
						if tl.Tracked {
							confs[tl.Confidence] = true
						}
						// Step 0: the loop has stepped, but its first shot has not come yet.
						if (tl.Step > 0 && !(tl.LatencyMS > 0)) || tl.Confidence < 0 || tl.Confidence > 1 {
							t.Errorf("episode %s: tile %+v", it.ID, tl)
						}
					}
				}
				if len(steps) < 3 || !slices.IsSorted(steps) || steps[0] == steps[len(steps)-1] || steps[len(steps)-1] > 60 {
					t.Errorf("episode %s: running tiles at steps %v", it.ID, steps)
				}
				if len(confs) < 1 {
					t.Errorf("episode %s: no tracked tile", it.ID)
				}
			}
		})
	}
}

// TestWorkerTileFailed: an attempt that fails shows failed with its reason until the next
// lease, whose episode then runs.
func TestWorkerTileFailed(t *testing.T) {
	w := newWorld(t, collectYAML(`"446"`, 1))
	st, size := tileStation(t, "446", false)
	var attempts atomic.Int32
	hook := func(_ context.Context, e station.Episode, s station.Step) error {
		if s.Index == 30 && attempts.Add(1) == 1 {
			return errors.New("injected fault")
		}
		return nil
	}
	rec := newTileRecorder(t)
	// The worker leases again only once the failure is published: a retry leased sooner than
	// TileEvery after the failure would replace the failed state before any tile showed it.
	b := &leaseGate{Broker: w.local, before: func(ctx context.Context, failed bool) {
		rec.waitCtx(ctx, func(ps []published) bool {
			return len(ps) > 0 && (!failed || slices.ContainsFunc(ps, func(p published) bool { return p.tile.State == live.StateFailed }))
		})
	}}
	wk := tileWorker(t, w, b, "wf", hooked{st, hook}, rec, nil)
	serveUntilDone(t, w, wk, 1, func() {
		rec.waitFor(t, "an idle tile after the episode", func(ps []published) bool {
			return len(ps) > 0 && ps[len(ps)-1].tile.State == live.StateIdle && slices.ContainsFunc(ps, func(p published) bool { return p.tile.State == live.StateFailed })
		})
	})
	it := w.item(t, 0)
	var states []string
	for _, p := range rec.tiles() {
		tl := p.tile
		decodeTile(t, p, size)
		if len(states) == 0 || states[len(states)-1] != tl.State {
			states = append(states, tl.State)
		}
		if tl.State == live.StateFailed && (!strings.Contains(tl.Error, "injected fault") || tl.Episode != it.ID || tl.Light) {
			t.Errorf("failed tile %+v", tl)
		}
		if tl.State != live.StateFailed && tl.Error != "" {
			t.Errorf("%s tile with error %q", tl.State, tl.Error)
		}
	}
	fi := slices.Index(states, live.StateFailed)
	if states[0] != live.StateIdle || fi < 0 || !slices.Contains(states[:fi], live.StateRunning) || !slices.Contains(states[fi:], live.StateRunning) ||
		states[len(states)-1] != live.StateIdle || it.Attempts != 2 {
		t.Fatalf("states %v after %d attempts, want running, failed, then running again and idle", states, it.Attempts)
	}
}

// TestWorkerTileDraining: once Serve's drain closes, the idle arena says draining, and Serve
// returns after that tile (its publisher stopped: no put left running).
func TestWorkerTileDraining(t *testing.T) {
	w := newWorld(t, collectYAML(`"446"`, 1))
	st, size := tileStation(t, "446", false)
	rec := newTileRecorder(t)
	wk := tileWorker(t, w, w.local, "wd", st, rec, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	drain := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- wk.Serve(ctx, drain) }()
	rec.waitFor(t, "an idle tile after the episode", func(ps []published) bool {
		return len(ps) > 0 && ps[len(ps)-1].tile.State == live.StateIdle && w.item(t, 0).State == api.StateDone
	})
	close(drain)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := rec.inFlight.Load(); n != 0 {
		t.Errorf("%d puts running after Serve returned", n)
	}
	ps := rec.tiles()
	last := ps[len(ps)-1]
	decodeTile(t, last, size)
	if last.tile.State != live.StateDraining || last.tile.Episode != "" {
		t.Fatalf("last tile %+v, want an idle arena draining", last.tile)
	}
}

// TestWorkerTilesNeverCostTheEpisode runs the same experiment with a publisher that fails
// every tile and with one that blocks until its context ends: the outcomes, tracks and
// records are those of the run without tiles; the loop steps on while a put blocks; every put
// had a deadline and none is left running when Run returns; the failure is logged once at
// warn, then at debug.
func TestWorkerTilesNeverCostTheEpisode(t *testing.T) {
	// run runs the experiment with tiles to rec (nil: none); it returns the outcomes, tracks
	// and records, and how many steps the loop took while a put was running.
	run := func(t *testing.T, rec *tileRecorder, log *slog.Logger) ([]any, int32) {
		w := newWorld(t, collectYAML(`"446"`, 2))
		st, _ := tileStation(t, "446", false)
		var pub live.Publisher
		var during atomic.Int32
		if rec != nil {
			pub = rec
		}
		hook := func(context.Context, station.Episode, station.Step) error {
			if rec != nil && rec.inFlight.Load() > 0 {
				during.Add(1)
			}
			return nil
		}
		wk := tileWorker(t, w, w.local, "wn", hooked{st, hook}, pub, log)
		serveUntilDone(t, w, wk, 2, nil)
		var got []any
		for n := range 2 {
			it := w.item(t, n)
			tr, err := w.tracks.Get(context.Background(), w.id, it.ID, it.Result.Token)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, *it.Result.Outcome, tr, concat(w.chunksOf(t, "446", it.ID, it.Result.Token)))
		}
		return got, during.Load()
	}
	want, _ := run(t, nil, nil)
	tests := []struct {
		name string
		rec  func(*tileRecorder)
	}{
		{"store fails", func(r *tileRecorder) { r.fail = errors.New("injected: store down") }},
		{"store blocks", func(r *tileRecorder) { r.block = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newTileRecorder(t)
			tt.rec(rec)
			logs := &levels{}
			got, during := run(t, rec, slog.New(logs))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("outcomes, tracks or records differ from the run without tiles")
			}
			calls, noLimit := rec.counts()
			if calls < 3 || noLimit != 0 {
				t.Errorf("%d puts, %d without a deadline", calls, noLimit)
			}
			if n := rec.inFlight.Load(); n != 0 {
				t.Errorf("%d puts still running after Run returned", n)
			}
			// A put that blocks for its whole timeout (TileTTL/3, a few frames) does not hold
			// the loop: it steps on meanwhile.
			if rec.block && during == 0 {
				t.Errorf("the loop took no step while a put was blocked")
			}
			warn, debug := logs.count(slog.LevelWarn), logs.count(slog.LevelDebug)
			if warn != 1 || debug < 1 || debug > calls-1 {
				t.Errorf("%d failed puts logged %d times at warn, %d at debug; want once at warn, then debug", calls, warn, debug)
			}
			t.Logf("%d puts; %d steps while one was running", calls, during)
		})
	}
}

// TestWorkerTileConfig: a worker with Live needs a positive TileEvery, a TileTTL of at least
// three of them and a TileWidth within 64-1024.
func TestWorkerTileConfig(t *testing.T) {
	w := newWorld(t, collectYAML(`"446"`, 1))
	st := simStation(t, "446")
	tests := []struct {
		name    string
		edit    func(*fleet.WorkerConfig)
		wantErr string
	}{
		{"defaults", func(*fleet.WorkerConfig) {}, ""},
		{"no live, no tile settings", func(c *fleet.WorkerConfig) { c.Live, c.TileEvery, c.TileTTL, c.TileWidth = nil, 0, 0, 0 }, ""},
		{"zero interval", func(c *fleet.WorkerConfig) { c.TileEvery = 0 }, "tile every"},
		{"ttl under three intervals", func(c *fleet.WorkerConfig) { c.TileTTL = 2 * c.TileEvery }, "tile ttl"},
		{"narrow", func(c *fleet.WorkerConfig) { c.TileWidth = 32 }, "tile width"},
		{"wide", func(c *fleet.WorkerConfig) { c.TileWidth = 4096 }, "tile width"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fleet.DefaultWorkerConfig()
			cfg.ID, cfg.ArenaID, cfg.Station, cfg.Broker = "w", "a", st, w.local
			cfg.Replay, cfg.Params, cfg.Tracks = w.replay, w.params, w.tracks
			cfg.Live = newTileRecorder(t)
			if d := fleet.DefaultWorkerConfig(); d.TileEvery != 500*time.Millisecond || d.TileTTL != 5*time.Second || d.TileWidth != 320 {
				t.Fatalf("defaults %v %v %d", d.TileEvery, d.TileTTL, d.TileWidth)
			}
			tt.edit(&cfg)
			_, err := fleet.NewWorker(cfg)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// levels is a slog.Handler counting the live tile failures it is given by level.
type levels struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *levels) WithGroup(string) slog.Handler            { return l }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "live tile not published") {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[slog.Level]int{}
	}
	l.n[r.Level]++
	return nil
}

func (l *levels) count(lv slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[lv]
}
