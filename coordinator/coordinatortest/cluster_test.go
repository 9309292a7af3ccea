package coordinatortest_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// TestHarness kills, restarts, partitions and stops nodes of a harness cluster, and checks
// that the test's cleanup stops whatever still runs: no node listens after it.
func TestHarness(t *testing.T) {
	var addrs []string
	t.Run("cluster", func(t *testing.T) {
		c := coordinatortest.New(t, 3, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if n := len(c.Nodes()); n != 3 || len(c.URLs()) != 3 || len(c.Followers()) != 2 {
			t.Fatalf("%d nodes, %d followers", n, len(c.Followers()))
		}
		for _, id := range []string{"n0", "n1", "n2"} {
			cfg := c.Config(id)
			addrs = append(addrs, cfg.HTTPAddr, cfg.RaftAddr)
		}
		old := c.Leader()
		c.Kill(old.ID())
		if c.Node(old.ID()) != nil || len(c.Nodes()) != 2 {
			t.Fatal("a killed node is still listed")
		}
		if l := c.Leader(); l.ID() == old.ID() {
			t.Fatal("the killed node leads")
		}
		cl := c.Client(t)
		if err := cl.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l1"}); err != nil {
			t.Fatal(err)
		}
		back := c.Restart(old.ID())
		if back.HTTPAddr() != c.Config(old.ID()).HTTPAddr || back.RaftAddr() != c.Config(old.ID()).RaftAddr {
			t.Fatalf("restarted on %s/%s, not on its old addresses", back.HTTPAddr(), back.RaftAddr())
		}
		c.WaitConverged()
		if len(back.FSM().Learners()) != 1 {
			t.Fatal("the restarted node did not catch up")
		}

		// A partitioned follower misses writes, then catches up.
		f := c.Followers()[0]
		c.SetPartitioned(f.ID(), true)
		if err := c.Client(t, c.Leader().URL()).RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l2"}); err != nil {
			t.Fatal(err)
		}
		if len(f.FSM().Learners()) != 1 {
			t.Fatal("a partitioned follower applied a write")
		}
		c.SetPartitioned(f.ID(), false)
		c.WaitConverged()

		// A clean stop of the leader hands leadership over.
		l := c.Leader()
		if err := c.Stop(l.ID()); err != nil {
			t.Fatal(err)
		}
		if nl := c.Leader(); nl.ID() == l.ID() {
			t.Fatal("the stopped node leads")
		}
		// The clock moves every node's time.
		before := c.Clock().Now()
		c.Clock().Advance(time.Hour)
		if d := c.Clock().Now().Sub(before); d < time.Hour {
			t.Fatalf("clock moved %v, want >= 1h", d)
		}
		// Leave a follower cut off: the cleanup must stop it with the rest.
		c.SetPartitioned(c.Followers()[0].ID(), true)
	})
	if len(addrs) != 6 {
		t.Fatalf("addresses %q", addrs)
	}
	for _, a := range addrs {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after the test's cleanup", a)
		}
	}
}

// TestHarnessRunsTLSUnlessPlaintext: a harness cluster serves HTTPS (its clients trust its CA)
// unless its tune function asks for Plaintext.
func TestHarnessRunsTLSUnlessPlaintext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name   string
		tune   func(*coordinator.Config)
		scheme string
	}{{"tls", nil, "https://"}, {"plaintext", coordinatortest.Plaintext, "http://"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := coordinatortest.New(t, 1, tc.tune)
			if u := c.Leader().URL(); !strings.HasPrefix(u, tc.scheme) {
				t.Fatalf("URL %s, want %s", u, tc.scheme)
			}
			if err := c.Client(t).RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l1"}); err != nil {
				t.Fatal(err)
			}
			resp, err := c.HTTPClient().Get(c.Leader().URL() + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if u := resp.Header.Get(api.HeaderLeaderURL); u != c.Leader().URL() {
				t.Errorf("leader URL header %q, want %q", u, c.Leader().URL())
			}
		})
	}
}
