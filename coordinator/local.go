package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/coordinator/api"
)

// LocalConfig configures a Local broker.
type LocalConfig struct {
	// LeaseTTL is the lease length when a lease or heartbeat asks for none. Default 30 s of the
	// logical clock.
	LeaseTTL time.Duration
	// MaxAttempts is how many times an item may be leased before it is marked failed. Default 3,
	// the cluster's default.
	MaxAttempts int
	// KnownLine, when set, refuses experiments naming a line it does not know.
	KnownLine func(code string) bool
	// Start is the logical clock's first reading. Default 2000-01-01 UTC.
	Start time.Time
	// TracerProvider, when set, emits each item's root span at its first lease and a
	// coordinator.lease span per lease (in the item's trace), as a Raft leader does. Nil: none.
	TracerProvider trace.TracerProvider
}

// DefaultLocalConfig returns the defaults.
func DefaultLocalConfig() LocalConfig {
	return LocalConfig{LeaseTTL: 30 * time.Second, MaxAttempts: 3, Start: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// Validate reports the first unusable field.
func (c LocalConfig) Validate() error {
	switch {
	case c.LeaseTTL <= 0 || c.LeaseTTL > 24*time.Hour:
		return fmt.Errorf("coordinator: local lease ttl %v must be in (0, 24h]", c.LeaseTTL)
	case c.MaxAttempts < 1 || c.MaxAttempts > 1000:
		return fmt.Errorf("coordinator: local max attempts %d must be in 1..1000", c.MaxAttempts)
	case c.Start.IsZero():
		return errors.New("coordinator: local clock start is required")
	}
	return nil
}

// Local is the coordinator in one process: the same FSM as a Raft node, applied directly (no
// Raft, no HTTP) with a logical clock that moves only when Advance moves it. It offers the
// calls of api.Client that workers, learners and the local run use, with the same codes and
// sentinel errors, so fleet roles run unchanged against either. Safe for concurrent use.
//
// Because the clock is logical, leases expire only when a caller advances it: a process that
// holds its workers in memory cannot lose one silently, and tests expire leases by ticks, not
// sleeps.
type Local struct {
	cfg   LocalConfig
	fsm   *FSM
	mu    sync.Mutex // serialises applies (one log)
	index uint64
	now   time.Time

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced after every command that can make work
}

// NewLocal returns an empty Local broker.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Local{cfg: cfg, fsm: NewFSM(), now: cfg.Start, notify: make(chan struct{})}, nil
}

// FSM returns the state machine (for reads).
func (l *Local) FSM() *FSM { return l.fsm }

// Now returns the logical clock's reading.
func (l *Local) Now() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.now
}

// Advance moves the logical clock forward by d and applies a tick, so that leases whose
// deadline has passed expire.
func (l *Local) Advance(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("coordinator: cannot move the clock back by %v", d)
	}
	l.mu.Lock()
	l.now = l.now.Add(d)
	l.mu.Unlock()
	_, err := l.apply(context.Background(), Command{Type: CmdTick})
	return err
}

// Changed returns a channel that is closed after the next command that can make work or end
// an experiment is applied (every command but a lease and a heartbeat: a lease that finds
// nothing must not wake the other idle callers, who would lease in turn and wake each other
// for ever): a caller with no work waits on it instead of polling.
func (l *Local) Changed() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return l.notify
}

func (l *Local) changed() {
	l.notifyMu.Lock()
	close(l.notify)
	l.notify = make(chan struct{})
	l.notifyMu.Unlock()
}

// apply stamps c with the logical time and an idempotency key (the context's, else a new one),
// applies it like a committed log entry and returns the response, or its error.
func (l *Local) apply(ctx context.Context, c Command) (*api.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := newAdmission(l.cfg.KnownLine, 0, 0).check(l.fsm, c); err != nil {
		return nil, err
	}
	if c.Type != CmdTick {
		if c.Key = api.IdempotencyKey(ctx); c.Key == "" {
			c.Key = api.NewIdempotencyKey()
		}
		c.KeyHash = PayloadHash(c)
	}
	l.mu.Lock()
	c.Time = l.now
	data, err := EncodeCommand(c)
	if err != nil {
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	l.index++
	index := l.index
	l.fsm.mu.Lock()
	out := l.fsm.applyLocked(data, index)
	l.fsm.mu.Unlock()
	// Under l.mu, so that the applied index never goes back when applies race.
	l.fsm.setApplied(index)
	l.mu.Unlock()
	if c.Type != CmdLease && c.Type != CmdHeartbeat {
		l.changed()
	}
	r, ok := out.(*api.Response)
	if !ok {
		return nil, fmt.Errorf("coordinator: unexpected response %T from the state machine", out)
	}
	// The FSM keeps r in its idempotency cache: the caller gets a copy it may change.
	cp := *r
	if r.Item != nil {
		cp.Item = copyItem(r.Item)
	}
	return &cp, cp.Err()
}

// Submit submits an experiment file (YAML) and returns the experiment's id.
func (l *Local) Submit(ctx context.Context, spec []byte) (string, error) {
	c, err := submitCommand(spec, l.cfg.KnownLine, l.cfg.MaxAttempts)
	if err != nil {
		return "", err
	}
	r, err := l.apply(ctx, c)
	if err != nil {
		return "", err
	}
	return r.ExperimentID, nil
}

// SubmitAgain submits an experiment file although a live experiment was submitted from the
// very same bytes (Submit refuses that with api.ErrExists).
func (l *Local) SubmitAgain(ctx context.Context, spec []byte) (string, error) {
	c, err := submitCommand(spec, l.cfg.KnownLine, l.cfg.MaxAttempts)
	if err != nil {
		return "", err
	}
	c.Submit.Again = true
	r, err := l.apply(ctx, c)
	if err != nil {
		return "", err
	}
	return r.ExperimentID, nil
}

// Archive drops a finished experiment's items, keeping its tombstone (see api.Client.Archive).
func (l *Local) Archive(ctx context.Context, id string) error {
	_, err := l.apply(ctx, Command{Type: CmdArchive, Archive: &ArchiveCmd{Experiment: id}})
	return err
}

// RegisterWorker registers (or updates) a worker.
func (l *Local) RegisterWorker(ctx context.Context, w api.RegisterWorkerCmd) error {
	_, err := l.apply(ctx, Command{Type: CmdRegisterWorker, RegisterWorker: &w})
	return err
}

// RegisterLearner registers (or updates) a learner.
func (l *Local) RegisterLearner(ctx context.Context, r api.RegisterLearnerCmd) error {
	_, err := l.apply(ctx, Command{Type: CmdRegisterLearner, RegisterLearner: &r})
	return err
}

// Lease leases one item, or returns nil when there is none for the holder.
func (l *Local) Lease(ctx context.Context, req api.LeaseRequest) (*api.Item, error) {
	c, err := leaseCommand(req, l.cfg.LeaseTTL)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	r, err := l.apply(ctx, c)
	if err != nil {
		return nil, err
	}
	if l.cfg.TracerProvider != nil && r.Item != nil {
		leaseSpans(l.cfg.TracerProvider.Tracer(metricsScope), ctx, r.Item, start)
	}
	return r.Item, nil
}

// Heartbeat renews a lease; it fails with api.ErrStaleLease when the lease is not current.
func (l *Local) Heartbeat(ctx context.Context, req api.HeartbeatRequest) (*api.Item, error) {
	c, err := heartbeatCommand(req, l.cfg.LeaseTTL)
	if err != nil {
		return nil, err
	}
	r, err := l.apply(ctx, c)
	if err != nil {
		return nil, err
	}
	return r.Item, nil
}

// Report reports an item done (api.ErrStaleLease, api.ErrDuplicate as the client).
func (l *Local) Report(ctx context.Context, req api.ReportCmd) (*api.Item, error) {
	r, err := l.apply(ctx, Command{Type: CmdReport, Report: &req})
	if err != nil {
		return nil, err
	}
	return r.Item, nil
}

// Fail reports that an attempt failed.
func (l *Local) Fail(ctx context.Context, req api.FailCmd) (*api.Item, error) {
	r, err := l.apply(ctx, Command{Type: CmdFail, Fail: &req})
	if err != nil {
		return nil, err
	}
	return r.Item, nil
}

// Deregister removes a worker or learner that is leaving (see api.Client.Deregister).
func (l *Local) Deregister(ctx context.Context, req api.DeregisterRequest) error {
	_, err := l.apply(ctx, Command{Type: CmdDeregister, Deregister: &req})
	return err
}

// Experiment returns an experiment with its items.
func (l *Local) Experiment(_ context.Context, id string) (api.ExperimentView, error) {
	v, ok := l.fsm.ExperimentView(id)
	if !ok {
		return api.ExperimentView{}, fmt.Errorf("%w: experiment %q", api.ErrNotFound, id)
	}
	return v, nil
}

// Experiments lists the experiments (without their items).
func (l *Local) Experiments(context.Context) ([]api.Experiment, error) {
	return l.fsm.Experiments(), nil
}

// Cancel cancels a running experiment (see api.Client.Cancel).
func (l *Local) Cancel(ctx context.Context, id, reason string) error {
	_, err := l.apply(ctx, Command{Type: CmdCancel, Cancel: &CancelCmd{Experiment: id, Reason: reason}})
	return err
}

// Drain stops or resumes leasing episodes to a worker (see api.Client.Drain).
func (l *Local) Drain(ctx context.Context, worker string, drain bool) error {
	_, err := l.apply(ctx, Command{Type: CmdDrain, Drain: &DrainCmd{Worker: worker, Drain: drain}})
	return err
}

// Progress returns an experiment's progress (see api.Client.Progress).
func (l *Local) Progress(_ context.Context, id string) (api.ExperimentProgress, error) {
	p, ok := l.fsm.Progress(id)
	if !ok {
		return api.ExperimentProgress{}, fmt.Errorf("%w: experiment %q", api.ErrNotFound, id)
	}
	return p, nil
}
