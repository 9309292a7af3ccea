package coordinator

import (
	"maps"
	"slices"
	"time"
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
func (f *FSM) Experiment(id string) (Experiment, []Item, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.st.Experiments[id]
	if !ok {
		return Experiment{}, nil, false
	}
	items := make([]Item, 0, len(e.Items))
	for _, iid := range e.Items {
		items = append(items, *copyItem(f.st.Items[iid]))
	}
	return copyExperiment(e), items, true
}

// Experiments returns every experiment (without item lists), ordered by id.
func (f *FSM) Experiments() []Experiment {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Experiment, 0, len(f.st.Experiments))
	for _, id := range slices.Sorted(maps.Keys(f.st.Experiments)) {
		e := copyExperiment(f.st.Experiments[id])
		e.Items = nil
		out = append(out, e)
	}
	return out
}

// Item returns one item.
func (f *FSM) Item(id string) (Item, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	it, ok := f.st.Items[id]
	if !ok {
		return Item{}, false
	}
	return *copyItem(it), true
}

// Counts returns the number of episodes and training tasks by state.
func (f *FSM) Counts() Counts {
	f.mu.RLock()
	defer f.mu.RUnlock()
	c := Counts{Episodes: map[ItemState]int{}, Tasks: map[ItemState]int{}}
	for _, it := range f.st.Items {
		if it.Type == TypeTrain {
			c.Tasks[it.State]++
		} else {
			c.Episodes[it.State]++
		}
	}
	return c
}

// Workers returns the registered workers ordered by id.
func (f *FSM) Workers() []Worker {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedValues(f.st.Workers)
}

// Learners returns the registered learners ordered by id.
func (f *FSM) Learners() []Learner {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedValues(f.st.Learners)
}

// Nodes returns the coordinator nodes' addresses ordered by id.
func (f *FSM) Nodes() []NodeInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedValues(f.st.Nodes)
}

// Node returns one node's addresses.
func (f *FSM) Node(id string) (NodeInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.st.Nodes[id]
	if !ok {
		return NodeInfo{}, false
	}
	return *n, true
}

// Stats returns the replicated counters.
func (f *FSM) Stats() Stats {
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
