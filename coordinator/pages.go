package coordinator

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

// Paged reads (see api.DefaultPageSize): each copies one page under the FSM's read lock, never
// the whole list, so a read's memory is bounded by its page whatever the state holds.

// ExperimentPage returns an experiment and at most limit of its items, from position after
// (items are in creation order and an experiment only ever appends items, so a position is a
// stable cursor). Experiment.Items is left empty; Counts are filled on the first page
// (after 0) only; Next is the position of the next page ("" after the last).
func (f *FSM) ExperimentPage(id string, after, limit int) (api.ExperimentView, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.st.Experiments[id]
	if !ok {
		a, ok := f.st.Archived[id]
		if !ok {
			return api.ExperimentView{}, false
		}
		return api.ExperimentView{Experiment: tombstone(a), Items: []api.Item{}, Counts: copyCounts(a.Counts)}, true
	}
	head := *e
	head.Items = nil
	v := api.ExperimentView{Experiment: copyExperiment(&head), Total: len(e.Items)}
	if after == 0 {
		v.Counts = api.Counts{Episodes: map[api.ItemState]int{}, Tasks: map[api.ItemState]int{}}
		for _, iid := range e.Items {
			it := f.st.Items[iid]
			if it.Type == plan.TypeTrain {
				v.Counts.Tasks[it.State]++
			} else {
				v.Counts.Episodes[it.State]++
			}
		}
	}
	after = min(max(after, 0), len(e.Items))
	end := min(after+max(limit, 1), len(e.Items))
	v.Items = make([]api.Item, 0, end-after)
	for _, iid := range e.Items[after:end] {
		v.Items = append(v.Items, *copyItem(f.st.Items[iid]))
	}
	if end < len(e.Items) {
		v.Next = strconv.Itoa(end)
	}
	return v, true
}

// ExperimentsPage returns at most limit experiments (without item lists; archived ones as their
// tombstones) whose id sorts after after, ordered by id, and the cursor of the next page (""
// after the last). A page also ends once its experiment files reach api.MaxPageFileBytes.
func (f *FSM) ExperimentsPage(after string, limit int) ([]api.Experiment, string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ids, next := pageKeys(f.st.Experiments, after, limit)
	if len(f.st.Archived) > 0 {
		// The page of live and archived ids together: the first limit of both pages' ids;
		// more follow when some were cut off or either map has more.
		archived, nextArchived := pageKeys(f.st.Archived, after, limit)
		more := next != "" || nextArchived != ""
		ids = slices.Sorted(slices.Values(append(ids, archived...)))
		if n := max(limit, 1); len(ids) > n {
			ids, more = ids[:n], true
		}
		next = ""
		if more && len(ids) > 0 {
			next = ids[len(ids)-1]
		}
	}
	out := make([]api.Experiment, 0, len(ids))
	bytes := 0
	for i, id := range ids {
		if a, ok := f.st.Archived[id]; ok {
			out = append(out, tombstone(a))
			continue
		}
		head := *f.st.Experiments[id]
		head.Items = nil
		out = append(out, copyExperiment(&head))
		bytes += len(head.File)
		if bytes >= api.MaxPageFileBytes && i < len(ids)-1 {
			return out, id
		}
	}
	return out, next
}

// WorkersPage returns at most limit workers whose id sorts after after, ordered by id, each
// with the episode it holds, and the cursor of the next page.
func (f *FSM) WorkersPage(after string, limit int) ([]api.Worker, string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ids, next := pageKeys(f.st.Workers, after, limit)
	out := make([]api.Worker, 0, len(ids))
	for _, id := range ids {
		w := *f.st.Workers[id]
		w.Holding = f.held[id]
		out = append(out, w)
	}
	return out, next
}

// LearnersPage returns at most limit learners whose id sorts after after, ordered by id, and
// the cursor of the next page.
func (f *FSM) LearnersPage(after string, limit int) ([]api.Learner, string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ids, next := pageKeys(f.st.Learners, after, limit)
	out := make([]api.Learner, 0, len(ids))
	for _, id := range ids {
		out = append(out, *f.st.Learners[id])
	}
	return out, next
}

// pageKeys returns the first limit keys of m that sort after after, in order, and the last of
// them when more keys follow ("" otherwise). It keeps only limit+1 keys at a time.
func pageKeys[T any](m map[string]*T, after string, limit int) ([]string, string) {
	limit = max(limit, 1)
	keys := make([]string, 0, min(len(m), 2*limit+2))
	for k := range m {
		if k <= after && after != "" {
			continue
		}
		keys = append(keys, k)
		if len(keys) > 2*limit+1 {
			slices.Sort(keys)
			keys = keys[:limit+1]
		}
	}
	slices.Sort(keys)
	if len(keys) > limit {
		return keys[:limit], keys[limit-1]
	}
	return keys, ""
}

// paged is a page of a list read: the handler's value and the cursor of the next page, which
// read sends in api.HeaderNextPage.
type paged struct {
	v    any
	next string
}

func pageQuery(r *http.Request) (string, int, error) {
	return api.PageQuery(r.URL.Query())
}

func (n *Node) getExperimentPage(r *http.Request) (any, error) {
	after, limit, err := pageQuery(r)
	if err != nil {
		return nil, err
	}
	pos := 0
	if after != "" {
		if pos, err = strconv.Atoi(after); err != nil || pos < 0 {
			return nil, fmt.Errorf("%w: after %q must be an item position (the next cursor of the previous page)", api.ErrBadRequest, after)
		}
	}
	id, err := pathID(r, "experiment id")
	if err != nil {
		return nil, err
	}
	v, ok := n.fsm.ExperimentPage(id, pos, limit)
	if !ok {
		return nil, fmt.Errorf("%w: experiment %q", api.ErrNotFound, id)
	}
	return paged{v: v, next: v.Next}, nil
}

func (n *Node) getExperimentsPage(r *http.Request) (any, error) {
	after, limit, err := pageQuery(r)
	if err != nil {
		return nil, err
	}
	v, next := n.fsm.ExperimentsPage(after, limit)
	return paged{v: v, next: next}, nil
}

func (n *Node) getWorkersPage(r *http.Request) (any, error) {
	after, limit, err := pageQuery(r)
	if err != nil {
		return nil, err
	}
	v, next := n.fsm.WorkersPage(after, limit)
	return paged{v: v, next: next}, nil
}

func (n *Node) getLearnersPage(r *http.Request) (any, error) {
	after, limit, err := pageQuery(r)
	if err != nil {
		return nil, err
	}
	v, next := n.fsm.LearnersPage(after, limit)
	return paged{v: v, next: next}, nil
}

// pathID returns the request's {id} path value, checked with api.ValidID (what names it).
func pathID(r *http.Request, what string) (string, error) {
	id := r.PathValue("id")
	if err := api.ValidID(what, id); err != nil {
		return "", fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	return id, nil
}

// ExperimentSummaries returns one line per experiment, ordered by id, copying no experiment.
func (f *FSM) ExperimentSummaries() []api.ExperimentSummary {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []api.ExperimentSummary
	for _, id := range slices.Sorted(maps.Keys(f.st.Experiments)) {
		e := f.st.Experiments[id]
		out = append(out, api.ExperimentSummary{ID: e.ID, Name: e.Spec.Name, State: e.Status, Phase: e.Phase, Open: e.Open})
	}
	return out
}
