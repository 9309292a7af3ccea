package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// voters returns the ids of the leader's configuration (suffrage voter).
func voters(t *testing.T, c *coordinatortest.Cluster) []string {
	t.Helper()
	fut := c.Leader().Raft().GetConfiguration()
	if err := fut.Error(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range fut.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			ids = append(ids, string(s.ID))
		}
	}
	return ids
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// mustWrite writes through the cluster (a learner registration) and fails the test if it
// cannot: the cluster has a quorum and a leader.
func mustWrite(t *testing.T, ctx context.Context, cl *api.Client, id string) {
	t.Helper()
	if err := cl.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: id}); err != nil {
		t.Fatalf("write %s: %v", id, err)
	}
}

func TestJoinRefusesUnreachableAddress(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader := c.Leader()
	dead := freeAddr(t)
	err := c.Client(t).Join(ctx, api.JoinRequest{ID: "ghost", RaftAddr: dead, HTTPAddr: freeAddr(t)})
	if !errors.Is(err, api.ErrRefused) || !strings.Contains(err.Error(), dead) {
		t.Fatalf("join of a dead address: %v, want refused naming %s", err, dead)
	}
	if got := voters(t, c); len(got) != 3 {
		t.Fatalf("voters after the refused join: %v", got)
	}
	if c.Leader() != leader {
		t.Fatalf("leader changed from %s to %s", leader.ID(), c.Leader().ID())
	}
	mustWrite(t, ctx, c.Client(t), "after")
	c.WaitConverged()
}

func TestJoinRefusesJoinerThatDropsTheLeader(t *testing.T) {
	c := coordinatortest.New(t, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader := c.Leader()
	// A joiner with --restrict-raft-peers and no allowed peers: its configuration is empty,
	// so it drops the leader's connections (Accept, then Close).
	cfg := c.Config("n0")
	cfg.ID, cfg.Bootstrap, cfg.Join = "j", false, leader.URL()
	cfg.RaftAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "j")
	cfg.RestrictRaftPeers, cfg.RaftAllowedPeers = true, nil
	j, err := coordinator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	jctx, jstop := context.WithCancel(context.Background())
	jdone := make(chan error, 1)
	go func() { jdone <- j.Run(jctx) }()
	defer func() { jstop(); <-jdone }()

	// The joiner's own join loop is refused: the leader's probe was dropped.
	coordinatortest.WaitFor(t, 20*time.Second, "the leader's probe dropped by the joiner", func() bool { return j.RefusedRaftConnections() > 0 })
	err = c.Client(t).Join(ctx, api.JoinRequest{ID: "j", RaftAddr: j.RaftAddr(), HTTPAddr: j.HTTPAddr()})
	if !errors.Is(err, api.ErrRefused) || !strings.Contains(err.Error(), j.RaftAddr()) {
		t.Fatalf("join of a joiner that drops the leader: %v, want refused naming %s", err, j.RaftAddr())
	}
	if got := voters(t, c); len(got) != 1 || got[0] != "n0" {
		t.Fatalf("voters after the refused join: %v", got)
	}
	if !leader.IsLeader() {
		t.Fatal("the one-node cluster lost its leader")
	}
	mustWrite(t, ctx, c.Client(t), "still-writable")
}

func TestRemoveRefusesBelowQuorumUnlessForced(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Client(t)
	f := c.Followers()
	// 3 -> 2: the two left are a quorum of three.
	if err := cl.RemoveNode(ctx, api.RemoveRequest{ID: f[0].ID()}); err != nil {
		t.Fatal(err)
	}
	coordinatortest.WaitFor(t, 10*time.Second, f[0].ID()+" out of the configuration", func() bool { return !c.InConfig(f[0].ID()) })
	c.Kill(f[0].ID())
	// 2 -> 1: one is not a quorum of two.
	err := cl.RemoveNode(ctx, api.RemoveRequest{ID: f[1].ID()})
	if !errors.Is(err, api.ErrRefused) || !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("second removal: %v, want refused below quorum", err)
	}
	if got := voters(t, c); len(got) != 2 {
		t.Fatalf("voters after the refused removal: %v", got)
	}
	// The CLI's --force goes through.
	if err := cl.RemoveNode(ctx, api.RemoveRequest{ID: f[1].ID(), Force: true}); err != nil {
		t.Fatalf("forced removal: %v", err)
	}
	coordinatortest.WaitFor(t, 10*time.Second, f[1].ID()+" out of the configuration", func() bool { return !c.InConfig(f[1].ID()) })
	c.Kill(f[1].ID())
	mustWrite(t, ctx, c.Client(t), "alone")
}

func TestRemoveRefusedWhenTheRestCannotMakeQuorum(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := c.Followers()
	// f[1] is cut off: removing f[0] would leave the leader and an unreachable f[1].
	c.SetPartitioned(f[1].ID(), true)
	err := c.Client(t, c.Leader().URL()).RemoveNode(ctx, api.RemoveRequest{ID: f[0].ID()})
	if !errors.Is(err, api.ErrRefused) || !strings.Contains(err.Error(), f[1].ID()+" unreachable") {
		t.Fatalf("removal with the rest short of a quorum: %v", err)
	}
	if got := voters(t, c); len(got) != 3 {
		t.Fatalf("voters after the refused removal: %v", got)
	}
	c.SetPartitioned(f[1].ID(), false)
	mustWrite(t, ctx, c.Client(t), "after")
	c.WaitConverged()
}

func TestWipedFollowerMustBeRemovedBeforeRejoining(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := c.Client(t)
	mustWrite(t, ctx, cl, "before")
	c.WaitConverged()
	f := c.Followers()[0].ID()
	c.Wipe(f)
	n := c.Rejoin(f)

	// The leader still has f in its configuration and sends it AppendEntries: the rejoined,
	// empty node drops them, and its join is refused.
	coordinatortest.WaitFor(t, 20*time.Second, "the leader's requests dropped by the wiped node", func() bool { return n.UnadmittedRaftConnections() >= 2 })
	err := cl.Join(ctx, api.JoinRequest{ID: f, RaftAddr: n.RaftAddr(), HTTPAddr: n.HTTPAddr()})
	if !errors.Is(err, api.ErrRefused) || !strings.Contains(err.Error(), "cluster remove "+f) {
		t.Fatalf("join of a voter already in the configuration: %v, want refused telling to remove it", err)
	}
	mustWrite(t, ctx, cl, "while-wiped")
	if n.Raft().LastIndex() != 0 || n.Raft().CurrentTerm() != 0 {
		t.Fatalf("wiped node took Raft state without being admitted: last index %d, term %d", n.Raft().LastIndex(), n.Raft().CurrentTerm())
	}

	// Removed, it is admitted by its own join loop and comes back with a fresh state.
	if err := cl.Remove(ctx, f); err != nil {
		t.Fatal(err)
	}
	coordinatortest.WaitFor(t, 30*time.Second, f+" back in the configuration", func() bool { return c.InConfig(f) && n.Raft().LastIndex() > 0 })
	c.WaitConverged()
	if got := voters(t, c); len(got) != 3 {
		t.Fatalf("voters after the rejoin: %v", got)
	}
}

// TestWipedNodeBootstrappedAgainTakesNoEntries: a follower's data dir is wiped and it is
// started again with --bootstrap (a unit that still says so): it founds a one-node cluster of
// its own and drops every Raft request of its old cluster's leader, which still has it in its
// configuration and keeps sending it entries, so it never takes the old log and never votes
// there with its history lost; the old cluster writes on with its two other voters.
func TestWipedNodeBootstrappedAgainTakesNoEntries(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := c.Leader()
	cl := c.Client(t, leader.URL())
	mustWrite(t, ctx, cl, "before")
	c.WaitConverged()
	f := c.Followers()[0].ID()
	c.Wipe(f)
	n := c.Rebootstrap(f)
	defer c.Kill(f)
	coordinatortest.WaitFor(t, 20*time.Second, "the old leader's requests dropped by the bootstrapped node", func() bool { return n.ForeignRaftConnections() >= 2 })
	mustWrite(t, ctx, cl, "while-bootstrapped")
	if got := n.FSM().Learners(); len(got) != 0 {
		t.Fatalf("the wiped node bootstrapped again took its old cluster's entries: learners %v", got)
	}
	if got := leader.FSM().Learners(); len(got) != 2 {
		t.Fatalf("the old cluster's learners: %v", got)
	}
}

// TestJoinRetryAfterLostAnswer: the first join's answer is lost (the leader added the node);
// the retried join with the same nonce succeeds and changes nothing.
func TestJoinRetryAfterLostAnswer(t *testing.T) {
	c := coordinatortest.New(t, 1, coordinatortest.Plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target, err := url.Parse(c.Leader().URL())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var first []byte
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/cluster/join" {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			lose := first == nil
			if lose {
				first = body
			}
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
			if lose {
				rec := httptest.NewRecorder()
				proxy.ServeHTTP(rec, r)
				http.Error(w, "answer lost", http.StatusBadGateway)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()

	cfg := c.Config("n0")
	cfg.ID, cfg.Bootstrap, cfg.Join = "n1", false, srv.URL
	cfg.RaftAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "n1")
	n, err := coordinator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nctx, nstop := context.WithCancel(context.Background())
	ndone := make(chan error, 1)
	go func() { ndone <- n.Run(nctx) }()
	defer func() { nstop(); <-ndone }()
	coordinatortest.WaitFor(t, 20*time.Second, "n1 a voter with Raft state", func() bool { return c.InConfig("n1") && n.Raft().LastIndex() > 0 })

	mu.Lock()
	var req api.JoinRequest
	err = json.Unmarshal(first, &req)
	mu.Unlock()
	if err != nil || req.Nonce == "" {
		t.Fatalf("first join request %q: %v", first, err)
	}
	if err := c.Client(t).Join(ctx, req); err != nil {
		t.Fatalf("retried join: %v", err)
	}
	if got := voters(t, c); len(got) != 2 {
		t.Fatalf("voters after the retried join: %v", got)
	}
	// Another process (another nonce) with the same id is a wiped node: refused.
	req.Nonce = "other"
	if err := c.Client(t).Join(ctx, req); !errors.Is(err, api.ErrRefused) {
		t.Fatalf("join with another nonce: %v, want refused", err)
	}
	mustWrite(t, ctx, c.Client(t, c.Leader().URL()), "two")
}

func TestNodeWithoutStateNeedsBootstrapOrJoin(t *testing.T) {
	cfg := coordinator.DefaultConfig()
	dir := filepath.Join(t.TempDir(), "fresh")
	cfg.ID, cfg.RaftAddr, cfg.HTTPAddr, cfg.DataDir, cfg.Token = "x", "127.0.0.1:0", "127.0.0.1:0", dir, coordinatortest.Token
	cfg.Logger, cfg.Insecure = slog.New(slog.DiscardHandler), true
	n, err := coordinator.New(cfg)
	if err == nil {
		n.Close()
		t.Fatal("a node with an empty data dir and neither bootstrap nor join started")
	}
	for _, want := range []string{dir, "--bootstrap", "--join", "holds no Raft state"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused node created its Raft store: %v", err)
	}
}

func TestSecondNodeOnDataDirInUse(t *testing.T) {
	c := coordinatortest.New(t, 1, nil)
	cfg := c.Config("n0")
	cfg.RaftAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.OpenTimeout = time.Second
	done := make(chan error, 1)
	go func() {
		n, err := coordinator.New(cfg)
		if n != nil {
			n.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "data dir "+cfg.DataDir+" is in use by another process") {
			t.Fatalf("second node on a data dir in use: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second node on a data dir in use did not give up within 10 s")
	}
	// The first node is untouched.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mustWrite(t, ctx, c.Client(t), "still-there")
}

// healthz returns /healthz's status code and body.
func healthz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthzFailsWhenAFollowerCannotWriteAndLags(t *testing.T) {
	c := coordinatortest.New(t, 3, func(cfg *coordinator.Config) { coordinatortest.Plaintext(cfg); cfg.HealthMaxLag = 5 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := c.Followers()[0]
	if code, body := healthz(t, f.URL()); code != http.StatusOK {
		t.Fatalf("healthy follower: %d %s", code, body)
	}
	f.SetDiskFull(true)
	if code, body := healthz(t, f.URL()); code != http.StatusServiceUnavailable || !strings.Contains(body, "no space left on device") {
		t.Fatalf("follower with a full disk: %d %s", code, body)
	}
	cl := c.Client(t, c.Leader().URL())
	for i := range 20 {
		mustWrite(t, ctx, cl, fmt.Sprintf("l%d", i))
	}
	var last string
	coordinatortest.WaitFor(t, 20*time.Second, "the follower's /healthz naming its lag", func() bool {
		code, body := healthz(t, f.URL())
		last = body
		return code == http.StatusServiceUnavailable && strings.Contains(body, "lags the leader") && strings.Contains(body, "last raft log write failed")
	})
	t.Logf("unhealthy follower: %s", strings.TrimSpace(last))
	if code, body := healthz(t, c.Leader().URL()); code != http.StatusOK {
		t.Fatalf("leader: %d %s", code, body)
	}
	f.SetDiskFull(false)
	coordinatortest.WaitFor(t, 20*time.Second, "the follower healthy again", func() bool {
		code, _ := healthz(t, f.URL())
		return code == http.StatusOK
	})
	c.WaitConverged()
}
