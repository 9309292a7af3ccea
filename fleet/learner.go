package fleet

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/agentlib/learner"
	"github.com/optoloop/optoloop/agentlib/obs"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/agentlib/sac"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/live"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/telemetry"
	"github.com/optoloop/optoloop/worker"
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
	// OnlinePoll is how often an online training task asks the broker whether the episodes
	// its next round trains on are done. Default 250 ms.
	OnlinePoll time.Duration
	// Logger (default: discard).
	Logger *slog.Logger
	// TracerProvider traces every attempt at a task: a learner.task span in the task's trace
	// with a link to the worker.episode span of every episode in its replay snapshot, a
	// learner.round span per round and a learner.publish span per parameter version (whose
	// traceparent is stored with the version when Params is a TracedParams). Nil: none.
	TracerProvider trace.TracerProvider
	// MeterProvider receives the learner's updates, losses and versions. Nil: none.
	MeterProvider metric.MeterProvider
	// Live receives each training task's learning curve as it grows, for the dashboard: at
	// every checkpoint the round's new points of curves.jsonl, each the mean over the members
	// at one update (live.Publisher.AppendCurve). A publish is bounded by LivePublishTimeout;
	// one that fails is logged (a warning once per attempt at a task, then at debug level) and
	// its points go again with the next round's: it never fails the task. Nil: nothing is
	// published.
	Live live.Publisher
}

// LivePublishTimeout bounds each publish of a learning curve to LearnerConfig.Live.
const LivePublishTimeout = 2 * time.Second

// DefaultLearnerConfig returns the defaults; the required fields must still be set.
func DefaultLearnerConfig() LearnerConfig {
	return LearnerConfig{LeaseTTL: 30 * time.Second, Poll: time.Second, ReportAttempts: 20, ReportBackoff: 100 * time.Millisecond, StoreRetry: 2 * time.Minute,
		OnlinePoll: 250 * time.Millisecond}
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
	case c.OnlinePoll <= 0:
		return fmt.Errorf("fleet: learner online poll %v must be positive", c.OnlinePoll)
	}
	return nil
}

// Learner is the training role: it leases training tasks one at a time and trains each line's
// ensemble (members in parallel) on a snapshot of the line's replay.
type Learner struct {
	cfg LearnerConfig
	log *slog.Logger
	tel *learnerTel
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
	tel, err := newLearnerTel(cfg.TracerProvider, cfg.MeterProvider)
	if err != nil {
		return nil, err
	}
	return &Learner{cfg: cfg, log: log.With("learner", cfg.ID), tel: tel}, nil
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

func (l *Learner) runTask(ctx context.Context, it *api.Item) (err error) {
	log := l.log.With("task", it.ID, "line", it.Line, "token", it.Token, "trace_id", telemetry.EpisodeTraceID(it.ID).String())
	ctx, span := attemptSpan(ctx, l.tel.tracer, "learner.task", it, l.cfg.ID, attribute.String(telemetry.AttrTask, it.ID))
	accepted := false
	defer func() {
		switch {
		case accepted:
			span.SetStatus(codes.Ok, "")
		case err != nil:
			markFailed(ctx, err.Error())
		}
		span.End()
	}()
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
		abandoned(ctx, cause)
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
		markFailed(ctx, reason)
		if _, ferr := l.cfg.Broker.Fail(ctx, api.FailCmd{Holder: l.cfg.ID, ItemID: it.ID, Token: it.Token, Reason: reason}); ferr != nil && !errors.Is(ferr, api.ErrStaleLease) {
			return fmt.Errorf("fleet: fail %s: %w", it.ID, ferr)
		}
		return nil
	}
	out, _ := json.Marshal(summary)
	accepted, err = sendReport(ctx, l.cfg.Broker, api.ReportCmd{Holder: l.cfg.ID, ItemID: it.ID, Token: it.Token, PolicyVersion: version, Output: out},
		l.cfg.ReportAttempts, l.cfg.ReportBackoff, log)
	if err == nil && !accepted {
		abandoned(ctx, errors.New("report refused: lease no longer current"))
	}
	return err
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
	pub := &publisher{params: l.cfg.Params, exp: it.ExperimentID, line: it.Line, task: it.ID, retry: l.cfg.StoreRetry, log: log,
		tracer: l.tel.tracer, roundStart: time.Now()}
	watch := &trainWatch{tel: l.tel, line: it.Line, curves: filepath.Join(dir, "curves.jsonl"), members: members,
		live: l.cfg.Live, exp: it.ExperimentID, task: it.ID, log: log}
	lc.Checkpointed = func(ctx context.Context) error {
		progress(api.Progress{Done: ln.Updates() * members, Total: lc.Updates * members})
		watch.round(ctx, ln.Updates(), ln.Version())
		err := l.save(ctx, it, dir)
		pub.roundStart = time.Now()
		return err
	}
	var feed *onlineFeed
	if it.Train.Mode == experiment.ModeOnline {
		feed = &onlineFeed{l: l, it: it, mem: mem, added: map[string]bool{}, log: log}
		lc.BeforeRound = feed.before
	}
	ln, err = learner.New(lc, mem, pub, log, rand.New(rand.NewPCG(it.Seed, 0)))
	if err != nil {
		return sum, 0, err
	}
	watch.start(ln.Updates(), ln.Version())
	pub.updates, pub.members = ln.Updates(), lc.Members
	progress(api.Progress{Done: ln.Updates() * members, Total: lc.Updates * members})
	t0 := time.Now()
	if err := ln.Run(ctx); err != nil {
		return sum, 0, err
	}
	if feed != nil {
		episodes += len(feed.added)
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
	acc := map[string]accepted{}
	for _, e := range view.Items {
		if e.Type != plan.TypeEpisode || e.Kind != episode.KindCollect || e.Line != it.Line || e.State != api.StateDone || e.Result == nil {
			continue
		}
		acc[e.ID] = acceptedOf(e)
	}
	mem, err := replay.NewMemory(ReplaySettings(*it.Train, it.LightProbability))
	if err != nil {
		return nil, 0, err
	}
	keep, err := l.appendAccepted(ctx, it, mem, acc)
	if err != nil {
		return nil, 0, err
	}
	linkEpisodes(ctx, keep, acc)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.Int("optoloop.episodes", len(acc)), attribute.Int("optoloop.windows", mem.Windows()))
	}
	return mem, len(acc), nil
}

// linkEpisodes links the task's span to the attempt span of every episode of acc whose frames it
// trains on (the accepted attempt only: never one that was abandoned), in item order; keep are
// the chunks appended, whose traceparents carry the attempts' sampling flags.
func linkEpisodes(ctx context.Context, keep []Chunk, acc map[string]accepted) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	flags := map[string]trace.TraceFlags{}
	for _, c := range keep {
		if _, ok := flags[c.Episode]; !ok {
			if sc, err := telemetry.ParseTraceParent(c.TraceParent); err == nil {
				flags[c.Episode] = sc.TraceFlags()
			}
		}
	}
	ids := slices.Collect(maps.Keys(acc))
	slices.SortFunc(ids, func(a, b string) int { return cmp.Compare(acc[a].n, acc[b].n) })
	for _, id := range ids {
		sc := telemetry.Attempt(id, acc[id].token)
		if f, ok := flags[id]; ok {
			sc = sc.WithTraceFlags(f)
		}
		span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String(telemetry.AttrItem, id),
			attribute.Int64(telemetry.AttrToken, int64(acc[id].token)), attribute.String("optoloop.link", "worker.episode")}})
	}
}

// accepted is a done episode's accepted attempt: its item number, token and frame count (-1:
// its outcome did not say).
type accepted struct {
	n      int
	token  uint64
	frames int
}

func acceptedOf(e api.Item) accepted {
	frames := -1
	if e.Result.Outcome != nil {
		frames = e.Result.Outcome.Frames
	}
	return accepted{n: e.N, token: e.Result.Token, frames: frames}
}

// appendAccepted appends to mem the records of the episodes of acc (the line's chunks of each
// episode's accepted attempt), ordered by item number and chunk number, and returns the chunks
// it appended. A missing chunk, or an episode whose frames differ from its report, fails it.
func (l *Learner) appendAccepted(ctx context.Context, it *api.Item, mem *replay.Memory, acc map[string]accepted) ([]Chunk, error) {
	var chunks []Chunk
	err := retry(ctx, l.cfg.StoreRetry, l.log, "read replay", func(ctx context.Context) error {
		var err error
		chunks, err = l.cfg.Replay.Chunks(ctx, it.ExperimentID, it.Line)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("replay of line %s: %w", it.Line, err)
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
	nextSeq, got := map[string]int{}, map[string]int{}
	for _, c := range keep {
		if c.Seq != nextSeq[c.Episode] {
			return nil, fmt.Errorf("replay of episode %s: chunk %d missing", c.Episode, nextSeq[c.Episode])
		}
		nextSeq[c.Episode]++
		got[c.Episode] += len(c.Records)
		if err := mem.Append(c.Records...); err != nil {
			return nil, fmt.Errorf("replay of episode %s: %w", c.Episode, err)
		}
	}
	for id, a := range acc {
		if a.frames >= 0 && got[id] != a.frames {
			return nil, fmt.Errorf("replay of episode %s holds %d frames, its report says %d", id, got[id], a.frames)
		}
	}
	return keep, nil
}

// onlineFeed grows an online training task's replay between rounds: before the round that
// publishes version v it waits until every online episode of the line naming a version up to
// v - 1 - max_staleness (experiment.Spec.OnlineData) is done or failed, then appends the done
// ones it does not hold yet, in item order. So the data each version trains on is fixed by the
// experiment file whatever the timing (a resumed task rebuilds the same replay), workers act at
// most max_staleness versions before the one their episode names, and the learner trains at
// most max_staleness versions ahead of its data.
type onlineFeed struct {
	l     *Learner
	it    *api.Item
	mem   *replay.Memory
	added map[string]bool
	log   *slog.Logger
}

func (f *onlineFeed) before(ctx context.Context, version uint64) error {
	limit := int64(version) - 1 - int64(f.it.MaxStaleness)
	if limit < 1 {
		return nil
	}
	waited := false
	for {
		view, err := f.l.cfg.Broker.Experiment(ctx, f.it.ExperimentID)
		if err != nil && !errors.Is(err, api.ErrUnavailable) {
			return fmt.Errorf("experiment %s: %w", f.it.ExperimentID, err)
		}
		if err == nil {
			acc, open := map[string]accepted{}, 0
			for _, e := range view.Items {
				if e.Kind != episode.KindOnline || e.Line != f.it.Line || int64(e.PolicyVersion) > limit {
					continue
				}
				switch {
				case e.State == api.StateDone && e.Result != nil:
					if !f.added[e.ID] {
						acc[e.ID] = acceptedOf(e)
					}
				case e.State != api.StateFailed:
					open++
				}
			}
			if open == 0 {
				if len(acc) > 0 {
					keep, err := f.l.appendAccepted(ctx, f.it, f.mem, acc)
					if err != nil {
						return err
					}
					// The task's span links to the online episodes as to the warm-up's.
					linkEpisodes(ctx, keep, acc)
				}
				for id := range acc {
					f.added[id] = true
				}
				if waited || len(acc) > 0 {
					f.log.Debug("online replay grown", "version", version, "episodes", len(acc), "windows", f.mem.Windows())
				}
				return nil
			}
		}
		waited = true
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(f.l.cfg.OnlinePoll):
		}
	}
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

// publisher publishes each parameter version to the store. Each publish ends a round: the
// span learner.round runs from the end of the previous round's checkpoint (or the training's
// start) to the publish, and holds the learner.publish span whose traceparent is stored with
// the version.
type publisher struct {
	params          Params
	exp, line, task string
	retry           time.Duration
	log             *slog.Logger
	tracer          trace.Tracer
	roundStart      time.Time
	updates         int64 // per member, at the last round boundary
	members         int
}

func (p *publisher) Publish(ctx context.Context, version uint64, blob []byte) error {
	rctx, round := p.tracer.Start(ctx, "learner.round", trace.WithTimestamp(p.roundStart), trace.WithAttributes(
		attribute.String(telemetry.AttrTask, p.task), attribute.Int64("optoloop.round", int64(version)), attribute.Int("optoloop.members", p.members)))
	pctx, span := p.tracer.Start(rctx, "learner.publish", trace.WithAttributes(attribute.String(telemetry.AttrTask, p.task),
		attribute.Int64(telemetry.AttrPolicyVersion, int64(version)), attribute.String(telemetry.AttrLine, p.line), attribute.Int("optoloop.bytes", len(blob))))
	tp := telemetry.TraceParent(span.SpanContext())
	traced, isTraced := p.params.(TracedParams)
	err := retry(pctx, p.retry, p.log, "publish parameters", func(ctx context.Context) error {
		if isTraced {
			return traced.PublishTraced(ctx, p.exp, p.line, version, blob, tp)
		}
		return p.params.Publish(ctx, p.exp, p.line, version, blob)
	})
	endSpan(span, err)
	endSpan(round, err)
	return err
}

// trainWatch turns the learner's rounds into metrics (updates, the last curve interval's mean
// critic loss and entropy, the version) and, with live, into the task's live learning curve;
// both from the new lines of curves.jsonl.
type trainWatch struct {
	tel     *learnerTel
	line    string
	curves  string
	members int64
	offset  int64
	done    int64 // updates over every member already counted

	live      live.Publisher // nil: no live curve
	exp, task string
	log       *slog.Logger
	version   uint64            // the version published at the last round boundary
	pending   []live.CurvePoint // points not yet published (a publish failed)
	warned    bool              // a failed publish was logged as a warning
}

// start sets where the task's training starts: updates per member and version (both 0 unless
// it resumes from a checkpoint, whose curve lines are not published again).
func (w *trainWatch) start(updates int64, version uint64) {
	w.done, w.version = updates*w.members, version
	if fi, err := os.Stat(w.curves); err == nil {
		w.offset = fi.Size()
	}
}

// round takes the round that ended at updates per member with version published.
func (w *trainWatch) round(ctx context.Context, updates int64, version uint64) {
	attrs := metric.WithAttributes(attribute.String("line", w.line))
	done := updates * w.members
	if d := done - w.done; d > 0 {
		w.tel.updates.Add(ctx, d, attrs)
	}
	w.done = done
	w.tel.version.Record(ctx, float64(version), attrs)
	pts := w.newPoints()
	before := w.version
	w.version = version
	if len(pts) > 0 {
		last := map[int]learner.CurvePoint{}
		for _, p := range pts {
			if q, ok := last[p.Member]; !ok || p.Update >= q.Update {
				last[p.Member] = p
			}
		}
		var critic, entropy float64
		for _, p := range last {
			critic += (p.Q1Loss + p.Q2Loss) / 2
			entropy += p.Entropy
		}
		n := float64(len(last))
		w.tel.critic.Record(ctx, critic/n, attrs)
		w.tel.entropy.Record(ctx, entropy/n, attrs)
	}
	if w.live != nil {
		w.publish(ctx, livePoints(pts, updates, before, version, time.Now()))
	}
}

// newPoints reads the lines curves.jsonl gained since the last call.
func (w *trainWatch) newPoints() []learner.CurvePoint {
	f, err := os.Open(w.curves)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(w.offset, 0); err != nil {
		return nil
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil
	}
	w.offset += int64(len(b))
	var out []learner.CurvePoint
	for _, ln := range bytes.Split(b, []byte("\n")) {
		var p learner.CurvePoint
		if len(ln) == 0 || json.Unmarshal(ln, &p) != nil {
			continue
		}
		out = append(out, p)
	}
	return out
}

// publish sends points, after those a failed publish left, to the live store, within
// LivePublishTimeout of the task's context. A failure keeps them for the next round (the
// newest live.MaxCurvePoints) and is logged; it never stops the training.
func (w *trainWatch) publish(ctx context.Context, points []live.CurvePoint) {
	w.pending = append(w.pending, points...)
	if extra := len(w.pending) - live.MaxCurvePoints; extra > 0 {
		w.pending = slices.Delete(w.pending, 0, extra)
	}
	if len(w.pending) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, LivePublishTimeout)
	err := w.live.AppendCurve(pctx, w.exp, w.task, w.line, w.pending)
	cancel()
	switch {
	case err == nil:
		w.pending = w.pending[:0]
	case ctx.Err() != nil:
		// The attempt is ending: its points go with it (the next attempt's are above them).
	case !w.warned:
		w.warned = true
		w.log.Warn("live learning curve not published; trying again at the next checkpoint", "err", err, "points", len(w.pending))
	default:
		w.log.Debug("live learning curve not published", "err", err, "points", len(w.pending))
	}
}

// livePoints turns a round's curve lines into the live curve's points: at each update, the
// means over the members that have a line there, ordered by update. A point at the round's
// end (updates per member) carries the version published there, the others the version
// before; a point holding a NaN or infinite mean is left out (no store keeps it).
func livePoints(pts []learner.CurvePoint, updates int64, before, after uint64, at time.Time) []live.CurvePoint {
	type sum struct {
		critic, actor, entropy, alpha float64
		n                             int
	}
	by := map[int64]*sum{}
	for _, p := range pts {
		s := by[p.Update]
		if s == nil {
			s = &sum{}
			by[p.Update] = s
		}
		s.critic += (p.Q1Loss + p.Q2Loss) / 2
		s.actor += p.ActorLoss
		s.entropy += p.Entropy
		s.alpha += p.Alpha
		s.n++
	}
	out := make([]live.CurvePoint, 0, len(by))
	for _, u := range slices.Sorted(maps.Keys(by)) {
		s := by[u]
		n := float64(s.n)
		p := live.CurvePoint{Update: u, Critic: s.critic / n, Actor: s.actor / n, Entropy: s.entropy / n, Alpha: s.alpha / n, Version: before, At: at}
		if u >= updates {
			p.Version = after
		}
		if !slices.ContainsFunc([]float64{p.Critic, p.Actor, p.Entropy, p.Alpha}, func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }) {
			out = append(out, p)
		}
	}
	return out
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
	lc.SAC.ActorLR, lc.SAC.CriticLR = t.LR(), t.LR()
	lc.SAC.WeightDecay = t.WeightDecay
	if t.LightObservation() {
		lc.Spec = policy.LightSpec()
		lc.SAC.ObsSize = lc.Spec.Size()
	}
	return lc
}

// ReplaySettings is the reference sampling (replay.DefaultConfig) with the experiment's reward
// (its light cost in the reward's units) and, for the collection critic target, the
// collection's light probability p.
func ReplaySettings(t experiment.Train, p float64) replay.Config {
	c := replay.DefaultConfig()
	c.ReachReward = t.ReachReward
	c.Mirror = t.Mirror
	c.LightCost = obs.ProgressGain * t.LightCostCM * worker.ReferencePxPerCM / obs.PosScale
	if t.CriticTarget == experiment.CriticTargetCollection {
		c.CollectionP = p
	}
	return c
}
