package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

// Bounds on the work items a submission may add, and the check that a file is not submitted
// twice. The FSM refuses a submission over the hard bounds (api.MaxItemsPerExperiment,
// api.MaxLiveItems) before it makes a single item, so that no log entry, however old, can
// exhaust a node's memory when it is applied or replayed; the leader checks the same, and an
// operator's lower bounds (Config.MaxItemsPerExperiment, Config.MaxLiveItems), before it
// proposes.

// itemLimits bounds items per experiment and live items (of experiments not archived).
type itemLimits struct {
	perExperiment, live int64
}

// bound is the lower of an operator's bound (0: none) and the hard one.
func bound(operator, hard int64) int64 {
	if operator > 0 && operator < hard {
		return operator
	}
	return hard
}

// check refuses an experiment of n items when live items are live already.
func (l itemLimits) check(name string, n, live int64) error {
	if n > l.perExperiment {
		return fmt.Errorf("experiment %q has %d items, more than the limit of %d items per experiment", name, n, l.perExperiment)
	}
	if live+n > l.live {
		return fmt.Errorf("experiment %q has %d items and %d items are live: more than the limit of %d live items (archive finished experiments)", name, n, live, l.live)
	}
	return nil
}

// fileHash identifies an experiment file by its bytes.
func fileHash(file string) string {
	h := sha256.Sum256([]byte(file))
	return hex.EncodeToString(h[:])
}

// addLive counts a live experiment's items and indexes its file.
func (f *FSM) addLive(exp *api.Experiment) {
	f.live += plan.ItemCount(exp.Spec)
	h := fileHash(exp.File)
	ids := f.files[h]
	if i, found := slices.BinarySearch(ids, exp.ID); !found {
		f.files[h] = slices.Insert(ids, i, exp.ID)
	}
}

// removeLive undoes addLive (the experiment is archived).
func (f *FSM) removeLive(exp *api.Experiment) {
	f.live -= plan.ItemCount(exp.Spec)
	h := fileHash(exp.File)
	ids := f.files[h]
	if i, found := slices.BinarySearch(ids, exp.ID); found {
		ids = slices.Delete(ids, i, i+1)
	}
	if len(ids) == 0 {
		delete(f.files, h)
	} else {
		f.files[h] = ids
	}
}

// admitSubmit is the FSM's check of a parsed submission before it makes anything: a file
// already live (unless submitted again on purpose) and the hard item bounds.
func (f *FSM) admitSubmit(c *api.SubmitCmd, spec experiment.Spec) *api.Response {
	if ids := f.files[fileHash(c.Spec)]; len(ids) > 0 && !c.Again {
		return refuse(api.CodeExists, "experiment %q: this file is already submitted as %s (not archived); submit it again deliberately with --again (?%s=true)", spec.Name, ids[0], api.QueryAgain)
	}
	if err := f.limits.check(spec.Name, plan.ItemCount(spec), f.live); err != nil {
		return refuse(api.CodeBadRequest, "%v", err)
	}
	return nil
}

// LiveItems is the number of items (made or still to make) of the experiments not archived.
func (f *FSM) LiveItems() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.live
}

// admission is what the leader (and Local) checks before proposing a command, beyond the
// command's own validation: the bounds on items (the operator's, at most the hard ones) and
// the lines catalogue. The FSM does not check lines, so that nodes with other catalogues
// cannot diverge.
type admission struct {
	knownLine func(code string) bool
	limits    itemLimits
}

func newAdmission(known func(string) bool, maxPerExperiment, maxLive int64) admission {
	return admission{knownLine: known, limits: itemLimits{
		perExperiment: bound(maxPerExperiment, api.MaxItemsPerExperiment),
		live:          bound(maxLive, api.MaxLiveItems),
	}}
}

// check refuses (api.ErrBadRequest) a submission over the bounds, counting f's live items, and
// a worker of a line the catalogue does not know.
func (a admission) check(f *FSM, c Command) error {
	switch {
	case c.Type == CmdSubmit && c.Submit != nil:
		spec, err := experiment.Parse([]byte(c.Submit.Spec))
		if err != nil {
			return fmt.Errorf("%w: %w", api.ErrBadRequest, err)
		}
		if err := a.limits.check(spec.Name, plan.ItemCount(spec), f.LiveItems()); err != nil {
			return fmt.Errorf("%w: %w", api.ErrBadRequest, err)
		}
	case c.Type == CmdRegisterWorker && c.RegisterWorker != nil && a.knownLine != nil:
		if w := c.RegisterWorker; !a.knownLine(w.Line) {
			return fmt.Errorf("%w: worker %q: line %q is not in the lines catalogue", api.ErrBadRequest, w.ID, w.Line)
		}
	}
	return nil
}
