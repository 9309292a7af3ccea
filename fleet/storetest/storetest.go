// Package storetest is the conformance suite of the fleet's stores (fleet.Replay, fleet.Params,
// fleet.Tracks, fleet.Checkpoints): every implementation (package memstore in memory, package
// redisstore on Redis) runs Run, so they keep one semantics: idempotent appends of the same
// (Episode, Token, Seq), a version published once (the same bytes again are not an error,
// other bytes are), version 0 and empty blobs refused, Latest the newest not the last, copies
// in and out, fleet.ErrNotFound for absent keys, a cancelled context refused.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/results"
)

// Open returns new, empty stores for one (sub)test; it registers their cleanup with t.
type Open func(t *testing.T) fleet.Stores

// waiter is a parameter store that can wait for a version (memstore and redisstore can).
type waiter interface {
	fleet.Params
	Wait(ctx context.Context, experiment, line string, atLeast uint64) (uint64, error)
}

// Run runs the whole suite against the stores open returns.
func Run(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, Open)
	}{
		{"Replay", testReplay}, {"ReplayCopies", testReplayCopies}, {"ReplayConcurrentAppenders", testReplayConcurrentAppenders},
		{"Params", testParams}, {"ParamsCopies", testParamsCopies}, {"ParamsConcurrentPublishers", testParamsConcurrentPublishers},
		{"ParamsWait", testParamsWait}, {"Tracks", testTracks}, {"TracksCopies", testTracksCopies},
		{"Checkpoints", testCheckpoints}, {"CheckpointsCopies", testCheckpointsCopies}, {"CancelledContext", testCancelledContext},
		{"TraceContext", testTraceContext},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open) })
	}
}

// Chunk is a chunk of episode ep (experiment exp, line line) under token, numbered seq, with one
// tracked record per frame time.
func Chunk(exp, line, ep string, token uint64, seq int, frames ...float64) fleet.Chunk {
	c := fleet.Chunk{Experiment: exp, Line: line, Episode: ep, Token: token, Seq: seq}
	for _, t := range frames {
		c.Records = append(c.Records, replay.Record{T: t, Episode: ep, OK: true})
	}
	return c
}

// Times lists chunks as "episode/token/seq: t1 t2 ...", for comparisons.
func Times(cs []fleet.Chunk) []string {
	var out []string
	for _, c := range cs {
		s := fmt.Sprintf("%s/%d/%d:", c.Episode, c.Token, c.Seq)
		for _, r := range c.Records {
			s += fmt.Sprintf(" %g", r.T)
		}
		out = append(out, s)
	}
	return out
}

func testReplay(t *testing.T, open Open) {
	ctx := context.Background()
	tests := []struct {
		name    string
		appends []fleet.Chunk
		bad     int // appends[bad:] must be refused
		exp     string
		line    string
		want    []string
	}{
		{name: "empty", exp: "e", line: "301", want: nil},
		{name: "in append order", appends: []fleet.Chunk{Chunk("e", "301", "e.1", 7, 1, 3, 4), Chunk("e", "301", "e.1", 7, 0, 1, 2), Chunk("e", "301", "e.0", 5, 0, 9)},
			bad: 3, exp: "e", line: "301", want: []string{"e.1/7/1: 3 4", "e.1/7/0: 1 2", "e.0/5/0: 9"}},
		{name: "same attempt and seq again changes nothing", appends: []fleet.Chunk{Chunk("e", "301", "e.1", 7, 0, 1), Chunk("e", "301", "e.1", 7, 0, 1), Chunk("e", "301", "e.1", 7, 0, 99)},
			bad: 3, exp: "e", line: "301", want: []string{"e.1/7/0: 1"}},
		{name: "another attempt is another chunk", appends: []fleet.Chunk{Chunk("e", "301", "e.1", 7, 0, 1), Chunk("e", "301", "e.1", 8, 0, 2)},
			bad: 2, exp: "e", line: "301", want: []string{"e.1/7/0: 1", "e.1/8/0: 2"}},
		{name: "lines and experiments are separate", appends: []fleet.Chunk{Chunk("e", "301", "e.1", 7, 0, 1), Chunk("e", "446", "e.2", 7, 0, 2), Chunk("f", "301", "f.1", 7, 0, 3)},
			bad: 3, exp: "e", line: "446", want: []string{"e.2/7/0: 2"}},
		{name: "names holding the key separator are separate", appends: []fleet.Chunk{Chunk("x:replay:y", "z", "a", 7, 0, 1), Chunk("x", "y:replay:z", "b", 7, 0, 2)},
			bad: 2, exp: "x", line: "y:replay:z", want: []string{"b/7/0: 2"}},
		{name: "bad chunks refused", appends: []fleet.Chunk{Chunk("e", "301", "e.1", 7, 0, 1), Chunk("", "301", "e.1", 7, 1), Chunk("e", "", "e.1", 7, 1), Chunk("e", "301", "", 7, 1), Chunk("e", "301", "e.1", 7, -1)},
			bad: 1, exp: "e", line: "301", want: []string{"e.1/7/0: 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := open(t).Replay
			for i, c := range tc.appends {
				err := r.Append(ctx, c)
				if (err != nil) != (i >= tc.bad) {
					t.Fatalf("append %d (%+v): error %v", i, c, err)
				}
			}
			got, err := r.Chunks(ctx, tc.exp, tc.line)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Error("Chunks returned nil, want an empty slice")
			}
			if g := Times(got); !slices.Equal(g, tc.want) {
				t.Errorf("chunks %q, want %q", g, tc.want)
			}
		})
	}
}

func testReplayCopies(t *testing.T, open Open) {
	ctx := context.Background()
	r := open(t).Replay
	c := Chunk("e", "301", "e.1", 7, 0, 1, 2)
	if err := r.Append(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.Records[0].T = 100 // the caller reuses its slice
	got, _ := r.Chunks(ctx, "e", "301")
	got[0].Records[1].T = 200 // the reader changes what it got
	again, _ := r.Chunks(ctx, "e", "301")
	if g := Times(again); !slices.Equal(g, []string{"e.1/7/0: 1 2"}) {
		t.Errorf("stored chunk changed through a caller's slice: %q", g)
	}
}

func testReplayConcurrentAppenders(t *testing.T, open Open) {
	// Workers append their episodes' chunks while others retry the same appends and a learner
	// reads: every chunk is stored once, with its own records.
	ctx := context.Background()
	r := open(t).Replay
	const appenders, episodes, chunks = 6, 8, 5
	var wg sync.WaitGroup
	errc := make(chan error, appenders+1)
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Two appenders share each episode: the second is a retry of the first.
			for e := a / 2; e < episodes; e += appenders / 2 {
				for s := range chunks {
					c := Chunk("e", "301", fmt.Sprintf("e.%d", e), uint64(e+1), s, float64(100*e+s))
					if err := r.Append(ctx, c); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			cs, err := r.Chunks(ctx, "e", "301")
			if err != nil {
				errc <- err
				return
			}
			if len(cs) > episodes*chunks {
				errc <- fmt.Errorf("%d chunks read, at most %d exist", len(cs), episodes*chunks)
				return
			}
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	cs, err := r.Chunks(ctx, "e", "301")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != episodes*chunks {
		t.Fatalf("%d chunks stored, want %d", len(cs), episodes*chunks)
	}
	seen := map[string]bool{}
	for _, c := range cs {
		k := fmt.Sprintf("%s/%d", c.Episode, c.Seq)
		if seen[k] {
			t.Errorf("chunk %s stored twice", k)
		}
		seen[k] = true
		var e int
		fmt.Sscanf(c.Episode, "e.%d", &e)
		if len(c.Records) != 1 || c.Records[0].T != float64(100*e+c.Seq) || c.Token != uint64(e+1) {
			t.Errorf("chunk %s holds %+v", k, c)
		}
	}
}

func testParams(t *testing.T, open Open) {
	type op struct {
		version uint64
		blob    string
		ok      bool
	}
	tests := []struct {
		name     string
		ops      []op
		latest   uint64 // 0: none
		fetch    map[uint64]string
		notFound []uint64
	}{
		{name: "none", notFound: []uint64{1}},
		{name: "versions in order", ops: []op{{1, "a", true}, {2, "b", true}}, latest: 2, fetch: map[uint64]string{1: "a", 2: "b"}, notFound: []uint64{3}},
		{name: "latest is the newest, not the last", ops: []op{{3, "c", true}, {1, "a", true}}, latest: 3, fetch: map[uint64]string{1: "a", 3: "c"}, notFound: []uint64{2}},
		{name: "same bytes again is not an error", ops: []op{{1, "a", true}, {1, "a", true}}, latest: 1, fetch: map[uint64]string{1: "a"}},
		{name: "other bytes are refused and change nothing", ops: []op{{1, "a", true}, {1, "z", false}}, latest: 1, fetch: map[uint64]string{1: "a"}},
		{name: "version 0 and empty blobs refused", ops: []op{{0, "a", false}, {1, "", false}}, notFound: []uint64{0, 1}},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := open(t).Params
			for _, o := range tc.ops {
				err := p.Publish(ctx, "e", "301", o.version, []byte(o.blob))
				if (err == nil) != o.ok {
					t.Fatalf("publish %d %q: error %v", o.version, o.blob, err)
				}
			}
			v, err := p.Latest(ctx, "e", "301")
			switch {
			case tc.latest == 0 && !errors.Is(err, fleet.ErrNotFound):
				t.Errorf("latest %d, %v; want not found", v, err)
			case tc.latest != 0 && (err != nil || v != tc.latest):
				t.Errorf("latest %d, %v; want %d", v, err, tc.latest)
			}
			for ver, want := range tc.fetch {
				b, err := p.Fetch(ctx, "e", "301", ver)
				if err != nil || string(b) != want {
					t.Errorf("fetch %d: %q, %v; want %q", ver, b, err, want)
				}
			}
			for _, ver := range tc.notFound {
				if _, err := p.Fetch(ctx, "e", "301", ver); !errors.Is(err, fleet.ErrNotFound) {
					t.Errorf("fetch %d: %v, want not found", ver, err)
				}
			}
			if _, err := p.Latest(ctx, "e", "446"); !errors.Is(err, fleet.ErrNotFound) {
				t.Errorf("another line has versions: %v", err)
			}
		})
	}
}

func testParamsCopies(t *testing.T, open Open) {
	ctx := context.Background()
	p := open(t).Params
	blob := []byte("abc")
	if err := p.Publish(ctx, "e", "301", 1, blob); err != nil {
		t.Fatal(err)
	}
	blob[0] = 'X'
	got, _ := p.Fetch(ctx, "e", "301", 1)
	got[1] = 'Y'
	again, _ := p.Fetch(ctx, "e", "301", 1)
	if string(again) != "abc" {
		t.Errorf("stored blob changed to %q", again)
	}
}

func testParamsConcurrentPublishers(t *testing.T, open Open) {
	// Learners resuming the same task publish the same versions; a second learner with other
	// parameters for a version already stored is refused, exactly one of them wins.
	ctx := context.Background()
	p := open(t).Params
	const publishers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := map[uint64]int{}
	for i := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := uint64(1); v <= 4; v++ {
				if err := p.Publish(ctx, "e", "301", v, []byte(fmt.Sprintf("v%d", v))); err != nil {
					t.Errorf("same bytes: %v", err)
				}
				if err := p.Publish(ctx, "e", "446", v, []byte(fmt.Sprintf("v%d by %d", v, i))); err == nil {
					mu.Lock()
					won[v]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for v := uint64(1); v <= 4; v++ {
		if won[v] != 1 {
			t.Errorf("version %d of line 446 stored by %d publishers, want 1", v, won[v])
		}
	}
	if v, err := p.Latest(ctx, "e", "301"); err != nil || v != 4 {
		t.Errorf("latest %d, %v", v, err)
	}
}

func testParamsWait(t *testing.T, open Open) {
	ctx := context.Background()
	w, ok := open(t).Params.(waiter)
	if !ok {
		t.Skip("the store has no Wait")
	}
	p := w
	for range 2 { // publishing a stored version again is not an error
		if err := p.Publish(ctx, "e", "301", 1, []byte("a")); err != nil {
			t.Fatal(err)
		}
	}

	// Wait returns at once for a version there, and blocks until a newer one is published.
	if v, err := p.Wait(ctx, "e", "301", 1); err != nil || v != 1 {
		t.Fatalf("wait for 1: %d, %v", v, err)
	}
	type res struct {
		v   uint64
		err error
	}
	got := make(chan res, 1)
	go func() {
		v, err := p.Wait(ctx, "e", "301", 3)
		got <- res{v, err}
	}()
	for _, v := range []uint64{2, 3} {
		if err := p.Publish(ctx, "e", "301", v, []byte{byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	if r := <-got; r.err != nil || r.v != 3 {
		t.Fatalf("wait for 3: %d, %v", r.v, r.err)
	}

	// A line with no version yet: Wait ends with the context.
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		v, err := p.Wait(cctx, "e", "446", 1)
		got <- res{v, err}
	}()
	cancel()
	if r := <-got; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled wait: %d, %v", r.v, r.err)
	}
}

func testTracks(t *testing.T, open Open) {
	ctx := context.Background()
	tt := 4.5
	track := results.Episode{ID: "e.3", Condition: results.Agent, Line: "301", AgentLine: "301", ClosestCM: 0.4, TimeTo05cmS: &tt,
		Frames: []results.Frame{{T: 0, X: 1, OK: true}, {T: 0.33, X: 2, OK: true}}}
	tests := []struct {
		name  string
		put   []results.Episode
		token uint64
		ok    bool
		id    string
		get   uint64
		found bool
	}{
		{name: "put and get", put: []results.Episode{track}, token: 7, ok: true, id: "e.3", get: 7, found: true},
		{name: "another lease token", put: []results.Episode{track}, token: 7, ok: true, id: "e.3", get: 8},
		{name: "another episode", put: []results.Episode{track}, token: 7, ok: true, id: "e.4", get: 7},
		{name: "no id refused", put: []results.Episode{{Condition: results.None}}, token: 7, id: "", get: 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t).Tracks
			for _, e := range tc.put {
				if err := s.Put(ctx, "e", tc.token, e); (err == nil) != tc.ok {
					t.Fatalf("put: %v", err)
				}
			}
			got, err := s.Get(ctx, "e", tc.id, tc.get)
			if !tc.found {
				if !errors.Is(err, fleet.ErrNotFound) {
					t.Fatalf("get: %+v, %v; want not found", got, err)
				}
				return
			}
			if err != nil || got.ID != track.ID || got.ClosestCM != 0.4 || *got.TimeTo05cmS != 4.5 || len(got.Frames) != 2 {
				t.Fatalf("get: %+v, %v", got, err)
			}
			if _, err := s.Get(ctx, "f", tc.id, tc.get); !errors.Is(err, fleet.ErrNotFound) {
				t.Errorf("another experiment has the track: %v", err)
			}
		})
	}
}

func testTracksCopies(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t).Tracks
	tt := 4.5
	e := results.Episode{ID: "e.3", TimeTo05cmS: &tt, Frames: []results.Frame{{X: 1}}}
	if err := s.Put(ctx, "e", 7, e); err != nil {
		t.Fatal(err)
	}
	e.Frames[0].X, tt = 100, 100
	got, _ := s.Get(ctx, "e", "e.3", 7)
	got.Frames[0].X, *got.TimeTo05cmS = 200, 200
	again, _ := s.Get(ctx, "e", "e.3", 7)
	if again.Frames[0].X != 1 || *again.TimeTo05cmS != 4.5 {
		t.Errorf("stored track changed: %+v, time %v", again.Frames, *again.TimeTo05cmS)
	}
}

func testCheckpoints(t *testing.T, open Open) {
	ctx := context.Background()
	tests := []struct {
		name  string
		saves []map[string][]byte
		ok    bool
		want  map[string][]byte // nil: not found
	}{
		{name: "none"},
		{name: "save and load", saves: []map[string][]byte{{"curves.jsonl": []byte("{}\n"), "checkpoint/manifest.json": []byte("m")}}, ok: true,
			want: map[string][]byte{"curves.jsonl": []byte("{}\n"), "checkpoint/manifest.json": []byte("m")}},
		{name: "save replaces", saves: []map[string][]byte{{"a": []byte("1"), "b": []byte("2")}, {"a": []byte("3")}}, ok: true, want: map[string][]byte{"a": []byte("3")}},
		{name: "empty file name refused", saves: []map[string][]byte{{"": []byte("1")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t).Checkpoints
			for _, f := range tc.saves {
				if err := s.Save(ctx, "e", "e.7", f); (err == nil) != tc.ok {
					t.Fatalf("save: %v", err)
				}
			}
			got, err := s.Load(ctx, "e", "e.7")
			if tc.want == nil {
				if !errors.Is(err, fleet.ErrNotFound) {
					t.Fatalf("load: %v, %v; want not found", got, err)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("load: %v, %v", got, err)
			}
			for k, v := range tc.want {
				if !bytes.Equal(got[k], v) {
					t.Errorf("file %s: %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func testCheckpointsCopies(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t).Checkpoints
	files := map[string][]byte{"a": []byte("1")}
	if err := s.Save(ctx, "e", "e.7", files); err != nil {
		t.Fatal(err)
	}
	files["a"][0], files["b"] = '9', []byte("2")
	got, _ := s.Load(ctx, "e", "e.7")
	got["a"][0], got["c"] = '8', nil
	again, _ := s.Load(ctx, "e", "e.7")
	if len(again) != 1 || string(again["a"]) != "1" {
		t.Errorf("stored checkpoint changed: %q", again)
	}
}

func testCancelledContext(t *testing.T, open Open) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st := open(t)
	r, p, tr, c := st.Replay, st.Params, st.Tracks, st.Checkpoints
	for name, err := range map[string]error{
		"append":  r.Append(ctx, Chunk("e", "301", "e.1", 1, 0, 1)),
		"publish": p.Publish(ctx, "e", "301", 1, []byte("a")),
		"put":     tr.Put(ctx, "e", 1, results.Episode{ID: "e.1"}),
		"save":    c.Save(ctx, "e", "e.1", map[string][]byte{"a": nil}),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v", name, err)
		}
	}
	if cs, _ := r.Chunks(context.Background(), "e", "301"); len(cs) != 0 {
		t.Error("a cancelled append was stored")
	}
}

// testTraceContext: a chunk's traceparent comes back with it, and a traced parameter store
// keeps the first traceparent of each version.
func testTraceContext(t *testing.T, open Open) {
	ctx := context.Background()
	st := open(t)
	const tp1 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	const tp2 = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
	c := Chunk("e", "301", "e/1", 4, 0, 0.1)
	c.TraceParent = tp1
	if err := st.Replay.Append(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := st.Replay.Chunks(ctx, "e", "301")
	if err != nil || len(got) != 1 || got[0].TraceParent != tp1 {
		t.Fatalf("chunks %+v, %v: want the traceparent back", got, err)
	}
	tp, ok := st.Params.(fleet.TracedParams)
	if !ok {
		t.Skip("the parameter store keeps no traceparent")
	}
	if err := tp.PublishTraced(ctx, "e", "301", 1, []byte("a"), tp1); err != nil {
		t.Fatal(err)
	}
	if err := tp.PublishTraced(ctx, "e", "301", 1, []byte("a"), tp2); err != nil {
		t.Fatalf("republishing the same bytes: %v", err)
	}
	if err := tp.PublishTraced(ctx, "e", "301", 1, []byte("b"), tp2); err == nil {
		t.Fatal("other bytes under a stored version were accepted")
	}
	if err := st.Params.Publish(ctx, "e", "301", 2, []byte("c")); err != nil {
		t.Fatal(err)
	}
	for v, want := range map[uint64]string{1: tp1, 2: ""} {
		if got, err := tp.TraceParent(ctx, "e", "301", v); err != nil || got != want {
			t.Fatalf("version %d traceparent %q, %v; want %q", v, got, err, want)
		}
	}
	if _, err := tp.TraceParent(ctx, "e", "301", 3); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("traceparent of an absent version: %v", err)
	}
	if b, err := st.Params.Fetch(ctx, "e", "301", 1); err != nil || string(b) != "a" {
		t.Fatalf("fetch of a traced version: %q %v", b, err)
	}
}
