package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/live"
	"github.com/optoloop/optoloop/live/livetest"
	"github.com/optoloop/optoloop/redisserver"
)

// TestLiveConformance runs the live stores' conformance suite (live/livetest), also run by
// package memstore, against a real redis-server: one server, a key prefix per subtest.
func TestLiveConformance(t *testing.T) {
	srv := startServer(t, redisserver.Config{})
	livetest.Run(t, func(t *testing.T) livetest.Store { return openStore(t, srv, t.Name()) })
}

// TestLiveKeysExpire: a tile's hash expires with its TTL and the index with its last tile, so
// tiles leave nothing behind; a curve's keys live CurveTTL after the last append.
func TestLiveKeysExpire(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, redisserver.Config{})
	s := openStore(t, srv, "")
	raw := rawClient(t, srv)

	if err := s.PutTile(ctx, livetest.Tile("a", 1), []byte("j"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTile(ctx, livetest.Tile("b", 1), nil, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for key, max := range map[string]time.Duration{s.tileKey("a"): time.Minute, s.tileKey("b"): 200 * time.Millisecond, s.tilesKey(): time.Minute + 2*time.Millisecond} {
		if d, err := raw.PTTL(ctx, key).Result(); err != nil || d <= 0 || d > max {
			t.Errorf("key %s: TTL %v (%v), want within (0, %v]", key, d, err, max)
		}
	}
	// Once b has expired, a put drops it from the index.
	waitFor(t, "b's hash to expire", func() bool { return raw.Exists(ctx, s.tileKey("b")).Val() == 0 })
	if err := s.PutTile(ctx, livetest.Tile("a", 2), nil, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if ids := raw.ZRange(ctx, s.tilesKey(), 0, -1).Val(); len(ids) != 1 || ids[0] != "a" {
		t.Errorf("index %q after b expired, want [a]", ids)
	}
	// With a's short TTL the index's last tile expires soon: the index goes with it.
	waitFor(t, "the index to expire", func() bool { return raw.Exists(ctx, s.tilesKey(), s.tileKey("a")).Val() == 0 })

	if err := s.AppendCurve(ctx, "e", "e.7", "301", []live.CurvePoint{livetest.Point(1)}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{s.key("e", "curve", "e.7"), s.key("e", "curves")} {
		if d, err := raw.PTTL(ctx, key).Result(); err != nil || d <= CurveTTL-time.Minute || d > CurveTTL {
			t.Errorf("key %s: TTL %v (%v), want about %v", key, d, err, CurveTTL)
		}
	}
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		<-tick.C
	}
}

// TestLiveRedisAway: with the server down every live call fails with an error naming the
// server that wraps fleet.ErrUnavailable (a worker drops the tile, the dashboard says so).
func TestLiveRedisAway(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, redisserver.Config{})
	s, err := Open(ctx, Config{URL: srv.URL(), Password: testPassword, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	_, tilesErr := s.Tiles(ctx)
	_, thumbErr := s.Thumbnail(ctx, "a")
	_, curvesErr := s.Curves(ctx, "e")
	for name, err := range map[string]error{
		"put tile":     s.PutTile(ctx, livetest.Tile("a", 1), []byte("j"), time.Minute),
		"tiles":        tilesErr,
		"thumbnail":    thumbErr,
		"append curve": s.AppendCurve(ctx, "e", "e.7", "301", []live.CurvePoint{livetest.Point(1)}),
		"curves":       curvesErr,
	} {
		if err == nil || errors.Is(err, live.ErrNotFound) || !strings.Contains(err.Error(), "redis "+srv.Addr()+": ") {
			t.Errorf("%s with Redis away: %v", name, err)
		}
		if !errors.Is(err, fleet.ErrUnavailable) {
			t.Errorf("%s with Redis away: %v does not wrap fleet.ErrUnavailable", name, err)
		}
	}
}

// TestLiveCorrupt: a tile or a curve point changed behind the store's back is an error naming
// it, not a zero value.
func TestLiveCorrupt(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, redisserver.Config{})
	s := openStore(t, srv, "")
	raw := rawClient(t, srv)
	if err := s.PutTile(ctx, livetest.Tile("a", 1), nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, s.tileKey("a"), fieldTile, "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	if ts, err := s.Tiles(ctx); !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("tiles with a corrupt tile: %+v, %v", ts, err)
	}
	if err := s.AppendCurve(ctx, "e", "e.7", "301", []live.CurvePoint{livetest.Point(1)}); err != nil {
		t.Fatal(err)
	}
	if err := raw.RPush(ctx, s.key("e", "curve", "e.7"), `{"update":"x"`).Err(); err != nil {
		t.Fatal(err)
	}
	if cs, err := s.Curves(ctx, "e"); !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), `"e.7"`) {
		t.Errorf("curves with a corrupt point: %+v, %v", cs, err)
	}
}
