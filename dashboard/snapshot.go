package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/live"
)

// Snapshot is what the page shows, built by the shared poll loop: every page watching gets the
// same one (GET /ui/api/snapshot, and one "snapshot" event per build on GET /ui/events).
type Snapshot struct {
	// Seq counts the server's snapshots from 1; At is when this one was built.
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
	// Cluster is the coordinator as the answering node sees it.
	Cluster Cluster `json:"cluster"`
	// Arenas merges the registered workers with the live tiles, ordered by arena id.
	Arenas []Arena `json:"arenas"`
	// LiveError says why the tiles could not be read (the arenas keep their last tiles,
	// marked stale).
	LiveError string `json:"live_error,omitempty"`
	// Experiments lists every running experiment and the newest finished ones, newest first.
	Experiments []Experiment `json:"experiments"`
	// Learners are the registered learners; Tasks the training tasks of the experiments shown,
	// with their learning curves.
	Learners []Learner `json:"learners"`
	Tasks    []Task    `json:"tasks"`
}

// Cluster is the coordinator's state.
type Cluster struct {
	// Reachable is false when every coordinator call of this snapshot failed (Error says the
	// last reason); Stale is set when any failed, and what they would have returned is the
	// last data read (as of LastOK).
	Reachable bool      `json:"reachable"`
	Stale     bool      `json:"stale"`
	Error     string    `json:"error,omitempty"`
	LastOK    time.Time `json:"last_ok,omitzero"`
	// AnsweredBy is the node that answered the status call; Leader the leader it knows.
	AnsweredBy   string `json:"answered_by,omitempty"`
	Leader       string `json:"leader,omitempty"`
	AppliedIndex uint64 `json:"applied_index"`
	Nodes        []Node `json:"nodes"`
}

// Node is one coordinator node.
type Node struct {
	ID           string `json:"id"`
	State        string `json:"state,omitempty"`
	Voter        bool   `json:"voter"`
	Reachable    bool   `json:"reachable"`
	Leader       bool   `json:"leader"`
	AppliedIndex uint64 `json:"applied_index"`
	Error        string `json:"error,omitempty"`
}

// Arena states the dashboard adds to the live.State constants.
const (
	// StateLost: the coordinator has not heard from the worker for Config.LostAfter.
	StateLost = "lost"
	// StateUnregistered: a live tile whose worker the coordinator does not know.
	StateUnregistered = "unregistered"
)

// Arena is one arena: its worker as the coordinator knows it and its live tile.
type Arena struct {
	// ID is the arena id (the tile's key, GET /ui/thumb/{ID}); Worker the coordinator's
	// worker id (what a drain names).
	ID     string `json:"id"`
	Worker string `json:"worker,omitempty"`
	Line   string `json:"line,omitempty"`
	// State is what the badge says: the tile's state (live.State*), or without a tile idle or
	// leased as the coordinator says; StateLost overrides both. TileState is the tile's own.
	State     string `json:"state"`
	TileState string `json:"tile_state,omitempty"`
	// Registered: the coordinator knows the worker. Stale: there is no live tile (it expired,
	// or the worker never published one). Lost: no heartbeat for LostAfter. Draining: an
	// operator drained it.
	Registered bool `json:"registered"`
	Stale      bool `json:"stale"`
	Lost       bool `json:"lost"`
	Draining   bool `json:"draining"`
	// Holding is the episode the coordinator says the worker holds.
	Holding string `json:"holding,omitempty"`
	// The tile's episode and numbers (zero when stale).
	Experiment    string    `json:"experiment,omitempty"`
	Episode       string    `json:"episode,omitempty"`
	Kind          string    `json:"kind,omitempty"`
	Step          int       `json:"step"`
	Steps         int       `json:"steps"`
	DistanceCM    Num       `json:"distance_cm"`
	Tracked       bool      `json:"tracked"`
	Confidence    Num       `json:"confidence"`
	Light         bool      `json:"light"`
	LatencyMS     Num       `json:"latency_ms"`
	PolicyVersion uint64    `json:"policy_version,omitempty"`
	Error         string    `json:"error,omitempty"`
	Seq           uint64    `json:"seq"`
	TileAt        time.Time `json:"tile_at,omitzero"`
	LastSeen      time.Time `json:"last_seen,omitzero"`
}

// Experiment is one experiment with its progress.
type Experiment struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Status      string    `json:"status"`
	Phase       string    `json:"phase"`
	Reason      string    `json:"reason,omitempty"`
	SubmittedAt time.Time `json:"submitted_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Phases, Failures and Lines are the coordinator's progress (api.ExperimentProgress);
	// ProgressError says why it could not be read (the last one read is kept).
	Phases        []api.PhaseProgress `json:"phases"`
	Failures      []api.ItemFailure   `json:"failures"`
	Lines         []api.LineProgress  `json:"lines"`
	ProgressError string              `json:"progress_error,omitempty"`
	// Report is the report's URL once the experiment is done; PartialReport the URL of a
	// report of what exists while it runs or after it failed.
	Report        string `json:"report,omitempty"`
	PartialReport string `json:"partial_report,omitempty"`
}

// Learner is a registered learner.
type Learner struct {
	ID       string    `json:"id"`
	LastSeen time.Time `json:"last_seen"`
	Lost     bool      `json:"lost"`
}

// Task is one training task with its learning curve.
type Task struct {
	ID         string `json:"id"`
	Experiment string `json:"experiment"`
	Line       string `json:"line"`
	// State, Holder, Attempts and Updates are the coordinator's item (empty when only the
	// curve is known); FinalVersion the version a done task reported.
	State        string        `json:"state,omitempty"`
	Holder       string        `json:"holder,omitempty"`
	Attempts     int           `json:"attempts"`
	Updates      *api.Progress `json:"updates,omitempty"`
	FinalVersion uint64        `json:"final_version,omitempty"`
	// Versions are the parameter versions published, as the curve's points name them (and
	// the final one), ascending.
	Versions []uint64 `json:"versions"`
	// Curve is the learning curve downsampled to at most Config.CurvePoints points; Points is
	// how many the store holds.
	Curve  Curve `json:"curve"`
	Points int   `json:"points"`
}

// Curve is a learning curve in columns: point i is (Update[i], Critic[i], ...).
type Curve struct {
	Update  []int64  `json:"update"`
	Critic  []Num    `json:"critic_loss"`
	Entropy []Num    `json:"entropy"`
	Alpha   []Num    `json:"alpha"`
	Version []uint64 `json:"version"`
}

// Num is a float64 that encodes a NaN or an infinity as JSON null (what a worker or learner
// publishes is not trusted to be finite).
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler (null is NaN).
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}

// poller builds snapshots. It keeps the last data of each part (served, marked stale, while
// that part cannot be read) and caches what no longer changes: the progress and curves of
// finished experiments, the training tasks' ids, finished tasks. One build runs at a time
// (Server.build holds buildMu).
type poller struct {
	cfg Config
	seq uint64

	status   api.Status
	workers  []api.Worker
	exps     []api.Experiment
	learners []api.Learner
	tiles    []live.Tile
	lastOK   time.Time
	everOK   bool

	progress map[string]progressEntry
	tasks    map[string][]taskRef // experiment -> its training tasks, once known
	items    map[string]api.Item  // task id -> the last item read
	curves   map[string]curvesEntry
}

type progressEntry struct {
	updated time.Time
	p       api.ExperimentProgress
	err     string
}

type taskRef struct{ id, line string }

type curvesEntry struct {
	final  bool // read after the experiment finished: it will not change
	curves []live.Curve
}

func newPoller(cfg Config) *poller {
	return &poller{cfg: cfg, progress: map[string]progressEntry{}, tasks: map[string][]taskRef{},
		items: map[string]api.Item{}, curves: map[string]curvesEntry{}}
}

// timeout bounds one part of a build: long enough for the client to fail over between nodes,
// short enough that the arenas' tiles keep moving while the coordinator is unreachable.
func (p *poller) timeout() time.Duration {
	return min(max(4*p.cfg.Poll, 3*time.Second), 30*time.Second)
}

// parallel runs fs at most limit at a time and waits for them.
func parallel(limit int, fs []func()) {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, f := range fs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f()
		})
	}
	wg.Wait()
}

// build reads the cluster and returns the next snapshot.
func (p *poller) build(ctx context.Context) *Snapshot {
	cctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	cl := p.cfg.Coordinator
	var (
		status                            api.Status
		workers                           []api.Worker
		exps                              []api.Experiment
		learners                          []api.Learner
		tiles                             []live.Tile
		errStatus, errW, errE, errL, errT error
	)
	parallel(5, []func(){
		func() { status, errStatus = cl.Status(cctx) },
		func() { workers, errW = cl.Workers(cctx) },
		func() { exps, errE = cl.Experiments(cctx) },
		func() { learners, errL = cl.Learners(cctx) },
		func() { tiles, errT = p.cfg.Live.Tiles(cctx) },
	})
	now := p.cfg.Now()
	snap := &Snapshot{At: now}
	var last error
	ok := 0
	for _, part := range []struct {
		err  error
		keep func()
	}{
		{errStatus, func() { p.status = status }},
		{errW, func() { p.workers = workers }},
		{errE, func() { p.exps = exps }},
		{errL, func() { p.learners = learners }},
	} {
		if part.err != nil {
			last = part.err
			continue
		}
		part.keep()
		ok++
	}
	if ok == 4 {
		p.lastOK, p.everOK = now, true
	}
	snap.Cluster = p.cluster(ok > 0, last)
	if errT != nil {
		snap.LiveError = errT.Error()
		p.cfg.Logger.Debug("dashboard: tiles", "err", errT)
	} else {
		p.tiles = tiles
	}
	// With the coordinator's data stale, workers are aged as of the last time it answered:
	// not hearing from the coordinator is not a worker's fault.
	aged := now
	if ok < 4 && p.everOK {
		aged = p.lastOK
	}
	snap.Arenas = p.arenas(aged, errT != nil)
	snap.Learners = p.learnerViews(aged)
	shown := p.shownExperiments()
	p.readProgress(cctx, shown)
	p.readTasks(cctx, shown)
	p.readCurves(cctx, shown)
	p.prune(shown)
	for _, e := range shown {
		snap.Experiments = append(snap.Experiments, p.experimentView(e))
	}
	snap.Tasks = p.taskViews(shown)
	p.seq++
	snap.Seq = p.seq
	return snap
}

func (p *poller) cluster(reachable bool, last error) Cluster {
	c := Cluster{Reachable: reachable, Stale: last != nil, LastOK: p.lastOK, AnsweredBy: p.status.AnsweredBy,
		Leader: p.status.Leader.ID, AppliedIndex: p.status.AppliedIndex, Nodes: []Node{}}
	if last != nil {
		c.Error = last.Error()
	}
	for _, n := range p.status.Nodes {
		c.Nodes = append(c.Nodes, Node{ID: n.ID, State: n.State, Voter: n.Voter, Reachable: n.Reachable,
			Leader: n.ID == p.status.Leader.ID, AppliedIndex: n.AppliedIndex, Error: n.Error})
	}
	return c
}

// arenas merges the registered workers with the tiles: a tile belongs to the worker whose arena
// id, or else worker id, it names.
func (p *poller) arenas(aged time.Time, tilesStale bool) []Arena {
	byArena := make(map[string]int, len(p.tiles))
	for i, t := range p.tiles {
		byArena[t.Arena] = i
	}
	used := make([]bool, len(p.tiles))
	out := make([]Arena, 0, max(len(p.workers), len(p.tiles)))
	for _, w := range p.workers {
		id := cmp.Or(w.ArenaID, w.ID)
		a := Arena{ID: id, Worker: w.ID, Line: w.Line, Registered: true, Draining: w.Draining, Holding: w.Holding,
			LastSeen: w.LastSeen, Stale: true, State: live.StateIdle}
		if w.Holding != "" {
			a.State = live.StateLeased
		}
		i, found := byArena[id]
		if !found {
			i, found = byArena[w.ID]
		}
		if found && !used[i] {
			used[i] = true
			a.fill(p.tiles[i])
			a.Stale = tilesStale
		}
		if w.Draining && a.State == live.StateIdle {
			a.State = live.StateDraining
		}
		if !w.LastSeen.IsZero() && aged.Sub(w.LastSeen) > p.cfg.LostAfter {
			a.Lost, a.State = true, StateLost
		}
		out = append(out, a)
	}
	for i, t := range p.tiles {
		if used[i] {
			continue
		}
		a := Arena{ID: t.Arena, Worker: t.Worker, Line: t.Line, Stale: tilesStale}
		a.fill(t)
		a.State = StateUnregistered
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Arena) int { return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Worker, b.Worker)) })
	return out
}

func (a *Arena) fill(t live.Tile) {
	a.TileState, a.State = t.State, t.State
	if a.Line == "" {
		a.Line = t.Line
	}
	a.Experiment, a.Episode, a.Kind = t.Experiment, t.Episode, t.Kind
	a.Step, a.Steps = t.Step, t.Steps
	a.DistanceCM, a.Confidence, a.Light, a.LatencyMS = Num(t.DistanceCM), Num(t.Confidence), t.Light, Num(t.LatencyMS)
	a.Tracked = t.Tracked
	a.PolicyVersion, a.Error, a.Seq, a.TileAt = t.PolicyVersion, t.Error, t.Seq, t.At
}

func (p *poller) learnerViews(aged time.Time) []Learner {
	out := make([]Learner, 0, len(p.learners))
	for _, l := range p.learners {
		out = append(out, Learner{ID: l.ID, LastSeen: l.LastSeen, Lost: !l.LastSeen.IsZero() && aged.Sub(l.LastSeen) > p.cfg.LostAfter})
	}
	slices.SortFunc(out, func(a, b Learner) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// shownExperiments is every running experiment and the newest FinishedExperiments others,
// newest first.
func (p *poller) shownExperiments() []api.Experiment {
	exps := slices.Clone(p.exps)
	slices.SortFunc(exps, func(a, b api.Experiment) int {
		return cmp.Or(b.SubmittedAt.Compare(a.SubmittedAt), cmp.Compare(b.ID, a.ID))
	})
	out := exps[:0]
	finished := 0
	for _, e := range exps {
		if e.Status != plan.StatusRunning {
			if finished >= p.cfg.FinishedExperiments {
				continue
			}
			finished++
		}
		out = append(out, e)
	}
	return out
}

// readProgress reads the progress of each experiment that changed since it was last read.
func (p *poller) readProgress(ctx context.Context, exps []api.Experiment) {
	var fs []func()
	var mu sync.Mutex
	for _, e := range exps {
		old, ok := p.progress[e.ID]
		if ok && old.err == "" && old.updated.Equal(e.UpdatedAt) && e.Status != plan.StatusRunning {
			continue
		}
		fs = append(fs, func() {
			pr, err := p.cfg.Coordinator.Progress(ctx, e.ID)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				old.err = err.Error()
				p.progress[e.ID] = old
				return
			}
			p.progress[e.ID] = progressEntry{updated: e.UpdatedAt, p: pr}
		})
	}
	parallel(4, fs)
}

// readTasks learns each experiment's training tasks once they exist (from its items, read once
// when it has left the collect phase) and reads the tasks that are not finished.
func (p *poller) readTasks(ctx context.Context, exps []api.Experiment) {
	var mu sync.Mutex
	var fs []func()
	for _, e := range exps {
		if _, ok := p.tasks[e.ID]; ok || (e.Phase == plan.PhaseCollect && e.Status == plan.StatusRunning) || len(e.Spec.Lines) == 0 {
			continue
		}
		fs = append(fs, func() {
			v, err := p.cfg.Coordinator.Experiment(ctx, e.ID)
			if err != nil {
				p.cfg.Logger.Debug("dashboard: experiment items", "experiment", e.ID, "err", err)
				return
			}
			var refs []taskRef
			mu.Lock()
			defer mu.Unlock()
			for _, it := range v.Items {
				if it.Type == plan.TypeTrain {
					refs = append(refs, taskRef{id: it.ID, line: it.Line})
					p.items[it.ID] = it
				}
			}
			// An experiment in its train phase that shows no task yet is asked again later.
			if len(refs) > 0 || e.Status != plan.StatusRunning || e.Phase != plan.PhaseTrain {
				p.tasks[e.ID] = refs
			}
		})
	}
	parallel(4, fs)
	fs = fs[:0]
	for _, e := range exps {
		for _, r := range p.tasks[e.ID] {
			if it, ok := p.items[r.id]; ok && (it.State == api.StateDone || it.State == api.StateFailed) {
				continue
			}
			fs = append(fs, func() {
				it, err := p.cfg.Coordinator.Item(ctx, r.id)
				if err != nil {
					p.cfg.Logger.Debug("dashboard: task", "task", r.id, "err", err)
					return
				}
				mu.Lock()
				p.items[r.id] = it
				mu.Unlock()
			})
		}
	}
	parallel(4, fs)
}

// readCurves reads the curves of running experiments, and those of a finished one once.
func (p *poller) readCurves(ctx context.Context, exps []api.Experiment) {
	var mu sync.Mutex
	var fs []func()
	for _, e := range exps {
		if c, ok := p.curves[e.ID]; ok && c.final {
			continue
		}
		fs = append(fs, func() {
			cs, err := p.cfg.Live.Curves(ctx, e.ID)
			if err != nil {
				if !errors.Is(err, live.ErrNotFound) {
					p.cfg.Logger.Debug("dashboard: curves", "experiment", e.ID, "err", err)
					return
				}
				cs = nil
			}
			mu.Lock()
			p.curves[e.ID] = curvesEntry{final: e.Status != plan.StatusRunning, curves: cs}
			mu.Unlock()
		})
	}
	parallel(4, fs)
}

// prune forgets the caches of experiments no longer shown.
func (p *poller) prune(shown []api.Experiment) {
	keep := make(map[string]bool, len(shown))
	for _, e := range shown {
		keep[e.ID] = true
	}
	for id := range p.progress {
		if !keep[id] {
			delete(p.progress, id)
		}
	}
	for id := range p.curves {
		if !keep[id] {
			delete(p.curves, id)
		}
	}
	for id, refs := range p.tasks {
		if !keep[id] {
			for _, r := range refs {
				delete(p.items, r.id)
			}
			delete(p.tasks, id)
		}
	}
}

func (p *poller) experimentView(e api.Experiment) Experiment {
	v := Experiment{ID: e.ID, Name: e.Spec.Name, Status: string(e.Status), Phase: string(e.Phase), Reason: e.Reason,
		SubmittedAt: e.SubmittedAt, UpdatedAt: e.UpdatedAt, Phases: []api.PhaseProgress{}, Failures: []api.ItemFailure{}, Lines: []api.LineProgress{}}
	if pe, ok := p.progress[e.ID]; ok {
		v.ProgressError = pe.err
		if pe.p.ID != "" {
			if pe.p.Phases != nil {
				v.Phases = pe.p.Phases
			}
			if pe.p.Failures != nil {
				v.Failures = pe.p.Failures
			}
			if pe.p.Lines != nil {
				v.Lines = pe.p.Lines
			}
		}
	}
	switch e.Status {
	case plan.StatusDone:
		v.Report = reportURL(e.ID)
	default:
		v.PartialReport = reportURL(e.ID)
	}
	return v
}

// taskViews joins the tasks the coordinator holds with the curves the learners published.
func (p *poller) taskViews(exps []api.Experiment) []Task {
	out := []Task{}
	for _, e := range exps {
		byTask := map[string]live.Curve{}
		for _, c := range p.curves[e.ID].curves {
			byTask[c.Task] = c
		}
		seen := map[string]bool{}
		for _, r := range p.tasks[e.ID] {
			seen[r.id] = true
			t := Task{ID: r.id, Experiment: e.ID, Line: r.line}
			if it, ok := p.items[r.id]; ok {
				t.State, t.Holder, t.Attempts, t.Updates = string(it.State), it.Holder, it.Attempts, it.Progress
				if it.Result != nil {
					t.FinalVersion = it.Result.PolicyVersion
				}
				// A done task did all its updates, whatever its last heartbeat said (a short task
				// may report before a heartbeat carries its progress).
				if it.State == api.StateDone && it.Progress != nil {
					t.Updates = &api.Progress{Done: it.Progress.Total, Total: it.Progress.Total}
				}
			}
			c, ok := byTask[r.id]
			if ok && t.Line == "" {
				t.Line = c.Line
			}
			p.fillCurve(&t, c.Points)
			out = append(out, t)
		}
		// A curve whose task the coordinator has not named yet still shows.
		for _, c := range p.curves[e.ID].curves {
			if seen[c.Task] {
				continue
			}
			t := Task{ID: c.Task, Experiment: e.ID, Line: c.Line}
			p.fillCurve(&t, c.Points)
			out = append(out, t)
		}
	}
	return out
}

func (p *poller) fillCurve(t *Task, pts []live.CurvePoint) {
	t.Points = len(pts)
	versions := map[uint64]bool{}
	for _, pt := range pts {
		if pt.Version > 0 {
			versions[pt.Version] = true
		}
	}
	if t.FinalVersion > 0 {
		versions[t.FinalVersion] = true
	}
	t.Versions = slices.Sorted(func(yield func(uint64) bool) {
		for v := range versions {
			if !yield(v) {
				return
			}
		}
	})
	if t.Versions == nil {
		t.Versions = []uint64{}
	}
	idx := downsample(len(pts), p.cfg.CurvePoints)
	t.Curve = Curve{Update: make([]int64, len(idx)), Critic: make([]Num, len(idx)), Entropy: make([]Num, len(idx)),
		Alpha: make([]Num, len(idx)), Version: make([]uint64, len(idx))}
	for j, i := range idx {
		pt := pts[i]
		t.Curve.Update[j], t.Curve.Critic[j], t.Curve.Entropy[j], t.Curve.Alpha[j], t.Curve.Version[j] =
			pt.Update, Num(pt.Critic), Num(pt.Entropy), Num(pt.Alpha), pt.Version
	}
}

// downsample returns at most limit indices of 0..n-1, evenly spaced, the first and the last
// among them (limit >= 2).
func downsample(n, limit int) []int {
	if n <= limit {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	idx := make([]int, limit)
	for j := range idx {
		idx[j] = int(math.Round(float64(j) * float64(n-1) / float64(limit-1)))
	}
	return idx
}
