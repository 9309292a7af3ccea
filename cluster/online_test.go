//go:build !race

package cluster_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/cluster"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/redisstore"
	"github.com/optoloop/optoloop/results"
)

// onlineYAML is the online fault test's experiment: 2 lines of 2 arenas; per line 2 warm-up
// and 3 online episodes of 40 s (5 s at --pace 8; 120 frames, so that a chunk of 90 reaches
// the replay before the episode ends); training in 4 rounds of 100 updates, version v trained
// on the warm-up and the online episodes naming a version below v (policy.max_staleness 0
// makes the run deterministic: online episode i acts with exactly version i+1); checkpoint
// episodes for versions 1 and 3 (marks at 0 and 80 s of online collection); one episode per
// evaluation condition.
const onlineYAML = `
name: online
seed: 5
lines: ["446", "73"]
arenas_per_line: 2
collect: { hours_per_line: 0.0555, episode_seconds: 40, light_probability: 0.3 }
train: { mode: online, warmup_hours: 0.0222, explore: 0.1, ensemble_size: 1, updates: 400, checkpoint_every: 100,
  batch_size: 16, critic_target: collection }
evaluate: { episodes_per_condition: 1, episode_seconds: 10, checkpoint_hours: 0.0222, checkpoint_episodes: 1 }
policy: { max_staleness: 0 }
`

// TestClusterOnlineSurvivesFaults runs onlineYAML on a cluster with short leases (3 s) and
// paced episodes and, while the online episodes run, kills (-9) a worker process acting in an
// online episode and a learner in the middle of its line's online training task; each is
// started again once its lease has ended. The experiment must complete with every item done
// once, the interrupted items done again under new leases, every online and checkpoint episode
// acting with exactly the version it names, the replay holding each accepted attempt's records
// whole (beside the killed attempt's), each line's newest published version the one its
// training reported, and the run folder equal to the local run's.
func TestClusterOnlineSurvivesFaults(t *testing.T) {
	needCluster(t)
	spec, err := experiment.Parse([]byte(onlineYAML))
	if err != nil {
		t.Fatal(err)
	}
	if w, o, cv := spec.WarmupEpisodesPerLine(), spec.OnlineEpisodesPerLine(), spec.CheckpointVersions(); w != 2 || o != 3 || !slices.Equal(cv, []uint64{1, 3}) {
		t.Fatalf("onlineYAML makes %d warm-up and %d online episodes per line, checkpoints of versions %v: the comments say 2, 3 and [1 3]", w, o, cv)
	}
	items := int(plan.ItemCount(spec))
	local := localOnline.run(t, "local-online", onlineYAML)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	c := up(t, ctx, cluster.Config{Lines: spec.Lines, ArenasPerLine: spec.ArenasPerLine, Workers: 4, Learners: len(spec.Lines), NoRender: true,
		Pace: 8, LeaseTTL: 3 * time.Second, MaxAttempts: 6})
	store := openStore(t, ctx, c)
	t0 := time.Now()
	id, err := c.Submit(ctx, []byte(onlineYAML))
	if err != nil {
		t.Fatal(err)
	}
	w := watcher{t: t, ctx: ctx, c: c, id: id}

	// 1. A worker process killed (-9) while it acts in an online episode (its line's newest
	// version is the one the episode names), once it has done so for a second and a chunk of
	// its records is in the replay.
	ep := w.killWorkerActingOnline(t0, store)

	// 2. A learner killed (-9) while its training task is part done (some versions published,
	// not the last): it waits for online episodes or trains on them.
	task := w.killLearnerMidTask(t0, plan.PhaseTrain)

	view, err := c.Wait(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: experiment %s", time.Since(t0).Round(time.Millisecond), view.Experiment.Status)
	checkDoneOnce(t, c, view, items)
	checkRerun(t, view, ep, task)
	run := filepath.Join(t.TempDir(), "run")
	if err := c.Export(ctx, id, run); err != nil {
		t.Fatal(err)
	}
	compareRuns(t, local, run, items-len(spec.Lines))
	// Beyond the ensembles: the lines' learning curves and policy maps.
	a, b := treeFiles(t, filepath.Join(local, "lines")), treeFiles(t, filepath.Join(run, "lines"))
	for _, name := range sortedKeys(a, b) {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("lines/%s differs (%d vs %d bytes)", name, len(a[name]), len(b[name]))
		}
	}
	checkOnlineVersions(t, ctx, store, spec, view, run)
	checkOnlineReplay(t, ctx, store, view, run, ep)
	if f := c.Failures(); len(f) != 0 {
		t.Fatalf("failures: %v", f)
	}
}

// openStore connects to the cluster's Redis as its workers and learners do.
func openStore(t *testing.T, ctx context.Context, c *cluster.Cluster) *redisstore.Store {
	t.Helper()
	pw, err := os.ReadFile(c.RedisPasswordFile())
	if err != nil {
		t.Fatal(err)
	}
	s, err := redisstore.Open(ctx, redisstore.Config{URL: c.RedisURL(), Password: strings.TrimSpace(string(pw))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// killWorkerActingOnline kills (-9) the worker process of an online episode that has been
// acting for a second (its line's newest published version has been at least the version it
// names) and has a chunk of records in the replay, waits until that lease has ended and starts
// the process again (same worker ids); it returns the episode as it was leased to the killed
// worker.
func (w watcher) killWorkerActingOnline(t0 time.Time, store *redisstore.Store) api.Item {
	w.t.Helper()
	acting := map[string]time.Time{}
	var ep api.Item
	w.until("an online episode acting for a second with a chunk in the replay", func(v api.ExperimentView) bool {
		if ph := v.Experiment.Phase; ph != plan.PhaseCollect && ph != plan.PhaseTrain {
			w.t.Fatalf("phase %s before an online episode was seen acting", ph)
		}
		for _, it := range v.Items {
			if it.Kind != episode.KindOnline || it.State != api.StateLeased {
				continue
			}
			k := fmt.Sprintf("%s/%d", it.ID, it.Token)
			if s, ok := acting[k]; !ok {
				newest, err := store.Latest(w.ctx, w.id, it.AgentLine)
				if err != nil && !errors.Is(err, fleet.ErrNotFound) {
					w.t.Fatal(err)
				}
				if err == nil && newest >= it.PolicyVersion {
					acting[k] = time.Now()
				}
				continue
			} else if time.Since(s) < time.Second {
				continue
			}
			chunks, err := store.Chunks(w.ctx, w.id, it.Line)
			if err != nil {
				w.t.Fatal(err)
			}
			for _, c := range chunks {
				if c.Episode == it.ID && c.Token == it.Token {
					ep = it
					return true
				}
			}
		}
		return false
	})
	w.killHolder(t0, ep, fmt.Sprintf("acting in %s (line %s, version %d, lease %d)", ep.ID, ep.Line, ep.PolicyVersion, ep.Token))
	return ep
}

// checkOnlineVersions: every line's newest published version is the one its training task
// reported (in the experiment and in the run folder's report.json), which is the spec's number
// of versions; every online and checkpoint episode acted, frame by frame, with exactly the
// version it names; every version up to the last is in the store.
func checkOnlineVersions(t *testing.T, ctx context.Context, params fleet.Params, spec experiment.Spec, v api.ExperimentView, run string) {
	t.Helper()
	r, err := results.Load(run)
	if err != nil {
		t.Fatal(err)
	}
	reported := map[string]uint64{}
	for _, l := range r.Report.Lines {
		reported[l.Line] = l.PolicyVersion
	}
	for _, line := range spec.Lines {
		latest, err := params.Latest(ctx, v.Experiment.ID, line)
		if err != nil {
			t.Fatalf("line %s: %v", line, err)
		}
		if latest != reported[line] || latest != v.Experiment.PolicyVersions[line] || latest != uint64(spec.Versions()) {
			t.Errorf("line %s: newest published version %d; report.json says %d, the experiment %d, the spec makes %d",
				line, latest, reported[line], v.Experiment.PolicyVersions[line], spec.Versions())
		}
		for ver := uint64(1); ver <= latest; ver++ {
			if _, err := params.Fetch(ctx, v.Experiment.ID, line, ver); err != nil {
				t.Errorf("line %s: version %d: %v", line, ver, err)
			}
		}
	}
	named := map[string]uint64{}
	for _, it := range v.Items {
		if it.Kind == episode.KindOnline || it.Kind == episode.KindCheckpoint {
			named[it.ID] = it.PolicyVersion
		}
	}
	seen := 0
	for _, e := range r.Episodes {
		want, ok := named[e.ID]
		if !ok {
			continue
		}
		seen++
		for i, f := range e.Frames {
			if f.Ver != want {
				t.Errorf("%s (%s) names version %d; its frame %d acted with %d", e.ID, e.Condition, want, i, f.Ver)
				break
			}
		}
	}
	if seen != len(named) {
		t.Errorf("the run folder holds %d of the %d online and checkpoint episodes", seen, len(named))
	}
}

// checkOnlineReplay: for every line, the replay's chunks of each collecting episode's accepted
// attempt are numbered from 0 without a gap and hold exactly the frames its report counted,
// each chunk with the version the episode names (0: random light); an online episode's records
// are its track's frames (light and version). The interrupted worker's attempt left chunks of
// its own, which the learners skipped (the ensembles equal the local run's).
func checkOnlineReplay(t *testing.T, ctx context.Context, rp fleet.Replay, v api.ExperimentView, run string, killed api.Item) {
	t.Helper()
	r, err := results.Load(run)
	if err != nil {
		t.Fatal(err)
	}
	tracks := map[string]results.Episode{}
	for _, e := range r.Episodes {
		tracks[e.ID] = e
	}
	type attempt struct {
		id    string
		token uint64
	}
	for _, line := range v.Experiment.Spec.Lines {
		chunks, err := rp.Chunks(ctx, v.Experiment.ID, line)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(chunks, func(a, b fleet.Chunk) int { return cmp.Compare(a.Seq, b.Seq) })
		byAttempt := map[attempt][]fleet.Chunk{}
		for _, c := range chunks {
			k := attempt{c.Episode, c.Token}
			byAttempt[k] = append(byAttempt[k], c)
		}
		collecting, evaluating := 0, 0
		for _, it := range v.Items {
			if it.Line != line || it.Type != plan.TypeEpisode || it.Result == nil {
				continue
			}
			k := attempt{it.ID, it.Result.Token}
			cs := byAttempt[k]
			delete(byAttempt, k)
			if !it.Kind.Collects() {
				evaluating++
				continue
			}
			collecting++
			want := uint64(0)
			if it.Kind == episode.KindOnline {
				want = it.PolicyVersion
			}
			var recs []replay.Record
			for i, c := range cs {
				if c.Seq != i || c.PolicyVersion != want {
					t.Errorf("%s: chunk %d of its accepted attempt is numbered %d with version %d, want %d", it.ID, i, c.Seq, c.PolicyVersion, want)
				}
				recs = append(recs, c.Records...)
			}
			if it.Result.Outcome == nil || len(recs) != it.Result.Outcome.Frames {
				t.Errorf("%s: the replay holds %d records of its accepted attempt, its report %+v", it.ID, len(recs), it.Result.Outcome)
				continue
			}
			if it.Kind != episode.KindOnline {
				continue
			}
			tr := tracks[it.ID]
			if len(tr.Frames) != len(recs) {
				t.Errorf("%s: %d records in the replay, %d frames in its track", it.ID, len(recs), len(tr.Frames))
				continue
			}
			for i, f := range tr.Frames {
				if f.Light != recs[i].Light || f.Ver != recs[i].PolicyVersion || f.Ver != want {
					t.Errorf("%s: frame %d: track light %v version %d, replay light %v version %d (named %d)", it.ID, i, f.Light, f.Ver, recs[i].Light, recs[i].PolicyVersion, want)
					break
				}
			}
		}
		if killed.Line == line && len(byAttempt[attempt{killed.ID, killed.Token}]) == 0 {
			t.Errorf("the killed attempt of %s (lease %d) left no chunk in the replay", killed.ID, killed.Token)
		}
		var others []string
		for k, cs := range byAttempt {
			others = append(others, fmt.Sprintf("%s/%d: %d chunks", k.id, k.token, len(cs)))
		}
		slices.Sort(others)
		t.Logf("line %s: the replay holds the accepted attempts of %d collecting and %d evaluation episodes, and interrupted attempts %v", line, collecting, evaluating, others)
	}
}
