package coordinator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
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
	client := func(token string) *api.Client {
		cfg := c.ClientConfig(follower)
		cfg.Token = token
		cfg.MaxAttempts = 3
		cl, err := api.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	cluster, operator, viewer, nobody, wrong := client(coordinatortest.Token), client(coordinatortest.OperatorToken),
		client(coordinatortest.ViewerToken), client(""), client("not-a-token-of-this-cluster")

	for _, tc := range []struct {
		cl   *api.Client
		want api.Role
		err  error
	}{{cluster, api.RoleCluster, nil}, {operator, api.RoleOperator, nil}, {viewer, api.RoleViewer, nil},
		{nobody, "", api.ErrUnauthorized}, {wrong, "", api.ErrUnauthorized}} {
		who, err := tc.cl.WhoAmI(ctx)
		if !errors.Is(err, tc.err) || who.Role != tc.want {
			t.Errorf("whoami: %+v, %v; want %q, %v", who, err, tc.want, tc.err)
		}
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
	if err := cluster.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}); err != nil {
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
	if it, err := cluster.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode}); err != nil || it != nil {
		t.Errorf("lease of a drained worker: %+v, %v; want nothing", it, err)
	}
	if err := operator.Drain(ctx, "w", false); err != nil {
		t.Fatal(err)
	}
	it, err := cluster.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode})
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
	if _, err := cluster.Heartbeat(ctx, api.HeartbeatRequest{Holder: "w", ItemID: it.ID, Token: it.Token}); !errors.Is(err, api.ErrStaleLease) {
		t.Errorf("heartbeat of a cancelled episode: %v, want stale lease", err)
	}
	if err := operator.Cancel(ctx, "nope-1", ""); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("cancel of an unknown experiment: %v", err)
	}
}
