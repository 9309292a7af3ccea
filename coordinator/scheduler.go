package coordinator

import (
	"strconv"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

// The FSM steps each experiment's plan (package experiment/plan, the protocol as a pure state
// machine): submit starts it, and every item that reaches done or failed is handed back to it;
// the items it opens in reply are queued. The FSM decides leases, attempts and expiry; the plan
// alone decides phases, items and seeds.

func (f *FSM) submit(c *api.SubmitCmd) *api.Response {
	spec, err := experiment.Parse([]byte(c.Spec))
	if err != nil {
		return refuse(api.CodeBadRequest, "%v", err)
	}
	if r := f.admitSubmit(c, spec); r != nil {
		return r
	}
	st := f.st
	st.NextExperiment++
	p, items := plan.Start(spec)
	exp := &api.Experiment{
		ID:          spec.Name + "-" + strconv.FormatUint(st.NextExperiment, 10),
		Plan:        *p,
		File:        c.Spec,
		MaxAttempts: c.MaxAttempts,
		SubmittedAt: st.Now,
		UpdatedAt:   st.Now,
	}
	st.Experiments[exp.ID] = exp
	f.addLive(exp)
	f.add(exp, items)
	return &api.Response{ExperimentID: exp.ID}
}

// add queues the items the plan opened.
func (f *FSM) add(exp *api.Experiment, items []plan.Item) {
	for _, pi := range items {
		it := &api.Item{
			ID:           exp.ID + "." + strconv.Itoa(pi.N),
			ExperimentID: exp.ID,
			Item:         pi,
			Created:      f.st.Now,
		}
		f.st.Items[it.ID] = it
		exp.Items = append(exp.Items, it.ID)
		f.enqueue(it)
	}
}

// terminal hands an item that reached done or failed to its experiment's plan and queues what
// the plan opens; when the plan fails the experiment, its open items end.
func (f *FSM) terminal(it *api.Item) {
	exp := f.st.Experiments[it.ExperimentID]
	if exp == nil || !exp.Running() {
		return
	}
	exp.UpdatedAt = f.st.Now
	var items []plan.Item
	if it.State == api.StateDone {
		r := plan.Result{}
		if it.Result != nil {
			r.Outcome, r.PolicyVersion = it.Result.Outcome, it.Result.PolicyVersion
		}
		items = exp.Done(it.Item, r)
	} else {
		reason := ""
		if n := len(it.Failures); n > 0 {
			reason = it.Failures[n-1]
		}
		items = exp.Failed(it.Item, reason)
	}
	f.add(exp, items)
	if exp.Status == plan.StatusFailed {
		f.endItems(exp)
	}
}

// endItems fails every pending or leased item of an experiment the plan failed.
func (f *FSM) endItems(exp *api.Experiment) {
	for _, id := range exp.Items {
		it := f.st.Items[id]
		if it.State == api.StatePending || it.State == api.StateLeased {
			f.endLease(it)
			it.State = api.StateFailed
			it.Failures = append(it.Failures, "experiment failed: "+exp.Reason)
		}
	}
}

// cancel fails a running experiment for the operator's reason and ends its open items: pending
// ones at once, leased ones too (their holders learn it at their next heartbeat or report,
// which are refused as stale, and stop).
func (f *FSM) cancel(c *CancelCmd) *api.Response {
	exp := f.st.Experiments[c.Experiment]
	if a := f.st.Archived[c.Experiment]; a != nil {
		return refuse(api.CodeBadRequest, "experiment %q is archived (%s), not running", c.Experiment, a.Status)
	}
	if exp == nil {
		return refuse(api.CodeNotFound, "experiment %q", c.Experiment)
	}
	if !exp.Running() {
		return refuse(api.CodeBadRequest, "experiment %q is %s, not running", c.Experiment, exp.Status)
	}
	reason := "cancelled"
	if c.Reason != "" {
		reason = "cancelled: " + c.Reason
	}
	exp.Cancel(reason)
	exp.UpdatedAt = f.st.Now
	f.endItems(exp)
	return &api.Response{ExperimentID: exp.ID}
}
