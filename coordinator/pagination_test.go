package coordinator_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// TestClientPagesThroughEveryList shows that the paged reads lose nothing: with a page of 7
// entries, api.Client's Experiment, Experiments, Workers and Learners return exactly what the
// node's state holds, in order (the experiment's items, its item ids and counts as the
// unpaged FSM view gives them), through a follower; one ExperimentPage holds at most its limit
// with the next cursor.
func TestClientPagesThroughEveryList(t *testing.T) {
	c := coordinatortest.New(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := c.ClientConfig(c.Followers()[0].URL())
	cfg.PageSize = 7
	cl, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		id, err := cl.Submit(ctx, []byte(fmt.Sprintf("name: paged%d\nlines: [\"301\", \"446\"]\ncollect: {hours_per_line: 0.5, episode_seconds: 60}\n", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i := range 17 {
		if err := cl.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: fmt.Sprintf("w%02d", i), ArenaID: fmt.Sprintf("a%d", i), Line: "301"}); err != nil {
			t.Fatal(err)
		}
		if i < 8 {
			if err := cl.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: fmt.Sprintf("l%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	leased, err := cl.Lease(ctx, api.LeaseRequest{Holder: "w03", Type: "episode"})
	if err != nil || leased == nil {
		t.Fatalf("lease: %v, %v", leased, err)
	}

	f := c.Leader().FSM()
	want, _ := f.ExperimentView(ids[1])
	got, err := cl.Experiment(ctx, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Items) != 60 || len(got.Items) != len(want.Items) {
		t.Fatalf("experiment: %d items, want %d (60)", len(got.Items), len(want.Items))
	}
	for i := range want.Items {
		if got.Items[i].ID != want.Items[i].ID || got.Items[i].State != want.Items[i].State {
			t.Fatalf("item %d: %s %s, want %s %s", i, got.Items[i].ID, got.Items[i].State, want.Items[i].ID, want.Items[i].State)
		}
	}
	if !slices.Equal(got.Experiment.Items, want.Experiment.Items) || fmt.Sprint(got.Counts) != fmt.Sprint(want.Counts) || got.Next != "" {
		t.Errorf("experiment: ids %v counts %v next %q, want %v %v", got.Experiment.Items, got.Counts, got.Next, want.Experiment.Items, want.Counts)
	}

	page, err := cl.ExperimentPage(ctx, ids[1], "", 25)
	if err != nil || len(page.Items) != 25 || page.Next != "25" || page.Total != 60 || len(page.Experiment.Items) != 0 {
		t.Fatalf("first page: %d items next %q total %d ids %d, %v", len(page.Items), page.Next, page.Total, len(page.Experiment.Items), err)
	}
	page, err = cl.ExperimentPage(ctx, ids[1], page.Next, 50)
	if err != nil || len(page.Items) != 35 || page.Next != "" || page.Items[0].ID != want.Items[25].ID {
		t.Fatalf("last page: %d items next %q, %v", len(page.Items), page.Next, err)
	}

	exps, err := cl.Experiments(ctx)
	if err != nil || len(exps) != 3 {
		t.Fatalf("experiments: %d, %v", len(exps), err)
	}
	workers, err := cl.Workers(ctx)
	if err != nil || len(workers) != 17 {
		t.Fatalf("workers: %d, %v", len(workers), err)
	}
	for i, w := range workers {
		if w.ID != fmt.Sprintf("w%02d", i) {
			t.Errorf("worker %d is %s", i, w.ID)
		}
		if (w.ID == "w03") != (w.Holding == leased.ID) {
			t.Errorf("worker %s holding %q", w.ID, w.Holding)
		}
	}
	learners, err := cl.Learners(ctx)
	if err != nil || len(learners) != 8 {
		t.Fatalf("learners: %d, %v", len(learners), err)
	}
}

// TestPagedReadRefusesBadLimit: a limit outside 1..MaxPageSize or a cursor that is no item
// position is refused 400 with the parameter named, never answered with everything.
func TestPagedReadRefusesBadLimit(t *testing.T) {
	c := coordinatortest.New(t, 1, coordinatortest.Plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := c.Client(t).Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/v1/experiments/" + id + "?limit=1001", "limit"},
		{"/v1/experiments/" + id + "?limit=0", "limit"},
		{"/v1/experiments/" + id + "?limit=all", "limit"},
		{"/v1/experiments/" + id + "?after=x", "after"},
		{"/v1/workers?limit=100000", "limit"},
		{"/v1/experiments?limit=-1", "limit"},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Leader().URL()+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+coordinatortest.ViewerToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), tc.want) {
			t.Errorf("GET %s: %s %s, want 400 naming %s", tc.path, resp.Status, b, tc.want)
		}
	}
}
