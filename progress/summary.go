package progress

import (
	"slices"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

// rowState is where a phase stands.
type rowState string

const (
	rowPending rowState = "pending" // not open yet: its items do not exist, its totals are unknown
	rowRunning rowState = "running"
	rowDone    rowState = "done"
	rowFailed  rowState = "failed" // the experiment failed in this phase
	rowNotRun  rowState = "not run"
)

// episodeWindow is how far back (on the coordinator's clock, before the newest result) the
// episode rate looks.
const episodeWindow = 10 * time.Minute

// row is one phase's progress.
type row struct {
	Phase plan.Phase
	State rowState

	// Episodes counts the phase's episodes (created, plus random-light episodes the plan has
	// numbered but not created yet); Done, Failed and Leased count them by state.
	Episodes, EpisodesDone, EpisodesFailed, Leased int
	// Tasks counts the phase's training tasks; Reporting how many of them carry a Progress.
	Tasks, TasksDone, TasksFailed, Reporting int
	// Updates and UpdatesTotal sum the Progress of the reporting tasks (a done task counts as
	// its Total).
	Updates, UpdatesTotal int64

	// EpisodesPerMin is the episode rate from the done episodes' result times (0: unknown);
	// LastResult the newest of those times.
	EpisodesPerMin float64
	LastResult     time.Time
	// Took is a finished phase's length on the coordinator's clock: from its first item's
	// creation to its last result (0: unknown).
	Took time.Duration
}

// fraction is how much of the phase is done, in [0, 1].
func (r row) fraction() float64 {
	switch {
	case r.State == rowDone:
		return 1
	case r.Tasks > 0 && r.Reporting == r.Tasks && r.UpdatesTotal > 0:
		return float64(r.Updates) / float64(r.UpdatesTotal)
	case r.Tasks > 0:
		return float64(r.TasksDone+r.TasksFailed) / float64(r.Tasks)
	case r.Episodes > 0:
		return float64(r.EpisodesDone+r.EpisodesFailed) / float64(r.Episodes)
	}
	return 0
}

// remainingUpdates is the training updates still to do: what the reporting tasks lack, plus
// for every unfinished task that has not reported yet the mean total of those that have (the
// tasks of one experiment share its train section). ok is false before any task reported.
func (r row) remainingUpdates(v []api.Item) (n float64, ok bool) {
	if r.Tasks == 0 || r.Reporting == 0 {
		return 0, false
	}
	mean := float64(r.UpdatesTotal) / float64(r.Reporting)
	for _, it := range v {
		if it.Phase != r.Phase || it.Type != plan.TypeTrain || it.State == api.StateDone || it.State == api.StateFailed {
			continue
		}
		if p := it.Progress; p != nil {
			n += float64(p.Total - p.Done)
		} else {
			n += mean
		}
	}
	return n, true
}

// summary is an experiment's progress, phase by phase.
type summary struct {
	ID, Name string
	Status   plan.Status
	Phase    plan.Phase
	Reason   string
	Rows     []row
	// Failed counts the items that failed for good; LastFailure describes the last of them
	// (in creation order) with its last reason.
	Failed      int
	LastFailure string
}

// row returns the row of phase ph (nil when the experiment has no such phase).
func (s *summary) row(ph plan.Phase) *row {
	for i := range s.Rows {
		if s.Rows[i].Phase == ph {
			return &s.Rows[i]
		}
	}
	return nil
}

// phases are the phases the experiment goes through, in order.
func phases(e api.Experiment) []plan.Phase {
	ps := []plan.Phase{plan.PhaseCollect, plan.PhaseTrain, plan.PhaseEvaluate}
	if e.Spec.CrossEvaluate != nil {
		ps = append(ps, plan.PhaseCrossEvaluate)
	}
	if e.Spec.Transfer != nil {
		ps = append(ps, plan.PhaseTransfer)
	}
	return ps
}

// summarize reads an experiment view. It needs no history: rates that do (training updates)
// are the Display's.
func summarize(v api.ExperimentView) summary {
	e := v.Experiment
	s := summary{ID: e.ID, Name: e.Spec.Name, Status: e.Status, Phase: e.Phase, Reason: e.Reason}
	ps := phases(e)
	cur := slices.Index(ps, e.Phase)
	if e.Phase == plan.PhaseDone {
		cur = len(ps)
	}
	for i, ph := range ps {
		r := row{Phase: ph, State: rowPending}
		switch {
		case i < cur:
			r.State = rowDone
		case i == cur && e.Status == plan.StatusFailed:
			r.State = rowFailed
		case i == cur:
			r.State = rowRunning
		case e.Status == plan.StatusFailed:
			r.State = rowNotRun
		}
		s.Rows = append(s.Rows, r)
	}
	var first = map[plan.Phase]time.Time{}
	results := map[plan.Phase][]time.Time{}
	for _, it := range v.Items {
		if it.State == api.StateFailed {
			s.Failed++
			s.LastFailure = describeFailure(it)
		}
		r := s.row(it.Phase)
		if r == nil {
			continue
		}
		if t, ok := first[it.Phase]; !it.Created.IsZero() && (!ok || it.Created.Before(t)) {
			first[it.Phase] = it.Created
		}
		if it.State == api.StateDone && it.Result != nil && !it.Result.At.IsZero() {
			results[it.Phase] = append(results[it.Phase], it.Result.At)
		}
		if it.Type == plan.TypeTrain {
			r.Tasks++
			switch it.State {
			case api.StateDone:
				r.TasksDone++
			case api.StateFailed:
				r.TasksFailed++
			}
			if p := it.Progress; p != nil {
				r.Reporting++
				r.UpdatesTotal += p.Total
				if it.State == api.StateDone {
					r.Updates += p.Total
				} else {
					r.Updates += p.Done
				}
			}
			continue
		}
		r.Episodes++
		switch it.State {
		case api.StateDone:
			r.EpisodesDone++
		case api.StateFailed:
			r.EpisodesFailed++
		case api.StateLeased:
			r.Leased++
		}
	}
	// Random-light episodes are created when their line's agent episodes end, but the plan
	// numbers them when evaluate opens: they belong to the phase's total already.
	if r := s.row(plan.PhaseEvaluate); r != nil && e.Phase == plan.PhaseEvaluate && e.Status == plan.StatusRunning {
		for line := range e.RandomFirst {
			if _, made := e.RandomRates[line]; !made {
				r.Episodes += e.Spec.Evaluate.EpisodesPerCondition
			}
		}
	}
	for i := range s.Rows {
		r := &s.Rows[i]
		ts := results[r.Phase]
		if len(ts) == 0 {
			continue
		}
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		r.LastResult = ts[len(ts)-1]
		start := first[r.Phase]
		if r.State == rowDone && !start.IsZero() {
			r.Took = r.LastResult.Sub(start)
		}
		if r.Episodes > 0 && !start.IsZero() {
			r.EpisodesPerMin = episodeRate(ts, start)
		}
	}
	return s
}

// episodeRate is episodes per minute from the sorted result times ts of a phase that started
// at start: over the phase so far, or its last episodeWindow when it is longer; 0 when the
// times span no time.
func episodeRate(ts []time.Time, start time.Time) float64 {
	last := ts[len(ts)-1]
	span := last.Sub(start)
	if span <= 0 {
		return 0
	}
	n := len(ts)
	if span > episodeWindow {
		from := last.Add(-episodeWindow)
		n = len(ts) - slices.IndexFunc(ts, func(t time.Time) bool { return t.After(from) })
		span = episodeWindow
	}
	return float64(n) / span.Minutes()
}

// describeFailure is a failed item and its last reason.
func describeFailure(it api.Item) string {
	what := it.ID
	if it.Line != "" {
		what += " (" + string(it.Phase) + ", line " + it.Line + ")"
	}
	if n := len(it.Failures); n > 0 {
		return what + ": " + it.Failures[n-1]
	}
	return what
}
