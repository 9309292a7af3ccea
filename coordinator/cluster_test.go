package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
)

const clusterSpec = `name: failover
lines: ["301", "446"]
collect: {hours_per_line: 0.2, episode_seconds: 60}
train: {ensemble_size: 2, updates: 10, checkpoint_every: 5}
evaluate: {episodes_per_condition: 3, episode_seconds: 60}
`

// ledger is what the simulated workers and learners believe: which (item, token) reports the
// coordinator accepted.
type ledger struct {
	mu       sync.Mutex
	accepted map[string][]string // item id -> "holder/token" of every report believed accepted
	leases   int
	refused  int
}

func (l *ledger) accept(it *api.Item, holder string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accepted[it.ID] = append(l.accepted[it.ID], fmt.Sprintf("%s/%d", holder, it.Token))
}

// simulate runs one simulated worker (or learner) until stop is set: lease, heartbeat once (the
// episode), report; a report whose outcome is unknown is retried until the coordinator
// answers: accepted, duplicate (an earlier try counted), or stale (it did not count). Stopping
// never abandons a report in flight, so the ledger knows the answer to every report.
func simulate(ctx context.Context, stop *atomic.Bool, cl *api.Client, holder string, typ plan.ItemType, lg *ledger) error {
	for !stop.Load() && ctx.Err() == nil {
		it, err := cl.Lease(ctx, api.LeaseRequest{Holder: holder, Type: typ})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, api.ErrUnavailable) {
				continue
			}
			return fmt.Errorf("%s: lease: %w", holder, err)
		}
		if it == nil {
			// No work for this holder now; wait for the state to change.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		lg.mu.Lock()
		lg.leases++
		lg.mu.Unlock()
		if _, err := cl.Heartbeat(ctx, api.HeartbeatRequest{Holder: holder, ItemID: it.ID, Token: it.Token}); err != nil && !errors.Is(err, api.ErrStaleLease) && !errors.Is(err, api.ErrUnavailable) {
			return fmt.Errorf("%s: heartbeat: %w", holder, err)
		}
		rep := api.ReportCmd{Holder: holder, ItemID: it.ID, Token: it.Token}
		if typ == plan.TypeTrain {
			rep.PolicyVersion = 7
		} else {
			rep.Outcome = &episode.Outcome{Seconds: it.Seconds, ClosestCM: 0.5, LightFraction: 0.2, Frames: 3}
		}
		for {
			_, err := cl.Report(ctx, rep)
			switch {
			case err == nil, errors.Is(err, api.ErrDuplicate):
				lg.accept(it, holder)
			case errors.Is(err, api.ErrStaleLease):
				lg.mu.Lock()
				lg.refused++
				lg.mu.Unlock()
			case errors.Is(err, api.ErrUnavailable) && ctx.Err() == nil:
				continue
			case ctx.Err() != nil:
				return nil
			default:
				return fmt.Errorf("%s: report: %w", holder, err)
			}
			break
		}
	}
	return nil
}

func TestClusterFailoverExactlyOnce(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	cl := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	id, err := cl.Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	lg := &ledger{accepted: map[string][]string{}}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	start := func(holder string, typ plan.ItemType, line string) {
		wc := c.Client(t)
		if typ == plan.TypeEpisode {
			if err := wc.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: holder, ArenaID: "arena-" + holder, Line: line, Calibration: []byte(`{"px_per_cm":540}`)}); err != nil {
				t.Fatal(err)
			}
		} else if err := wc.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: holder}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := simulate(ctx, &stop, wc, holder, typ, lg); err != nil {
				errs <- err
			}
		}()
	}
	for _, line := range []string{"301", "446"} {
		for i := range 3 {
			start(fmt.Sprintf("w%s-%d", line, i), plan.TypeEpisode, line)
		}
	}
	start("learner", plan.TypeTrain, "")

	// Kill the leader while episodes are leased and reports are in flight.
	old := c.Leader()
	coordinatortest.WaitFor(t, 30*time.Second, "a third of the collect episodes done", func() bool {
		return old.FSM().Stats().ReportsAccepted >= 8
	})
	leased := old.FSM().Counts().Episodes[api.StateLeased]
	c.Kill(old.ID())
	t.Logf("killed leader %s with %d episodes leased", old.ID(), leased)
	newLeader := c.Leader()
	if newLeader.ID() == old.ID() {
		t.Fatal("the killed node leads")
	}
	coordinatortest.WaitFor(t, 60*time.Second, "the experiment done", func() bool {
		e, _, ok := newLeader.FSM().Experiment(id)
		return ok && e.Status != plan.StatusRunning
	})
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The old leader comes back from its data directory and catches up.
	c.Restart(old.ID())
	c.WaitConverged()

	for _, node := range c.Nodes() {
		e, items, _ := node.FSM().Experiment(id)
		if e.Status != plan.StatusDone {
			t.Fatalf("%s: experiment %s: %s", node.ID(), e.Status, e.Reason)
		}
		// 2 lines x (12 collect + 1 train + 3 x 3 evaluate) = 44 items.
		if len(items) != 44 {
			t.Fatalf("%s: %d items, want 44", node.ID(), len(items))
		}
		done := 0
		for _, it := range items {
			if it.State != api.StateDone {
				t.Fatalf("%s: item %s is %s (failures %q)", node.ID(), it.ID, it.State, it.Failures)
			}
			done++
			got := lg.accepted[it.ID]
			want := fmt.Sprintf("%s/%d", it.Result.By, it.Result.Token)
			if len(got) != 1 || got[0] != want {
				t.Fatalf("%s: item %s done by %s, workers believe %q were accepted", node.ID(), it.ID, want, got)
			}
		}
		if st := node.FSM().Stats(); st.ReportsAccepted != uint64(done) {
			t.Fatalf("%s: %d reports accepted for %d done items", node.ID(), st.ReportsAccepted, done)
		}
	}
	total := 0
	for _, v := range lg.accepted {
		total += len(v)
	}
	if total != 44 {
		t.Fatalf("workers believe %d reports were accepted, want 44", total)
	}
	t.Logf("leases %d, reports refused as stale %d", lg.leases, lg.refused)
}

func TestClusterPartitionedFollowerCatchesUp(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := c.Followers()[0]
	c.SetPartitioned(f.ID(), true)
	before := f.Raft().AppliedIndex()

	// Writes through the majority side.
	cl := c.Client(t, c.Leader().URL())
	id, err := cl.Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		it, err := cl.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode})
		if err != nil || it == nil {
			t.Fatalf("lease: %v %v", it, err)
		}
		if _, err := cl.Report(ctx, api.ReportCmd{Holder: "w", ItemID: it.ID, Token: it.Token}); err != nil {
			t.Fatal(err)
		}
	}
	leaderIdx := c.Leader().Raft().AppliedIndex()
	if got := f.Raft().AppliedIndex(); got >= leaderIdx {
		t.Fatalf("partitioned follower applied %d (%d when cut off), the leader %d", got, before, leaderIdx)
	}
	if _, _, ok := f.FSM().Experiment(id); ok {
		t.Fatal("partitioned follower sees the experiment")
	}
	// A read on the cut-off follower says how stale it is: it no longer hears from a leader.
	coordinatortest.WaitFor(t, 10*time.Second, "the follower to notice it is cut off", func() bool {
		ns := nodeStatus(t, c, f.URL())
		return ns.LastContactMs > 400 || ns.LastContactMs < 0
	})

	c.SetPartitioned(f.ID(), false)
	c.WaitConverged()
	// The follower serves the same state over HTTP, and ?min_index reads wait for a write.
	fc := c.Client(t, f.URL())
	v, err := fc.Experiment(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if v.Counts.Episodes[api.StateDone] != 5 {
		t.Fatalf("follower reports %d episodes done, want 5", v.Counts.Episodes[api.StateDone])
	}
	// A write sent to the follower is forwarded to the leader; the follower's next read (min_index)
	// sees it.
	if err := fc.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w2", ArenaID: "b", Line: "446"}); err != nil {
		t.Fatal(err)
	}
	if f.ForwardedWrites() == 0 {
		t.Fatal("the follower did not forward the write")
	}
	ws := f.FSM().Workers()
	var names []string
	for _, w := range ws {
		names = append(names, w.ID)
	}
	st, err := fc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Workers != 2 || st.AnsweredBy != f.ID() {
		t.Fatalf("status after forwarded write: workers %d (fsm %q), answered by %s", st.Workers, names, st.AnsweredBy)
	}
}

func TestClusterLeaseExpiryAndRefusedReports(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := c.Client(t)
	// Bad experiments are refused with the field named; nothing is replicated.
	for _, bad := range []struct{ spec, field string }{
		{"name: x\nlines: [\"3 01\"]\n", "lines[0]"},
		{"name: x\nlines: [\"301\"]\ncollect: {hours_per_line: -1}\n", "collect.hours_per_line"},
		{"name: x\nlines: [\"301\"]\ntrain: {ensemble: 3}\n", "train.ensemble: unknown field"},
	} {
		_, err := cl.Submit(ctx, []byte(bad.spec))
		if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), bad.field) {
			t.Fatalf("submit %q: %v, want a bad request naming %s", bad.spec, err, bad.field)
		}
	}
	if n := len(c.Leader().FSM().Experiments()); n != 0 {
		t.Fatalf("%d experiments after refused submissions", n)
	}
	id, err := cl.Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"a", "b"} {
		if err := cl.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: w, ArenaID: "arena-" + w, Line: "446"}); err != nil {
			t.Fatal(err)
		}
	}
	it, err := cl.Lease(ctx, api.LeaseRequest{Holder: "a", Type: plan.TypeEpisode, TTLSeconds: 5})
	if err != nil || it == nil {
		t.Fatalf("lease: %v %v", it, err)
	}
	if _, err := cl.Heartbeat(ctx, api.HeartbeatRequest{Holder: "a", ItemID: it.ID, Token: it.Token, TTLSeconds: 5}); err != nil {
		t.Fatal(err)
	}
	// Time passes beyond the lease: the leader's tick returns the item to pending.
	c.Clock().Advance(time.Minute)
	coordinatortest.WaitFor(t, 10*time.Second, "the lease to expire", func() bool {
		got, _ := c.Leader().FSM().Item(it.ID)
		return got.State == api.StatePending
	})
	if _, err := cl.Heartbeat(ctx, api.HeartbeatRequest{Holder: "a", ItemID: it.ID, Token: it.Token}); !errors.Is(err, api.ErrStaleLease) {
		t.Fatalf("heartbeat of an expired lease: %v", err)
	}
	// Worker b gets it (after the other pending episodes of its line).
	var second *api.Item
	for second == nil || second.ID != it.ID {
		second, err = cl.Lease(ctx, api.LeaseRequest{Holder: "b", Type: plan.TypeEpisode})
		if err != nil || second == nil {
			t.Fatalf("lease b: %v %v", second, err)
		}
		if second.ID != it.ID {
			if _, err := cl.Report(ctx, api.ReportCmd{Holder: "b", ItemID: second.ID, Token: second.Token}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if second.Attempts != 2 || second.Token == it.Token {
		t.Fatalf("re-leased item %+v", second)
	}
	l := c.Leader()
	digest := func() []byte {
		c.WaitConverged()
		d, _ := l.FSM().StateDigest()
		return withoutStats(t, d)
	}
	before := digest()
	refused := []struct {
		name string
		rep  api.ReportCmd
		want error
	}{
		{"late report of the expired lease", api.ReportCmd{Holder: "a", ItemID: it.ID, Token: it.Token}, api.ErrStaleLease},
		{"wrong token", api.ReportCmd{Holder: "b", ItemID: it.ID, Token: second.Token + 1000}, api.ErrStaleLease},
		{"unknown item", api.ReportCmd{Holder: "b", ItemID: id + ".99999", Token: second.Token}, api.ErrNotFound},
	}
	for _, r := range refused {
		if _, err := cl.Report(ctx, r.rep); !errors.Is(err, r.want) {
			t.Fatalf("%s: %v, want %v", r.name, err, r.want)
		}
	}
	if !bytes.Equal(before, digest()) {
		t.Fatal("refused reports changed the state")
	}
	if _, err := cl.Report(ctx, api.ReportCmd{Holder: "b", ItemID: it.ID, Token: second.Token, Outcome: &episode.Outcome{Seconds: 60, ClosestCM: 0.3}}); err != nil {
		t.Fatal(err)
	}
	before = digest()
	if _, err := cl.Report(ctx, api.ReportCmd{Holder: "b", ItemID: it.ID, Token: second.Token, Outcome: &episode.Outcome{Seconds: 60, ClosestCM: 9}}); !errors.Is(err, api.ErrDuplicate) {
		t.Fatalf("duplicate report: %v", err)
	}
	if !bytes.Equal(before, digest()) {
		t.Fatal("the duplicate report changed the state")
	}
	got, _ := l.FSM().Item(it.ID)
	if got.Result.Outcome == nil || got.Result.Outcome.ClosestCM != 0.3 || got.Result.By != "b" || len(got.Failures) != 1 {
		t.Fatalf("item after reports: %+v", got)
	}

	// Mutating calls without the token, or with a wrong one: 401 and nothing changes.
	before = digest()
	for _, auth := range []string{"", "Bearer wrong", "Basic " + coordinatortest.Token, "Bearer " + coordinatortest.Token + "x"} {
		for _, path := range []string{"/v1/experiments", "/v1/workers", "/v1/lease", "/v1/report", "/v1/cluster/remove"} {
			for _, node := range c.Nodes() {
				req, _ := http.NewRequest(http.MethodPost, node.URL()+path, strings.NewReader(`{"id":"n1"}`))
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := c.HTTPClient().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("POST %s with %q: %s, want 401", path, auth, resp.Status)
				}
			}
		}
	}
	if !bytes.Equal(before, digest()) {
		t.Fatal("unauthorized calls changed the state")
	}
	badCfg := c.ClientConfig()
	badCfg.Token = "nope"
	unauth, err := api.NewClient(badCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := unauth.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "x", ArenaID: "x", Line: "301"}); !errors.Is(err, api.ErrUnauthorized) {
		t.Fatalf("client with a wrong token: %v", err)
	}

	// Status, health and metrics on every node. (An election under load may move the
	// leader meanwhile: the answer must name a live node and its own HTTP address.)
	for _, node := range c.Nodes() {
		st, err := c.Client(t, node.URL()).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ln := c.Node(st.Leader.ID)
		if ln == nil || st.Leader.HTTPAddr != ln.HTTPAddr() || len(st.Nodes) != 3 || st.Episodes[api.StateDone] == 0 {
			t.Fatalf("status from %s: %+v", node.ID(), st)
		}
		for _, ns := range st.Nodes {
			if !ns.Reachable || ns.AppliedIndex == 0 || ns.State == "" {
				t.Fatalf("node status %+v", ns)
			}
		}
		for path, want := range map[string]string{
			"/healthz": `"leader":"n`,
			"/metrics": fmt.Sprintf("optoloop_coordinator_reports_accepted_total %d\n", node.FSM().Stats().ReportsAccepted),
		} {
			resp, err := c.HTTPClient().Get(node.URL() + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
				t.Fatalf("GET %s on %s: %s %s", path, node.ID(), resp.Status, b)
			}
			if resp.Header.Get(api.HeaderAppliedIndex) == "" || c.Node(resp.Header.Get(api.HeaderLeader)) == nil {
				t.Fatalf("GET %s: no freshness headers: %v", path, resp.Header)
			}
		}
	}
}

func TestClusterSnapshotsRestartAndLateJoin(t *testing.T) {
	c := coordinatortest.New(t, 3, func(cfg *coordinator.Config) {
		cfg.SnapshotThreshold = 32
		cfg.TrailingLogs = 8
		cfg.SnapshotInterval = 50 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := c.Client(t)
	id, err := cl.Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}); err != nil {
		t.Fatal(err)
	}
	var held *api.Item
	for i := range 12 {
		it, err := cl.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode})
		if err != nil || it == nil {
			t.Fatalf("lease: %v %v", it, err)
		}
		if i == 11 {
			held = it // leave one lease open across the snapshot
			break
		}
		if _, err := cl.Report(ctx, api.ReportCmd{Holder: "w", ItemID: it.ID, Token: it.Token}); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range c.Nodes() {
		if err := node.Snapshot(); err != nil {
			t.Fatalf("snapshot on %s: %v", node.ID(), err)
		}
	}
	// More writes after the snapshot, so that restore replays a log tail too.
	for i := range 40 {
		if err := cl.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: fmt.Sprintf("l%d", i%4)}); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitConverged()

	// A follower restarted from its data directory has the same state.
	f := c.Followers()[0]
	c.Kill(f.ID())
	if err := cl.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w2", ArenaID: "b", Line: "446"}); err != nil {
		t.Fatal(err)
	}
	c.Restart(f.ID())
	c.WaitConverged()

	// A node that joins late installs a snapshot (the log before it is compacted) and has the
	// same state.
	late := c.Add("n3")
	c.WaitConverged()
	snaps, err := os.ReadDir(filepath.Join(c.Config(late.ID()).DataDir, "snapshots"))
	if err != nil || len(snaps) == 0 {
		t.Fatalf("late node has no snapshot: %v %v", snaps, err)
	}
	// Collect is still open: 2 lines x 12 collect episodes.
	if _, items, ok := late.FSM().Experiment(id); !ok || len(items) != 24 {
		t.Fatalf("late node: experiment %v, %d items", ok, len(items))
	}
	// The lease held across the snapshot is still current everywhere: the holder reports it.
	if _, err := c.Client(t, late.URL()).Report(ctx, api.ReportCmd{Holder: "w", ItemID: held.ID, Token: held.Token}); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged()

	// Removal of a node, then a clean shutdown of the leader hands leadership over.
	if err := cl.Remove(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	coordinatortest.WaitFor(t, 10*time.Second, "n3 out of the configuration", func() bool { return !c.InConfig("n3") })
	if err := cl.Remove(ctx, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("remove of an unknown node: %v", err)
	}
	c.Kill("n3")
	old := c.Leader()
	t0 := time.Now()
	if err := c.Stop(old.ID()); err != nil {
		t.Fatalf("clean shutdown: %v", err)
	}
	coordinatortest.WaitFor(t, 10*time.Second, "a new leader after the hand-over", func() bool {
		l := c.LeaderOrNil()
		return l != nil && l != old
	})
	t.Logf("leadership handed over in %v", time.Since(t0))
	if err := c.Client(t, c.Leader().URL()).RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "after"}); err != nil {
		t.Fatal(err)
	}
}

func TestRaftPeerRestriction(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	l := c.Leader()
	refusedBefore := l.RefusedRaftConnections()
	// A connection from an address outside the configuration (127.0.0.2) is dropped.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
	conn, err := d.Dial("tcp", l.RaftAddr())
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2 here: %v", err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("read from a refused Raft connection: %v, want EOF", err)
	}
	if l.RefusedRaftConnections() != refusedBefore+1 {
		t.Fatalf("refused connections %d, want %d", l.RefusedRaftConnections(), refusedBefore+1)
	}
	// The configured peers still replicate.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Client(t).RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l"}); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged()
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

// withoutStats drops from a state digest what moves with every command, refused or not: the
// counters, the clock and the applied index.
func withoutStats(t *testing.T, b []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "stats")
	delete(m, "now")
	delete(m, "term")
	delete(m, "term_time")
	delete(m, "clock_offset")
	delete(m, "applied")
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// nodeStatus reads a node's own view of itself (GET /v1/node), as an operator would.
func nodeStatus(t *testing.T, c *coordinatortest.Cluster, url string) api.NodeStatus {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/v1/node", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+coordinatortest.ViewerToken)
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ns api.NodeStatus
	if err := json.NewDecoder(resp.Body).Decode(&ns); err != nil {
		t.Fatal(err)
	}
	return ns
}
