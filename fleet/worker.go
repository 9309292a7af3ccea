package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/station"
)

// Station is one arena ready for episodes (station.Station).
type Station interface {
	Line() string
	Calibration() arenas.Calibration
	Run(ctx context.Context, e station.Episode) (station.Result, error)
}

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
	// Arch is the architecture the ensembles must have. Default policy.ReferenceArch().
	Arch policy.Arch
	// Logger (default: discard).
	Logger *slog.Logger
}

// DefaultWorkerConfig returns the defaults; the required fields must still be set.
func DefaultWorkerConfig() WorkerConfig {
	return WorkerConfig{LeaseTTL: 30 * time.Second, Poll: time.Second, ReportAttempts: 20, ReportBackoff: 100 * time.Millisecond, Arch: policy.ReferenceArch()}
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
	}
	return c.Arch.Validate()
}

// Worker is one arena's role: it leases episodes of its station's line and runs them, one at a
// time. Run it with Run.
type Worker struct {
	cfg WorkerConfig
	log *slog.Logger
	// ens caches decoded ensembles by line and version (a Worker runs one episode at a time, so
	// its ensembles are never used concurrently).
	ens map[ensKey]*policy.Ensemble
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
	return &Worker{cfg: cfg, log: log.With("worker", cfg.ID), ens: map[ensKey]*policy.Ensemble{}}, nil
}

// Run registers the worker and runs episodes until ctx ends; it then returns nil. It returns an
// error only when the broker refuses the worker (registration, an unknown worker); while the
// broker is unavailable it asks again every Poll.
func (w *Worker) Run(ctx context.Context) error {
	cal, _ := json.Marshal(w.cfg.Station.Calibration())
	reg := api.RegisterWorkerCmd{ID: w.cfg.ID, ArenaID: w.cfg.ArenaID, Line: w.cfg.Station.Line(), Calibration: cal}
	regFn := func(ctx context.Context) error { return w.cfg.Broker.RegisterWorker(ctx, reg) }
	return serve(ctx, "worker "+w.cfg.ID, w.cfg.Broker, w.cfg.Poll, w.log, regFn, w.Step)
}

// serve is a role's life: register (retrying while the broker is unavailable), then step until
// ctx ends, waiting for the broker's next change (or poll) whenever a step found no work. It
// returns nil when ctx ends and an error only when the broker refuses the role.
func serve(ctx context.Context, role string, b Broker, poll time.Duration, log *slog.Logger,
	reg func(context.Context) error, step func(context.Context) (bool, error)) error {
	if err := register(ctx, reg, poll, log); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("fleet: register %s: %w", role, err)
	}
	for ctx.Err() == nil {
		changed := changes(b)
		worked, err := step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, api.ErrNotRegistered) || errors.Is(err, api.ErrBadRequest) {
				return err
			}
			log.Warn("step failed", "err", err)
		}
		if !worked {
			wait(ctx, changed, poll)
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
func (w *Worker) Step(ctx context.Context) (bool, error) {
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
func (w *Worker) runItem(ctx context.Context, it *api.Item) error {
	log := w.log.With("item", it.ID, "kind", it.Kind, "token", it.Token)
	epCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		heartbeat(epCtx, w.cfg.Broker, it, w.cfg.ID, w.cfg.LeaseTTL, stop, log)
	}()
	defer func() { stop(nil); <-hbDone }()

	ep := station.Episode{ID: it.ID, Spec: it.Spec, KeepFrames: it.Kind != episode.KindCollect}
	if it.Kind.Acts() {
		ens, version, err := w.ensemble(epCtx, it)
		if err != nil {
			return w.fail(ctx, it, err)
		}
		ep.Policy, ep.PolicyVersion = ens, version
	}
	sink := &chunkSink{ctx: epCtx, replay: w.cfg.Replay, chunk: Chunk{Experiment: it.ExperimentID, Line: it.Line, Episode: it.ID, Token: it.Token, PolicyVersion: ep.PolicyVersion}}
	ep.Sink = sink
	res, err := w.cfg.Station.Run(epCtx, ep)
	if cause := context.Cause(epCtx); errors.Is(cause, api.ErrStaleLease) {
		log.Warn("lease lost: episode abandoned", "err", cause)
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			// The worker is stopping: give the attempt back at once rather than let its lease
			// run out, so another arena retries it without waiting.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = w.fail(fctx, it, fmt.Errorf("worker stopped during the episode: %w", context.Cause(ctx)))
			return ctx.Err()
		}
		return w.fail(ctx, it, err)
	}
	res.Track.ID = it.ID
	if err := w.cfg.Tracks.Put(epCtx, it.ExperimentID, it.Token, res.Track); err != nil {
		return w.fail(ctx, it, fmt.Errorf("store track: %w", err))
	}
	out := res.Outcome
	// The heartbeat goes on while the report is retried, so that a slow coordinator does not
	// let the lease lapse under a finished episode.
	return w.report(ctx, it, api.ReportCmd{Holder: w.cfg.ID, ItemID: it.ID, Token: it.Token, Outcome: &out}, log)
}

// ensemble returns the ensemble the item acts with: its named version, or the newest published
// one when that is at most MaxStaleness versions older.
func (w *Worker) ensemble(ctx context.Context, it *api.Item) (*policy.Ensemble, uint64, error) {
	v := it.PolicyVersion
	blob, err := w.cfg.Params.Fetch(ctx, it.ExperimentID, it.AgentLine, v)
	if errors.Is(err, ErrNotFound) {
		latest, lerr := w.cfg.Params.Latest(ctx, it.ExperimentID, it.AgentLine)
		switch {
		case errors.Is(lerr, ErrNotFound):
			return nil, 0, fmt.Errorf("%w: line %s has no published version (episode needs %d)", ErrStaleParams, it.AgentLine, v)
		case lerr != nil:
			return nil, 0, lerr
		case latest > v || latest+uint64(it.MaxStaleness) < v:
			return nil, 0, fmt.Errorf("%w: line %s version %d is absent and the newest, %d, is more than %d versions older", ErrStaleParams, it.AgentLine, v, latest, it.MaxStaleness)
		}
		v = latest
		blob, err = w.cfg.Params.Fetch(ctx, it.ExperimentID, it.AgentLine, v)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("fetch parameters of line %s version %d: %w", it.AgentLine, v, err)
	}
	k := ensKey{it.ExperimentID, it.AgentLine, v}
	if e, ok := w.ens[k]; ok {
		return e, v, nil
	}
	e, err := policy.UnmarshalEnsemble(blob, w.cfg.Arch)
	if err != nil {
		return nil, 0, fmt.Errorf("parameters of line %s version %d: %w", it.AgentLine, v, err)
	}
	w.ens[k] = e
	return e, v, nil
}

// fail reports a failed attempt (the coordinator retries it or fails the item for good).
func (w *Worker) fail(ctx context.Context, it *api.Item, cause error) error {
	reason := cause.Error()
	if len(reason) > api.MaxReasonLength {
		reason = reason[:api.MaxReasonLength]
	}
	w.log.Warn("episode attempt failed", "item", it.ID, "err", cause)
	_, err := w.cfg.Broker.Fail(ctx, api.FailCmd{Holder: w.cfg.ID, ItemID: it.ID, Token: it.Token, Reason: reason})
	if err != nil && !errors.Is(err, api.ErrStaleLease) {
		return fmt.Errorf("fleet: fail %s: %w", it.ID, err)
	}
	return nil
}

// report sends a report, retrying with the same idempotency key while its outcome is unknown.
func (w *Worker) report(ctx context.Context, it *api.Item, req api.ReportCmd, log *slog.Logger) error {
	return sendReport(ctx, w.cfg.Broker, req, w.cfg.ReportAttempts, w.cfg.ReportBackoff, log)
}

// sendReport sends req with a key derived from the lease, retrying transient failures: a
// duplicate means an earlier try was applied; a stale lease means the report does not count.
func sendReport(ctx context.Context, b Broker, req api.ReportCmd, attempts int, backoff time.Duration, log *slog.Logger) error {
	kctx := api.WithIdempotencyKey(ctx, fmt.Sprintf("report/%s/%d", req.ItemID, req.Token))
	var err error
	for a := 0; a < attempts; a++ {
		if a > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		_, err = b.Report(kctx, req)
		switch {
		case err == nil, errors.Is(err, api.ErrDuplicate):
			return nil
		case errors.Is(err, api.ErrStaleLease):
			log.Warn("report refused: lease no longer current", "err", err)
			return nil
		case errors.Is(err, api.ErrBadRequest), errors.Is(err, api.ErrNotFound), errors.Is(err, api.ErrNotRegistered):
			return fmt.Errorf("fleet: report %s: %w", req.ItemID, err)
		}
		log.Warn("report outcome unknown; retrying", "attempt", a+1, "err", err)
	}
	return fmt.Errorf("fleet: report %s: %d attempts: %w", req.ItemID, attempts, err)
}

// heartbeat renews the lease every ttl/3 until ctx ends; a stale lease cancels the work with
// api.ErrStaleLease as the cause.
func heartbeat(ctx context.Context, b Broker, it *api.Item, holder string, ttl time.Duration, stop context.CancelCauseFunc, log *slog.Logger) {
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := b.Heartbeat(ctx, api.HeartbeatRequest{Holder: holder, ItemID: it.ID, Token: it.Token, TTLSeconds: ttl.Seconds()})
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

// chunkSink appends the worker loop's record batches to the replay as numbered chunks.
type chunkSink struct {
	ctx    context.Context
	replay Replay
	chunk  Chunk
}

func (s *chunkSink) Append(recs ...replay.Record) error {
	c := s.chunk
	c.Records = recs
	if err := s.replay.Append(s.ctx, c); err != nil {
		return err
	}
	s.chunk.Seq++
	return nil
}
