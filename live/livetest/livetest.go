// Package livetest is the conformance suite of the live stores (live.Publisher and
// live.Reader): every implementation (package memstore in memory, package redisstore on Redis)
// runs Run, so they keep one semantics: a tile replaced whole (its thumbnail too), gone once its
// TTL has passed, tiles ordered by arena id; a thumbnail of an absent or expired arena is
// live.ErrNotFound; a curve that keeps only points above its last Update and only the newest
// live.MaxCurvePoints; copies in and out; bad input refused with nothing stored; a cancelled
// context refused.
package livetest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/optoloop/optoloop/live"
)

// Store is what a live store implements: the producers' side and the dashboard's.
type Store interface {
	live.Publisher
	live.Reader
}

// Open returns a new, empty store for one (sub)test; it registers its cleanup with t.
type Open func(t *testing.T) Store

// Run runs the whole suite against the stores open returns.
func Run(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, Open)
	}{
		{"Tiles", testTiles}, {"TilesCopies", testTilesCopies}, {"TileReplaced", testTileReplaced},
		{"TileExpires", testTileExpires}, {"TileRefused", testTileRefused},
		{"Curves", testCurves}, {"CurvesCopies", testCurvesCopies}, {"CurveKeepsNewest", testCurveKeepsNewest},
		{"CurveRefused", testCurveRefused}, {"CancelledContext", testCancelledContext},
		{"ConcurrentPublishers", testConcurrentPublishers},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open) })
	}
}

// at is the time of the suite's tiles and points (with nanoseconds: a store keeps them).
var at = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// Tile is a running arena's tile numbered seq.
func Tile(arena string, seq uint64) live.Tile {
	return live.Tile{Arena: arena, Worker: "worker-" + arena, Line: "301", State: live.StateRunning, Experiment: "e",
		Episode: "e.4", Kind: "collect", Token: 7, Step: int(seq), Steps: 600, DistanceCM: 1.25, Confidence: 0.875,
		Light: seq%2 == 1, LatencyMS: 3.5, PolicyVersion: 2, At: at.Add(time.Duration(seq) * time.Second), Seq: seq}
}

// Point is a curve point at update u.
func Point(u int64) live.CurvePoint {
	return live.CurvePoint{Update: u, Critic: 1 / float64(u+1), Actor: -float64(u), Entropy: 0.5, Alpha: 0.25,
		Version: uint64(u / 10), At: at.Add(time.Duration(u) * time.Millisecond)}
}

// Updates lists a curve's updates, for comparisons.
func Updates(c live.Curve) []int64 {
	var out []int64
	for _, p := range c.Points {
		out = append(out, p.Update)
	}
	return out
}

// equalTile compares tiles field by field, times by the instant they name.
func equalTile(a, b live.Tile) bool {
	ta, tb := a.At, b.At
	a.At, b.At = time.Time{}, time.Time{}
	return a == b && ta.Equal(tb)
}

func equalPoint(a, b live.CurvePoint) bool {
	ta, tb := a.At, b.At
	a.At, b.At = time.Time{}, time.Time{}
	return a == b && ta.Equal(tb)
}

// arenas lists the arena ids of tiles.
func arenas(ts []live.Tile) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Arena)
	}
	return out
}

// tiles reads the store's tiles, failing the test on an error.
func tiles(t *testing.T, s Store) []live.Tile {
	t.Helper()
	ts, err := s.Tiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func put(t *testing.T, s Store, tile live.Tile, jpeg []byte, ttl time.Duration) {
	t.Helper()
	if err := s.PutTile(context.Background(), tile, jpeg, ttl); err != nil {
		t.Fatalf("put tile %s: %v", tile.Arena, err)
	}
}

func testTiles(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	if ts := tiles(t, s); ts == nil || len(ts) != 0 {
		t.Fatalf("empty store: tiles %v, want an empty slice", ts)
	}
	// Arena ids holding a key separator, put out of order: read back by arena id, each with
	// its own thumbnail (arena c has none).
	want := []live.Tile{Tile("a:1", 1), Tile("b", 2), Tile("c", 3), Tile("a", 4)}
	want[2].State, want[2].Episode, want[2].Kind, want[2].Token, want[2].DistanceCM = live.StateIdle, "", "", 0, -1
	want[3].State, want[3].Error = live.StateFailed, "camera: no frame within 2s"
	for _, tile := range want {
		var jpeg []byte
		if tile.Arena != "c" {
			jpeg = []byte("jpeg of " + tile.Arena)
		}
		put(t, s, tile, jpeg, time.Minute)
	}
	slices.SortFunc(want, func(a, b live.Tile) int { return cmp.Compare(a.Arena, b.Arena) })
	got := tiles(t, s)
	if !slices.Equal(arenas(got), []string{"a", "a:1", "b", "c"}) {
		t.Fatalf("arenas %q, want them ordered by id", arenas(got))
	}
	for i := range want {
		if !equalTile(got[i], want[i]) {
			t.Errorf("tile %s:\n got %+v\nwant %+v", want[i].Arena, got[i], want[i])
		}
	}
	for _, a := range []string{"a", "a:1", "b"} {
		if b, err := s.Thumbnail(ctx, a); err != nil || string(b) != "jpeg of "+a {
			t.Errorf("thumbnail of %s: %q, %v", a, b, err)
		}
	}
	for _, a := range []string{"c", "d", "a:"} {
		if b, err := s.Thumbnail(ctx, a); !errors.Is(err, live.ErrNotFound) {
			t.Errorf("thumbnail of %s: %q, %v; want not found", a, b, err)
		}
	}
}

func testTilesCopies(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	jpeg := []byte("\xff\xd8 frame \xff\xd9")
	put(t, s, Tile("a", 1), jpeg, time.Minute)
	jpeg[2] = 'X' // the caller reuses its buffer
	got, err := s.Thumbnail(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	got[3] = 'Y' // the reader changes what it got
	ts := tiles(t, s)
	ts[0].State = "changed"
	if again, err := s.Thumbnail(ctx, "a"); err != nil || string(again) != "\xff\xd8 frame \xff\xd9" {
		t.Errorf("stored thumbnail changed to %q (%v)", again, err)
	}
	if ts := tiles(t, s); len(ts) != 1 || !equalTile(ts[0], Tile("a", 1)) {
		t.Errorf("stored tile changed: %+v", ts)
	}
}

func testTileReplaced(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	put(t, s, Tile("a", 1), []byte("one"), time.Minute)
	put(t, s, Tile("b", 1), []byte("b"), time.Minute)
	put(t, s, Tile("a", 2), []byte("two"), time.Minute)
	if ts := tiles(t, s); len(ts) != 2 || !equalTile(ts[0], Tile("a", 2)) {
		t.Fatalf("after a replace: %+v", ts)
	}
	if b, err := s.Thumbnail(ctx, "a"); err != nil || string(b) != "two" {
		t.Fatalf("thumbnail after a replace: %q, %v", b, err)
	}
	// A tile with no JPEG replaces the thumbnail too: it keeps none.
	for _, none := range [][]byte{nil, {}} {
		put(t, s, Tile("a", 3), none, time.Minute)
		if b, err := s.Thumbnail(ctx, "a"); !errors.Is(err, live.ErrNotFound) {
			t.Errorf("thumbnail after a tile with jpeg %q: %q, %v; want not found", none, b, err)
		}
		if ts := tiles(t, s); len(ts) != 2 || !equalTile(ts[0], Tile("a", 3)) || !equalTile(ts[1], Tile("b", 1)) {
			t.Errorf("tiles after a tile without a thumbnail: %+v", ts)
		}
	}
}

// testTileExpires: a tile with a short TTL vanishes (tile and thumbnail) while a tile with a
// long one stays; putting it again brings it back.
func testTileExpires(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	const ttl = 300 * time.Millisecond
	put(t, s, Tile("long", 1), []byte("long"), time.Minute)
	for round := range 2 {
		before := time.Now()
		put(t, s, Tile("short", uint64(round+1)), []byte("short"), ttl)
		ts := tiles(t, s)
		if !slices.Contains(arenas(ts), "short") && time.Since(before) < ttl {
			t.Fatalf("round %d: tile absent before its TTL: %q", round, arenas(ts))
		}
		deadline := time.Now().Add(ttl + 10*time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
		for slices.Contains(arenas(ts), "short") {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: tile still there %v after its TTL of %v", round, time.Since(before), ttl)
			}
			<-tick.C
			ts = tiles(t, s)
		}
		tick.Stop()
		if elapsed := time.Since(before); elapsed < ttl {
			t.Errorf("round %d: tile gone after %v, before its TTL of %v", round, elapsed, ttl)
		}
		if !slices.Equal(arenas(ts), []string{"long"}) {
			t.Errorf("round %d: tiles %q after the short one expired, want the long one only", round, arenas(ts))
		}
		if b, err := s.Thumbnail(ctx, "short"); !errors.Is(err, live.ErrNotFound) {
			t.Errorf("round %d: thumbnail of an expired tile: %q, %v; want not found", round, b, err)
		}
	}
	if b, err := s.Thumbnail(ctx, "long"); err != nil || string(b) != "long" {
		t.Errorf("thumbnail of the long-lived tile: %q, %v", b, err)
	}
}

// testTileRefused: a tile that is invalid, a thumbnail too large, a TTL below a millisecond or
// a number JSON cannot hold are refused and change nothing.
func testTileRefused(t *testing.T, open Open) {
	ctx := context.Background()
	big := bytes.Repeat([]byte{0xff}, live.MaxThumbnailBytes+1)
	tests := []struct {
		name string
		tile live.Tile
		jpeg []byte
		ttl  time.Duration
	}{
		{"no arena", func() live.Tile { x := Tile("a", 2); x.Arena = ""; return x }(), nil, time.Minute},
		{"no state", func() live.Tile { x := Tile("a", 2); x.State = ""; return x }(), nil, time.Minute},
		{"no time", func() live.Tile { x := Tile("a", 2); x.At = time.Time{}; return x }(), nil, time.Minute},
		{"thumbnail too large", Tile("a", 2), big, time.Minute},
		{"ttl 0", Tile("a", 2), []byte("j"), 0},
		{"negative ttl", Tile("a", 2), []byte("j"), -time.Second},
		{"ttl below a millisecond", Tile("a", 2), []byte("j"), time.Microsecond},
		{"NaN distance", func() live.Tile { x := Tile("a", 2); x.DistanceCM = math.NaN(); return x }(), nil, time.Minute},
		{"infinite latency", func() live.Tile { x := Tile("a", 2); x.LatencyMS = math.Inf(1); return x }(), nil, time.Minute},
		{"NaN confidence", func() live.Tile { x := Tile("a", 2); x.Confidence = math.NaN(); return x }(), nil, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			put(t, s, Tile("a", 1), []byte("one"), time.Minute)
			if err := s.PutTile(ctx, tc.tile, tc.jpeg, tc.ttl); err == nil {
				t.Fatal("accepted")
			} else {
				t.Log(err)
			}
			if ts := tiles(t, s); len(ts) != 1 || !equalTile(ts[0], Tile("a", 1)) {
				t.Errorf("tiles after a refused put: %+v", ts)
			}
			if b, err := s.Thumbnail(ctx, "a"); err != nil || string(b) != "one" {
				t.Errorf("thumbnail after a refused put: %q, %v", b, err)
			}
		})
	}
	// The largest thumbnail allowed is taken.
	s := open(t)
	most := big[:live.MaxThumbnailBytes]
	put(t, s, Tile("a", 1), most, time.Minute)
	if b, err := s.Thumbnail(ctx, "a"); err != nil || !bytes.Equal(b, most) {
		t.Errorf("thumbnail of MaxThumbnailBytes: %d bytes, %v", len(b), err)
	}
}

func testCurves(t *testing.T, open Open) {
	ctx := context.Background()
	type appendOp struct {
		exp, task, line string
		updates         []int64
	}
	tests := []struct {
		name    string
		appends []appendOp
		exp     string
		want    map[string][]int64 // task -> updates, in task order
		lines   map[string]string
	}{
		{name: "none", exp: "e", want: map[string][]int64{}},
		{name: "in order", appends: []appendOp{{"e", "e.7", "301", []int64{10, 20}}, {"e", "e.7", "301", []int64{30}}},
			exp: "e", want: map[string][]int64{"e.7": {10, 20, 30}}, lines: map[string]string{"e.7": "301"}},
		{name: "points not above the last dropped", appends: []appendOp{{"e", "e.7", "301", []int64{10, 20, 30}}, {"e", "e.7", "301", []int64{20, 30, 10, 40, 35, 50}}},
			exp: "e", want: map[string][]int64{"e.7": {10, 20, 30, 40, 50}}, lines: map[string]string{"e.7": "301"}},
		{name: "within one append", appends: []appendOp{{"e", "e.7", "301", []int64{5, 5, 3, 8, 0, 9}}},
			exp: "e", want: map[string][]int64{"e.7": {5, 8, 9}}, lines: map[string]string{"e.7": "301"}},
		{name: "a resumed task publishing again", appends: []appendOp{{"e", "e.7", "301", []int64{10, 20}}, {"e", "e.7", "301", []int64{10, 20, 30}}},
			exp: "e", want: map[string][]int64{"e.7": {10, 20, 30}}, lines: map[string]string{"e.7": "301"}},
		{name: "tasks ordered by id, other experiments apart",
			appends: []appendOp{{"e", "e.9", "446", []int64{1}}, {"f", "e.8", "301", []int64{2}}, {"e", "e.10", "301", []int64{3, 4}},
				{"e:x", "y", "301", []int64{5}}, {"e", "x:y", "301", []int64{6}}, {"e", "e.9", "446", []int64{7}}},
			exp: "e", want: map[string][]int64{"e.10": {3, 4}, "e.9": {1, 7}, "x:y": {6}}, lines: map[string]string{"e.10": "301", "e.9": "446", "x:y": "301"}},
		{name: "no points adds nothing", appends: []appendOp{{"e", "e.7", "301", nil}, {"e", "e.8", "301", []int64{1}}},
			exp: "e", want: map[string][]int64{"e.8": {1}}, lines: map[string]string{"e.8": "301"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			for _, a := range tc.appends {
				var ps []live.CurvePoint
				for _, u := range a.updates {
					ps = append(ps, Point(u))
				}
				if err := s.AppendCurve(ctx, a.exp, a.task, a.line, ps); err != nil {
					t.Fatalf("append %+v: %v", a, err)
				}
			}
			got, err := s.Curves(ctx, tc.exp)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Error("Curves returned nil, want an empty slice")
			}
			var tasks, wantTasks []string
			for _, c := range got {
				tasks = append(tasks, c.Task)
			}
			for task := range tc.want {
				wantTasks = append(wantTasks, task)
			}
			slices.Sort(wantTasks)
			if !slices.Equal(tasks, wantTasks) {
				t.Fatalf("tasks %q, want %q", tasks, wantTasks)
			}
			for _, c := range got {
				if c.Experiment != tc.exp || c.Line != tc.lines[c.Task] {
					t.Errorf("curve of %s: experiment %q line %q, want %q and %q", c.Task, c.Experiment, c.Line, tc.exp, tc.lines[c.Task])
				}
				if u := Updates(c); !slices.Equal(u, tc.want[c.Task]) {
					t.Errorf("curve of %s: updates %v, want %v", c.Task, u, tc.want[c.Task])
				}
				for _, p := range c.Points {
					if !equalPoint(p, Point(p.Update)) {
						t.Errorf("curve of %s: point %+v, want %+v", c.Task, p, Point(p.Update))
					}
				}
			}
		})
	}
}

func testCurvesCopies(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	ps := []live.CurvePoint{Point(1), Point(2)}
	if err := s.AppendCurve(ctx, "e", "e.7", "301", ps); err != nil {
		t.Fatal(err)
	}
	ps[0].Critic = 100
	got, err := s.Curves(ctx, "e")
	if err != nil || len(got) != 1 {
		t.Fatalf("curves %+v, %v", got, err)
	}
	got[0].Points[1].Entropy = 200
	got[0].Points = append(got[0].Points, Point(3))
	again, _ := s.Curves(ctx, "e")
	if len(again) != 1 || len(again[0].Points) != 2 || !equalPoint(again[0].Points[0], Point(1)) || !equalPoint(again[0].Points[1], Point(2)) {
		t.Errorf("stored curve changed: %+v", again)
	}
}

// testCurveKeepsNewest: a curve keeps its newest MaxCurvePoints points, whether they come in
// one append or many.
func testCurveKeepsNewest(t *testing.T, open Open) {
	ctx := context.Background()
	const extra = 10
	points := func(from, to int64) []live.CurvePoint {
		var ps []live.CurvePoint
		for u := from; u <= to; u++ {
			ps = append(ps, Point(u))
		}
		return ps
	}
	for _, split := range []int64{live.MaxCurvePoints + extra, 100, live.MaxCurvePoints} {
		t.Run(fmt.Sprint("first append of ", split), func(t *testing.T) {
			s := open(t)
			if err := s.AppendCurve(ctx, "e", "e.7", "301", points(1, split)); err != nil {
				t.Fatal(err)
			}
			if split < live.MaxCurvePoints+extra {
				if err := s.AppendCurve(ctx, "e", "e.7", "301", points(split+1, live.MaxCurvePoints+extra)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Curves(ctx, "e")
			if err != nil || len(got) != 1 {
				t.Fatalf("curves %d, %v", len(got), err)
			}
			u := Updates(got[0])
			if len(u) != live.MaxCurvePoints || u[0] != extra+1 || u[len(u)-1] != live.MaxCurvePoints+extra {
				t.Fatalf("%d points from %d to %d; want %d from %d to %d", len(u), u[0], u[len(u)-1], live.MaxCurvePoints, extra+1, live.MaxCurvePoints+extra)
			}
			// The last point stays the curve's last: older ones are still dropped.
			if err := s.AppendCurve(ctx, "e", "e.7", "301", points(1, 3)); err != nil {
				t.Fatal(err)
			}
			if again, _ := s.Curves(ctx, "e"); len(again) != 1 || !slices.Equal(Updates(again[0]), u) {
				t.Errorf("older points appended after a trim")
			}
		})
	}
}

// testCurveRefused: an append without an experiment or task, or with a number JSON cannot hold,
// is refused and changes nothing.
func testCurveRefused(t *testing.T, open Open) {
	ctx := context.Background()
	nan := Point(20)
	nan.Critic = math.NaN()
	inf := Point(20)
	inf.Alpha = math.Inf(-1)
	tests := []struct {
		name       string
		exp, task  string
		points     []live.CurvePoint
		wantStored []int64
	}{
		{"no experiment", "", "e.7", []live.CurvePoint{Point(20)}, []int64{10}},
		{"no task", "e", "", []live.CurvePoint{Point(20)}, []int64{10}},
		{"NaN critic loss", "e", "e.7", []live.CurvePoint{Point(15), nan}, []int64{10}},
		{"infinite temperature", "e", "e.7", []live.CurvePoint{inf, Point(30)}, []int64{10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if err := s.AppendCurve(ctx, "e", "e.7", "301", []live.CurvePoint{Point(10)}); err != nil {
				t.Fatal(err)
			}
			if err := s.AppendCurve(ctx, tc.exp, tc.task, "301", tc.points); err == nil {
				t.Fatal("accepted")
			} else {
				t.Log(err)
			}
			got, err := s.Curves(ctx, "e")
			if err != nil || len(got) != 1 || !slices.Equal(Updates(got[0]), tc.wantStored) {
				t.Errorf("curves after a refused append: %+v, %v", got, err)
			}
		})
	}
}

func testCancelledContext(t *testing.T, open Open) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := open(t)
	_, tilesErr := s.Tiles(ctx)
	_, thumbErr := s.Thumbnail(ctx, "a")
	_, curvesErr := s.Curves(ctx, "e")
	for name, err := range map[string]error{
		"put tile":     s.PutTile(ctx, Tile("a", 1), []byte("j"), time.Minute),
		"append curve": s.AppendCurve(ctx, "e", "e.7", "301", []live.CurvePoint{Point(1)}),
		"tiles":        tilesErr,
		"thumbnail":    thumbErr,
		"curves":       curvesErr,
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v", name, err)
		}
	}
	if ts := tiles(t, s); len(ts) != 0 {
		t.Error("a cancelled put was stored")
	}
	if cs, _ := s.Curves(context.Background(), "e"); len(cs) != 0 {
		t.Error("a cancelled append was stored")
	}
}

// testConcurrentPublishers: workers put their tiles while the dashboard reads them, and
// several publishers append to one curve at once: every arena ends with its last tile, and
// the curve's updates increase.
func testConcurrentPublishers(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	const workers, puts, appenders, points = 12, 15, 4, 30
	var wg sync.WaitGroup
	errc := make(chan error, workers+appenders+1)
	for w := range workers {
		wg.Go(func() {
			arena := fmt.Sprintf("arena-%02d", w)
			for seq := uint64(1); seq <= puts; seq++ {
				if err := s.PutTile(ctx, Tile(arena, seq), []byte(fmt.Sprintf("%s/%d", arena, seq)), time.Minute); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	for a := range appenders {
		wg.Go(func() {
			for i := range points {
				if err := s.AppendCurve(ctx, "e", "e.7", "301", []live.CurvePoint{Point(int64(i*appenders + a))}); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			ts, err := s.Tiles(ctx)
			if err != nil {
				errc <- err
				return
			}
			if len(ts) > workers || !slices.IsSortedFunc(ts, func(a, b live.Tile) int { return cmp.Compare(a.Arena, b.Arena) }) {
				errc <- fmt.Errorf("tiles %q: more than %d, or out of order", arenas(ts), workers)
				return
			}
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	ts := tiles(t, s)
	if len(ts) != workers {
		t.Fatalf("%d tiles, want %d", len(ts), workers)
	}
	for _, tile := range ts {
		if !equalTile(tile, Tile(tile.Arena, puts)) {
			t.Errorf("tile %+v, want the arena's last", tile)
		}
		if b, err := s.Thumbnail(ctx, tile.Arena); err != nil || string(b) != fmt.Sprintf("%s/%d", tile.Arena, puts) {
			t.Errorf("thumbnail of %s: %q, %v", tile.Arena, b, err)
		}
	}
	cs, err := s.Curves(ctx, "e")
	if err != nil || len(cs) != 1 {
		t.Fatalf("curves %+v, %v", cs, err)
	}
	u := Updates(cs[0])
	for i := 1; i < len(u); i++ {
		if u[i] <= u[i-1] {
			t.Fatalf("curve updates %v: not increasing", u)
		}
	}
	// The largest update is above any stored when it comes, so it is kept.
	if len(u) == 0 || u[len(u)-1] != points*appenders-1 {
		t.Errorf("curve updates %v, want them to end at %d", u, points*appenders-1)
	}
}
