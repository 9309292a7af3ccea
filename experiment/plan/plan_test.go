package plan_test

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

// newSpec is a small valid experiment: 2 collect episodes per line (ceil(0.5 h / 1000 s)),
// 3 episodes per evaluation condition over two targets. mut adjusts it before validation.
func newSpec(t *testing.T, mut func(*experiment.Spec)) experiment.Spec {
	t.Helper()
	s := experiment.Default()
	s.Name = "plan-test"
	s.Seed = 7
	s.Lines = []string{"301", "446"}
	s.ArenasPerLine = 1
	s.Collect = experiment.Collect{HoursPerLine: 0.5, EpisodeSeconds: 1000, LightProbability: 0.15}
	s.Train.Updates = 10
	s.Train.CheckpointEvery = 5
	s.Evaluate = experiment.Evaluate{EpisodesPerCondition: 3, EpisodeSeconds: 30, TargetDistanceCM: 1.5, Targets: []string{"up", "left"}}
	s.Policy.MaxStaleness = 1
	if mut != nil {
		mut(&s)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("test spec: %v", err)
	}
	return s
}

func withCross(lines []string, episodes int) func(*experiment.Spec) {
	return func(s *experiment.Spec) {
		s.CrossEvaluate = &experiment.CrossEvaluate{Lines: lines, Episodes: episodes}
	}
}

// evalItem is the item the plan should make for the i-th evaluation episode of its kind.
func evalItem(s experiment.Spec, n int, ph plan.Phase, kind episode.Kind, animal, agent string, i int, version uint64) plan.Item {
	name, x, y := s.Target(i)
	it := plan.Item{N: n, Type: plan.TypeEpisode, Phase: ph, Spec: episode.Spec{
		Kind: kind, Line: animal, Seed: plan.Seed(s.Seed, n), Seconds: s.Evaluate.EpisodeSeconds,
		Target: &episode.Place{Name: name, XCM: x, YCM: y},
	}}
	if agent != "" {
		it.AgentLine = agent
		it.PolicyVersion = version
		it.MaxStaleness = s.Policy.MaxStaleness
	}
	return it
}

func encode(t *testing.T, p *plan.Plan) string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("marshal plan: %v", err)
	}
	return string(b)
}

func roundTrip(t *testing.T, p *plan.Plan) *plan.Plan {
	t.Helper()
	var q plan.Plan
	if err := json.Unmarshal([]byte(encode(t, p)), &q); err != nil {
		t.Fatalf("unmarshal plan: %v", err)
	}
	return &q
}

func agentDone(frac float64) plan.Result {
	return plan.Result{Outcome: &episode.Outcome{Seconds: 30, LightFraction: frac, Frames: 90}}
}

// mustNone fails the test when a step that should open nothing opened something.
func mustNone(t *testing.T, what string, got []plan.Item) {
	t.Helper()
	if len(got) != 0 {
		t.Fatalf("%s opened %d items, want none: %+v", what, len(got), got)
	}
}

// finishCollect reports every collect item done and returns the training tasks.
func finishCollect(t *testing.T, p *plan.Plan, items []plan.Item) []plan.Item {
	t.Helper()
	for k, it := range items {
		got := p.Done(it, plan.Result{Outcome: &episode.Outcome{Seconds: it.Seconds, LightFraction: 0.1}})
		if k < len(items)-1 {
			mustNone(t, "a collect episode before the last", got)
			continue
		}
		return got
	}
	t.Fatal("no collect items")
	return nil
}

// toEvaluate starts spec, finishes collect and training (line l's training task reports
// version versions[l]) and returns the plan and the evaluation items.
func toEvaluate(t *testing.T, s experiment.Spec, versions map[string]uint64) (*plan.Plan, []plan.Item) {
	t.Helper()
	p, items := plan.Start(s)
	train := finishCollect(t, p, items)
	var eval []plan.Item
	for k, it := range train {
		eval = p.Done(it, plan.Result{PolicyVersion: versions[it.Line]})
		if k < len(train)-1 {
			mustNone(t, "a training task before the last", eval)
		}
	}
	if p.Phase != plan.PhaseEvaluate || len(eval) == 0 {
		t.Fatalf("after training: phase %s with %d items, want evaluate", p.Phase, len(eval))
	}
	return p, eval
}

func TestStartOpensCollect(t *testing.T) {
	cases := []struct {
		name    string
		mut     func(*experiment.Spec)
		perLine int
	}{
		{"two lines, ceil of 1.8 episodes", nil, 2},
		{"one line, exact hours", func(s *experiment.Spec) {
			s.Lines = []string{"73"}
			s.Collect = experiment.Collect{HoursPerLine: 1, EpisodeSeconds: 1200, LightProbability: 0.3}
		}, 3},
		{"three lines, one episode", func(s *experiment.Spec) {
			s.Lines = []string{"281", "301", "352"}
			s.Seed = 0
			s.Collect = experiment.Collect{HoursPerLine: 0.1, EpisodeSeconds: 3600, LightProbability: 0.5}
		}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSpec(t, c.mut)
			if got := s.CollectEpisodesPerLine(); got != c.perLine {
				t.Fatalf("CollectEpisodesPerLine = %d, want %d", got, c.perLine)
			}
			p, items := plan.Start(s)
			var want []plan.Item
			for e := 0; e < c.perLine; e++ {
				for _, line := range s.Lines {
					n := len(want)
					want = append(want, plan.Item{N: n, Type: plan.TypeEpisode, Phase: plan.PhaseCollect, Spec: episode.Spec{
						Kind: episode.KindCollect, Line: line, Seed: plan.Seed(s.Seed, n),
						Seconds: s.Collect.EpisodeSeconds, LightProbability: s.Collect.LightProbability,
					}})
				}
			}
			if !reflect.DeepEqual(items, want) {
				t.Fatalf("collect items:\n got %+v\nwant %+v", items, want)
			}
			for _, it := range items {
				if err := it.Validate(); err != nil {
					t.Errorf("item %d: %v", it.N, err)
				}
			}
			if p.Phase != plan.PhaseCollect || p.Status != plan.StatusRunning || !p.Running() {
				t.Errorf("phase %s status %s, want collect running", p.Phase, p.Status)
			}
			if p.NextItem != len(want) || p.Open != len(want) {
				t.Errorf("NextItem %d Open %d, want both %d", p.NextItem, p.Open, len(want))
			}
		})
	}
}

// splitmix64 is the reference generator: the n-th output (from 0) of a generator seeded with
// root.
func splitmix64(root uint64, n int) uint64 {
	state := root
	var z uint64
	for range n + 1 {
		state += 0x9e3779b97f4a7c15
		z = state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
	}
	return z
}

func TestSeed(t *testing.T) {
	// Published first outputs of splitmix64 seeded with 0.
	vectors := []struct {
		root uint64
		n    int
		want uint64
	}{
		{0, 0, 0xe220a8397b1dcdaf},
		{0, 1, 0x6e789e6aa1b965f4},
		{0, 2, 0x06c45d188009454f},
	}
	for _, v := range vectors {
		if got := plan.Seed(v.root, v.n); got != v.want {
			t.Errorf("Seed(%d, %d) = %#x, want %#x", v.root, v.n, got, v.want)
		}
	}
	seen := map[uint64][2]uint64{}
	for _, root := range []uint64{0, 1, 2, 7, 1 << 40, math.MaxUint64} {
		for n := range 200 {
			got := plan.Seed(root, n)
			if again := plan.Seed(root, n); again != got {
				t.Fatalf("Seed(%d, %d) not deterministic: %#x then %#x", root, n, got, again)
			}
			if want := splitmix64(root, n); got != want {
				t.Fatalf("Seed(%d, %d) = %#x, splitmix64 gives %#x", root, n, got, want)
			}
			if prev, dup := seen[got]; dup {
				t.Fatalf("Seed(%d, %d) = Seed(%d, %d) = %#x", root, n, prev[0], prev[1], got)
			}
			seen[got] = [2]uint64{root, uint64(n)}
		}
	}
}

func TestCollectOpensTrain(t *testing.T) {
	// failed lists the positions (in report order) of collect episodes that fail for good.
	cases := []struct {
		name    string
		reverse bool
		failed  map[int]bool
	}{
		{"all done in order", false, nil},
		{"all done in reverse", true, nil},
		{"some failed", false, map[int]bool{0: true, 3: true}},
		{"last one failed", false, map[int]bool{3: true}},
		{"all failed", true, map[int]bool{0: true, 1: true, 2: true, 3: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSpec(t, nil)
			p, items := plan.Start(s)
			if c.reverse {
				for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
					items[i], items[j] = items[j], items[i]
				}
			}
			var train []plan.Item
			for k, it := range items {
				var got []plan.Item
				if c.failed[k] {
					got = p.Failed(it, "arena broke")
				} else {
					got = p.Done(it, plan.Result{Outcome: &episode.Outcome{Seconds: 1000, LightFraction: 0.2}})
				}
				if !p.Running() {
					t.Fatalf("after collect item %d: status %s (%s), want running", it.N, p.Status, p.Reason)
				}
				if k < len(items)-1 {
					mustNone(t, "a collect episode before the last", got)
					if p.Phase != plan.PhaseCollect || p.Open != len(items)-k-1 {
						t.Fatalf("after %d of %d: phase %s open %d", k+1, len(items), p.Phase, p.Open)
					}
					continue
				}
				train = got
			}
			var want []plan.Item
			for i, line := range s.Lines {
				n := len(items) + i
				tr := s.Train
				want = append(want, plan.Item{N: n, Type: plan.TypeTrain, Phase: plan.PhaseTrain,
					Spec: episode.Spec{Kind: episode.KindTrain, Line: line, Seed: plan.Seed(s.Seed, n)}, Train: &tr})
			}
			if !reflect.DeepEqual(train, want) {
				t.Fatalf("train items:\n got %+v\nwant %+v", train, want)
			}
			if p.Phase != plan.PhaseTrain || p.Open != len(s.Lines) || p.NextItem != len(items)+len(s.Lines) {
				t.Errorf("phase %s open %d next %d", p.Phase, p.Open, p.NextItem)
			}
		})
	}
}

func TestTrainOpensEvaluate(t *testing.T) {
	cases := []struct {
		name     string
		order    []int // the order in which the training tasks report
		versions map[string]uint64
	}{
		{"in order", []int{0, 1}, map[string]uint64{"301": 4, "446": 9}},
		{"reverse", []int{1, 0}, map[string]uint64{"301": 12, "446": 3}},
		{"version zero", []int{0, 1}, map[string]uint64{"301": 0, "446": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSpec(t, nil)
			p, items := plan.Start(s)
			train := finishCollect(t, p, items)
			var eval []plan.Item
			for k, idx := range c.order {
				it := train[idx]
				eval = p.Done(it, plan.Result{PolicyVersion: c.versions[it.Line]})
				if got, ok := p.PolicyVersions[it.Line]; !ok || got != c.versions[it.Line] {
					t.Errorf("PolicyVersions[%s] = %d (%v), want %d", it.Line, got, ok, c.versions[it.Line])
				}
				if k < len(c.order)-1 {
					mustNone(t, "a training task before the last", eval)
				}
			}
			// Per line: its agent episodes, its no-light episodes, then the numbers reserved for
			// its random-light episodes (created later).
			n, e := len(items)+len(train), s.Evaluate.EpisodesPerCondition
			var want []plan.Item
			first := map[string]int{}
			for _, line := range s.Lines {
				for i := range e {
					want = append(want, evalItem(s, n, plan.PhaseEvaluate, episode.KindAgent, line, line, i, c.versions[line]))
					n++
				}
				for i := range e {
					want = append(want, evalItem(s, n, plan.PhaseEvaluate, episode.KindNone, line, "", i, 0))
					n++
				}
				first[line] = n
				n += e
			}
			if !reflect.DeepEqual(eval, want) {
				t.Fatalf("evaluate items:\n got %+v\nwant %+v", eval, want)
			}
			if !reflect.DeepEqual(p.RandomFirst, first) || p.NextItem != n {
				t.Errorf("RandomFirst %v NextItem %d, want %v and %d", p.RandomFirst, p.NextItem, first, n)
			}
			if len(p.RandomRates) != 0 {
				t.Errorf("random rates %v before any agent episode ended", p.RandomRates)
			}
			for _, it := range eval {
				if err := it.Validate(); err != nil {
					t.Errorf("item %d: %v", it.N, err)
				}
			}
			// Targets in turn: up, left, up for each condition.
			if n := []string{eval[0].Target.Name, eval[1].Target.Name, eval[2].Target.Name}; !reflect.DeepEqual(n, []string{"up", "left", "up"}) {
				t.Errorf("targets %v, want up, left, up", n)
			}
			if p.Phase != plan.PhaseEvaluate || p.Open != len(want) {
				t.Errorf("phase %s open %d, want evaluate %d", p.Phase, p.Open, len(want))
			}
		})
	}
}

// step is one report in a random-light scenario: the evaluation item at index idx of the
// evaluation items (agent items of line 0 are 0-2, none 3-5; line 1's agent 6-8, none 9-11).
type step struct {
	idx    int
	failed bool
	frac   float64
	nilOut bool
}

func TestRandomLightAtAgentRate(t *testing.T) {
	const collectP = 0.15
	cases := []struct {
		name  string
		steps []step
		// opens maps a step's position to the line whose random-light episodes it must open.
		opens map[int]string
		rates map[string]float64
	}{
		{
			name:  "mean of done agents, lines independent",
			steps: []step{{idx: 0, frac: 0.2}, {idx: 6, frac: 0.9}, {idx: 1, frac: 0.4}, {idx: 3}, {idx: 2, frac: 0.6}, {idx: 7, frac: 0.7}, {idx: 8, frac: 0.8}},
			opens: map[int]string{4: "301", 6: "446"},
			rates: map[string]float64{"301": 0.4, "446": 0.8},
		},
		{
			name:  "failed agent episodes end but do not count",
			steps: []step{{idx: 0, failed: true}, {idx: 1, frac: 0.1}, {idx: 2, frac: 0.3}, {idx: 6, failed: true}, {idx: 7, failed: true}, {idx: 8, frac: 0.5}},
			opens: map[int]string{2: "301", 5: "446"},
			rates: map[string]float64{"301": 0.2, "446": 0.5},
		},
		{
			name:  "last agent episode failing opens them",
			steps: []step{{idx: 1, frac: 0.25}, {idx: 2, frac: 0.75}, {idx: 0, failed: true}},
			opens: map[int]string{2: "301"},
			rates: map[string]float64{"301": 0.5},
		},
		{
			name:  "none done: collect probability",
			steps: []step{{idx: 0, failed: true}, {idx: 1, failed: true}, {idx: 2, nilOut: true}, {idx: 6, frac: 1}, {idx: 7, frac: 0}, {idx: 8, frac: 1}},
			opens: map[int]string{2: "301", 5: "446"},
			rates: map[string]float64{"301": collectP, "446": 2.0 / 3},
		},
		{
			name:  "out of range fractions are not counted",
			steps: []step{{idx: 0, frac: 1.5}, {idx: 1, frac: math.NaN()}, {idx: 2, frac: -0.1}, {idx: 6, frac: 0.3}, {idx: 7, frac: math.Inf(1)}, {idx: 8, frac: 0.1}},
			opens: map[int]string{2: "301", 5: "446"},
			rates: map[string]float64{"301": collectP, "446": 0.2},
		},
		{
			name:  "none episodes alone open nothing",
			steps: []step{{idx: 3}, {idx: 4, failed: true}, {idx: 5}, {idx: 9}, {idx: 10}, {idx: 11}},
		},
		{
			name:  "agents ending after every none episode",
			steps: []step{{idx: 3}, {idx: 4}, {idx: 5}, {idx: 9}, {idx: 10}, {idx: 11}, {idx: 6, frac: 0.5}, {idx: 7, frac: 0.5}, {idx: 8, frac: 0.2}, {idx: 0, frac: 0}, {idx: 1, frac: 0}, {idx: 2, frac: 0}},
			opens: map[int]string{8: "446", 11: "301"},
			rates: map[string]float64{"301": 0, "446": 0.4},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSpec(t, func(s *experiment.Spec) { s.Collect.LightProbability = collectP })
			p, eval := toEvaluate(t, s, map[string]uint64{"301": 5, "446": 6})
			// Line l's random-light episodes are numbered right after its last no-light one.
			first := map[string]int{}
			for l, line := range s.Lines {
				first[line] = eval[l*6+5].N + 1
			}
			for k, st := range c.steps {
				it := eval[st.idx]
				before := p.NextItem
				var got []plan.Item
				switch {
				case st.failed:
					got = p.Failed(it, "worker lost")
				case st.nilOut:
					got = p.Done(it, plan.Result{})
				case it.Kind == episode.KindAgent:
					got = p.Done(it, agentDone(st.frac))
				default:
					got = p.Done(it, plan.Result{Outcome: &episode.Outcome{Seconds: 30}})
				}
				if p.NextItem != before {
					t.Errorf("step %d: NextItem %d, want %d (random-light numbers are reserved)", k, p.NextItem, before)
				}
				line, opens := c.opens[k]
				if !opens {
					mustNone(t, fmt.Sprintf("step %d", k), got)
					continue
				}
				rate := c.rates[line]
				if r := p.RandomRate(line); math.Abs(r-rate) > 1e-12 {
					t.Errorf("RandomRate(%s) = %v, want %v", line, r, rate)
				}
				if r, ok := p.RandomRates[line]; !ok || math.Abs(r-rate) > 1e-12 {
					t.Errorf("RandomRates[%s] = %v (%v), want %v", line, r, ok, rate)
				}
				if len(got) != s.Evaluate.EpisodesPerCondition {
					t.Fatalf("step %d opened %d items, want %d random-light episodes", k, len(got), s.Evaluate.EpisodesPerCondition)
				}
				for i, r := range got {
					want := evalItem(s, first[line]+i, plan.PhaseEvaluate, episode.KindRandom, line, "", i, 0)
					want.LightProbability = r.LightProbability // compared with a tolerance below
					if !reflect.DeepEqual(r, want) {
						t.Errorf("random item %d:\n got %+v\nwant %+v", i, r, want)
					}
					if math.Abs(r.LightProbability-rate) > 1e-12 || r.LightProbability != p.RandomRates[line] {
						t.Errorf("random item %d light probability %v, want %v", i, r.LightProbability, rate)
					}
					if r.LightPolicy().P != r.LightProbability {
						t.Errorf("random item %d light policy %+v", i, r.LightPolicy())
					}
				}
			}
			for _, line := range s.Lines {
				if _, made := c.rates[line]; !made {
					if _, ok := p.RandomRates[line]; ok {
						t.Errorf("line %s has a random rate without its agent episodes ending", line)
					}
				}
			}
			if p.Phase != plan.PhaseEvaluate || !p.Running() {
				t.Errorf("phase %s status %s, want evaluate running", p.Phase, p.Status)
			}
		})
	}
}

// TestRandomLightOncePerLine ends every evaluation episode, then the random-light ones, and
// checks that each line got exactly one set of random-light episodes.
func TestRandomLightOncePerLine(t *testing.T) {
	s := newSpec(t, nil)
	p, eval := toEvaluate(t, s, map[string]uint64{"301": 1, "446": 2})
	queue := append([]plan.Item(nil), eval...)
	random := map[string]int{}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if it.Kind == episode.KindRandom {
			random[it.Line]++
		}
		queue = append(queue, p.Done(it, agentDone(0.3))...)
	}
	for _, line := range s.Lines {
		if random[line] != s.Evaluate.EpisodesPerCondition {
			t.Errorf("line %s: %d random-light episodes, want %d", line, random[line], s.Evaluate.EpisodesPerCondition)
		}
	}
	if p.Status != plan.StatusDone || p.Phase != plan.PhaseDone || p.Open != 0 {
		t.Errorf("phase %s status %s open %d, want done", p.Phase, p.Status, p.Open)
	}
}

func TestCrossEvaluate(t *testing.T) {
	versions := map[string]uint64{"281": 11, "301": 22, "352": 33}
	cases := []struct {
		name  string
		cross []string
		eps   int
	}{
		{"two of three lines", []string{"352", "281"}, 2},
		{"all lines", []string{"281", "301", "352"}, 1},
		{"none", nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSpec(t, func(s *experiment.Spec) {
				s.Lines = []string{"281", "301", "352"}
				if c.cross != nil {
					withCross(c.cross, c.eps)(s)
				}
			})
			p, eval := toEvaluate(t, s, versions)
			// End every evaluation episode (the random-light ones as they open); the last
			// one opens cross-evaluation, or nothing.
			queue := append([]plan.Item(nil), eval...)
			var last []plan.Item
			for len(queue) > 0 {
				it := queue[0]
				queue = queue[1:]
				last = p.Done(it, agentDone(0.5))
				if len(last) > 0 && last[0].Phase == plan.PhaseEvaluate {
					queue = append(queue, last...)
					last = nil
					continue
				}
				if len(queue) > 0 {
					mustNone(t, "an evaluation episode before the last", last)
				}
			}
			if c.cross == nil {
				mustNone(t, "the last evaluation episode without cross_evaluate", last)
				if p.Status != plan.StatusDone || p.Phase != plan.PhaseDone {
					t.Fatalf("phase %s status %s, want done", p.Phase, p.Status)
				}
				return
			}
			if p.Phase != plan.PhaseCrossEvaluate || !p.Running() {
				t.Fatalf("phase %s status %s, want cross_evaluate running", p.Phase, p.Status)
			}
			next := p.NextItem - len(last)
			var want []plan.Item
			for _, agent := range c.cross {
				for _, animal := range c.cross {
					for i := range c.eps {
						want = append(want, evalItem(s, next+len(want), plan.PhaseCrossEvaluate, episode.KindCross, animal, agent, i, versions[agent]))
					}
				}
			}
			if !reflect.DeepEqual(last, want) {
				t.Fatalf("cross items:\n got %+v\nwant %+v", last, want)
			}
			for k, it := range last {
				if err := it.Validate(); err != nil {
					t.Errorf("item %d: %v", it.N, err)
				}
				got := p.Done(it, agentDone(0.5))
				if k < len(last)-1 {
					mustNone(t, "a cross episode before the last", got)
				} else {
					mustNone(t, "the last cross episode", got)
				}
			}
			if p.Status != plan.StatusDone || p.Phase != plan.PhaseDone || p.Open != 0 {
				t.Errorf("phase %s status %s open %d, want done", p.Phase, p.Status, p.Open)
			}
		})
	}
}

// TestFailureIsFinal fails an experiment (a training task failing, or a cancel) and checks
// that nothing reported afterwards changes it.
func TestFailureIsFinal(t *testing.T) {
	type setup struct {
		p    *plan.Plan
		rest []plan.Item // items still open when the experiment fails
	}
	failTrain := func(idx int, first bool) func(*testing.T, experiment.Spec) setup {
		return func(t *testing.T, s experiment.Spec) setup {
			p, items := plan.Start(s)
			train := finishCollect(t, p, items)
			if !first {
				for i, it := range train {
					if i != idx {
						mustNone(t, "a training task", p.Done(it, plan.Result{PolicyVersion: 3}))
					}
				}
			}
			mustNone(t, "a failing training task", p.Failed(train[idx], "out of memory"))
			return setup{p, train}
		}
	}
	cancelIn := func(ph plan.Phase) func(*testing.T, experiment.Spec) setup {
		return func(t *testing.T, s experiment.Spec) setup {
			p, items := plan.Start(s)
			if ph != plan.PhaseCollect {
				p, items = toEvaluate(t, s, map[string]uint64{"301": 1, "446": 1})
				mustNone(t, "an agent episode", p.Done(items[0], agentDone(0.5)))
			}
			p.Cancel("operator cancel")
			return setup{p, items}
		}
	}
	cases := []struct {
		name   string
		setup  func(*testing.T, experiment.Spec) setup
		reason []string // substrings of the reason
	}{
		{"first training task fails", failTrain(1, true), []string{"line 446", "out of memory"}},
		{"last training task fails", failTrain(0, false), []string{"line 301", "out of memory"}},
		{"cancel during collect", cancelIn(plan.PhaseCollect), []string{"operator cancel"}},
		{"cancel during evaluate", cancelIn(plan.PhaseEvaluate), []string{"operator cancel"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSpec(t, nil)
			st := c.setup(t, s)
			p := st.p
			if p.Status != plan.StatusFailed || p.Running() || p.Open != 0 {
				t.Fatalf("status %s open %d, want failed with nothing open", p.Status, p.Open)
			}
			for _, sub := range c.reason {
				if !strings.Contains(p.Reason, sub) {
					t.Errorf("reason %q does not name %q", p.Reason, sub)
				}
			}
			frozen := encode(t, p)
			for _, it := range st.rest {
				mustNone(t, "Done after failure", p.Done(it, agentDone(0.5)))
				mustNone(t, "Failed after failure", p.Failed(it, "late"))
			}
			p.Cancel("second cancel")
			if got := encode(t, p); got != frozen {
				t.Errorf("a failed plan changed:\n got %s\nwant %s", got, frozen)
			}
		})
	}
}

func TestCancelAfterDoneChangesNothing(t *testing.T) {
	s := newSpec(t, nil)
	p, _ := drive(t, s, scripted, -1)
	frozen := encode(t, p)
	p.Cancel("too late")
	if got := encode(t, p); got != frozen || p.Status != plan.StatusDone {
		t.Errorf("cancel changed a done plan:\n got %s\nwant %s", got, frozen)
	}
}

// TestStaleItemsChangeNothing reports items that do not count: of a closed phase, of the
// open phase but numbered past NextItem, or negative.
func TestStaleItemsChangeNothing(t *testing.T) {
	s := newSpec(t, nil)
	p, collect := plan.Start(s)
	train := finishCollect(t, p, collect)
	cases := []struct {
		name string
		it   plan.Item
	}{
		{"collect item after collect closed", collect[0]},
		{"last collect item again", collect[len(collect)-1]},
		{"train-phase item numbered NextItem", plan.Item{N: p.NextItem, Type: plan.TypeTrain, Phase: plan.PhaseTrain, Spec: episode.Spec{Kind: episode.KindTrain, Line: "301"}}},
		{"train-phase item far ahead", plan.Item{N: p.NextItem + 100, Type: plan.TypeTrain, Phase: plan.PhaseTrain, Spec: episode.Spec{Kind: episode.KindTrain, Line: "446"}}},
		{"train-phase item numbered -1", plan.Item{N: -1, Type: plan.TypeTrain, Phase: plan.PhaseTrain, Spec: episode.Spec{Kind: episode.KindTrain, Line: "446"}}},
		{"evaluate item while training", plan.Item{N: 0, Type: plan.TypeEpisode, Phase: plan.PhaseEvaluate, Spec: episode.Spec{Kind: episode.KindAgent, Line: "301"}}},
	}
	frozen := encode(t, p)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustNone(t, "Done", p.Done(c.it, plan.Result{PolicyVersion: 9, Outcome: &episode.Outcome{LightFraction: 0.5}}))
			mustNone(t, "Failed", p.Failed(c.it, "stale"))
			if got := encode(t, p); got != frozen {
				t.Errorf("plan changed:\n got %s\nwant %s", got, frozen)
			}
		})
	}
	// The real training tasks still count afterwards.
	mustNone(t, "first training task", p.Done(train[0], plan.Result{PolicyVersion: 1}))
	if eval := p.Done(train[1], plan.Result{PolicyVersion: 2}); len(eval) == 0 || p.Phase != plan.PhaseEvaluate {
		t.Fatalf("training did not open evaluate: phase %s, %d items", p.Phase, len(eval))
	}
}

// scripted is a fixed set of results: every fourth collect and none episode fails, agent
// episodes report a light fraction that depends on their number, training tasks report
// version 100+N.
func scripted(it plan.Item) (bool, plan.Result) {
	switch it.Kind {
	case episode.KindTrain:
		return true, plan.Result{PolicyVersion: uint64(100 + it.N)}
	case episode.KindCollect, episode.KindNone:
		if it.N%4 == 3 {
			return false, plan.Result{}
		}
	case episode.KindAgent:
		if it.N%5 == 4 {
			return false, plan.Result{}
		}
		return true, agentDone(float64(it.N%7) / 7)
	}
	return true, plan.Result{Outcome: &episode.Outcome{Seconds: it.Seconds, LightFraction: it.LightProbability}}
}

// checkOpened checks the numbers of the items one step opened, given NextItem before the step:
// a random-light episode takes a number of its line's reserved block, every other item the
// next new number in turn, skipping only the reserved blocks; NextItem ends past them all.
func checkOpened(t *testing.T, p *plan.Plan, before int, got []plan.Item) {
	t.Helper()
	e := p.Spec.Evaluate.EpisodesPerCondition
	reserved := func(n int) bool {
		for _, first := range p.RandomFirst {
			if first <= n && n < first+e {
				return true
			}
		}
		return false
	}
	next := before
	for _, g := range got {
		if g.Kind == episode.KindRandom {
			first, ok := p.RandomFirst[g.Line]
			if !ok || g.N < first || g.N >= first+e {
				t.Fatalf("random-light item %d of line %s outside its reserved numbers (from %d, %v)", g.N, g.Line, first, ok)
			}
			continue
		}
		for reserved(next) {
			next++
		}
		if g.N != next {
			t.Fatalf("%s item numbered %d, want %d", g.Kind, g.N, next)
		}
		next++
	}
	for next < p.NextItem && reserved(next) {
		next++
	}
	if p.NextItem != next {
		t.Fatalf("NextItem %d, want %d", p.NextItem, next)
	}
}

// checkNumbers checks that items (every item of a finished run) use each number below next
// exactly once, and that each has its number's seed.
func checkNumbers(t *testing.T, s experiment.Spec, items []plan.Item, next int) {
	t.Helper()
	used := make([]int, next)
	for _, it := range items {
		if it.N < 0 || it.N >= next {
			t.Errorf("item %d (%s, line %s) not below NextItem %d", it.N, it.Kind, it.Line, next)
			continue
		}
		used[it.N]++
		if it.Seed != plan.Seed(s.Seed, it.N) {
			t.Errorf("item %d seed %#x, want Seed(%d, %d)", it.N, it.Seed, s.Seed, it.N)
		}
	}
	for n, u := range used {
		if u != 1 {
			t.Errorf("number %d used by %d items, want 1", n, u)
		}
	}
}

// drive runs a whole experiment, reporting items first in, first out with script's results.
// At report number snapAt (or never, when negative) the plan goes through JSON and the run
// continues on the decoded copy. It returns the final plan and every item in creation order.
func drive(t *testing.T, s experiment.Spec, script func(plan.Item) (bool, plan.Result), snapAt int) (*plan.Plan, []plan.Item) {
	t.Helper()
	p, queue := plan.Start(s)
	all := append([]plan.Item(nil), queue...)
	for k := 0; len(queue) > 0; k++ {
		if k > 100000 {
			t.Fatal("run does not end")
		}
		if k == snapAt {
			p = roundTrip(t, p)
		}
		it := queue[0]
		queue = queue[1:]
		before := p.NextItem
		var got []plan.Item
		if ok, r := script(it); ok {
			got = p.Done(it, r)
		} else {
			got = p.Failed(it, "scripted failure")
		}
		checkOpened(t, p, before, got)
		all = append(all, got...)
		queue = append(queue, got...)
	}
	return p, all
}

func TestWholeRun(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*experiment.Spec)
	}{
		{"one line", func(s *experiment.Spec) { s.Lines = []string{"73"} }},
		{"two lines", nil},
		{"three lines, cross two", func(s *experiment.Spec) {
			s.Lines = []string{"281", "301", "352"}
			withCross([]string{"301", "352"}, 2)(s)
		}},
		{"three lines, cross all, one target", func(s *experiment.Spec) {
			s.Lines = []string{"281", "301", "352"}
			s.Evaluate.Targets = []string{"right"}
			s.Evaluate.EpisodesPerCondition = 2
			s.Collect = experiment.Collect{HoursPerLine: 1, EpisodeSeconds: 1200, LightProbability: 0.1}
			withCross([]string{"281", "301", "352"}, 1)(s)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSpec(t, c.mut)
			p, all := drive(t, s, scripted, -1)
			lines, e := len(s.Lines), s.Evaluate.EpisodesPerCondition
			want := lines*s.CollectEpisodesPerLine() + lines + 3*lines*e
			if ce := s.CrossEvaluate; ce != nil {
				want += len(ce.Lines) * len(ce.Lines) * ce.Episodes
			}
			if len(all) != want || p.NextItem != want {
				t.Errorf("%d items (NextItem %d), want %d", len(all), p.NextItem, want)
			}
			if p.Status != plan.StatusDone || p.Phase != plan.PhaseDone || p.Open != 0 || p.Reason != "" {
				t.Errorf("phase %s status %s open %d reason %q, want done", p.Phase, p.Status, p.Open, p.Reason)
			}
			checkNumbers(t, s, all, p.NextItem)
			kinds := map[episode.Kind]int{}
			for _, it := range all {
				kinds[it.Kind]++
				if it.Kind != episode.KindTrain {
					if err := it.Validate(); err != nil {
						t.Errorf("item %d: %v", it.N, err)
					}
				}
			}
			for _, k := range []episode.Kind{episode.KindAgent, episode.KindNone, episode.KindRandom} {
				if kinds[k] != lines*e {
					t.Errorf("%d %s episodes, want %d", kinds[k], k, lines*e)
				}
			}
			if len(p.RandomRates) != lines {
				t.Errorf("random rates %v, want one per line", p.RandomRates)
			}

			// A JSON round trip at any point gives the same run.
			whole := encode(t, p)
			for snap := 0; snap < len(all); snap++ {
				q, again := drive(t, s, scripted, snap)
				if !reflect.DeepEqual(again, all) {
					t.Fatalf("round trip at report %d: items differ", snap)
				}
				if got := encode(t, q); got != whole {
					t.Fatalf("round trip at report %d: plan\n got %s\nwant %s", snap, got, whole)
				}
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	s := newSpec(t, func(s *experiment.Spec) {
		s.Lines = []string{"281", "301", "352"}
		withCross([]string{"281", "352"}, 2)(s)
	})
	_, a := drive(t, s, scripted, -1)
	_, b := drive(t, s, scripted, -1)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs with the same results gave different items")
	}
	// Another root seed changes every seed and nothing else.
	s2 := s
	s2.Seed = s.Seed + 1
	_, c := drive(t, s2, scripted, -1)
	if len(c) != len(a) {
		t.Fatalf("seed %d: %d items, seed %d: %d", s.Seed, len(a), s2.Seed, len(c))
	}
	for i := range a {
		if a[i].Seed == c[i].Seed {
			t.Errorf("item %d has seed %#x under both roots", i, a[i].Seed)
		}
		x, y := a[i], c[i]
		x.Seed, y.Seed = 0, 0
		if !reflect.DeepEqual(x, y) {
			t.Errorf("item %d differs beyond its seed:\n%+v\n%+v", i, x, y)
		}
	}
}

// mean is the mean of fs summed first to last.
func mean(fs []float64) float64 {
	sum := 0.0
	for _, f := range fs {
		sum += f
	}
	return sum / float64(len(fs))
}

// TestRandomRateIndependentOfOrder reports the same agent light fractions in every order: the
// random-light rate must be bit for bit their mean summed in item order. The fractions are such
// that a mean summed in completion order would differ (checked first): 0.1, 0.2, 0.7 would not
// show it, (0.1+0.2)+0.7 and (0.7+0.2)+0.1 differ but their thirds do not.
func TestRandomRateIndependentOfOrder(t *testing.T) {
	fracs := []float64{0.1, 0.4, 0.7} // by agent episode 0, 1, 2 of line 301
	orders := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	byCompletion := map[float64]bool{}
	for _, order := range orders {
		var fs []float64
		for _, i := range order {
			fs = append(fs, fracs[i])
		}
		byCompletion[mean(fs)] = true
	}
	if len(byCompletion) < 2 {
		t.Fatalf("the fractions %v have one mean in every order: they show nothing", fracs)
	}
	want := mean(fracs)
	for _, order := range orders {
		s := newSpec(t, nil)
		p, eval := toEvaluate(t, s, map[string]uint64{"301": 1, "446": 1})
		var random []plan.Item
		for _, i := range order {
			random = p.Done(eval[i], agentDone(fracs[i]))
		}
		if len(random) == 0 {
			t.Fatalf("order %v: no random-light episodes", order)
		}
		for _, r := range random {
			if r.LightProbability != want {
				t.Errorf("order %v: rate %v, want %v (summed in item order)", order, r.LightProbability, want)
			}
		}
		if r := p.RandomRate("301"); r != want {
			t.Errorf("order %v: RandomRate %v, want %v", order, r, want)
		}
	}
}

// TestCompletionOrderAcrossLines ends two lines' evaluation episodes in different orders (the
// lines' agents finishing first one way, then the other) and checks that no item's number,
// seed or light probability depends on it: a line's random-light episodes take the numbers
// reserved right after its no-light episodes, whichever line's agents end first, and their
// rate is the mean of the agents' light fractions summed in item order.
func TestCompletionOrderAcrossLines(t *testing.T) {
	// Light fractions by agent episode 0, 1, 2, chosen so that their mean in reverse order is
	// another float64 (checked below).
	fracs := map[string][]float64{"301": {0.1, 0.4, 0.7}, "446": {0.7, 0.1, 0.3}}
	wantRate := map[string]float64{}
	for line, fs := range fracs {
		wantRate[line] = mean(fs)
		back := slices.Clone(fs)
		slices.Reverse(back)
		if mean(back) == wantRate[line] {
			t.Fatalf("line %s: the test fractions %v have one mean in both orders: they show nothing", line, fs)
		}
	}
	cases := []struct {
		name string
		// order lists evaluation items by index: line 301's agent episodes are 0-2 and its
		// no-light ones 3-5, line 446's 6-8 and 9-11.
		order []int
		// firstRandom is the line whose random-light episodes are created first.
		firstRandom string
	}{
		{"301's agents first, in order", []int{0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11}, "301"},
		{"446's agents first, reversed", []int{8, 7, 6, 2, 1, 0, 11, 10, 9, 5, 4, 3}, "446"},
		{"interleaved, 446's agents end first", []int{9, 3, 7, 1, 6, 2, 4, 8, 0, 5, 10, 11}, "446"},
		{"301's agents reversed last", []int{3, 9, 6, 7, 8, 2, 1, 4, 0, 10, 5, 11}, "446"},
	}
	var reference []plan.Item
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSpec(t, withCross([]string{"446", "301"}, 1))
			p, collect := plan.Start(s)
			train := finishCollect(t, p, collect)
			var eval []plan.Item
			for _, it := range train {
				eval = append(eval, p.Done(it, plan.Result{PolicyVersion: 3})...)
			}
			all := slices.Concat(collect, train, eval)
			var random []plan.Item
			for _, idx := range c.order {
				it := eval[idx]
				before := p.NextItem
				var got []plan.Item
				if it.Kind == episode.KindAgent {
					got = p.Done(it, agentDone(fracs[it.Line][idx%6]))
				} else {
					got = p.Done(it, plan.Result{Outcome: &episode.Outcome{Seconds: 30}})
				}
				checkOpened(t, p, before, got)
				if len(random) == 0 && len(got) > 0 && got[0].Line != c.firstRandom {
					t.Fatalf("line %s's random-light episodes created first, want %s's", got[0].Line, c.firstRandom)
				}
				random = append(random, got...)
			}
			if len(random) != len(s.Lines)*s.Evaluate.EpisodesPerCondition {
				t.Fatalf("%d random-light episodes, want %d", len(random), len(s.Lines)*s.Evaluate.EpisodesPerCondition)
			}
			perLine := map[string]int{}
			for _, r := range random {
				l := slices.Index(s.Lines, r.Line)
				want := eval[l*6+5].N + 1 + perLine[r.Line] // after the line's last no-light one
				if r.N != want || r.N != p.RandomFirst[r.Line]+perLine[r.Line] {
					t.Errorf("line %s random-light episode %d numbered %d, want %d", r.Line, perLine[r.Line], r.N, want)
				}
				if r.LightProbability != wantRate[r.Line] {
					t.Errorf("line %s random-light episode %d light probability %v, want %v (summed in item order)", r.Line, perLine[r.Line], r.LightProbability, wantRate[r.Line])
				}
				perLine[r.Line]++
			}
			all = append(all, random...)
			// The random-light episodes end last to first; the last one opens cross-evaluation.
			var cross []plan.Item
			for k := len(random) - 1; k >= 0; k-- {
				before := p.NextItem
				cross = p.Done(random[k], agentDone(0.5))
				checkOpened(t, p, before, cross)
			}
			if len(cross) == 0 || p.Phase != plan.PhaseCrossEvaluate {
				t.Fatalf("phase %s with %d items after evaluation, want cross_evaluate", p.Phase, len(cross))
			}
			all = append(all, cross...)
			for _, it := range cross {
				mustNone(t, "a cross episode", p.Done(it, agentDone(0.5)))
			}
			if p.Status != plan.StatusDone {
				t.Fatalf("status %s (%s), want done", p.Status, p.Reason)
			}
			checkNumbers(t, s, all, p.NextItem)
			slices.SortFunc(all, func(a, b plan.Item) int { return a.N - b.N })
			if reference == nil {
				reference = all
				return
			}
			if !reflect.DeepEqual(all, reference) {
				for i := range all {
					if !reflect.DeepEqual(all[i], reference[i]) {
						t.Errorf("item %d:\n got %+v\nwant %+v (first case)", i, all[i], reference[i])
					}
				}
			}
		})
	}
}
