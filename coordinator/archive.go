package coordinator

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

// archive drops a finished experiment's items from the live state and keeps its tombstone: the
// id (never given again: ids come from a counter), name, how it ended, its item counts and when
// it was archived. A running experiment is refused; archiving an archived one changes nothing.
func (f *FSM) archive(c *ArchiveCmd) *api.Response {
	st := f.st
	if _, ok := st.Archived[c.Experiment]; ok {
		return &api.Response{ExperimentID: c.Experiment}
	}
	exp := st.Experiments[c.Experiment]
	if exp == nil {
		return refuse(api.CodeNotFound, "experiment %q", c.Experiment)
	}
	if exp.Running() {
		return refuse(api.CodeBadRequest, "experiment %q is running: cancel it or let it finish before archiving it", c.Experiment)
	}
	counts := api.Counts{Episodes: map[api.ItemState]int{}, Tasks: map[api.ItemState]int{}}
	for _, id := range exp.Items {
		it := st.Items[id]
		if it == nil {
			continue
		}
		if it.State == api.StateLeased {
			f.endLease(it)
		}
		if it.Type == plan.TypeTrain {
			counts.Tasks[it.State]++
		} else {
			counts.Episodes[it.State]++
		}
		delete(st.Items, id)
	}
	st.Archived[exp.ID] = &api.ArchivedExperiment{
		ID: exp.ID, Name: exp.Spec.Name, Status: exp.Status, Phase: exp.Phase, Reason: exp.Reason,
		Counts: counts, SubmittedAt: exp.SubmittedAt, ArchivedAt: st.Now,
	}
	f.removeLive(exp)
	delete(st.Experiments, exp.ID)
	return &api.Response{ExperimentID: exp.ID}
}

// tombstone is an archived experiment as reads show it: no items, ArchivedAt set.
func tombstone(a *api.ArchivedExperiment) api.Experiment {
	e := api.Experiment{ID: a.ID, SubmittedAt: a.SubmittedAt, UpdatedAt: a.ArchivedAt, ArchivedAt: a.ArchivedAt}
	e.Spec.Name = a.Name
	e.Status, e.Phase, e.Reason = a.Status, a.Phase, a.Reason
	return e
}

func copyCounts(c api.Counts) api.Counts {
	out := api.Counts{Episodes: map[api.ItemState]int{}, Tasks: map[api.ItemState]int{}}
	for k, v := range c.Episodes {
		out.Episodes[k] = v
	}
	for k, v := range c.Tasks {
		out.Tasks[k] = v
	}
	return out
}

// archivedView is an archived experiment's view: its tombstone and counts.
func (f *FSM) archivedView(id string) (api.ExperimentView, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	a, ok := f.st.Archived[id]
	if !ok {
		return api.ExperimentView{}, false
	}
	return api.ExperimentView{Experiment: tombstone(a), Items: []api.Item{}, Counts: copyCounts(a.Counts)}, true
}

// decodeArchive is POST /v1/experiments/{id}/archive (an empty body or {}).
func decodeArchive(r *http.Request, body []byte) (Command, error) {
	if len(bytes.TrimSpace(body)) > 0 {
		var req struct{}
		if err := strictJSON(body, &req); err != nil {
			return Command{}, err
		}
	}
	return Command{Type: CmdArchive, Archive: &ArchiveCmd{Experiment: r.PathValue("id")}}, nil
}

// submitAgain reads POST /v1/experiments?again=true: the file is submitted again on purpose.
func submitAgain(r *http.Request) (bool, error) {
	v := r.URL.Query().Get(api.QueryAgain)
	if v == "" {
		return false, nil
	}
	again, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: query %s=%q is not a boolean", api.ErrBadRequest, api.QueryAgain, v)
	}
	return again, nil
}
