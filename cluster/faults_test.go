package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/cluster"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

// TestClusterSurvivesFaults runs the equivalence test's experiment on a cluster with short
// leases (3 s) and paced episodes (a 20 s collect episode lasts 5 s) and, during the run, kills
// (-9) a worker process in the middle of an episode, kills the Raft leader and stops and
// restarts redis-server during collection, and kills a learner in the middle of training. Each
// killed process is started again once its lease has expired (the worker with the same worker
// ids, the coordinator from its data folder). The experiment must complete with every item done
// once, the interrupted items run again under new leases, and the run folder equal to the local
// run's.
func TestClusterSurvivesFaults(t *testing.T) {
	needCluster(t)
	local := localRun(t)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	c := up(t, ctx, cluster.Config{Lines: []string{"446", "73"}, ArenasPerLine: 2, Workers: 4, Learners: 2, NoRender: true,
		Pace: 4, LeaseTTL: 3 * time.Second, MaxAttempts: 6})
	t0 := time.Now()
	id, err := c.Submit(ctx, []byte(smallYAML))
	if err != nil {
		t.Fatal(err)
	}
	w := watcher{t: t, ctx: ctx, c: c, id: id}
	inCollect := func(next string) {
		t.Helper()
		if v := w.view(); v.Experiment.Phase != plan.PhaseCollect {
			t.Fatalf("collection ended (phase %s, %v) before %s: lengthen collect", v.Experiment.Phase, time.Since(t0).Round(time.Millisecond), next)
		}
	}

	// 1. A worker process killed (-9) while it holds an episode it has run for a second.
	ep := w.killWorkerMidEpisode(t0)
	inCollect("the leader is killed")

	// 2. The Raft leader killed (-9) during collection, then restarted from its data folder.
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: killed leader %s", time.Since(t0).Round(time.Millisecond), leader)
	next, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: new leader %s", time.Since(t0).Round(time.Millisecond), next)
	done := w.doneEpisodes(w.view())
	w.until("an episode done under the new leader", func(v api.ExperimentView) bool { return w.doneEpisodes(v) > done })
	if err := c.RestartProcess(ctx, leader); err != nil {
		t.Fatal(err)
	}
	inCollect("redis is stopped")

	// 3. redis-server stopped and restarted (its append-only file) during collection, once a
	// worker has found it away.
	logs := w.workerLogs()
	if err := c.Redis().Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: redis stopped", time.Since(t0).Round(time.Millisecond))
	w.untilLogged(logs, "store unavailable; retrying")
	t.Logf("%v: a worker found redis away", time.Since(t0).Round(time.Millisecond))
	if err := c.RestartProcess(ctx, "redis"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: redis restarted", time.Since(t0).Round(time.Millisecond))
	done = w.doneEpisodes(w.view())
	inCollect("episodes end after the redis restart")
	w.until("an episode done after the redis restart", func(v api.ExperimentView) bool { return w.doneEpisodes(v) > done })

	// 4. A learner killed (-9) in the middle of a training task.
	task := w.killLearnerMidTask(t0, plan.PhaseCollect, plan.PhaseTrain)

	view, err := c.Wait(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: experiment %s", time.Since(t0).Round(time.Millisecond), view.Experiment.Status)
	checkDoneOnce(t, c, view, smallItems)
	checkRerun(t, view, ep, task)
	run := filepath.Join(t.TempDir(), "run")
	if err := c.Export(ctx, id, run); err != nil {
		t.Fatal(err)
	}
	compareRuns(t, local, run, smallItems-2)
	if f := c.Failures(); len(f) != 0 {
		t.Fatalf("failures: %v", f)
	}
}

// killWorkerMidEpisode kills (-9) the worker process holding a collect episode it has run for
// a second, waits until that lease has ended and starts the process again (same worker ids); it
// returns the episode as it was leased to the killed worker.
func (w watcher) killWorkerMidEpisode(t0 time.Time) api.Item {
	w.t.Helper()
	seen := map[string]time.Time{}
	var ep api.Item
	w.until("a collect episode leased for a second", func(v api.ExperimentView) bool {
		for _, it := range v.Items {
			if it.Type != plan.TypeEpisode || it.State != api.StateLeased || it.Phase != plan.PhaseCollect {
				continue
			}
			k := fmt.Sprintf("%s/%d", it.ID, it.Token)
			if s, ok := seen[k]; !ok {
				seen[k] = time.Now()
			} else if time.Since(s) > time.Second {
				ep = it
				return true
			}
		}
		return false
	})
	w.killHolder(t0, ep, fmt.Sprintf("holding %s (lease %d)", ep.ID, ep.Token))
	return ep
}

// killHolder kills (-9) the process of the holder of the lease it describes (what says what
// it was doing, for the log), waits until that lease has ended and starts the process again.
func (w watcher) killHolder(t0 time.Time, it api.Item, what string) {
	w.t.Helper()
	proc, ok := w.c.ProcessOf(it.Holder)
	if !ok {
		w.t.Fatalf("no process is %s", it.Holder)
	}
	if err := w.c.Kill(proc); err != nil {
		w.t.Fatal(err)
	}
	w.t.Logf("%v: killed %s %s", time.Since(t0).Round(time.Millisecond), proc, what)
	w.until(it.ID+"'s lease to end", func(v api.ExperimentView) bool { return leaseEnded(v, it) })
	if err := w.c.RestartProcess(w.ctx, proc); err != nil {
		w.t.Fatal(err)
	}
}

// checkRerun fails unless each victim (an item as it was leased when its holder was killed)
// was done under a later lease than the killed one.
func checkRerun(t *testing.T, view api.ExperimentView, victims ...api.Item) {
	t.Helper()
	for _, victim := range victims {
		it := item(view, victim.ID)
		if it.Attempts < 2 || it.Result == nil || it.Result.Token == victim.Token {
			t.Errorf("%s was interrupted under lease %d, yet: %d attempts, accepted %+v", victim.ID, victim.Token, it.Attempts, it.Result)
			continue
		}
		t.Logf("%s: %d attempts, accepted lease %d of %s; failures %q", it.ID, it.Attempts, it.Result.Token, it.Result.By, it.Failures)
	}
}

// killLearnerMidTask kills (-9) the learner process holding a training task whose progress is
// strictly between 0 and its total, while the experiment is in one of phases, waits until that
// lease has ended and starts the process again; it returns the task as it was leased.
func (w watcher) killLearnerMidTask(t0 time.Time, phases ...plan.Phase) api.Item {
	w.t.Helper()
	var task api.Item
	w.until("a training task leased with progress strictly between 0 and total", func(v api.ExperimentView) bool {
		if ph := v.Experiment.Phase; !slices.Contains(phases, ph) {
			w.t.Fatalf("phase %s before a training task was seen part done: lengthen training", ph)
		}
		for _, it := range v.Items {
			if it.Type == plan.TypeTrain && it.State == api.StateLeased && it.Progress != nil && it.Progress.Done > 0 && it.Progress.Done < it.Progress.Total {
				task = it
				return true
			}
		}
		return false
	})
	w.killHolder(t0, task, fmt.Sprintf("training %s (line %s) at %d/%d updates (lease %d)", task.ID, task.Line, task.Progress.Done, task.Progress.Total, task.Token))
	return task
}

// leaseEnded reports whether the lease victim describes is over: the item is no longer leased
// under that token.
func leaseEnded(v api.ExperimentView, victim api.Item) bool {
	it := item(v, victim.ID)
	return it.State != api.StateLeased || it.Token != victim.Token
}

func item(v api.ExperimentView, id string) api.Item {
	for _, it := range v.Items {
		if it.ID == id {
			return it
		}
	}
	return api.Item{}
}

// watcher polls one experiment of a cluster.
type watcher struct {
	t   *testing.T
	ctx context.Context
	c   *cluster.Cluster
	id  string
}

func (w watcher) view() api.ExperimentView {
	w.t.Helper()
	v, err := w.c.Client().Experiment(w.ctx, w.id)
	if err != nil {
		w.t.Fatalf("experiment %s: %v", w.id, err)
	}
	return v
}

func (w watcher) doneEpisodes(v api.ExperimentView) int { return v.Counts.Episodes[api.StateDone] }

// workerLogs returns the size of every worker process's log now.
func (w watcher) workerLogs() map[string]int64 {
	w.t.Helper()
	sizes := map[string]int64{}
	for _, p := range w.c.Workers() {
		path := filepath.Join(w.c.Dir(), "logs", p.Name+".log")
		fi, err := os.Stat(path)
		if err != nil {
			w.t.Fatal(err)
		}
		sizes[path] = fi.Size()
	}
	return sizes
}

// untilLogged waits (up to 2 minutes, looking every 100 ms) until a worker process logs text
// after the sizes workerLogs gave.
func (w watcher) untilLogged(since map[string]int64, text string) {
	w.t.Helper()
	deadline := time.After(2 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for path, off := range since {
			b, err := os.ReadFile(path)
			if err != nil {
				w.t.Fatal(err)
			}
			if int64(len(b)) > off && strings.Contains(string(b[off:]), text) {
				return
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			w.t.Fatalf("no worker logged %q in 2 minutes", text)
		case <-w.ctx.Done():
			w.t.Fatalf("waiting for a worker to log %q: %v", text, w.ctx.Err())
		}
	}
}

// until polls (every 100 ms) until cond holds; it fails the test when the experiment ends
// first, a process fails, or after 2 minutes.
func (w watcher) until(what string, cond func(api.ExperimentView) bool) {
	w.t.Helper()
	deadline := time.After(2 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		v := w.view()
		if cond(v) {
			return
		}
		if !v.Experiment.Running() {
			w.t.Fatalf("experiment %s ended (%s, phase %s) while waiting for %s", w.id, v.Experiment.Status, v.Experiment.Phase, what)
		}
		if f := w.c.Failures(); len(f) != 0 {
			w.t.Fatalf("waiting for %s: %v", what, f[0])
		}
		select {
		case <-tick.C:
		case <-deadline:
			w.t.Fatalf("timed out waiting for %s (phase %s, counts %+v)", what, v.Experiment.Phase, v.Counts)
		}
	}
}
