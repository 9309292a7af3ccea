// Package runner is the local run: the cluster in one process. It wires coordinator.Local (the
// coordinator's FSM and the experiment plan, applied in this process with a logical clock),
// in-memory stores (memstore), arenas_per_line fleet.Workers per line on simulated stations and
// one fleet.Learner, submits the experiment, waits for it to end and exports the run folder
// (results.Build through fleet.Export). It has no phase code of its own: the plan decides
// phases, items and seeds exactly as it does on a Raft cluster, so the same file and seed give
// the same results in both.
//
// Every episode runs through the same station and worker loop as a cluster worker's: frame ->
// pose (the tracker on rendered frames, or the simulator's own pose when rendering is off) ->
// observation -> action -> light.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/memstore"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/station"

	"github.com/optoloop/optoloop/coordinator/api"
)

// Config configures one run.
type Config struct {
	// Spec is the experiment; SpecYAML its file as submitted (copied into the run folder; when
	// nil, Spec is marshalled).
	Spec     experiment.Spec
	SpecYAML []byte
	// Dir is the run folder; it must not hold a report already.
	Dir string
	// Catalogue holds the lines the simulator knows.
	Catalogue *sim.Catalogue
	// NoRender runs the simulator without its camera: the worker then acts on the simulator's
	// true pose instead of the tracker's. Much faster; the default (false) renders and tracks.
	NoRender bool
	// Parallel is the number of episodes run at once over all arenas. Default
	// runtime.GOMAXPROCS(0). It changes only the speed, never the results.
	Parallel int
	// MaxAttempts is how many times an episode or a training task is tried before it fails for
	// good (as on a cluster). Default 3.
	MaxAttempts int
	// NewStation opens the station of one arena. Default station.New: a simulated arena of the
	// configured line. A caller may wrap stations (fault injection) or supply rig stations.
	NewStation func(station.Config) (fleet.Station, error)
	// Logger receives progress (default: discard).
	Logger *slog.Logger
	// TracerProvider and MeterProvider are passed to the local coordinator, the stations, the
	// workers and the learner: every episode is a trace as on a cluster (see package
	// telemetry). Nil: no spans, no metrics.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Progress, when set, is given the experiment with its items (a copy: for a progress
	// display) as the run's watch loop sees it change: on a change of phase or status at once,
	// otherwise at most every ProgressInterval; the local clock's tick is a change, so a quiet
	// run still calls it every second or two. The last call shows the experiment ended. It runs
	// on the watch loop's goroutine and must return quickly.
	Progress func(api.ExperimentView)
}

// localPoll is how often, in online mode, a waiting episode asks for its version and a
// training task for its episodes: in one process a question costs a copy, not a round trip.
const localPoll = 20 * time.Millisecond

// ProgressInterval is the shortest time between two calls of Config.Progress for the same
// phase: every call copies the experiment's items.
const ProgressInterval = 100 * time.Millisecond

// Validate reports the first unusable field.
func (c *Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("runner: no run folder")
	case c.Catalogue == nil:
		return errors.New("runner: no line catalogue")
	case c.Parallel < 0:
		return fmt.Errorf("runner: parallel %d must be >= 0", c.Parallel)
	case c.MaxAttempts < 0 || c.MaxAttempts > 1000:
		return fmt.Errorf("runner: max attempts %d must be within 0-1000", c.MaxAttempts)
	}
	if err := c.Spec.Validate(); err != nil {
		return err
	}
	return c.Spec.ValidateLines(c.known)
}

func (c *Config) known(code string) bool { _, err := c.Catalogue.Line(code); return err == nil }

// Runner runs one experiment.
type Runner struct {
	cfg  Config
	log  *slog.Logger
	yaml []byte
}

// New checks cfg and returns a runner.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.NewStation == nil {
		cfg.NewStation = func(c station.Config) (fleet.Station, error) { return station.New(c) }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	yaml := cfg.SpecYAML
	if yaml == nil {
		b, err := experiment.Marshal(cfg.Spec)
		if err != nil {
			return nil, err
		}
		yaml = b
	}
	return &Runner{cfg: cfg, log: log, yaml: yaml}, nil
}

// Run runs the experiment to its end and returns the report, also written to the run folder.
// An experiment that fails, or a run that is cancelled, leaves what was accepted until then in
// the folder: a report whose Finished is zero, naming the failed items, and the error.
func (r *Runner) Run(ctx context.Context) (*results.Report, error) {
	if _, err := os.Stat(filepath.Join(r.cfg.Dir, results.ReportFile)); err == nil {
		return nil, fmt.Errorf("runner: %s already holds a report; choose a new run folder", r.cfg.Dir)
	}
	lcfg := coordinator.DefaultLocalConfig()
	lcfg.MaxAttempts = r.cfg.MaxAttempts
	lcfg.KnownLine = r.cfg.known
	// The logical clock starts at the wall clock and follows it (see tick), so that the report's
	// times are real and a lease whose holder stops heartbeating expires as on a cluster.
	lcfg.Start = time.Now().UTC()
	lcfg.TracerProvider = r.cfg.TracerProvider
	local, err := coordinator.NewLocal(lcfg)
	if err != nil {
		return nil, err
	}
	stores := fleet.Stores{Replay: memstore.NewReplay(), Params: memstore.NewParams(), Tracks: memstore.NewTracks(), Checkpoints: memstore.NewCheckpoints()}
	// In one process a submit cannot hang; it goes through even when ctx is already done, so that
	// a cancelled run still leaves its (empty) partial report.
	id, err := local.Submit(context.WithoutCancel(ctx), r.yaml)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "optoloop-learner-")
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	defer os.RemoveAll(work)

	roles, err := r.roles(local, stores, work)
	if err != nil {
		return nil, err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errc := make(chan error, len(roles))
	for _, role := range roles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := role(rctx); err != nil {
				errc <- err
				stop()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick(rctx, local)
	}()
	waitErr := r.wait(rctx, local, id, stores)
	stop()
	wg.Wait()
	close(errc)
	runErr := errors.Join(<-errc, waitErr)
	if runErr == nil {
		runErr = ctx.Err()
	}

	// Export what was accepted, also after a failure or a cancel (a partial report).
	rep, err := fleet.Export(context.WithoutCancel(ctx), r.cfg.Dir, local, id, r.yaml, stores)
	if err != nil {
		return nil, errors.Join(runErr, err)
	}
	if runErr != nil {
		return rep, runErr
	}
	if rep.Status != plan.StatusDone {
		return rep, fmt.Errorf("runner: experiment %s %s: %s", id, rep.Status, rep.Reason)
	}
	return rep, nil
}

// roles builds arenas_per_line workers per line, each on its own simulated station, and one
// learner. Parallel bounds how many episodes run at once.
func (r *Runner) roles(local *coordinator.Local, st fleet.Stores, work string) (roles []func(context.Context) error, err error) {
	// An online episode waiting for its version gives its slot back meanwhile (fleet.Worker).
	gate := make(chan struct{}, r.cfg.Parallel)
	var opened []fleet.Station
	defer func() {
		if err != nil {
			for _, s := range opened {
				closeStation(s)
			}
		}
	}()
	for _, line := range r.cfg.Spec.Lines {
		for a := range r.cfg.Spec.ArenasPerLine {
			arena := fmt.Sprintf("sim-%s-%d", line, a)
			scfg := station.DefaultConfig()
			scfg.ArenaID = arena
			scfg.Catalogue = r.cfg.Catalogue
			scfg.Line = line
			scfg.NoRender = r.cfg.NoRender
			scfg.Logger = r.log
			scfg.TracerProvider, scfg.MeterProvider = r.cfg.TracerProvider, r.cfg.MeterProvider
			s, err := r.cfg.NewStation(scfg)
			if err != nil {
				return nil, fmt.Errorf("runner: arena %s: %w", arena, err)
			}
			opened = append(opened, s)
			wcfg := fleet.DefaultWorkerConfig()
			wcfg.ID, wcfg.ArenaID = "worker-"+arena, arena
			wcfg.Station, wcfg.Gate = s, gate
			wcfg.Broker = local
			wcfg.Replay, wcfg.Params, wcfg.Tracks = st.Replay, st.Params, st.Tracks
			wcfg.Logger = r.log
			wcfg.TracerProvider, wcfg.MeterProvider = r.cfg.TracerProvider, r.cfg.MeterProvider
			wcfg.VersionPoll = localPoll
			w, err := fleet.NewWorker(wcfg)
			if err != nil {
				return nil, err
			}
			roles = append(roles, func(ctx context.Context) error {
				defer closeStation(s)
				return w.Run(ctx)
			})
		}
	}
	// One learner trains the lines in turn, each task's members on every core: in simulation
	// that is the fastest (tasks side by side contend for the caches). Online, a line's episodes
	// wait, leased, until its task trains (fleet.WorkerConfig.VersionWait bounds that); a
	// cluster on real rigs wants a learner per line instead, so that no animal waits.
	lcfg := fleet.DefaultLearnerConfig()
	lcfg.ID = "learner-0"
	lcfg.Broker = local
	lcfg.Replay, lcfg.Params, lcfg.Checkpoints = st.Replay, st.Params, st.Checkpoints
	lcfg.WorkDir = work
	lcfg.OnlinePoll = localPoll
	lcfg.Logger = r.log
	lcfg.TracerProvider, lcfg.MeterProvider = r.cfg.TracerProvider, r.cfg.MeterProvider
	l, err := fleet.NewLearner(lcfg)
	if err != nil {
		return nil, err
	}
	return append(roles, l.Run), nil
}

// wait returns when the experiment has ended (done or failed) or ctx ends, logging each phase.
// As each phase ends it asks for a partial run folder (as the report of a running experiment
// reads it: not finished, the phase named), written by a goroutine of its own so that the
// phases are still seen as they pass; wait returns once that writer is done.
func (r *Runner) wait(ctx context.Context, local *coordinator.Local, id string, st fleet.Stores) error {
	exports := make(chan struct{}, 1)
	exported := make(chan error, 1)
	go func() {
		var err error
		for range exports {
			if err == nil {
				_, err = fleet.Export(ctx, r.cfg.Dir, local, id, r.yaml, st)
			}
		}
		exported <- err
	}()
	err := r.watch(ctx, local, id, exports)
	close(exports)
	return errors.Join(err, <-exported)
}

func (r *Runner) watch(ctx context.Context, local *coordinator.Local, id string, exports chan<- struct{}) error {
	var phase plan.Phase
	var t0 time.Time
	var shown struct {
		at   time.Time
		step string
	}
	for {
		changed := local.Changed()
		e, ok := experimentOf(local, id)
		if !ok {
			return fmt.Errorf("runner: experiment %s vanished", id)
		}
		if r.cfg.Progress != nil {
			if step := string(e.Phase) + " " + string(e.Status); step != shown.step || time.Since(shown.at) >= ProgressInterval {
				if v, ok := local.FSM().ExperimentView(id); ok {
					r.cfg.Progress(v)
					shown.at, shown.step = time.Now(), step
				}
			}
		}
		if e.Phase != phase {
			if phase != "" {
				r.log.Info("phase done", "phase", phase, "seconds", time.Since(t0).Seconds())
				if e.Running() {
					select {
					case exports <- struct{}{}:
					default: // one is pending: it will see this phase too
					}
				}
			}
			phase, t0 = e.Phase, time.Now()
			r.log.Info("phase start", "phase", phase, "experiment", id, "items", e.NextItem)
		}
		if !e.Running() {
			r.log.Info("experiment ended", "experiment", id, "status", e.Status, "reason", e.Reason)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// experimentOf reads one experiment without copying its items.
func experimentOf(local *coordinator.Local, id string) (api.Experiment, bool) {
	for _, e := range local.FSM().Experiments() {
		if e.ID == id {
			return e, true
		}
	}
	return api.Experiment{}, false
}

// closeStation closes a station that can be closed (station.Station closes its arena).
func closeStation(s fleet.Station) {
	if c, ok := s.(io.Closer); ok {
		_ = c.Close()
	}
}

// tick moves the local clock to the wall clock every second until ctx ends.
func tick(ctx context.Context, local *coordinator.Local) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if d := now.Sub(local.Now()); d > 0 {
				_ = local.Advance(d)
			}
		}
	}
}
