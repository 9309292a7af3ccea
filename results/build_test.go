package results_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/optoloop/optoloop/agentlib/nn"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/results"
)

// tinySpec has two lines, two collect episodes and a training task per line, three episodes
// per evaluation condition and one cross-evaluation episode per pair.
const tinySpec = `name: tiny
seed: 7
lines: ["301", "446"]
collect:
  hours_per_line: 0.0333333333
  episode_seconds: 60
  light_probability: 0.1
train:
  ensemble_size: 1
  updates: 2
  checkpoint_every: 1
evaluate:
  episodes_per_condition: 3
  episode_seconds: 30
  targets: [up, down]
cross_evaluate:
  lines: ["301", "446"]
  episodes: 1
`

// memSource is an in-memory results.Source, filled by the scripted roles.
type memSource struct {
	mu     sync.Mutex
	tracks map[string]results.Episode // by id/token
	blobs  map[string][]byte          // by line/version
	ckpts  map[string]map[string][]byte
	// fail, when set, is returned by every call.
	fail error
}

func newMemSource() *memSource {
	return &memSource{tracks: map[string]results.Episode{}, blobs: map[string][]byte{}, ckpts: map[string]map[string][]byte{}}
}

func (s *memSource) Track(_ context.Context, id string, token uint64) (results.Episode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return results.Episode{}, s.fail
	}
	e, ok := s.tracks[fmt.Sprintf("%s/%d", id, token)]
	if !ok {
		return e, fmt.Errorf("track %s/%d: %w", id, token, results.ErrNotFound)
	}
	return e, nil
}

func (s *memSource) Ensemble(_ context.Context, line string, version uint64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	b, ok := s.blobs[fmt.Sprintf("%s/%d", line, version)]
	if !ok {
		return nil, fmt.Errorf("ensemble %s/%d: %w", line, version, results.ErrNotFound)
	}
	return b, nil
}

func (s *memSource) Checkpoint(_ context.Context, task string) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	f, ok := s.ckpts[task]
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: %w", task, results.ErrNotFound)
	}
	return f, nil
}

// script says how the scripted roles treat items.
type script struct {
	// order seeds the order in which each round's leased items are reported.
	order uint64
	// failures is how many attempts of an item fail before one succeeds (MaxAttempts or more:
	// it fails for good), by kind, line and index among the items of its kind and line.
	failures map[string]int
	// ensembles: learners publish a real ensemble (policy maps are slow to compute).
	ensembles bool
	// stop ends the script early, before leasing, when it returns true.
	stop func(api.ExperimentView) bool
}

// itemKey names an item by what the plan made it, independently of its number.
func itemKey(it api.Item, index int) string {
	return fmt.Sprintf("%s/%s/%s/%d", it.Kind, it.Line, it.AgentLine, index)
}

// outcome is the made-up outcome of an item: a function of what the item is, never of when it
// completed. Light fractions are multiples of 1/8, so that their sums are exact in any order.
func outcome(it api.Item, index int) *episode.Outcome {
	base := map[episode.Kind]float64{episode.KindCollect: 1.1, episode.KindAgent: 0.3, episode.KindNone: 0.9, episode.KindRandom: 0.8, episode.KindCross: 0.6}[it.Kind]
	if it.Line == "446" {
		base += 0.05
	}
	if it.AgentLine != "" && it.AgentLine != it.Line {
		base += 0.2
	}
	o := &episode.Outcome{Seconds: it.Seconds, ClosestCM: base + 0.07*float64(index), FinalDistanceCM: 1, MeanSpeedMMs: 0.1,
		LightFraction: float64(1+index%3) / 8, LostFraction: 0.125 * float64(index%2), Frames: 3, PolicyVersion: it.PolicyVersion}
	if o.ClosestCM < 0.5 {
		tt := 10 + float64(index)
		o.TimeTo05cmS = &tt
	}
	return o
}

// track is the made-up track an attempt stores; its metrics are wrong on purpose (Build takes
// them from the accepted outcome) and its frames carry the attempt's number.
func track(it api.Item) results.Episode {
	return results.Episode{ID: it.ID, Condition: it.Kind, Line: it.Line, ClosestCM: 99, PxPerCM: 540, PlateCenter: [2]float64{1080, 960}, PlateRadius: 970,
		Target: [2]float64{1890, 960}, Frames: []results.Frame{{X: 1080, Y: 960, OK: true, Ver: uint64(it.Attempts)}, {T: 0.33, X: 1081, Y: 960, OK: true, Ver: uint64(it.Attempts)}}}
}

func testEnsemble(t *testing.T, seed uint64) []byte {
	t.Helper()
	a := results.EnsembleArch(experiment.Train{})
	m := nn.New(a.Sizes...)
	m.InitXavier(rand.New(rand.NewPCG(seed, 1)))
	e, err := policy.NewEnsemble(a, m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// summary is the training output every scripted learner reports.
var summary = results.TrainingSummary{Members: 1, Updates: 2, Transitions: 40, Episodes: 2}

// run drives an experiment through coordinator.Local: every round, workers (as many as there
// are items) and a learner lease all there is, and report it in an order drawn from s.order.
// It returns the experiment's last view and the stored outputs.
func run(t *testing.T, spec string, s script) (api.ExperimentView, *memSource) {
	t.Helper()
	ctx := context.Background()
	local, err := coordinator.NewLocal(coordinator.DefaultLocalConfig())
	if err != nil {
		t.Fatal(err)
	}
	id, err := local.Submit(ctx, []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	src := newMemSource()
	rng := rand.New(rand.NewPCG(s.order, 2))
	if err := local.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "learner"}); err != nil {
		t.Fatal(err)
	}
	view, err := local.Experiment(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var workers []string
	for _, l := range view.Experiment.Spec.Lines {
		for w := range 12 {
			wid := fmt.Sprintf("w-%s-%02d", l, w)
			if err := local.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: wid, ArenaID: wid, Line: l}); err != nil {
				t.Fatal(err)
			}
			workers = append(workers, wid)
		}
	}
	attempts := map[string]int{}
	for round := 0; ; round++ {
		if round > 100 {
			t.Fatal("the experiment does not end")
		}
		view, err := local.Experiment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if s.stop != nil && s.stop(view) {
			return view, src
		}
		// index numbers the items of one kind, line and agent line in item order.
		index, count := map[string]int{}, map[string]int{}
		items := slices.Clone(view.Items)
		slices.SortFunc(items, func(a, b api.Item) int { return a.N - b.N })
		for _, it := range items {
			k := itemKey(it, 0)
			index[it.ID] = count[k]
			count[k]++
		}
		var leased []*api.Item
		for _, w := range workers {
			it, err := local.Lease(ctx, api.LeaseRequest{Holder: w, Type: plan.TypeEpisode})
			if err != nil {
				t.Fatal(err)
			}
			if it != nil {
				leased = append(leased, it)
			}
		}
		for {
			it, err := local.Lease(ctx, api.LeaseRequest{Holder: "learner", Type: plan.TypeTrain})
			if err != nil {
				t.Fatal(err)
			}
			if it == nil {
				break
			}
			leased = append(leased, it)
		}
		if len(leased) == 0 {
			return view, src
		}
		shuffle(rng, leased)
		for _, it := range leased {
			k := itemKey(*it, index[it.ID])
			attempts[k]++
			if attempts[k] <= s.failures[k] {
				if err := src.putTrack(*it); err != nil {
					t.Fatal(err)
				}
				_, err := local.Fail(ctx, api.FailCmd{Holder: it.Holder, ItemID: it.ID, Token: it.Token, Reason: fmt.Sprintf("arena failed (attempt %d)", attempts[k])})
				if err != nil && !errors.Is(err, api.ErrStaleLease) {
					t.Fatal(err)
				}
				continue
			}
			rep := api.ReportCmd{Holder: it.Holder, ItemID: it.ID, Token: it.Token}
			if it.Type == plan.TypeTrain {
				rep.PolicyVersion = 2
				rep.Output, _ = json.Marshal(summary)
				src.mu.Lock()
				if s.ensembles {
					src.blobs[it.Line+"/2"] = testEnsemble(t, it.Seed)
				}
				src.ckpts[it.ID] = map[string][]byte{results.CurvesFile: []byte(`{"member":0,"update":1}` + "\n"), "checkpoint/manifest.json": []byte("{}")}
				src.mu.Unlock()
			} else {
				rep.Outcome = outcome(*it, index[it.ID])
				if err := src.putTrack(*it); err != nil {
					t.Fatal(err)
				}
			}
			// A lease the experiment's failure ended is refused as stale.
			if _, err := local.Report(ctx, rep); err != nil && !errors.Is(err, api.ErrStaleLease) {
				t.Fatal(err)
			}
		}
	}
}

func (s *memSource) putTrack(it api.Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := fmt.Sprintf("%s/%d", it.ID, it.Token)
	if _, ok := s.tracks[k]; ok {
		return fmt.Errorf("track %s stored twice", k)
	}
	s.tracks[k] = track(it)
	return nil
}

// shuffle permutes the round's items. The plan numbers a line's random-light episodes when the
// line's last agent episode ends, so the lines' agent episodes must end in the file's line
// order for item numbers not to depend on the order (see the report of this test's author);
// every other order is allowed.
func shuffle(rng *rand.Rand, items []*api.Item) {
	for {
		rng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		last := map[string]int{}
		for i, it := range items {
			if it.Kind == episode.KindAgent {
				last[it.Line] = i
			}
		}
		a, okA := last["301"]
		b, okB := last["446"]
		if !okA || !okB || a < b {
			return
		}
	}
}

func build(t *testing.T, view api.ExperimentView, src results.Source) (string, *results.Report) {
	t.Helper()
	dir := t.TempDir()
	rep, err := results.Build(context.Background(), dir, view, []byte(tinySpec), src)
	if err != nil {
		t.Fatal(err)
	}
	return dir, rep
}

// values returns the made-up closest approaches of the indices of one kind and line.
func values(kind episode.Kind, line, agentLine string, indices ...int) []float64 {
	var out []float64
	for _, i := range indices {
		out = append(out, outcome(api.Item{Item: plan.Item{Spec: episode.Spec{Kind: kind, Line: line, AgentLine: agentLine}}}, i).ClosestCM)
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func nearAll(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !near(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestBuild(t *testing.T) {
	// A whole experiment: the first collect episode of 301 fails once and is retried, the
	// second no-light episode of 446 fails for good.
	view, src := run(t, tinySpec, script{order: 1, ensembles: true,
		failures: map[string]int{"collect/301//0": 1, "none/446//1": 3}})
	if view.Experiment.Status != plan.StatusDone {
		t.Fatalf("experiment %s (%s)", view.Experiment.Status, view.Experiment.Reason)
	}
	dir, rep := build(t, view, src)

	if rep.Status != plan.StatusDone || rep.Finished.IsZero() || !rep.Finished.Equal(view.Experiment.UpdatedAt) || rep.Name != "tiny" || rep.ID != view.Experiment.ID {
		t.Errorf("report header: status %s, finished %v, name %q, id %q", rep.Status, rep.Finished, rep.Name, rep.ID)
	}
	if want := (results.ItemCounts{Total: 28, Done: 27, Failed: 1}); rep.Items == nil || *rep.Items != want {
		t.Errorf("items %+v, want %+v", rep.Items, want)
	}
	if len(rep.Failed) != 1 || rep.Failed[0].Kind != episode.KindNone || rep.Failed[0].Line != "446" || rep.Failed[0].Attempts != 3 || len(rep.Failed[0].Reasons) != 3 ||
		!strings.Contains(rep.Failed[0].Reasons[2], "attempt 3") {
		t.Errorf("failed items %+v", rep.Failed)
	}
	if len(rep.Lines) != 2 || rep.Lines[0].Line != "301" || rep.Lines[1].Line != "446" {
		t.Fatalf("lines %+v", rep.Lines)
	}
	for _, lr := range rep.Lines {
		l := lr.Line
		noneIdx := []int{0, 1, 2}
		if l == "446" {
			noneIdx = []int{0, 2}
		}
		want := map[episode.Kind][]float64{
			episode.KindAgent:  values(episode.KindAgent, l, l, 0, 1, 2),
			episode.KindNone:   values(episode.KindNone, l, "", noneIdx...),
			episode.KindRandom: values(episode.KindRandom, l, "", 0, 1, 2),
		}
		if len(lr.Conditions) != 3 {
			t.Errorf("line %s conditions %v", l, lr.Conditions)
		}
		for k, w := range want {
			c := lr.Conditions[k]
			m, sd, n := results.Summarize(w)
			if !nearAll(c.ClosestCM, w) || c.N != n || !near(c.MeanClosest, m) || !near(c.SDClosest, sd) || len(c.EpisodeIDs) != n || len(c.LightFrac) != n || len(c.TimeTo05cmS) != n {
				t.Errorf("line %s %s: %+v, want closest %v", l, k, c, w)
			}
			// Episodes in item order.
			var ns []int
			for _, id := range c.EpisodeIDs {
				var x int
				fmt.Sscanf(id[strings.LastIndex(id, ".")+1:], "%d", &x)
				ns = append(ns, x)
			}
			if !slices.IsSorted(ns) {
				t.Errorf("line %s %s episodes %v not in item order", l, k, c.EpisodeIDs)
			}
		}
		// The agent's episodes came within 0.5 cm (at 10, 11, 12 s), the others did not.
		for k, c := range lr.Conditions {
			for i, tt := range c.TimeTo05cmS {
				if (tt != nil) != (k == episode.KindAgent) || (tt != nil && *tt != float64(10+i)) {
					t.Errorf("line %s %s episode %d: time to 0.5 cm %v", l, k, i, tt)
				}
			}
		}
		_, pn, _ := results.MannWhitneyU(want[episode.KindAgent], want[episode.KindNone])
		_, pr, _ := results.MannWhitneyU(want[episode.KindAgent], want[episode.KindRandom])
		if !near(lr.PAgentVsNone, pn) || !near(lr.PAgentVsRandom, pr) {
			t.Errorf("line %s p values %v %v, want %v %v", l, lr.PAgentVsNone, lr.PAgentVsRandom, pn, pr)
		}
		// Agent light fractions 1/8, 2/8, 3/8: the plan's random rate and the agent's.
		if lr.RandomRate != 0.25 || lr.AgentLightFraction != 0.25 || view.Experiment.RandomRates[l] != 0.25 {
			t.Errorf("line %s random rate %v, agent light %v, plan %v", l, lr.RandomRate, lr.AgentLightFraction, view.Experiment.RandomRates[l])
		}
		if lr.Members != summary.Members || lr.Updates != summary.Updates || lr.TransitionsUsed != summary.Transitions || lr.EpisodesUsed != summary.Episodes || lr.PolicyVersion != 2 {
			t.Errorf("line %s training %+v", l, lr)
		}
	}
	cr := rep.Cross
	if cr == nil || !slices.Equal(cr.Agents, []string{"301", "446"}) || !slices.Equal(cr.Animals, []string{"301", "446"}) {
		t.Fatalf("cross %+v", cr)
	}
	for i, animal := range cr.Animals {
		for j, agent := range cr.Agents {
			if w := values(episode.KindCross, animal, agent, 0)[0]; !near(cr.ClosestCM[i][j], w) || cr.N[i][j] != 1 {
				t.Errorf("cross animal %s agent %s: %v (n %d), want %v", animal, agent, cr.ClosestCM[i][j], cr.N[i][j], w)
			}
		}
	}
	// Each line's agents come closer on their own animals (one episode per cell: p 1).
	wantCols := []results.CrossColumn{{Agent: "301", OwnBest: true, Rival: "446", P: 1}, {Agent: "446", OwnBest: true, Rival: "301", P: 1}}
	if !slices.Equal(cr.Columns, wantCols) || cr.OwnBest() != 2 {
		t.Errorf("cross columns %+v (own best %d), want %+v", cr.Columns, cr.OwnBest(), wantCols)
	}

	// The folder.
	if b, err := os.ReadFile(filepath.Join(dir, results.ExperimentFile)); err != nil || string(b) != tinySpec {
		t.Errorf("experiment.yaml: %q, %v", b, err)
	}
	loaded, err := results.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded.Missing) != 0 || !slices.Equal(loaded.Lines, []string{"301", "446"}) {
		t.Errorf("run folder lacks %v, lines %v", loaded.Missing, loaded.Lines)
	}
	if !reflectJSON(loaded.Report, rep) {
		t.Errorf("report.json reads back as\n%+v\nwant\n%+v", loaded.Report, rep)
	}
	if len(loaded.Episodes) != 25 {
		t.Errorf("%d episode files, want 25 (every done episode)", len(loaded.Episodes))
	}
	byID := map[string]api.Item{}
	for _, it := range view.Items {
		byID[it.ID] = it
	}
	for _, e := range loaded.Episodes {
		it := byID[e.ID]
		o := it.Result.Outcome
		if e.Condition != it.Kind || e.Line != it.Line || e.AgentLine != it.AgentLine || e.Seed != it.Seed || e.ClosestCM != o.ClosestCM || e.LightFraction != o.LightFraction || len(e.Frames) != 2 {
			t.Errorf("episode %s: %+v, item %+v, outcome %+v", e.ID, e, it.Spec, o)
		}
		// The track of the accepted attempt, not of the failed one.
		if e.Frames[0].Ver != uint64(it.Attempts) {
			t.Errorf("episode %s: track of attempt %d, accepted attempt %d", e.ID, e.Frames[0].Ver, it.Attempts)
		}
		if e.Condition == episode.KindRandom && e.LightProbability != 0.25 {
			t.Errorf("random episode %s light probability %v", e.ID, e.LightProbability)
		}
	}
	// Building again into the same folder gives the same report and keeps the policy maps,
	// whose ensembles have not changed.
	mapFile := filepath.Join(results.LineDir(dir, "301"), results.PolicyMapFile)
	before, err := os.Stat(mapFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := results.Build(context.Background(), dir, view, []byte(tinySpec), src); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Stat(mapFile); err != nil || !os.SameFile(before, after) {
		t.Errorf("policy map of an unchanged ensemble written again: %v", err)
	}
	if again, _ := results.Load(dir); !reflectJSON(again.Report, rep) {
		t.Error("a second build gives another report")
	}
	for _, l := range []string{"301", "446"} {
		ld := results.LineDir(dir, l)
		e, err := policy.LoadDir(filepath.Join(ld, results.EnsembleDir), results.EnsembleArch(experiment.Train{}))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := e.MarshalBinary()
		if !bytes.Equal(b, src.blobs[l+"/2"]) {
			t.Errorf("line %s: saved ensemble is not the final version", l)
		}
		var m policy.Map
		if b, err := os.ReadFile(filepath.Join(ld, results.PolicyMapFile)); err != nil || json.Unmarshal(b, &m) != nil || m.Members != 1 || len(m.POn) != 9 {
			t.Errorf("line %s policy map: %v (%d members)", l, err, m.Members)
		}
		if b, err := os.ReadFile(filepath.Join(ld, results.CurvesFile)); err != nil || !strings.HasPrefix(string(b), `{"member":0`) {
			t.Errorf("line %s curves: %q, %v", l, b, err)
		}
	}
}

// reflectJSON reports whether a and b encode to the same JSON.
func reflectJSON(a, b any) bool {
	x, errx := json.Marshal(a)
	y, erry := json.Marshal(b)
	return errx == nil && erry == nil && bytes.Equal(x, y)
}

// folder returns every file of a run folder by relative path.
func folder(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// holderRE matches the holder and lease a coordinator names in a failure reason: which
// worker ran an attempt depends on the scheduling, like a timestamp.
var holderRE = regexp.MustCompile(`\(w-[0-9]+-[0-9]+, lease [0-9]+\)`)

func TestBuildDoesNotDependOnCompletionOrder(t *testing.T) {
	failures := map[string]int{"collect/446//1": 2, "none/301//0": 3, "random/446//2": 1}
	var first map[string][]byte
	for order := uint64(1); order <= 3; order++ {
		view, src := run(t, tinySpec, script{order: order, failures: failures})
		dir, _ := build(t, view, src)
		got := folder(t, dir)
		got[results.ReportFile] = holderRE.ReplaceAll(got[results.ReportFile], []byte("(holder)"))
		if first == nil {
			first = got
			continue
		}
		if len(got) != len(first) {
			t.Fatalf("order %d: %d files, order 1: %d", order, len(got), len(first))
		}
		for name, b := range first {
			if !bytes.Equal(got[name], b) {
				t.Errorf("order %d: %s differs:\n%s\norder 1:\n%s", order, name, got[name], b)
			}
		}
	}
}

func TestBuildUnfinished(t *testing.T) {
	tests := []struct {
		name   string
		script script
		check  func(t *testing.T, rep *results.Report, raw string)
	}{
		{name: "running", script: script{order: 4, stop: func(v api.ExperimentView) bool {
			// Stop once the random-light episodes exist, before any is run.
			return slices.ContainsFunc(v.Items, func(it api.Item) bool { return it.Kind == episode.KindRandom })
		}}, check: func(t *testing.T, rep *results.Report, raw string) {
			if rep.Status != plan.StatusRunning || rep.Phase != plan.PhaseEvaluate || !rep.Finished.IsZero() || rep.Items.Open != 6 {
				t.Errorf("status %s, phase %s, finished %v, items %+v", rep.Status, rep.Phase, rep.Finished, rep.Items)
			}
			for _, lr := range rep.Lines {
				if _, ok := lr.Conditions[episode.KindRandom]; ok || len(lr.Conditions) != 2 || !math.IsNaN(lr.PAgentVsRandom) || math.IsNaN(lr.PAgentVsNone) || lr.RandomRate != 0.25 {
					t.Errorf("line %s: %+v", lr.Line, lr)
				}
			}
			if rep.Cross != nil {
				t.Errorf("cross-evaluation before it ran: %+v", rep.Cross)
			}
			if !strings.Contains(raw, `"p_agent_vs_random": null`) || strings.Contains(raw, `"finished"`) {
				t.Errorf("report.json:\n%s", raw)
			}
		}},
		{name: "failed", script: script{order: 5, failures: map[string]int{"train/446//0": 3}}, check: func(t *testing.T, rep *results.Report, raw string) {
			if rep.Status != plan.StatusFailed || !strings.Contains(rep.Reason, "training task") || !rep.Finished.IsZero() {
				t.Errorf("status %s (%q), finished %v", rep.Status, rep.Reason, rep.Finished)
			}
			if len(rep.Failed) != 1 || rep.Failed[0].Kind != episode.KindTrain || rep.Failed[0].Line != "446" || len(rep.Failed[0].Reasons) != 3 {
				t.Errorf("failed %+v", rep.Failed)
			}
			if rep.Lines[0].Members != 1 || rep.Lines[1].Members != 0 || len(rep.Lines[0].Conditions) != 0 || !math.IsNaN(rep.Lines[0].PAgentVsNone) || !math.IsNaN(rep.Lines[0].RandomRate) {
				t.Errorf("lines %+v", rep.Lines)
			}
			if strings.Contains(raw, `"finished"`) || !strings.Contains(raw, `"status": "failed"`) {
				t.Errorf("report.json:\n%s", raw)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			view, src := run(t, tinySpec, tc.script)
			dir, rep := build(t, view, src)
			raw, err := os.ReadFile(filepath.Join(dir, results.ReportFile))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, rep, string(raw))
			// NaN reads back as NaN: what Load returns marshals to the same bytes.
			loaded, err := results.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := json.MarshalIndent(loaded.Report, "", " "); !bytes.Equal(append(b, '\n'), raw) {
				t.Errorf("report.json does not read back:\n%s\nwant\n%s", b, raw)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	view, src := run(t, tinySpec, script{order: 6})
	storeDown := errors.New("store down")
	badOutput := func(v api.ExperimentView) api.ExperimentView {
		v.Items = slices.Clone(v.Items)
		for i := range v.Items {
			if v.Items[i].Type == plan.TypeTrain {
				r := *v.Items[i].Result
				r.Output = json.RawMessage(`{"members": "eight"}`)
				v.Items[i].Result = &r
			}
		}
		return v
	}
	tests := []struct {
		name string
		view api.ExperimentView
		fail error
		want string
	}{
		{name: "source fails", view: view, fail: storeDown, want: "store down"},
		{name: "training output malformed", view: badOutput(view), want: "output"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src.mu.Lock()
			src.fail = tc.fail
			src.mu.Unlock()
			dir := t.TempDir()
			_, err := results.Build(context.Background(), dir, tc.view, nil, src)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.fail != nil && !errors.Is(err, tc.fail)) {
				t.Fatalf("error %v, want one about %q", err, tc.want)
			}
			// Nothing is presented as a result: no report.json.
			if _, err := os.Stat(filepath.Join(dir, results.ReportFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("report.json written by a failed build: %v", err)
			}
		})
	}
}
