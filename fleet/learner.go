package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/optoloop/optoloop/agentlib/learner"
	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/agentlib/sac"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/results"
)

// LearnerConfig configures a Learner.
type LearnerConfig struct {
	// ID is the learner's holder id. Required.
	ID string
	// Broker, Replay, Params and Checkpoints are the coordinator and the stores. Required.
	Broker      Broker
	Replay      Replay
	Params      Params
	Checkpoints Checkpoints
	// WorkDir holds each task's working folder while it trains (removed after its report).
	// Required.
	WorkDir string
	// LeaseTTL is the lease length asked for; the learner heartbeats every LeaseTTL/3.
	// Default 30 s.
	LeaseTTL time.Duration
	// Poll, ReportAttempts and ReportBackoff as for WorkerConfig.
	Poll           time.Duration
	ReportAttempts int
	ReportBackoff  time.Duration
	// StoreRetry is how long a store call that failed with ErrUnavailable is retried (the
	// replay snapshot, a checkpoint, a parameter version) before the attempt fails. Default 2
	// minutes.
	StoreRetry time.Duration
	// Logger (default: discard).
	Logger *slog.Logger
}

// DefaultLearnerConfig returns the defaults; the required fields must still be set.
func DefaultLearnerConfig() LearnerConfig {
	return LearnerConfig{LeaseTTL: 30 * time.Second, Poll: time.Second, ReportAttempts: 20, ReportBackoff: 100 * time.Millisecond, StoreRetry: 2 * time.Minute}
}

// Validate reports the first unusable field.
func (c LearnerConfig) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("fleet: learner id is required")
	case c.Broker == nil || c.Replay == nil || c.Params == nil || c.Checkpoints == nil:
		return errors.New("fleet: learner needs a broker, a replay, params and checkpoints")
	case c.WorkDir == "":
		return errors.New("fleet: learner work dir is required")
	case c.LeaseTTL < 3*time.Millisecond || c.LeaseTTL > 24*time.Hour:
		return fmt.Errorf("fleet: learner lease ttl %v must be within 3ms-24h", c.LeaseTTL)
	case c.Poll <= 0:
		return fmt.Errorf("fleet: learner poll %v must be positive", c.Poll)
	case c.ReportAttempts < 1 || c.ReportBackoff <= 0 || c.StoreRetry <= 0:
		return errors.New("fleet: learner report attempts, backoff and store retry must be positive")
	}
	return nil
}

// Learner is the training role: it leases training tasks one at a time and trains each line's
// ensemble (members in parallel) on a snapshot of the line's replay.
type Learner struct {
	cfg LearnerConfig
	log *slog.Logger
}

// NewLearner checks cfg and returns a learner.
func NewLearner(cfg LearnerConfig) (*Learner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Learner{cfg: cfg, log: log.With("learner", cfg.ID)}, nil
}

// Run registers the learner and trains tasks until ctx ends; it then returns nil. It returns an
// error only when the broker refuses the learner; while the broker is unavailable it asks again
// every Poll.
func (l *Learner) Run(ctx context.Context) error {
	return l.Serve(ctx, nil)
}

// Serve is Run with a drain: once drain is closed the learner leases nothing more, lets the
// running task go on until ctx ends and returns nil.
func (l *Learner) Serve(ctx context.Context, drain <-chan struct{}) error {
	reg := func(ctx context.Context) error {
		return l.cfg.Broker.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: l.cfg.ID})
	}
	step := func(ctx, _ context.Context) (bool, error) { return l.Step(ctx) }
	return serve(ctx, drain, "learner "+l.cfg.ID, l.cfg.Broker, l.cfg.Poll, l.log, reg, step)
}

// Deregister tells the coordinator the learner is leaving; a task it still holds is failed
// with reason, so that another learner resumes it from its checkpoint at once.
func (l *Learner) Deregister(ctx context.Context, reason string) error {
	return deregister(ctx, l.cfg.Broker, l.cfg.ID, reason)
}

// Step leases one training task and trains it to its report. It returns false when there was
// no work.
func (l *Learner) Step(ctx context.Context) (bool, error) {
	it, err := l.cfg.Broker.Lease(ctx, api.LeaseRequest{Holder: l.cfg.ID, Type: plan.TypeTrain, TTLSeconds: l.cfg.LeaseTTL.Seconds()})
	if err != nil {
		return false, fmt.Errorf("fleet: lease: %w", err)
	}
	if it == nil {
		return false, nil
	}
	return true, l.runTask(ctx, it)
}

func (l *Learner) runTask(ctx context.Context, it *api.Item) error {
	log := l.log.With("task", it.ID, "line", it.Line, "token", it.Token)
	taskCtx, stop := context.WithCancelCause(ctx)
	// progress is the task's updates so far, carried by every heartbeat.
	var progress atomic.Pointer[api.Progress]
	moved := make(chan struct{}, 1)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		heartbeat(taskCtx, l.cfg.Broker, it, l.cfg.ID, l.cfg.LeaseTTL, progress.Load, moved, stop, log)
	}()
	defer func() { stop(nil); <-hbDone }()
	report := func(p api.Progress) {
		progress.Store(&p)
		select {
		case moved <- struct{}{}:
		default:
		}
	}

	summary, version, err := l.train(taskCtx, it, report, log)
	if cause := context.Cause(taskCtx); errors.Is(cause, api.ErrStaleLease) {
		log.Warn("lease lost: training abandoned", "err", cause)
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("training attempt failed", "err", err)
		reason := err.Error()
		if len(reason) > api.MaxReasonLength {
			reason = reason[:api.MaxReasonLength]
		}
		if _, ferr := l.cfg.Broker.Fail(ctx, api.FailCmd{Holder: l.cfg.ID, ItemID: it.ID, Token: it.Token, Reason: reason}); ferr != nil && !errors.Is(ferr, api.ErrStaleLease) {
			return fmt.Errorf("fleet: fail %s: %w", it.ID, ferr)
		}
		return nil
	}
	out, _ := json.Marshal(summary)
	return sendReport(ctx, l.cfg.Broker, api.ReportCmd{Holder: l.cfg.ID, ItemID: it.ID, Token: it.Token, PolicyVersion: version, Output: out},
		l.cfg.ReportAttempts, l.cfg.ReportBackoff, log)
}

// train snapshots the line's replay, restores the task's checkpoint, trains and returns the
// summary and the final parameter version.
func (l *Learner) train(ctx context.Context, it *api.Item, progress func(api.Progress), log *slog.Logger) (results.TrainingSummary, uint64, error) {
	var sum results.TrainingSummary
	if it.Train == nil {
		return sum, 0, errors.New("training task without a train section")
	}
	mem, episodes, err := l.snapshot(ctx, it)
	if err != nil {
		return sum, 0, err
	}
	dir := filepath.Join(l.cfg.WorkDir, safeName(it.ID))
	if err := os.RemoveAll(dir); err != nil {
		return sum, 0, err
	}
	defer os.RemoveAll(dir)
	if err := l.restore(ctx, it, dir); err != nil {
		return sum, 0, err
	}
	lc := LearnerSettings(*it.Train, dir)
	var ln *learner.Learner
	members := int64(lc.Members)
	lc.Checkpointed = func(ctx context.Context) error {
		progress(api.Progress{Done: ln.Updates() * members, Total: lc.Updates * members})
		return l.save(ctx, it, dir)
	}
	pub := publisher{params: l.cfg.Params, exp: it.ExperimentID, line: it.Line, retry: l.cfg.StoreRetry, log: log}
	ln, err = learner.New(lc, mem, pub, log, rand.New(rand.NewPCG(it.Seed, 0)))
	if err != nil {
		return sum, 0, err
	}
	progress(api.Progress{Done: ln.Updates() * members, Total: lc.Updates * members})
	t0 := time.Now()
	if err := ln.Run(ctx); err != nil {
		return sum, 0, err
	}
	log.Info("trained", "members", lc.Members, "updates", ln.Updates(), "version", ln.Version(),
		"episodes", episodes, "windows", mem.Windows(), "seconds", time.Since(t0).Seconds())
	sum = results.TrainingSummary{Members: lc.Members, Updates: int(ln.Updates()), Transitions: mem.Windows(), Episodes: episodes}
	return sum, ln.Version(), nil
}

// snapshot builds the training replay: the records of the line's accepted collect episodes
// only (each episode's chunks of the attempt whose report was accepted), ordered by item
// number and chunk number, so training never depends on which worker finished first and an
// episode that was re-leased counts once. A missing chunk fails the snapshot.
func (l *Learner) snapshot(ctx context.Context, it *api.Item) (*replay.Memory, int, error) {
	view, err := l.cfg.Broker.Experiment(ctx, it.ExperimentID)
	if err != nil {
		return nil, 0, fmt.Errorf("experiment %s: %w", it.ExperimentID, err)
	}
	type accepted struct {
		n      int
		token  uint64
		frames int
	}
	acc := map[string]accepted{}
	for _, e := range view.Items {
		if e.Type != plan.TypeEpisode || e.Kind != episode.KindCollect || e.Line != it.Line || e.State != api.StateDone || e.Result == nil {
			continue
		}
		frames := -1
		if e.Result.Outcome != nil {
			frames = e.Result.Outcome.Frames
		}
		acc[e.ID] = accepted{n: e.N, token: e.Result.Token, frames: frames}
	}
	var chunks []Chunk
	err = retry(ctx, l.cfg.StoreRetry, l.log, "read replay", func(ctx context.Context) error {
		var err error
		chunks, err = l.cfg.Replay.Chunks(ctx, it.ExperimentID, it.Line)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("replay of line %s: %w", it.Line, err)
	}
	keep := chunks[:0:0]
	for _, c := range chunks {
		if a, ok := acc[c.Episode]; ok && a.token == c.Token {
			keep = append(keep, c)
		}
	}
	slices.SortFunc(keep, func(a, b Chunk) int {
		if c := cmp.Compare(acc[a.Episode].n, acc[b.Episode].n); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	keep = slices.CompactFunc(keep, func(a, b Chunk) bool { return a.Episode == b.Episode && a.Seq == b.Seq })
	mem, err := replay.NewMemory(ReplaySettings(*it.Train))
	if err != nil {
		return nil, 0, err
	}
	nextSeq, got := map[string]int{}, map[string]int{}
	for _, c := range keep {
		if c.Seq != nextSeq[c.Episode] {
			return nil, 0, fmt.Errorf("replay of episode %s: chunk %d missing", c.Episode, nextSeq[c.Episode])
		}
		nextSeq[c.Episode]++
		got[c.Episode] += len(c.Records)
		if err := mem.Append(c.Records...); err != nil {
			return nil, 0, fmt.Errorf("replay of episode %s: %w", c.Episode, err)
		}
	}
	for id, a := range acc {
		if a.frames >= 0 && got[id] != a.frames {
			return nil, 0, fmt.Errorf("replay of episode %s holds %d frames, its report says %d", id, got[id], a.frames)
		}
	}
	return mem, len(acc), nil
}

// checkpointFiles are the learner's files that make a checkpoint (agentlib/learner's layout).
func checkpointFiles(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	add := func(rel string) error {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = b
		return nil
	}
	ents, err := os.ReadDir(filepath.Join(dir, "checkpoint"))
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			if err := add(filepath.Join("checkpoint", e.Name())); err != nil {
				return nil, err
			}
		}
	}
	if err := add("curves.jsonl"); err != nil {
		return nil, err
	}
	return files, nil
}

func (l *Learner) save(ctx context.Context, it *api.Item, dir string) error {
	files, err := checkpointFiles(dir)
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	return retry(ctx, l.cfg.StoreRetry, l.log, "save checkpoint", func(ctx context.Context) error {
		return l.cfg.Checkpoints.Save(ctx, it.ExperimentID, it.ID, files)
	})
}

// restore writes the task's stored checkpoint into dir, so that a re-leased task resumes where
// the last attempt's last checkpoint left it.
func (l *Learner) restore(ctx context.Context, it *api.Item, dir string) error {
	var files map[string][]byte
	err := retry(ctx, l.cfg.StoreRetry, l.log, "load checkpoint", func(ctx context.Context) error {
		var err error
		files, err = l.cfg.Checkpoints.Load(ctx, it.ExperimentID, it.ID)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load checkpoint: %w", err)
	}
	for name, b := range files {
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			return fmt.Errorf("checkpoint file name %q", name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	l.log.Info("resuming from checkpoint", "task", it.ID)
	return nil
}

// publisher publishes each parameter version to the store.
type publisher struct {
	params    Params
	exp, line string
	retry     time.Duration
	log       *slog.Logger
}

func (p publisher) Publish(ctx context.Context, version uint64, blob []byte) error {
	return retry(ctx, p.retry, p.log, "publish parameters", func(ctx context.Context) error {
		return p.params.Publish(ctx, p.exp, p.line, version, blob)
	})
}

// safeName turns an item id into a folder name.
func safeName(id string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, id)
}

// LearnerSettings is the reference training schedule (learner.DefaultConfig) with the
// experiment's train section applied; dir is the learner's folder.
func LearnerSettings(t experiment.Train, dir string) learner.Config {
	lc := learner.DefaultConfig()
	lc.Dir = dir
	lc.Members = t.EnsembleSize
	lc.Updates = int64(t.Updates)
	lc.Round = int64(t.CheckpointEvery)
	lc.CurveEvery = min(lc.CurveEvery, lc.Round)
	lc.SAC.BatchSize = t.BatchSize
	lc.SAC.TargetEvery = t.TargetEvery
	lc.SAC.TargetEntropyRatio = t.TargetEntropyRatio
	lc.SAC.RewardScale = t.RewardScale
	lc.SAC.Backup = sac.Backup(t.CriticTarget)
	lc.SAC.Gamma = t.Gamma
	return lc
}

// ReplaySettings is the reference sampling (replay.DefaultConfig) with the experiment's reward.
func ReplaySettings(t experiment.Train) replay.Config {
	c := replay.DefaultConfig()
	c.ReachReward = t.ReachReward
	return c
}
