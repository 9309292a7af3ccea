package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/live"
	"github.com/optoloop/optoloop/station"
	"github.com/optoloop/optoloop/telemetry"
)

// Station is one arena ready for episodes (station.Station).
type Station interface {
	Line() string
	Calibration() arenas.Calibration
	Run(ctx context.Context, e station.Episode) (station.Result, error)
}

// ErrArenaFailing is returned (wrapped) by a worker whose station failed MaxArenaFailures
// episodes in a row: the arena needs a person, and its line's episodes go to other arenas.
var ErrArenaFailing = errors.New("arena failing")

// ErrStaleParams is wrapped in the failure reason of an episode whose parameters are missing or
// older than its spec allows.
var ErrStaleParams = errors.New("parameters unavailable or too stale")

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// ID is the worker's holder id with the coordinator; ArenaID names its arena. Required.
	ID      string
	ArenaID string
	// Station runs the episodes; its line is the only line the worker leases. Required.
	Station Station
	// Broker, Replay, Params and Tracks are the coordinator and the stores. Required.
	Broker Broker
	Replay Replay
	Params Params
	Tracks Tracks
	// LeaseTTL is the lease length asked for; the worker heartbeats every LeaseTTL/3.
	// Default 30 s.
	LeaseTTL time.Duration
	// Poll is how long the worker waits before asking again when there is no work and the
	// broker is not a Notifier. Default 1 s.
	Poll time.Duration
	// ReportAttempts bounds the retries of a report whose outcome is unknown (the broker was
	// unavailable); ReportBackoff is the first wait between them, doubling to at most 5 s.
	// Defaults 20 and 100 ms.
	ReportAttempts int
	ReportBackoff  time.Duration
	// ReplayBuffer bounds the frames of the running episode that may wait for the replay
	// (its store unavailable) before the episode fails. Default 1800 (10 minutes at 3 Hz).
	ReplayBuffer int
	// StoreRetry is how long a write to a store that is unavailable (ErrUnavailable) is
	// retried once the episode has ended: the replay's last chunks, the track, and a read of
	// parameters. Default 2 minutes.
	StoreRetry time.Duration
	// Gate, when set, bounds the episodes that run at once over every worker sharing it (the
	// arenas of one process on a machine with fewer cores than arenas): a worker takes a slot
	// before it leases and gives it back after the episode, so it never holds a lease it
	// cannot run yet. It changes only the speed, never the results.
	Gate chan struct{}
	// MaxArenaFailures is how many episodes in a row the station may fail before the worker
	// stops with ErrArenaFailing (its arena is broken). Default 3.
	MaxArenaFailures int
	// Archs are the architectures the ensembles may have (each ensemble's own says which
	// observation the worker builds for it). Default policy.KnownArchs().
	Archs []policy.Arch
	// Logger (default: discard).
	Logger *slog.Logger
	// TracerProvider traces every attempt: a worker.episode span in the item's trace (see
	// package telemetry) with worker.params, replay.append (one per chunk, whose traceparent
	// the chunk carries) and worker.report children, and the station's spans. Nil: none.
	TracerProvider trace.TracerProvider
	// MeterProvider receives optoloop_worker_episodes_total and the replay's chunk write
	// time and buffer depth. Nil: none.
	MeterProvider metric.MeterProvider
	// Live, when set, receives the arena's live tile while Run or Serve runs (Step alone
	// publishes nothing): its state and the numbers of the episode it runs (live.Tile, under
	// the worker's ID) with a JPEG thumbnail of its latest frame, the tracked midline, head,
	// target and light drawn (without rendering, the plate drawn from the calibration). At
	// most one tile per TileEvery; an idle arena's tile is refreshed every TileTTL/3. The
	// closed loop never waits for a tile: a tile the store does not take within TileTTL/3 is
	// lost, and never fails nor slows an episode. Nil: nothing is published, nothing costs.
	Live live.Publisher
	// Process names the process that runs the worker in its tiles (default: ID).
	Process string
	// TileEvery is the least time between two tiles (default 500 ms: 2 a second); TileTTL how
	// long a tile lives in the store (default 5 s; at least 3 TileEvery); TileWidth bounds a
	// thumbnail's width in pixels (default 320, within 64-1024; the frame is subsampled by
	// the smallest whole factor that fits). Used with Live.
	TileEvery time.Duration
	TileTTL   time.Duration
	TileWidth int
	// VersionWait bounds how long an online or checkpoint episode waits for the parameter
	// version it needs (online: at least its named version minus its max staleness;
	// checkpoint: exactly the named one) before its attempt fails, so that an arena never
	// waits for good on a version whose data is queued behind it (an online episode retried
	// after a failure). Default 30 minutes. VersionPoll is how often it asks meanwhile
	// (default 250 ms).
	VersionWait time.Duration
	VersionPoll time.Duration
}

// DefaultWorkerConfig returns the defaults; the required fields must still be set.
func DefaultWorkerConfig() WorkerConfig {
	return WorkerConfig{LeaseTTL: 30 * time.Second, Poll: time.Second, ReportAttempts: 20, ReportBackoff: 100 * time.Millisecond,
		ReplayBuffer: 1800, StoreRetry: 2 * time.Minute, MaxArenaFailures: 3, Archs: policy.KnownArchs(),
		TileEvery: 500 * time.Millisecond, TileTTL: 5 * time.Second, TileWidth: 320,
		VersionWait: 30 * time.Minute, VersionPoll: 250 * time.Millisecond}
}

// Validate reports the first unusable field.
func (c WorkerConfig) Validate() error {
	switch {
	case c.ID == "" || c.ArenaID == "":
		return errors.New("fleet: worker id and arena id are required")
	case c.Station == nil || c.Broker == nil || c.Replay == nil || c.Params == nil || c.Tracks == nil:
		return errors.New("fleet: worker needs a station, a broker, a replay, params and tracks")
	case c.LeaseTTL < 3*time.Millisecond || c.LeaseTTL > 24*time.Hour:
		return fmt.Errorf("fleet: worker lease ttl %v must be within 3ms-24h", c.LeaseTTL)
	case c.Poll <= 0:
		return fmt.Errorf("fleet: worker poll %v must be positive", c.Poll)
	case c.ReportAttempts < 1 || c.ReportBackoff <= 0:
		return errors.New("fleet: worker report attempts and backoff must be positive")
	case c.ReplayBuffer < 1 || c.StoreRetry <= 0 || c.MaxArenaFailures < 1:
		return errors.New("fleet: worker replay buffer, store retry and max arena failures must be positive")
	case c.VersionWait <= 0 || c.VersionPoll <= 0:
		return fmt.Errorf("fleet: worker version wait %v and poll %v must be positive", c.VersionWait, c.VersionPoll)
	case c.Live != nil && c.TileEvery <= 0:
		return fmt.Errorf("fleet: worker tile every %v must be positive", c.TileEvery)
	case c.Live != nil && c.TileTTL < 3*c.TileEvery:
		return fmt.Errorf("fleet: worker tile ttl %v must be at least 3 tile intervals (%v)", c.TileTTL, 3*c.TileEvery)
	case c.Live != nil && (c.TileWidth < 64 || c.TileWidth > 1024):
		return fmt.Errorf("fleet: worker tile width %d must be within 64-1024", c.TileWidth)
	}
	if len(c.Archs) == 0 {
		return errors.New("fleet: worker accepts no ensemble architecture")
	}
	for _, a := range c.Archs {
		if err := a.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Worker is one arena's role: it leases episodes of its station's line and runs them, one at a
// time. Run it with Run.
type Worker struct {
	cfg WorkerConfig
	log *slog.Logger
	tel *workerTel
	// tiles publishes the arena's live tile (nil without Live).
	tiles *tiles
	// failures counts the episodes in a row whose station failed.
	failures int
	// ens caches decoded ensembles by line and version (a Worker runs one episode at a time, so
	// its ensembles are never used concurrently).
	ens map[ensKey]*policy.Ensemble
	// slot is whether the worker holds a slot of cfg.Gate: from before it leases to the end of
	// the episode, except while the episode waits for a parameter version (waitVersion), so
	// that waiting episodes never keep the others of a shared gate from running.
	slot bool
}

type ensKey struct {
	exp, line string
	version   uint64
}

// NewWorker checks cfg and returns a worker.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tel, err := newWorkerTel(cfg.TracerProvider, cfg.MeterProvider)
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, log: log.With("worker", cfg.ID), tel: tel, ens: map[ensKey]*policy.Ensemble{}}
	w.tiles = newTiles(cfg, w.log)
	return w, nil
}

// Run registers the worker and runs episodes until ctx ends; it then returns nil. It returns an
// error only when the broker refuses the worker (registration, an unknown worker); while the
// broker is unavailable it asks again every Poll.
func (w *Worker) Run(ctx context.Context) error { return w.Serve(ctx, nil) }

// Serve is Run with a drain: once drain is closed the worker leases nothing more, lets the
// running episode finish (until ctx ends, which fails it) and returns nil. Call Deregister
// after it to hand the arena's id back. With Live, the arena's tile says draining from then
// on; Serve returns once its tile publisher has stopped.
func (w *Worker) Serve(ctx context.Context, drain <-chan struct{}) error {
	// Tiles start once the coordinator has taken the registration: a worker it refuses (a
	// wrong token, an unknown line) publishes nothing.
	var stopTiles func()
	defer func() {
		if stopTiles != nil {
			stopTiles()
		}
	}()
	cal, _ := json.Marshal(w.cfg.Station.Calibration())
	reg := api.RegisterWorkerCmd{ID: w.cfg.ID, ArenaID: w.cfg.ArenaID, Line: w.cfg.Station.Line(), Calibration: cal}
	regFn := func(rctx context.Context) error {
		if err := w.cfg.Broker.RegisterWorker(rctx, reg); err != nil {
			return err
		}
		if stopTiles == nil {
			stopTiles = w.tiles.start(ctx, drain)
		}
		return nil
	}
	return serve(ctx, drain, "worker "+w.cfg.ID, w.cfg.Broker, w.cfg.Poll, w.log, regFn, w.step)
}

// Deregister tells the coordinator the worker is leaving (reason says why); a lease it still
// holds is failed so that its episode is re-run at once. A worker that was not registered is
// not an error.
func (w *Worker) Deregister(ctx context.Context, reason string) error {
	return deregister(ctx, w.cfg.Broker, w.cfg.ID, reason)
}

func deregister(ctx context.Context, b Broker, id, reason string) error {
	if len(reason) > api.MaxReasonLength {
		reason = reason[:api.MaxReasonLength]
	}
	err := b.Deregister(ctx, api.DeregisterRequest{Holder: id, Reason: reason})
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return fmt.Errorf("fleet: deregister %s: %w", id, err)
	}
	return nil
}

// serve is a role's life: register (retrying while the broker is unavailable), then step until
// ctx ends or drain is closed, waiting for the broker's next change (or poll) whenever a step
// found no work. A step that runs when drain closes goes on (until ctx ends); step's second
// context ends at the drain, for what it does before it leases. serve returns nil when ctx ends
// or drain closes, and an error only when the broker refuses the role.
func serve(ctx context.Context, drain <-chan struct{}, role string, b Broker, poll time.Duration, log *slog.Logger,
	reg func(context.Context) error, step func(ctx, leaseCtx context.Context) (bool, error)) error {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if drain != nil {
		go func() {
			select {
			case <-drain:
				cancel()
			case <-dctx.Done():
			}
		}()
	}
	if err := register(dctx, reg, poll, log); err != nil {
		if dctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("fleet: register %s: %w", role, err)
	}
	for dctx.Err() == nil {
		changed := changes(b)
		worked, err := step(ctx, dctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, api.ErrNotRegistered) || errors.Is(err, api.ErrBadRequest) || errors.Is(err, api.ErrForbidden) || errors.Is(err, ErrArenaFailing) {
				return err
			}
			log.Warn("step failed", "err", err)
		}
		if !worked {
			wait(dctx, changed, poll)
		}
	}
	return nil
}

// register calls reg until the broker answers: while it is unavailable (no leader yet, a
// coordinator still starting) it waits poll and tries again, so that a role started before
// its coordinator waits for it instead of exiting. A refusal is returned.
func register(ctx context.Context, reg func(context.Context) error, poll time.Duration, log *slog.Logger) error {
	for {
		err := reg(ctx)
		if !errors.Is(err, api.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		log.Warn("coordinator unavailable; registering again", "err", err)
		wait(ctx, nil, poll)
	}
}

// changes returns the broker's change channel when it is a Notifier (nil otherwise). Take it
// before asking for work, so that a change between the answer and the wait is not missed.
func changes(b Broker) <-chan struct{} {
	if n, ok := b.(Notifier); ok {
		return n.Changed()
	}
	return nil
}

// wait returns when changed is closed, after poll, or when ctx ends.
func wait(ctx context.Context, changed <-chan struct{}, poll time.Duration) {
	t := time.NewTimer(poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-changed:
	case <-t.C:
	}
}

// Step leases one episode and runs it to its report. It returns false when there was no work.
func (w *Worker) Step(ctx context.Context) (bool, error) { return w.step(ctx, ctx) }

// step is Step whose wait for a slot of the Gate ends with leaseCtx (a drain) as well as ctx.
func (w *Worker) step(ctx, leaseCtx context.Context) (bool, error) {
	if w.cfg.Gate != nil {
		select {
		case w.cfg.Gate <- struct{}{}:
		case <-leaseCtx.Done():
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
		w.slot = true
		defer func() {
			if w.slot {
				<-w.cfg.Gate
				w.slot = false
			}
		}()
	}
	it, err := w.cfg.Broker.Lease(ctx, api.LeaseRequest{Holder: w.cfg.ID, Type: plan.TypeEpisode, TTLSeconds: w.cfg.LeaseTTL.Seconds()})
	if err != nil {
		return false, fmt.Errorf("fleet: lease: %w", err)
	}
	if it == nil {
		return false, nil
	}
	return true, w.runItem(ctx, it)
}

// runItem runs a leased episode: parameters, station, replay, track, report. The attempt is
// failed with a reason when the episode cannot run; a lease that turns stale stops it at once.
// The attempt is the span worker.episode in the item's trace; every log line names the item
// and its trace id.
func (w *Worker) runItem(ctx context.Context, it *api.Item) error {
	log := w.log.With("item", it.ID, "kind", it.Kind, "token", it.Token, "trace_id", telemetry.EpisodeTraceID(it.ID).String())
	gen := w.tiles.leased(it, w.steps(it.Spec.Seconds))
	ctx, span := attemptSpan(ctx, w.tel.tracer, "worker.episode", it, w.cfg.ID,
		attribute.String(telemetry.AttrItem, it.ID), attribute.String(telemetry.AttrKind, string(it.Kind)), attribute.String("optoloop.arena", w.cfg.ArenaID))
	done := false
	defer func() {
		result := "failed"
		if done {
			result = "done"
			span.SetStatus(codes.Ok, "")
		}
		span.End()
		w.tel.episodes.Add(context.WithoutCancel(ctx), 1, metric.WithAttributes(attribute.String("result", result)))
		w.tiles.ended(gen, done)
	}()
	done, err := w.attempt(ctx, it, gen, log)
	return err
}

// steps is the number of control steps of an episode of seconds on the station.
func (w *Worker) steps(seconds float64) int {
	p := w.cfg.Station.Calibration().FramePeriod.Seconds()
	if !(p > 0) {
		return 0
	}
	return int(math.Round(seconds / p))
}

// attempt is runItem's work (lease gen of the tiles); it reports whether the attempt's report
// was accepted.
func (w *Worker) attempt(ctx context.Context, it *api.Item, gen uint64, log *slog.Logger) (bool, error) {
	epCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		heartbeat(epCtx, w.cfg.Broker, it, w.cfg.ID, w.cfg.LeaseTTL, nil, nil, stop, log)
	}()
	defer func() { stop(nil); <-hbDone }()

	ep := station.Episode{ID: it.ID, Spec: it.Spec, KeepFrames: it.Kind != episode.KindCollect, Logger: log, Watch: w.tiles.watch(gen)}
	if it.Kind.Acts() {
		ens, version, err := w.params(epCtx, it)
		if err != nil {
			return false, w.fail(ctx, it, err)
		}
		ep.Policy, ep.PolicyVersion = ens, version
		w.tiles.acting(version)
	}
	first := Chunk{Experiment: it.ExperimentID, Line: it.Line, Episode: it.ID, Token: it.Token, PolicyVersion: ep.PolicyVersion}
	sink := newChunkSink(epCtx, w.cfg.Replay, first, w.cfg.ReplayBuffer, log, w.tel)
	defer sink.Close()
	ep.Sink = sink
	res, err := w.cfg.Station.Run(epCtx, ep)
	arenaFailed := err != nil
	if err == nil {
		// The episode's report waits until its records are in the replay.
		fctx, cancel := context.WithTimeout(epCtx, w.cfg.StoreRetry)
		if ferr := sink.Flush(fctx); ferr != nil {
			err = fmt.Errorf("replay: %w", ferr)
		}
		cancel()
	}
	if cause := context.Cause(epCtx); errors.Is(cause, api.ErrStaleLease) {
		log.Warn("lease lost: episode abandoned", "err", cause)
		abandoned(ctx, cause)
		w.tiles.failed("lease lost: " + cause.Error())
		return false, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			// The worker is stopping: give the attempt back at once rather than let its lease
			// run out, so another arena retries it without waiting.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = w.fail(fctx, it, fmt.Errorf("worker stopped during the episode: %w", context.Cause(ctx)))
			return false, ctx.Err()
		}
		if ferr := w.fail(ctx, it, err); ferr != nil {
			return false, ferr
		}
		if !arenaFailed {
			return false, nil
		}
		// An arena that fails episode after episode (a camera unplugged, a light that does
		// not answer) would fail every episode of its line in turn: it stops instead.
		if w.failures++; w.failures >= w.cfg.MaxArenaFailures {
			return false, fmt.Errorf("%w: arena %s failed %d episodes in a row, the last: %w", ErrArenaFailing, w.cfg.ArenaID, w.failures, err)
		}
		return false, nil
	}
	w.failures = 0
	res.Track.ID = it.ID
	put := func(ctx context.Context) error { return w.cfg.Tracks.Put(ctx, it.ExperimentID, it.Token, res.Track) }
	if err := retry(epCtx, w.cfg.StoreRetry, log, "store track", put); err != nil {
		return false, w.fail(ctx, it, fmt.Errorf("store track: %w", err))
	}
	out := res.Outcome
	// The heartbeat goes on while the report is retried, so that a slow coordinator does not
	// let the lease lapse under a finished episode.
	rctx, rs := w.tel.tracer.Start(ctx, "worker.report")
	accepted, err := w.report(rctx, it, api.ReportCmd{Holder: w.cfg.ID, ItemID: it.ID, Token: it.Token, Outcome: &out}, log)
	if err == nil && !accepted {
		err = errors.New("report refused: lease no longer current")
		endSpan(rs, err)
		abandoned(ctx, err)
		w.tiles.failed(err.Error())
		return false, nil
	}
	endSpan(rs, err)
	if err != nil {
		markFailed(ctx, err.Error())
		w.tiles.failed(err.Error())
	}
	return accepted, err
}

// abandoned marks the attempt's span: its lease was lost, nothing it did counts.
func abandoned(ctx context.Context, cause error) {
	trace.SpanFromContext(ctx).SetAttributes(attribute.Bool("optoloop.abandoned", true))
	markFailed(ctx, "lease lost: "+cause.Error())
}

// params returns the ensemble an acting episode uses (worker.params span), and links the
// attempt's span to the learner.publish span of the version, when its store kept it.
func (w *Worker) params(ctx context.Context, it *api.Item) (*policy.Ensemble, uint64, error) {
	pctx, span := w.tel.tracer.Start(ctx, "worker.params", trace.WithAttributes(attribute.String("optoloop.agent_line", it.AgentLine),
		attribute.Int64("optoloop.named_version", int64(it.PolicyVersion))))
	ens, v, err := w.ensemble(pctx, it)
	if err == nil {
		span.SetAttributes(attribute.Int64(telemetry.AttrPolicyVersion, int64(v)))
		ep := trace.SpanFromContext(ctx)
		ep.SetAttributes(attribute.Int64(telemetry.AttrPolicyVersion, int64(v)))
		if tp, ok := w.cfg.Params.(TracedParams); ok && ep.IsRecording() {
			parent, terr := tp.TraceParent(pctx, it.ExperimentID, it.AgentLine, v)
			if sc, perr := telemetry.ParseTraceParent(parent); terr == nil && perr == nil {
				ep.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
					attribute.String("optoloop.link", "learner.publish"), attribute.Int64(telemetry.AttrPolicyVersion, int64(v)),
					attribute.String(telemetry.AttrLine, it.AgentLine)}})
			}
		}
	}
	endSpan(span, err)
	return ens, v, err
}

// ensemble returns the ensemble the item acts with. The worker never acts on a version more
// than the item's MaxStaleness versions behind the newest published for the agent's line: it
// acts with the item's named version when that is published and fresh enough, and otherwise
// with the newest, provided the newest is at most MaxStaleness versions before the named one
// (the named version is not published yet).
//
// An online episode (episode.KindOnline) acts with the newest version, once that is at least
// its named version minus its max staleness (and at least 1); a checkpoint episode acts with
// exactly its named version. Both wait for it (waitVersion).
func (w *Worker) ensemble(ctx context.Context, it *api.Item) (*policy.Ensemble, uint64, error) {
	named, stale := it.PolicyVersion, uint64(it.MaxStaleness)
	var newest uint64
	var err error
	switch it.Kind {
	case episode.KindOnline:
		newest, err = w.waitVersion(ctx, it, max(named-min(stale, named), 1))
		named = newest
	case episode.KindCheckpoint:
		newest, err = w.waitVersion(ctx, it, named)
		newest, stale = named, 0
	default:
		err = retry(ctx, w.cfg.StoreRetry, w.log, "latest parameters", func(ctx context.Context) error {
			var err error
			newest, err = w.cfg.Params.Latest(ctx, it.ExperimentID, it.AgentLine)
			return err
		})
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, 0, fmt.Errorf("%w: line %s has no published version (episode needs %d)", ErrStaleParams, it.AgentLine, named)
	case err != nil:
		return nil, 0, fmt.Errorf("parameters of line %s: %w", it.AgentLine, err)
	}
	fetch := func(v uint64) ([]byte, error) {
		var blob []byte
		err := retry(ctx, w.cfg.StoreRetry, w.log, "fetch parameters", func(ctx context.Context) error {
			var err error
			blob, err = w.cfg.Params.Fetch(ctx, it.ExperimentID, it.AgentLine, v)
			return err
		})
		return blob, err
	}
	v := newest
	var blob []byte
	switch {
	case named <= newest && named+stale >= newest:
		v = named
		blob, err = fetch(v)
		if errors.Is(err, ErrNotFound) {
			// Versions are published in order by one task, but a store may hold a gap (a
			// version published by an attempt that lost its lease): the newest is fresh.
			v = newest
			blob, err = fetch(v)
		}
	case named > newest && newest+stale < named:
		return nil, 0, fmt.Errorf("%w: line %s version %d is absent and the newest, %d, is more than %d versions older", ErrStaleParams, it.AgentLine, named, newest, stale)
	default:
		if named < newest {
			w.log.Info("named parameter version too stale; acting with the newest", "item", it.ID, "named", named, "newest", newest, "max_staleness", stale)
		}
		blob, err = fetch(v)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("fetch parameters of line %s version %d: %w", it.AgentLine, v, err)
	}
	k := ensKey{it.ExperimentID, it.AgentLine, v}
	if e, ok := w.ens[k]; ok {
		return e, v, nil
	}
	e, err := policy.UnmarshalEnsembleOf(blob, w.cfg.Archs)
	if err != nil {
		return nil, 0, fmt.Errorf("parameters of line %s version %d: %w", it.AgentLine, v, err)
	}
	if len(w.ens) >= maxCachedEnsembles {
		// Online episodes act with a new version every episode or two: keep the cache small.
		clear(w.ens)
	}
	w.ens[k] = e
	return e, v, nil
}

// maxCachedEnsembles bounds the worker's cache of decoded ensembles.
const maxCachedEnsembles = 8

// waitVersion waits until the newest published version of the item's agent line is at least
// need and returns it; it gives up after VersionWait.
func (w *Worker) waitVersion(ctx context.Context, it *api.Item, need uint64) (newest uint64, err error) {
	deadline := time.Now().Add(w.cfg.VersionWait)
	logged := false
	released := false
	defer func() {
		if released && err == nil {
			// The episode runs: take a slot of the gate again.
			select {
			case w.cfg.Gate <- struct{}{}:
				w.slot = true
			case <-ctx.Done():
				newest, err = 0, context.Cause(ctx)
			}
		}
	}()
	for {
		newest = 0
		err := retry(ctx, w.cfg.StoreRetry, w.log, "latest parameters", func(ctx context.Context) error {
			var err error
			newest, err = w.cfg.Params.Latest(ctx, it.ExperimentID, it.AgentLine)
			return err
		})
		switch {
		case err == nil && newest >= need:
			return newest, nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return 0, fmt.Errorf("parameters of line %s: %w", it.AgentLine, err)
		case time.Now().After(deadline):
			return 0, fmt.Errorf("%w: line %s has not published version %d within %v (newest %d)", ErrStaleParams, it.AgentLine, need, w.cfg.VersionWait, newest)
		}
		if !logged {
			logged = true
			w.log.Debug("waiting for a parameter version", "item", it.ID, "need", need, "newest", newest)
		}
		if w.slot {
			<-w.cfg.Gate
			w.slot, released = false, true
		}
		select {
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		case <-time.After(w.cfg.VersionPoll):
		}
	}
}

// fail reports a failed attempt (the coordinator retries it or fails the item for good).
func (w *Worker) fail(ctx context.Context, it *api.Item, cause error) error {
	reason := cause.Error()
	if len(reason) > api.MaxReasonLength {
		reason = reason[:api.MaxReasonLength]
	}
	w.log.Warn("episode attempt failed", "item", it.ID, "trace_id", telemetry.EpisodeTraceID(it.ID).String(), "err", cause)
	markFailed(ctx, reason)
	w.tiles.failed(reason)
	_, err := w.cfg.Broker.Fail(ctx, api.FailCmd{Holder: w.cfg.ID, ItemID: it.ID, Token: it.Token, Reason: reason})
	if err != nil && !errors.Is(err, api.ErrStaleLease) {
		return fmt.Errorf("fleet: fail %s: %w", it.ID, err)
	}
	return nil
}

// report sends a report, retrying with the same idempotency key while its outcome is unknown;
// it reports whether the report counted.
func (w *Worker) report(ctx context.Context, it *api.Item, req api.ReportCmd, log *slog.Logger) (bool, error) {
	return sendReport(ctx, w.cfg.Broker, req, w.cfg.ReportAttempts, w.cfg.ReportBackoff, log)
}

// sendReport sends req with a key derived from the lease, retrying transient failures: a
// duplicate means an earlier try was applied; a stale lease means the report does not count
// (false, nil).
func sendReport(ctx context.Context, b Broker, req api.ReportCmd, attempts int, backoff time.Duration, log *slog.Logger) (bool, error) {
	kctx := api.WithIdempotencyKey(ctx, fmt.Sprintf("report/%s/%d", req.ItemID, req.Token))
	var err error
	for a := 0; a < attempts; a++ {
		if a > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return false, ctx.Err()
			case <-t.C:
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		_, err = b.Report(kctx, req)
		switch {
		case err == nil, errors.Is(err, api.ErrDuplicate):
			return true, nil
		case errors.Is(err, api.ErrStaleLease):
			log.Warn("report refused: lease no longer current", "err", err)
			return false, nil
		case errors.Is(err, api.ErrBadRequest), errors.Is(err, api.ErrNotFound), errors.Is(err, api.ErrNotRegistered), errors.Is(err, api.ErrKeyReused):
			return false, fmt.Errorf("fleet: report %s: %w", req.ItemID, err)
		}
		log.Warn("report outcome unknown; retrying", "attempt", a+1, "err", err)
	}
	return false, fmt.Errorf("fleet: report %s: %d attempts: %w", req.ItemID, attempts, err)
}

// heartbeat renews the lease every ttl/3 until ctx ends, carrying progress() when progress is
// set; a stale lease cancels the work with api.ErrStaleLease as the cause. A value on moved (the
// progress changed) sends a heartbeat early, at most one a second, so that a watcher sees
// training move without waiting a third of the lease.
func heartbeat(ctx context.Context, b Broker, it *api.Item, holder string, ttl time.Duration, progress func() *api.Progress,
	moved <-chan struct{}, stop context.CancelCauseFunc, log *slog.Logger) {
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	var last time.Time         // the last heartbeat sent
	var early <-chan time.Time // an early heartbeat held back by the rate limit
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-early:
		case <-moved:
			if wait := time.Second - time.Since(last); wait > 0 {
				if early == nil {
					early = time.After(wait)
				}
				continue
			}
		}
		early = nil
		last = time.Now()
		req := api.HeartbeatRequest{Holder: holder, ItemID: it.ID, Token: it.Token, TTLSeconds: ttl.Seconds()}
		if progress != nil {
			req.Progress = progress()
		}
		_, err := b.Heartbeat(ctx, req)
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.Is(err, api.ErrDuplicate):
			return // the report was accepted: nothing left to keep alive
		case errors.Is(err, api.ErrStaleLease), errors.Is(err, api.ErrNotFound):
			stop(fmt.Errorf("item %s lease %d: %w", it.ID, it.Token, api.ErrStaleLease))
			return
		default:
			log.Warn("heartbeat failed", "err", err)
		}
	}
}
