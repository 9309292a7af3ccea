package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/fleet"
)

// post makes one raw call and returns its status and the body's code and error.
func post(t *testing.T, url, token, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct{ Code, Error string }
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatalf("POST %s: %s: %v", url, resp.Status, err)
	}
	return resp.StatusCode, b.Code, b.Error
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestClusterRefusesThreeMillionItemExperiment submits a valid file of 3 million items (it
// OOM-killed every node, and again on restart): the leader refuses it with 400 naming the
// limit and the count, nothing is replicated and the nodes' heap stays flat.
func TestClusterRefusesThreeMillionItemExperiment(t *testing.T) {
	c := coordinatortest.New(t, 3, coordinatortest.Plaintext)
	before := heap()
	for _, n := range c.Nodes() { // the leader, and followers that forward
		status, code, msg := post(t, n.URL()+"/v1/experiments", coordinatortest.OperatorToken, coordinator.HugeSpec)
		if status != http.StatusBadRequest || code != string(api.CodeBadRequest) || !strings.Contains(msg, "3000016 items") ||
			!strings.Contains(msg, "limit of 1000000 items per experiment") || strings.Contains(msg, "\n") {
			t.Fatalf("3-million-item experiment via %s: %d %s %q", n.ID(), status, code, msg)
		}
	}
	after := heap()
	if grew := int64(after) - int64(before); grew > 64<<20 {
		t.Fatalf("the nodes' heap grew by %d MB refusing the experiment", grew>>20)
	}
	c.WaitConverged()
	for _, n := range c.Nodes() {
		if len(n.FSM().Experiments()) != 0 || n.FSM().LiveItems() != 0 {
			t.Fatalf("node %s holds %d experiments", n.ID(), len(n.FSM().Experiments()))
		}
	}
	t.Logf("heap %d MB -> %d MB", before>>20, after>>20)
}

// TestClusterItemBoundsOfTheOperator sets lower bounds (--max-items-per-experiment 6,
// --max-live-items 10): the leader refuses over them, counting the items of every experiment
// not archived; archiving one frees its items.
func TestClusterItemBoundsOfTheOperator(t *testing.T) {
	c := coordinatortest.New(t, 1, func(cfg *coordinator.Config) {
		coordinatortest.Plaintext(cfg)
		cfg.MaxItemsPerExperiment, cfg.MaxLiveItems = 6, 10
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Client(t)
	if _, err := cl.Submit(ctx, []byte(clusterSpec)); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "limit of 6 items per experiment") {
		t.Fatalf("experiment over the operator's per-experiment bound: %v", err)
	}
	first, err := cl.Submit(ctx, []byte(coordinator.SmallSpec))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.SubmitAgain(ctx, []byte(coordinator.SmallSpec)); err != nil {
		t.Fatal(err)
	}
	_, err = cl.SubmitAgain(ctx, []byte(coordinator.SmallSpec))
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "10 items are live") || !strings.Contains(err.Error(), "limit of 10 live items") {
		t.Fatalf("experiment over the live bound: %v", err)
	}
	if err := cl.Cancel(ctx, first, "make room"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Archive(ctx, first); err != nil {
		t.Fatal(err)
	}
	if got := c.Leader().FSM().LiveItems(); got != 5 {
		t.Fatalf("live items %d after the archive, want 5", got)
	}
	if _, err := cl.SubmitAgain(ctx, []byte(coordinator.SmallSpec)); err != nil {
		t.Fatalf("submit after archiving: %v", err)
	}
	bad := coordinator.DefaultConfig()
	bad.ID, bad.RaftAddr, bad.HTTPAddr, bad.DataDir, bad.Token = "x", "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), coordinatortest.Token
	bad.Insecure = true
	bad.MaxLiveItems = api.MaxLiveItems + 1
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "max live items") {
		t.Fatalf("a live bound above the hard one: %v", err)
	}
}

// TestClusterArchive archives over HTTP: operator only, a running experiment refused, a
// finished one's items gone from every node, its tombstone read back, also after a node
// restarts from its snapshot.
func TestClusterArchive(t *testing.T) {
	c := coordinatortest.New(t, 3, coordinatortest.Plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := c.Client(t)
	id, err := cl.Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	url := c.Followers()[0].URL() + "/v1/experiments/" + id + "/archive"
	if status, _, msg := post(t, url, coordinatortest.OperatorToken, ""); status != http.StatusBadRequest || !strings.Contains(msg, "is running") {
		t.Fatalf("archive of a running experiment: %d %q", status, msg)
	}
	if status, _, _ := post(t, url, coordinatortest.ViewerToken, ""); status != http.StatusForbidden {
		t.Fatalf("archive with a viewer's credential: %d", status)
	}
	v, err := cl.Experiment(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Cancel(ctx, id, "done with it"); err != nil {
		t.Fatal(err)
	}
	if status, code, msg := post(t, url, coordinatortest.OperatorToken, "{}"); status != http.StatusOK {
		t.Fatalf("archive: %d %s %q", status, code, msg)
	}
	c.WaitConverged()
	for _, n := range c.Nodes() {
		if _, ok := n.FSM().Item(v.Items[0].ID); ok {
			t.Fatalf("node %s still holds item %s", n.ID(), v.Items[0].ID)
		}
	}
	check := func(cl *api.Client, when string) {
		t.Helper()
		got, err := cl.Experiment(ctx, id)
		if err != nil || got.Experiment.ArchivedAt.IsZero() || got.Experiment.Status != plan.StatusFailed || len(got.Items) != 0 ||
			got.Counts.Episodes[api.StateFailed] != len(v.Items) {
			t.Fatalf("%s: archived experiment reads %+v, %v", when, got, err)
		}
		if _, err := cl.Item(ctx, v.Items[0].ID); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("%s: item of an archived experiment: %v", when, err)
		}
	}
	check(cl, "after archive")
	// A follower restarted from a snapshot keeps the tombstone.
	f := c.Followers()[0]
	if err := f.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	c.Kill(f.ID())
	c.Restart(f.ID())
	c.WaitConverged()
	check(c.Client(t, c.Node(f.ID()).URL()), "on a restarted node")
	if err := cl.Cancel(ctx, id, "again"); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "archived") {
		t.Fatalf("cancel of an archived experiment: %v", err)
	}
}

// TestLocalArchive archives through coordinator.Local, as the local run would.
func TestLocalArchive(t *testing.T) {
	l, err := coordinator.NewLocal(coordinator.DefaultLocalConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := l.Submit(ctx, []byte(coordinator.SmallSpec))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Archive(ctx, id); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("archive of a running experiment: %v", err)
	}
	if _, err := l.Submit(ctx, []byte(coordinator.SmallSpec)); !errors.Is(err, api.ErrExists) || !strings.Contains(err.Error(), id) {
		t.Fatalf("duplicate submission: %v", err)
	}
	if err := l.Cancel(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if err := l.Archive(ctx, id); err != nil {
		t.Fatal(err)
	}
	v, err := l.Experiment(ctx, id)
	if err != nil || v.Experiment.ArchivedAt.IsZero() {
		t.Fatalf("archived experiment: %+v %v", v.Experiment, err)
	}
	if p, err := l.Progress(ctx, id); err != nil || p.Status != plan.StatusFailed {
		t.Fatalf("progress of an archived experiment: %+v %v", p, err)
	}
	if _, err := fleet.Export(ctx, t.TempDir(), l, id, nil, fleet.Stores{}); err == nil || !strings.Contains(err.Error(), "archived") {
		t.Fatalf("export of an archived experiment: %v", err)
	}
	if _, err := l.Submit(ctx, []byte(coordinator.SmallSpec)); err != nil {
		t.Fatalf("submit after archiving the same file: %v", err)
	}
}

// TestClusterRefusesDuplicateSubmission resubmits the same file: 409 naming the live
// experiment, nothing created; ?again=true (submit --again) submits it on purpose.
func TestClusterRefusesDuplicateSubmission(t *testing.T) {
	c := coordinatortest.New(t, 3, coordinatortest.Plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Client(t)
	id, err := cl.Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	status, code, msg := post(t, c.Followers()[0].URL()+"/v1/experiments", coordinatortest.OperatorToken, clusterSpec)
	if status != http.StatusConflict || code != string(api.CodeExists) || !strings.Contains(msg, id) {
		t.Fatalf("resubmission: %d %s %q", status, code, msg)
	}
	if _, err := cl.Submit(ctx, []byte(clusterSpec)); !errors.Is(err, api.ErrExists) || !strings.Contains(err.Error(), id) {
		t.Fatalf("resubmission through the client: %v", err)
	}
	if n := len(c.Leader().FSM().Experiments()); n != 1 {
		t.Fatalf("%d experiments after refused resubmissions", n)
	}
	again, err := cl.SubmitAgain(ctx, []byte(clusterSpec))
	if err != nil || again == id {
		t.Fatalf("deliberate resubmission: %q %v", again, err)
	}
	if status, _, msg := post(t, c.Leader().URL()+"/v1/experiments?again=maybe", coordinatortest.OperatorToken, clusterSpec); status != http.StatusBadRequest || !strings.Contains(msg, "again") {
		t.Fatalf("?again=maybe: %d %q", status, msg)
	}
}

// TestClusterRefusesWorkerOfUnknownLine registers a worker whose line is not in the lines
// catalogue: 400 naming the line, nothing replicated.
func TestClusterRefusesWorkerOfUnknownLine(t *testing.T) {
	known := func(code string) bool { return code == "301" || code == "446" }
	c := coordinatortest.New(t, 3, func(cfg *coordinator.Config) { coordinatortest.Plaintext(cfg); cfg.KnownLine = known })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Client(t)
	err := cl.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "999"})
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), `line "999" is not in the lines catalogue`) {
		t.Fatalf("worker of an unknown line: %v", err)
	}
	body := `{"id":"w","arena_id":"a","line":"999"}`
	if status, _, msg := post(t, c.Followers()[0].URL()+"/v1/workers", coordinatortest.WorkerToken("w"), body); status != http.StatusBadRequest || !strings.Contains(msg, "999") {
		t.Fatalf("raw registration of an unknown line: %d %q", status, msg)
	}
	if err := cl.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "v", ArenaID: "b", Line: "446"}); err != nil {
		t.Fatal(err)
	}
	if ws := c.Leader().FSM().Workers(); len(ws) != 1 || ws[0].ID != "v" {
		t.Fatalf("workers %+v", ws)
	}
	lcfg := coordinator.DefaultLocalConfig()
	lcfg.KnownLine = known
	l, err := coordinator.NewLocal(lcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "999"}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("Local: worker of an unknown line: %v", err)
	}
}

// TestClusterLeasesExpireOnTimeAfterSkewedLeaderLosesLeadership runs the leader's clock an
// hour ahead while it grants and renews leases, then stops it: under the next leader (clock on
// time) the leases expire about their TTL after their last heartbeat, not an hour later.
func TestClusterLeasesExpireOnTimeAfterSkewedLeaderLosesLeadership(t *testing.T) {
	c := coordinatortest.New(t, 3, coordinatortest.Plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	old := c.Leader()
	c.SetSkew(old.ID(), time.Hour)
	coordinatortest.WaitFor(t, 10*time.Second, "the leader's ticks an hour ahead", func() bool {
		return old.FSM().Now().After(c.Clock().Now().Add(59 * time.Minute))
	})
	cl := c.Client(t)
	if _, err := cl.Submit(ctx, []byte(clusterSpec)); err != nil {
		t.Fatal(err)
	}
	const ttl = 3 * time.Second
	var items []*api.Item
	for _, w := range []string{"a", "b"} {
		if err := cl.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: w, ArenaID: "arena-" + w, Line: "301"}); err != nil {
			t.Fatal(err)
		}
		it, err := cl.Lease(ctx, api.LeaseRequest{Holder: w, Type: plan.TypeEpisode, TTLSeconds: ttl.Seconds()})
		if err != nil || it == nil {
			t.Fatalf("lease %s: %v %v", w, it, err)
		}
		items = append(items, it)
	}
	for _, it := range items {
		if _, err := cl.Heartbeat(ctx, api.HeartbeatRequest{Holder: it.Holder, ItemID: it.ID, Token: it.Token, TTLSeconds: ttl.Seconds()}); err != nil {
			t.Fatal(err)
		}
	}
	renewed := time.Now()
	if err := c.Stop(old.ID()); err != nil {
		t.Fatal(err)
	}
	next := c.Leader()
	coordinatortest.WaitFor(t, ttl+5*time.Second, "the leases to expire under the next leader", func() bool {
		for _, it := range items {
			if got, _ := next.FSM().Item(it.ID); got.State == api.StateLeased {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(renewed)
	if elapsed < ttl-time.Second {
		t.Fatalf("leases expired %v after their last heartbeat, before their %v TTL", elapsed, ttl)
	}
	t.Logf("leases expired %v after their last heartbeat (TTL %v) under %s", elapsed.Round(time.Millisecond), ttl, next.ID())
}

// TestClusterSnapshotFilesArePrivate takes a snapshot and checks that the data directory and
// every snapshot directory are 0700 and every snapshot file 0600.
func TestClusterSnapshotFilesArePrivate(t *testing.T) {
	c := coordinatortest.New(t, 1, coordinatortest.Plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Client(t).Submit(ctx, []byte(clusterSpec)); err != nil {
		t.Fatal(err)
	}
	n := c.Leader()
	if err := n.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	dir := c.Config(n.ID()).DataDir
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		switch mode := info.Mode().Perm(); {
		case d.IsDir() && mode != 0o700:
			t.Errorf("directory %s is %v, want 0700", rel, mode)
		case !d.IsDir() && mode != 0o600:
			t.Errorf("file %s is %v, want 0600", rel, mode)
		case !d.IsDir() && strings.HasPrefix(rel, "snapshots"):
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 { // meta.json and state.bin
		t.Fatalf("%d snapshot files under %s", files, dir)
	}
}
