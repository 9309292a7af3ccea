package coordinator

import (
	"maps"
	"slices"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
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

// Experiment returns the experiment and its items in creation order.
func (f *FSM) Experiment(id string) (api.Experiment, []api.Item, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.st.Experiments[id]
	if !ok {
		return api.Experiment{}, nil, false
	}
	items := make([]api.Item, 0, len(e.Items))
	for _, iid := range e.Items {
		items = append(items, *copyItem(f.st.Items[iid]))
	}
	return copyExperiment(e), items, true
}

// Experiments returns every experiment (without item lists), ordered by id.
func (f *FSM) Experiments() []api.Experiment {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]api.Experiment, 0, len(f.st.Experiments))
	for _, id := range slices.Sorted(maps.Keys(f.st.Experiments)) {
		e := copyExperiment(f.st.Experiments[id])
		e.Items = nil
		out = append(out, e)
	}
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

// ExperimentView returns an experiment with its items and their counts.
func (f *FSM) ExperimentView(id string) (api.ExperimentView, bool) {
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
