package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

const testToken = "test-token-0123456789"

// testClock is a clock the test can move forward; every node of a cluster shares it.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// cluster is an in-process cluster of real nodes talking Raft over TCP and HTTP on 127.0.0.1.
type cluster struct {
	tb    testing.TB
	dir   string
	clock *testClock
	tune  func(*Config)

	mu    sync.Mutex
	nodes map[string]*tnode
	order []string
}

type tnode struct {
	cfg    Config
	n      *Node
	cancel context.CancelFunc
	done   chan error
}

func testLogger(tb testing.TB) *slog.Logger {
	if os.Getenv("OPTOLOOP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testConfig: LAN timeouts with headroom for -race on a loaded 2-core machine.
func (c *cluster) config(id string) Config {
	cfg := DefaultConfig()
	cfg.ID = id
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(c.dir, id)
	cfg.Token = testToken
	cfg.HeartbeatTimeout = 400 * time.Millisecond
	cfg.ElectionTimeout = 400 * time.Millisecond
	cfg.LeaderLeaseTimeout = 200 * time.Millisecond
	cfg.TickInterval = 100 * time.Millisecond
	cfg.SnapshotInterval = time.Second
	cfg.LeaseTTL = 10 * time.Second
	cfg.RestrictRaftPeers = true
	cfg.RaftAllowedPeers = []string{"127.0.0.1"}
	cfg.Now = c.clock.Now
	cfg.Logger = testLogger(c.tb)
	if c.tune != nil {
		c.tune(&cfg)
	}
	return cfg
}

func newCluster(tb testing.TB, size int, tune func(*Config)) *cluster {
	tb.Helper()
	c := &cluster{tb: tb, dir: tb.TempDir(), clock: &testClock{}, tune: tune, nodes: map[string]*tnode{}}
	tb.Cleanup(c.stopAll)
	first := c.config("n0")
	first.Bootstrap = true
	c.start(first)
	c.waitLeader()
	for i := 1; i < size; i++ {
		c.add(fmt.Sprintf("n%d", i))
	}
	c.waitConverged()
	return c
}

// add starts a new node that joins through the current leader.
func (c *cluster) add(id string) *tnode {
	c.tb.Helper()
	cfg := c.config(id)
	cfg.Join = c.leader().n.URL()
	t := c.start(cfg)
	waitFor(c.tb, 20*time.Second, "node "+id+" in the configuration", func() bool {
		return c.inConfig(id)
	})
	return t
}

func (c *cluster) inConfig(id string) bool {
	l := c.leaderOrNil()
	if l == nil {
		return false
	}
	fut := l.n.Raft().GetConfiguration()
	if fut.Error() != nil {
		return false
	}
	for _, s := range fut.Configuration().Servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

func (c *cluster) start(cfg Config) *tnode {
	c.tb.Helper()
	n, err := New(cfg)
	if err != nil {
		c.tb.Fatalf("start %s: %v", cfg.ID, err)
	}
	// A restart keeps the addresses the node had.
	cfg.RaftAddr, cfg.HTTPAddr = n.RaftAddr(), n.HTTPAddr()
	ctx, cancel := context.WithCancel(context.Background())
	t := &tnode{cfg: cfg, n: n, cancel: cancel, done: make(chan error, 1)}
	go func() { t.done <- n.Run(ctx) }()
	c.mu.Lock()
	if !slices.Contains(c.order, cfg.ID) {
		c.order = append(c.order, cfg.ID)
	}
	c.nodes[cfg.ID] = t
	c.mu.Unlock()
	return t
}

// kill stops a node abruptly (no leadership transfer), keeping its data directory.
func (c *cluster) kill(id string) {
	c.tb.Helper()
	c.mu.Lock()
	t := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if t == nil {
		return
	}
	_ = t.n.Close()
	t.cancel()
	<-t.done
}

// restart starts a killed node again from its data directory, on its old addresses.
func (c *cluster) restart(t *tnode) *tnode {
	cfg := t.cfg
	cfg.Bootstrap, cfg.Join = false, ""
	return c.start(cfg)
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	ids := append([]string(nil), c.order...)
	c.mu.Unlock()
	for _, id := range ids {
		c.kill(id)
	}
}

func (c *cluster) live() []*tnode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tnode
	for _, id := range c.order {
		if t, ok := c.nodes[id]; ok {
			out = append(out, t)
		}
	}
	return out
}

func (c *cluster) node(id string) *tnode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *cluster) leaderOrNil() *tnode {
	var found *tnode
	for _, t := range c.live() {
		if t.n.Raft().State() == raft.Leader {
			if found != nil {
				return nil // two nodes think they lead: wait for the old one to step down
			}
			found = t
		}
	}
	return found
}

func (c *cluster) waitLeader() *tnode {
	c.tb.Helper()
	var l *tnode
	waitFor(c.tb, 20*time.Second, "a leader", func() bool {
		l = c.leaderOrNil()
		if l == nil {
			return false
		}
		_, ok := l.n.FSM().Node(l.cfg.ID)
		return ok
	})
	return l
}

func (c *cluster) leader() *tnode { return c.waitLeader() }

func (c *cluster) followers() []*tnode {
	l := c.leader()
	var out []*tnode
	for _, t := range c.live() {
		if t != l {
			out = append(out, t)
		}
	}
	return out
}

// waitConverged waits until every live node applied the leader's last index and all hold
// the same state.
func (c *cluster) waitConverged() {
	c.tb.Helper()
	waitFor(c.tb, 30*time.Second, "all nodes at the same state", func() bool {
		l := c.leaderOrNil()
		if l == nil {
			return false
		}
		want := l.n.Raft().LastIndex()
		var first []byte
		for i, t := range c.live() {
			if t.n.Raft().AppliedIndex() < want {
				return false
			}
			d, err := t.n.FSM().StateDigest()
			if err != nil {
				return false
			}
			if i == 0 {
				first = d
			} else if !bytes.Equal(first, d) {
				return false
			}
		}
		return true
	})
}

func (c *cluster) urls() []string {
	var out []string
	for _, t := range c.live() {
		out = append(out, t.n.URL())
	}
	return out
}

func (c *cluster) client(tb testing.TB, urls ...string) *Client {
	tb.Helper()
	if len(urls) == 0 {
		urls = c.urls()
	}
	cl, err := NewClient(ClientConfig{Endpoints: urls, Token: testToken, MaxAttempts: 40, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	return cl
}

// waitFor polls cond until it holds (every 5 ms) or fails the test after timeout.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
