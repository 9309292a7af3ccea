package coordinator

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
)

// AppliedIndex is the index of the last log entry this FSM applied.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Now is the FSM's time: the largest command time applied.
func (f *FSM) Now() time.Time {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Now
}

// Experiment returns the experiment and its items in creation order (an archived experiment:
// its tombstone, no items).
func (f *FSM) Experiment(id string) (api.Experiment, []api.Item, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.st.Experiments[id]
	if !ok {
		if a, ok := f.st.Archived[id]; ok {
			return tombstone(a), nil, true
		}
		return api.Experiment{}, nil, false
	}
	items := make([]api.Item, 0, len(e.Items))
	for _, iid := range e.Items {
		items = append(items, *copyItem(f.st.Items[iid]))
	}
	return copyExperiment(e), items, true
}

// Experiments returns every experiment (without item lists), archived ones as their
// tombstones, ordered by id.
func (f *FSM) Experiments() []api.Experiment {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]api.Experiment, 0, len(f.st.Experiments)+len(f.st.Archived))
	for _, id := range slices.Sorted(maps.Keys(f.st.Experiments)) {
		e := copyExperiment(f.st.Experiments[id])
		e.Items = nil
		out = append(out, e)
	}
	for _, a := range f.st.Archived {
		out = append(out, tombstone(a))
	}
	slices.SortFunc(out, func(a, b api.Experiment) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Item returns one item.
func (f *FSM) Item(id string) (api.Item, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	it, ok := f.st.Items[id]
	if !ok {
		return api.Item{}, false
	}
	return *copyItem(it), true
}

// ExperimentView returns an experiment with its items and their counts (an archived
// experiment: its tombstone and the counts it kept, no items).
func (f *FSM) ExperimentView(id string) (api.ExperimentView, bool) {
	if v, ok := f.archivedView(id); ok {
		return v, true
	}
	e, items, ok := f.Experiment(id)
	if !ok {
		return api.ExperimentView{}, false
	}
	c := api.Counts{Episodes: map[api.ItemState]int{}, Tasks: map[api.ItemState]int{}}
	for _, it := range items {
		if it.Type == plan.TypeTrain {
			c.Tasks[it.State]++
		} else {
			c.Episodes[it.State]++
		}
	}
	return api.ExperimentView{Experiment: e, Items: items, Counts: c}, true
}

// Counts returns the number of episodes and training tasks by state.
func (f *FSM) Counts() api.Counts {
	f.mu.RLock()
	defer f.mu.RUnlock()
	c := api.Counts{Episodes: map[api.ItemState]int{}, Tasks: map[api.ItemState]int{}}
	for _, it := range f.st.Items {
		if it.Type == plan.TypeTrain {
			c.Tasks[it.State]++
		} else {
			c.Episodes[it.State]++
		}
	}
	return c
}

// Workers returns the registered workers ordered by id.
func (f *FSM) Workers() []api.Worker {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedValues(f.st.Workers)
}

// Learners returns the registered learners ordered by id.
func (f *FSM) Learners() []api.Learner {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedValues(f.st.Learners)
}

// Nodes returns the coordinator nodes' addresses ordered by id.
func (f *FSM) Nodes() []api.NodeInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedValues(f.st.Nodes)
}

// Node returns one node's addresses.
func (f *FSM) Node(id string) (api.NodeInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.st.Nodes[id]
	if !ok {
		return api.NodeInfo{}, false
	}
	return *n, true
}

// Stats returns the replicated counters.
func (f *FSM) Stats() api.Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Stats
}

// StateDigest returns the replicated state (without the idempotency cache) as JSON, for
// comparing nodes: two nodes that applied the same log return the same bytes.
func (f *FSM) StateDigest() ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	cp := *f.st
	cp.Idem = nil
	return jsonMarshal(&cp)
}

// sortedValues copies the values of m, ordered by key.
func sortedValues[T any](m map[string]*T) []T {
	out := make([]T, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, *m[k])
	}
	return out
}

// WorkersHolding returns the registered workers ordered by id, each with the episode it holds
// a lease on (api.Worker.Holding).
func (f *FSM) WorkersHolding() []api.Worker {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := sortedValues(f.st.Workers)
	for i := range out {
		out[i].Holding = f.held[out[i].ID]
	}
	return out
}

// Progress returns an experiment's progress: items and training updates per phase, the newest
// failed attempts and the evaluation table as it fills.
func (f *FSM) Progress(id string) (api.ExperimentProgress, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.st.Experiments[id]
	if !ok {
		if a, ok := f.st.Archived[id]; ok {
			return api.ExperimentProgress{ID: a.ID, Name: a.Name, Status: a.Status, Phase: a.Phase, Reason: a.Reason,
				SubmittedAt: a.SubmittedAt, UpdatedAt: a.ArchivedAt}, true
		}
		return api.ExperimentProgress{}, false
	}
	p := api.ExperimentProgress{ID: e.ID, Name: e.Spec.Name, Status: e.Status, Phase: e.Phase, Reason: e.Reason,
		SubmittedAt: e.SubmittedAt, UpdatedAt: e.UpdatedAt}
	phases := map[plan.Phase]*api.PhaseProgress{}
	type rowKey struct {
		line, agent string
		kind        episode.Kind
	}
	rows := map[rowKey]*api.LineProgress{}
	var rowOrder []rowKey
	sums := map[rowKey]float64{}
	var failures []api.ItemFailure
	for _, iid := range e.Items {
		it := f.st.Items[iid]
		ph := phases[it.Phase]
		if ph == nil {
			ph = &api.PhaseProgress{Phase: it.Phase}
			phases[it.Phase] = ph
		}
		for i, reason := range it.Failures {
			failures = append(failures, api.ItemFailure{Item: it.ID, Line: it.Line, Kind: string(it.Kind), Reason: reason,
				Final: it.State == api.StateFailed && i == len(it.Failures)-1})
		}
		if len(failures) >= 4*api.MaxProgressFailures {
			// Only the newest are answered: keep the memory of a read bounded.
			failures = append(failures[:0], failures[len(failures)-api.MaxProgressFailures:]...)
		}
		if it.Type == plan.TypeTrain {
			ph.Tasks++
			var total int64
			if it.Train != nil {
				total = int64(it.Train.Updates) * int64(it.Train.EnsembleSize)
			}
			ph.Updates += total
			switch {
			case it.State == api.StateDone:
				ph.TasksDone++
				ph.UpdatesDone += total
			case it.State == api.StateFailed:
				ph.TasksFailed++
			case it.Progress != nil:
				ph.UpdatesDone += min(it.Progress.Done, total)
			}
			continue
		}
		ph.Episodes++
		switch it.State {
		case api.StateDone:
			ph.EpisodesDone++
		case api.StateFailed:
			ph.EpisodesFailed++
		case api.StateLeased:
			ph.EpisodesLeased++
		}
		if it.Phase != plan.PhaseEvaluate && it.Phase != plan.PhaseCrossEvaluate {
			continue
		}
		k := rowKey{line: it.Line, agent: it.AgentLine, kind: it.Kind}
		if it.Kind != episode.KindCross {
			k.agent = ""
		}
		r := rows[k]
		if r == nil {
			r = &api.LineProgress{Line: k.line, Kind: k.kind, AgentLine: k.agent}
			rows[k] = r
			rowOrder = append(rowOrder, k)
		}
		r.Planned++
		if it.State == api.StateDone && it.Result != nil && it.Result.Outcome != nil {
			o := it.Result.Outcome
			r.Episodes++
			sums[k] += o.ClosestCM
			if o.ClosestCM <= episode.WithinCM {
				r.Reached++
			}
		}
	}
	for _, ph := range []plan.Phase{plan.PhaseCollect, plan.PhaseTrain, plan.PhaseEvaluate, plan.PhaseCrossEvaluate, plan.PhaseTransfer} {
		if pp := phases[ph]; pp != nil {
			p.Phases = append(p.Phases, *pp)
		}
	}
	slices.SortStableFunc(rowOrder, func(a, b rowKey) int {
		return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(kindRank(a.kind), kindRank(b.kind)), cmp.Compare(a.agent, b.agent))
	})
	for _, k := range rowOrder {
		r := *rows[k]
		if r.Episodes > 0 {
			r.MeanClosestCM = sums[k] / float64(r.Episodes)
		}
		p.Lines = append(p.Lines, r)
	}
	// Items are in creation order and each item's attempts in order: reversed, the newest
	// items' latest attempts come first.
	slices.Reverse(failures)
	if len(failures) > api.MaxProgressFailures {
		failures = failures[:api.MaxProgressFailures]
	}
	p.Failures = failures
	return p, true
}

func kindRank(k episode.Kind) int {
	switch k {
	case episode.KindAgent:
		return 0
	case episode.KindNone:
		return 1
	case episode.KindRandom:
		return 2
	}
	return 3
}
