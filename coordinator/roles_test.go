package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
)

// TestClusterRoles checks what each credential may do, through a follower (which forwards
// writes) as through the leader: a viewer reads and is refused every write (403, nothing
// changes); an operator submits, cancels and drains but cannot act as a worker; a missing or
// unknown token is refused (401); the cluster token does everything.
func TestClusterRoles(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	c.WaitConverged()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	follower := c.Followers()[0].URL()
	client := roleClient(t, c, follower)
	cluster, operator, viewer, nobody, wrong := client(coordinatortest.Token), client(coordinatortest.OperatorToken),
		client(coordinatortest.ViewerToken), client(""), client("not-a-token-of-this-cluster")
	worker := client(coordinatortest.WorkerToken("w"))

	for _, tc := range []struct {
		cl   *api.Client
		want api.Role
		err  error
	}{{cluster, api.RoleAdmin, nil}, {operator, api.RoleOperator, nil}, {viewer, api.RoleViewer, nil},
		{nobody, "", api.ErrUnauthorized}, {wrong, "", api.ErrUnauthorized}} {
		who, err := tc.cl.WhoAmI(ctx)
		if !errors.Is(err, tc.err) || who.Role != tc.want {
			t.Errorf("whoami: %+v, %v; want %q, %v", who, err, tc.want, tc.err)
		}
	}
	if who, err := worker.WhoAmI(ctx); err != nil || who.Role != api.RoleWorker || who.Holder != "w" {
		t.Errorf("whoami of worker w's credential: %+v, %v", who, err)
	}
	// WithToken overrides the client's own credential for one call.
	if who, err := nobody.WhoAmI(api.WithToken(ctx, coordinatortest.OperatorToken)); err != nil || who.Role != api.RoleOperator {
		t.Errorf("whoami with an operator token in the context: %+v, %v", who, err)
	}

	if _, err := viewer.Submit(ctx, []byte(clusterSpec)); !errors.Is(err, api.ErrForbidden) {
		t.Errorf("viewer submit: %v, want forbidden", err)
	}
	id, err := operator.Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatalf("operator submit: %v", err)
	}
	if err := operator.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}); !errors.Is(err, api.ErrForbidden) {
		t.Errorf("operator registering a worker: %v, want forbidden", err)
	}
	if err := cluster.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}); !errors.Is(err, api.ErrForbidden) {
		t.Errorf("admin registering a worker: %v, want forbidden (it names no holder)", err)
	}
	if err := worker.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func(*api.Client) error{
		"cancel": func(cl *api.Client) error { return cl.Cancel(ctx, id, "by a viewer") },
		"drain":  func(cl *api.Client) error { return cl.Drain(ctx, "w", true) },
		"lease": func(cl *api.Client) error {
			_, err := cl.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode})
			return err
		},
	} {
		if err := call(viewer); !errors.Is(err, api.ErrForbidden) {
			t.Errorf("viewer %s: %v, want forbidden", name, err)
		}
		if err := call(nobody); !errors.Is(err, api.ErrUnauthorized) {
			t.Errorf("%s without a token: %v, want unauthorized", name, err)
		}
	}
	// The viewer wrote nothing: Sync makes its reads see what the leader acknowledged.
	if err := viewer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := viewer.Progress(ctx, id)
	if err != nil || p.Status != plan.StatusRunning {
		t.Fatalf("after refused writes: %+v, %v; want running", p, err)
	}
	ws, err := viewer.Workers(ctx)
	if err != nil || len(ws) != 1 || ws[0].Draining {
		t.Fatalf("workers after a refused drain: %+v, %v", ws, err)
	}

	if err := operator.Drain(ctx, "w", true); err != nil {
		t.Fatalf("operator drain: %v", err)
	}
	if it, err := worker.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode}); err != nil || it != nil {
		t.Errorf("lease of a drained worker: %+v, %v; want nothing", it, err)
	}
	if err := operator.Drain(ctx, "w", false); err != nil {
		t.Fatal(err)
	}
	it, err := worker.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode})
	if err != nil || it == nil {
		t.Fatalf("lease of a resumed worker: %+v, %v", it, err)
	}
	if err := viewer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if ws, _ := viewer.Workers(ctx); len(ws) != 1 || ws[0].Holding != it.ID {
		t.Errorf("workers while holding %s: %+v", it.ID, ws)
	}
	if err := operator.Cancel(ctx, id, "wrong line"); err != nil {
		t.Fatalf("operator cancel: %v", err)
	}
	if err := viewer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	p, err = viewer.Progress(ctx, id)
	if err != nil || p.Status != plan.StatusFailed || p.Reason != "cancelled: wrong line" {
		t.Errorf("progress after cancel: %+v, %v", p, err)
	}
	if _, err := worker.Heartbeat(ctx, api.HeartbeatRequest{Holder: "w", ItemID: it.ID, Token: it.Token}); !errors.Is(err, api.ErrStaleLease) {
		t.Errorf("heartbeat of a cancelled episode: %v, want stale lease", err)
	}
	if err := operator.Cancel(ctx, "nope-1", ""); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("cancel of an unknown experiment: %v", err)
	}
}

// roleClient returns a maker of clients of node url that send exactly the token they are given
// (not the harness's fleet transport) and give up after 3 attempts.
func roleClient(t *testing.T, c *coordinatortest.Cluster, url string) func(token string) *api.Client {
	return func(token string) *api.Client {
		cfg := c.DirectClientConfig(url)
		cfg.Token, cfg.MaxAttempts = token, 3
		cl, err := api.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
}

// TestWorkerCannotReportAnotherWorkersLease pins the finding "any token holder can complete
// another worker's lease and the victim is told duplicate": a worker credential names its
// holder, so worker a, who knows b's item and lease token (every worker reads them), is refused
// (403) when it reports, heartbeats or fails b's lease as b, through a follower as through the
// leader; nothing changes, and b's own report is then accepted (not "duplicate"). Admin,
// operator and viewer credentials name no holder: they cannot lease or report at all.
func TestWorkerCannotReportAnotherWorkersLease(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	follower, leader := c.Followers()[0].URL(), c.Leader().URL()
	viaFollower, viaLeader := roleClient(t, c, follower), roleClient(t, c, leader)
	if _, err := viaLeader(coordinatortest.OperatorToken).Submit(ctx, []byte(clusterSpec)); err != nil {
		t.Fatal(err)
	}
	a, b := viaFollower(coordinatortest.WorkerToken("a")), viaFollower(coordinatortest.WorkerToken("b"))
	for _, w := range []struct {
		cl *api.Client
		id string
	}{{a, "a"}, {b, "b"}} {
		if err := w.cl.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: w.id, ArenaID: "arena-" + w.id, Line: "301"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "b", ArenaID: "arena-b", Line: "301"}); !errors.Is(err, api.ErrForbidden) {
		t.Errorf("a registering as b: %v, want forbidden", err)
	}
	if _, err := a.Lease(ctx, api.LeaseRequest{Holder: "b", Type: plan.TypeEpisode}); !errors.Is(err, api.ErrForbidden) {
		t.Errorf("a leasing as b: %v, want forbidden", err)
	}
	it, err := b.Lease(ctx, api.LeaseRequest{Holder: "b", Type: plan.TypeEpisode})
	if err != nil || it == nil {
		t.Fatalf("b's lease: %+v, %v", it, err)
	}
	// What a reads of b's lease: the item, its holder and token.
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	seen, err := a.Item(ctx, it.ID)
	if err != nil || seen.Holder != "b" || seen.Token != it.Token {
		t.Fatalf("a reading b's item: %+v, %v", seen, err)
	}
	out := &episode.Outcome{Seconds: 60, ClosestCM: 0.1}
	for _, cl := range []*api.Client{a, viaLeader(coordinatortest.WorkerToken("a"))} {
		if _, err := cl.Report(ctx, api.ReportCmd{Holder: "b", ItemID: it.ID, Token: it.Token, Outcome: out}); !errors.Is(err, api.ErrForbidden) {
			t.Errorf("a reporting b's lease: %v, want forbidden", err)
		}
		if _, err := cl.Heartbeat(ctx, api.HeartbeatRequest{Holder: "b", ItemID: it.ID, Token: it.Token}); !errors.Is(err, api.ErrForbidden) {
			t.Errorf("a heartbeating b's lease: %v, want forbidden", err)
		}
		if _, err := cl.Fail(ctx, api.FailCmd{Holder: "b", ItemID: it.ID, Token: it.Token, Reason: "by a"}); !errors.Is(err, api.ErrForbidden) {
			t.Errorf("a failing b's lease: %v, want forbidden", err)
		}
		if err := cl.Deregister(ctx, api.DeregisterRequest{Holder: "b", Reason: "by a"}); !errors.Is(err, api.ErrForbidden) {
			t.Errorf("a deregistering b: %v, want forbidden", err)
		}
		// As itself, a holds no lease of the item: stale, as before.
		if _, err := cl.Report(ctx, api.ReportCmd{Holder: "a", ItemID: it.ID, Token: it.Token, Outcome: out}); !errors.Is(err, api.ErrStaleLease) {
			t.Errorf("a reporting b's lease as a: %v, want stale lease", err)
		}
	}
	for name, tok := range map[string]string{"admin": coordinatortest.Token, "operator": coordinatortest.OperatorToken, "viewer": coordinatortest.ViewerToken,
		"signed admin": coordinatortest.Credential(api.RoleAdmin, "b"), "learner b": coordinatortest.LearnerToken("b")} {
		cl := viaFollower(tok)
		if _, err := cl.Report(ctx, api.ReportCmd{Holder: "b", ItemID: it.ID, Token: it.Token, Outcome: out}); !errors.Is(err, api.ErrForbidden) {
			t.Errorf("%s reporting b's lease: %v, want forbidden", name, err)
		}
		if _, err := cl.Lease(ctx, api.LeaseRequest{Holder: "b", Type: plan.TypeEpisode}); !errors.Is(err, api.ErrForbidden) {
			t.Errorf("%s leasing an episode for b: %v, want forbidden", name, err)
		}
	}
	got, err := b.Item(ctx, it.ID)
	if err != nil || got.State != api.StateLeased || got.Holder != "b" || got.Token != it.Token || got.Result != nil || len(got.Failures) != 0 {
		t.Fatalf("b's item after the refused calls: %+v, %v; want still leased to b, untouched", got, err)
	}
	if _, err := b.Heartbeat(ctx, api.HeartbeatRequest{Holder: "b", ItemID: it.ID, Token: it.Token}); err != nil {
		t.Errorf("b's own heartbeat: %v", err)
	}
	done, err := b.Report(ctx, api.ReportCmd{Holder: "b", ItemID: it.ID, Token: it.Token, Outcome: out})
	if err != nil || done.State != api.StateDone || done.Result == nil || done.Result.By != "b" {
		t.Fatalf("b's own report: %+v, %v; want accepted", done, err)
	}
}

// TestRoleMatrix checks every role against every class of endpoint, through a follower: 200
// (or the call's own answer, never 401/403) where the role may, 403 where a known credential
// may not, 401 without a known credential. Every read needs a credential (a viewer's at
// least); /healthz and /metrics need none.
func TestRoleMatrix(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := c.Client(t)
	exp, err := admin.Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}); err != nil {
		t.Fatal(err)
	}
	it, err := admin.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode})
	if err != nil || it == nil {
		t.Fatalf("lease: %+v, %v", it, err)
	}
	c.WaitConverged()
	follower := c.Followers()[0].URL()

	type call struct{ method, path, body string }
	classes := []struct {
		name  string
		calls []call
	}{
		{"read", []call{{"GET", "/v1/experiments", ""}, {"GET", "/v1/experiments/" + exp, ""}, {"GET", "/v1/experiments/" + exp + "/progress", ""},
			{"GET", "/v1/items/" + it.ID, ""}, {"GET", "/v1/workers", ""}, {"GET", "/v1/learners", ""}, {"GET", "/v1/status", ""},
			{"GET", "/v1/node", ""}, {"GET", "/v1/cluster", ""}, {"GET", "/v1/whoami", ""}}},
		{"operate", []call{{"POST", "/v1/workers/w/drain", `{"drain":false}`}, {"POST", "/v1/experiments/nope-1/cancel", `{}`}}},
		{"membership", []call{{"POST", "/v1/cluster/remove", `{"id":"nope"}`}}},
		{"register worker w", []call{{"POST", "/v1/workers", `{"id":"w-1","arena_id":"a1","line":"301"}`}}},
		{"lease episode for w", []call{{"POST", "/v1/lease", `{"holder":"w-1","type":"episode"}`}, {"POST", "/v1/heartbeat", `{"holder":"w"}`}}},
		{"register learner l", []call{{"POST", "/v1/learners", `{"id":"l"}`}}},
		{"lease training for l", []call{{"POST", "/v1/lease", `{"holder":"l","type":"train"}`}, {"POST", "/v1/heartbeat", `{"holder":"l"}`}}},
		{"open", []call{{"GET", "/healthz", ""}, {"GET", "/metrics", ""}}},
	}
	const ok, unauth, forbid = 200, 401, 403
	roles := []struct {
		name, token string
		want        []int // per class, in the order of classes
	}{
		{"none", "", []int{unauth, unauth, unauth, unauth, unauth, unauth, unauth, ok}},
		{"wrong", "not-a-token-of-this-cluster-0123456789", []int{unauth, unauth, unauth, unauth, unauth, unauth, unauth, ok}},
		{"forged worker w", coordinatortest.WorkerToken("w")[:len(coordinatortest.WorkerToken("w"))-2] + "AA", []int{unauth, unauth, unauth, unauth, unauth, unauth, unauth, ok}},
		{"viewer", coordinatortest.ViewerToken, []int{ok, forbid, forbid, forbid, forbid, forbid, forbid, ok}},
		{"operator", coordinatortest.OperatorToken, []int{ok, ok, forbid, forbid, forbid, forbid, forbid, ok}},
		{"admin", coordinatortest.Token, []int{ok, ok, ok, forbid, forbid, forbid, forbid, ok}},
		{"signed admin", coordinatortest.Credential(api.RoleAdmin, "alice"), []int{ok, ok, ok, forbid, forbid, forbid, forbid, ok}},
		{"signed viewer", coordinatortest.Credential(api.RoleViewer, "screen"), []int{ok, forbid, forbid, forbid, forbid, forbid, forbid, ok}},
		{"worker w", coordinatortest.WorkerToken("w"), []int{ok, forbid, forbid, ok, ok, forbid, forbid, ok}},
		{"worker v", coordinatortest.WorkerToken("v"), []int{ok, forbid, forbid, forbid, forbid, forbid, forbid, ok}},
		{"learner l", coordinatortest.LearnerToken("l"), []int{ok, forbid, forbid, forbid, forbid, ok, ok, ok}},
		{"learner m", coordinatortest.LearnerToken("m"), []int{ok, forbid, forbid, forbid, forbid, forbid, forbid, ok}},
	}
	hc := c.HTTPClient()
	for _, role := range roles {
		for ci, class := range classes {
			for _, cl := range class.calls {
				req, err := http.NewRequestWithContext(ctx, cl.method, follower+cl.path, strings.NewReader(cl.body))
				if err != nil {
					t.Fatal(err)
				}
				if role.token != "" {
					req.Header.Set("Authorization", "Bearer "+role.token)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got := resp.StatusCode
				if got != unauth && got != forbid && got < 500 {
					got = ok // the call's own answer (404 of an unknown experiment, ...)
				}
				if want := role.want[ci]; got != want {
					t.Errorf("%s: %s %s (%s): %s %s; want %d", role.name, cl.method, cl.path, class.name, resp.Status, strings.TrimSpace(string(body)), want)
				}
				if got == unauth && (strings.Contains(string(body), it.ID) || strings.Contains(string(body), fmt.Sprint(it.Token))) {
					t.Errorf("%s: %s %s: a refused read reveals the lease: %s", role.name, cl.method, cl.path, body)
				}
			}
		}
	}
}

// TestConfigRefusesWeakTokens: a node refuses to start with a token or credential key shorter
// than 32 bytes or with whitespace inside, naming the field and never the token.
func TestConfigRefusesWeakTokens(t *testing.T) {
	strong := strings.Repeat("s", 32)
	for name, tune := range map[string]func(*coordinator.Config){
		"short token":          func(c *coordinator.Config) { c.Token = "hunter2" },
		"token with a space":   func(c *coordinator.Config) { c.Token = strong + " x" },
		"two-line token":       func(c *coordinator.Config) { c.Token = strong + "\n" + strong },
		"short operator token": func(c *coordinator.Config) { c.OperatorToken = "op-0123" },
		"short viewer token":   func(c *coordinator.Config) { c.ViewerToken = "view" },
		"short credential key": func(c *coordinator.Config) { c.CredentialKey = []byte("key") },
	} {
		cfg := coordinator.DefaultConfig()
		cfg.ID, cfg.RaftAddr, cfg.HTTPAddr, cfg.DataDir, cfg.Token = "n", "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), strong
		tune(&cfg)
		err := cfg.Validate()
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), strong) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %q quotes the token or spans lines", name, err)
		}
	}
}
