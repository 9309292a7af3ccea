package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/memstore"
	"github.com/optoloop/optoloop/results"
)

// e2eYAML is a whole small experiment: two lines, collect, train, evaluate and cross-evaluate.
const e2eYAML = `
name: both
seed: 21
lines: ["446", "73"]
collect: { hours_per_line: 0.011, episode_seconds: 20, light_probability: 0.3 }
train: { ensemble_size: 1, updates: 20, checkpoint_every: 10, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
cross_evaluate: { lines: ["446", "73"], episodes: 1 }
`

// runRoles starts one worker per line and a learner, each with its own broker from broker, on
// stores st, and returns a function that stops them and fails the test if any of them failed.
func runRoles(t *testing.T, broker func() fleet.Broker, st fleet.Stores, lines ...string) (stop func()) {
	t.Helper()
	var roles []func(context.Context) error
	for _, line := range lines {
		cfg := fleet.DefaultWorkerConfig()
		cfg.ID, cfg.ArenaID = "worker-"+line, "arena-"+line
		cfg.Station = simStation(t, line)
		cfg.Broker = broker()
		cfg.Replay, cfg.Params, cfg.Tracks = st.Replay, st.Params, st.Tracks
		cfg.Poll = 20 * time.Millisecond
		wk, err := fleet.NewWorker(cfg)
		if err != nil {
			t.Fatal(err)
		}
		roles = append(roles, wk.Run)
	}
	lcfg := fleet.DefaultLearnerConfig()
	lcfg.ID = "learner"
	lcfg.Broker = broker()
	lcfg.Replay, lcfg.Params, lcfg.Checkpoints = st.Replay, st.Params, st.Checkpoints
	lcfg.WorkDir = t.TempDir()
	lcfg.Poll = 20 * time.Millisecond
	l, err := fleet.NewLearner(lcfg)
	if err != nil {
		t.Fatal(err)
	}
	roles = append(roles, l.Run)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, len(roles))
	for i, run := range roles {
		wg.Go(func() { errs[i] = run(ctx) })
	}
	return func() {
		cancel()
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Errorf("a role failed: %v", err)
		}
	}
}

// reportNumbers is report.json without its timestamps, and with the reasons of failed items
// (which name holders and leases) reduced to their number.
func reportNumbers(t *testing.T, dir string) []byte {
	t.Helper()
	m, err := results.ReportNumbers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if failed, ok := m["failed"].([]any); ok {
		for _, f := range failed {
			f := f.(map[string]any)
			f["reasons"] = len(f["reasons"].([]any))
		}
	}
	out, _ := json.MarshalIndent(m, "", " ")
	return out
}

// TestClusterAndLocalGiveTheSameResults runs one experiment file on a real three-node Raft
// cluster (workers and a learner talking HTTP through api.Client, polling for work) and on
// coordinator.Local, exports both with fleet.Export, and checks that the run folders hold the
// same results: report.json apart from its timestamps, and every episode, ensemble, learning
// curve and policy map byte for byte.
func TestClusterAndLocalGiveTheSameResults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lines := []string{"446", "73"}

	// On the cluster.
	c := coordinatortest.New(t, 3, nil)
	cl := c.Client(t)
	id, err := cl.Submit(ctx, []byte(e2eYAML))
	if err != nil {
		t.Fatal(err)
	}
	cst := fleet.Stores{Replay: memstore.NewReplay(), Params: memstore.NewParams(), Tracks: memstore.NewTracks(), Checkpoints: memstore.NewCheckpoints()}
	stop := runRoles(t, func() fleet.Broker { return c.Client(t) }, cst, lines...)
	coordinatortest.WaitFor(t, time.Minute, "the cluster's experiment to end", func() bool {
		v, err := cl.Experiment(ctx, id)
		return err == nil && !v.Experiment.Running()
	})
	stop()
	// Reads go to any node and api.Client orders them only after its own writes: let every
	// node apply the last reports before exporting.
	c.WaitConverged()
	clusterDir := filepath.Join(t.TempDir(), "cluster")
	crep, err := fleet.Export(ctx, clusterDir, cl, id, []byte(e2eYAML), cst)
	if err != nil {
		t.Fatal(err)
	}
	if crep.Status != plan.StatusDone || len(crep.Failed) != 0 {
		t.Fatalf("cluster experiment %s: %s; failed %+v", crep.Status, crep.Reason, crep.Failed)
	}

	// In one process.
	w := newWorld(t, e2eYAML)
	stop = runRoles(t, func() fleet.Broker { return w.local }, w.stores(), lines...)
	for {
		changed := w.local.Changed()
		if v := w.view(t); !v.Experiment.Running() {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("the local experiment did not end")
		}
	}
	stop()
	localDir := filepath.Join(t.TempDir(), "local")
	if _, err := fleet.Export(ctx, localDir, w.local, w.id, []byte(e2eYAML), w.stores()); err != nil {
		t.Fatal(err)
	}

	if a, b := reportNumbers(t, clusterDir), reportNumbers(t, localDir); !bytes.Equal(a, b) {
		t.Errorf("report.json differs between the cluster and the local run:\ncluster %s\nlocal   %s", a, b)
	}
	if crep.Items == nil || crep.Items.Done != crep.Items.Total || crep.Cross == nil || len(crep.Lines) != 2 {
		t.Errorf("cluster report: items %+v, cross %v, %d lines", crep.Items, crep.Cross != nil, len(crep.Lines))
	}
	files := 0
	err = filepath.WalkDir(clusterDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(clusterDir, p)
		if rel == results.ReportFile {
			return nil
		}
		files++
		a, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(localDir, rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the cluster and the local run", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// experiment.yaml, 2 lines x (2 collect + 3 evaluation) episodes + 4 cross, and per line
	// an ensemble, curves and a policy map.
	t.Logf("%d files alike", files)
	if files < 1+14+2*3 {
		t.Errorf("only %d files in the cluster's run folder", files)
	}
}
