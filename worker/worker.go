// Package worker runs the closed loop of one arena: frame -> pose (tracker) -> 15-frame
// observation relative to the episode's target -> action (a learnt policy or a fixed schedule)
// -> light -> per-frame record to the replay -> episode metrics.
//
// The worker defines the interfaces it consumes (Observer, Policy, Sink); track.Observer,
// policy.Ensemble and replay.Memory satisfy them. The light goes off on every exit path of an
// episode: normal end, error, context cancellation and a panic in the policy.
//
// A policy acts only on full observations: until an episode has obs.Frames tracked frames (5 s
// at 3 Hz) the light stays off. The learners never see a padded window (the replay samples only
// windows of recorded frames), and a padded window, one frame repeated, looks like a worm that
// has not moved for 5 s: agents of a paralysing line answered it with light from the first
// frame and held the worm still for the whole episode (runner/SCIENCE.md).
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/optoloop/optoloop/agentlib/obs"
	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
)

// ReferencePxPerCM is the camera scale the agents' observations are expressed in: positions are
// converted from an arena's pixels to reference pixels before they reach the observation and
// the replay, so an agent trained on one rig acts on another.
const ReferencePxPerCM = 540

// ErrPolicyPanic is returned (wrapped) when the policy panicked; the light is off by then.
var ErrPolicyPanic = errors.New("policy panicked")

// Observer turns the arena's next frame into the worm's pose (track.Observer).
type Observer interface {
	// Prepare readies the observer for a new episode (light off, background, forget the worm).
	Prepare(ctx context.Context) error
	// NextPose waits for the next frame and returns it with the pose.
	NextPose(ctx context.Context) (arenas.Frame, arenas.Pose, error)
}

// Policy chooses the light from an observation (policy.Ensemble). Act returns 1 for light on,
// 0 for off. A policy that acts on another observation than the reference's (obs.Size numbers)
// says so with ObservationSize (an ObservationSizer); the worker builds observations of that
// size (obs.Size or obs.LightSize, see package agentlib/obs).
type Policy interface {
	Act(o []float32) int
}

// ObservationSizer is a Policy that names the length of the observations it acts on.
type ObservationSizer interface {
	ObservationSize() int
}

// Sink receives the per-frame records of episodes (the replay).
type Sink interface {
	Append(recs ...replay.Record) error
}

// Episode says what one episode does.
type Episode struct {
	// ID names the episode in the replay and the results.
	ID string
	// Seconds is the episode's length on the arena's clock; the episode runs
	// round(Seconds / frame period) control steps.
	Seconds float64
	// TargetCM is the target's offset from the plate centre in cm, image axes.
	TargetCM [2]float64
	// Exactly one of Schedule (a fixed light sequence: none, always, random) and Policy.
	Schedule *episode.Schedule
	Policy   Policy
	// PolicyVersion is recorded with every frame the policy decided (0 for schedules).
	PolicyVersion uint64
	// Explore is the probability that a frame the policy would decide is instead a random
	// draw, light on with probability ExploreP (online episodes); the draws come from
	// ExploreRand, which must be set when Explore > 0. Every record carries the behaviour
	// probability of its light (replay.Record.BehaviourP).
	Explore     float64
	ExploreP    float64
	ExploreRand *rand.Rand
	// DecisionFrames > 1 lets Policy decide only at every DecisionFrames-th step, counted from
	// the episode's first (episode.Spec.DecisionFrames); on the steps between, the light holds
	// its last decision (off on a lost frame, as ever). 0 or 1: every step.
	DecisionFrames int
	// MinConfidence is the tracking confidence below which a frame counts as lost (default
	// 0.5 when zero).
	MinConfidence float64
	// Watch, when set, is called once per control step, after the light is set and its
	// latency measured, on the loop's goroutine (for live views). It must return at once: no
	// IO, no lock that another goroutine may hold for long, no allocation per step; copy what
	// it keeps, since the frame's pixels and the pose's midline are reused after it returns.
	Watch func(Tick)
}

// Tick is one control step as Episode.Watch sees it.
type Tick struct {
	// Index counts the episode's control steps from 0; Steps is their number.
	Index, Steps int
	// Frame is the camera frame acted on; its Pix is valid only during the call (nil without
	// rendering).
	Frame arenas.Frame
	// Pose is the pose the loop acted on (arena pixels); OK whether the loop counted it as
	// tracked (Pose.OK at MinConfidence or above, finite centre).
	Pose arenas.Pose
	OK   bool
	// Light is the light state the loop just set for this step.
	Light bool
	// Latency is this step's frame -> light latency (see ArrivalObserver).
	Latency time.Duration
	// TargetPx is the episode's target in arena pixels.
	TargetPx [2]float64
}

// Result is what an episode measured.
type Result struct {
	Metrics episode.Metrics
	// Frames is the number of control steps run; Lost how many of them had no usable pose.
	Frames int
	Lost   int
	// LightOn is the number of steps whose chosen action was light on.
	LightOn int
	// Records are the per-frame records in reference pixels, as sent to the sink.
	Records []replay.Record
	// TargetPx is the target in the arena's pixels.
	TargetPx [2]float64
	// PolicyVersion is the parameter version the policy acted with (0 for a schedule).
	PolicyVersion uint64
}

// Outcome returns the result as the typed outcome a worker reports.
func (r *Result) Outcome() episode.Outcome {
	o := episode.Outcome{
		Seconds:         r.Metrics.Seconds,
		ClosestCM:       r.Metrics.ClosestCM,
		FinalDistanceCM: r.Metrics.FinalDistanceCM,
		MeanSpeedMMs:    r.Metrics.MeanSpeedMMs,
		LightFraction:   r.ChosenLightFraction(),
		LostFraction:    r.LostFraction(),
		Frames:          r.Frames,
		PolicyVersion:   r.PolicyVersion,
	}
	if t := r.Metrics.TimeToWithinS; t != nil {
		v := *t
		o.TimeTo05cmS = &v
	}
	return o
}

// LostFraction is the share of steps without a usable pose.
func (r *Result) LostFraction() float64 {
	if r.Frames == 0 {
		return 0
	}
	return float64(r.Lost) / float64(r.Frames)
}

// ChosenLightFraction is the share of steps whose chosen action was light on.
func (r *Result) ChosenLightFraction() float64 {
	if r.Frames == 0 {
		return 0
	}
	return float64(r.LightOn) / float64(r.Frames)
}

// Fill writes the result into e: metrics, the plate geometry of calibration cal and, when
// keepTrack is set, the per-frame track in the arena's pixels. The caller names the episode
// (ID, condition, line, seed).
func (r *Result) Fill(e *results.Episode, cal arenas.Calibration, keepTrack bool) {
	e.Seconds = r.Metrics.Seconds
	e.PxPerCM = cal.PxPerCM
	e.PlateCenter = [2]float64{cal.CenterX, cal.CenterY}
	e.PlateRadius = cal.PlateRadius
	e.Target = r.TargetPx
	e.ClosestCM = r.Metrics.ClosestCM
	e.TimeTo05cmS = r.Metrics.TimeToWithinS
	e.LightFraction = r.ChosenLightFraction()
	e.LostFraction = r.LostFraction()
	e.FinalDistanceCM = r.Metrics.FinalDistanceCM
	e.Frames = nil
	if !keepTrack {
		return
	}
	back := cal.PxPerCM / ReferencePxPerCM
	e.Frames = make([]results.Frame, len(r.Records))
	for i, rec := range r.Records {
		e.Frames[i] = results.Frame{T: rec.T, X: rec.X * back, Y: rec.Y * back, Light: rec.Light, OK: rec.OK, Body: rec.Body, Head: rec.Head, Ver: rec.PolicyVersion}
	}
}

// Config configures a Worker.
type Config struct {
	// ChunkFrames is how many records are sent to the sink at once (default 90: 30 s at 3 Hz).
	ChunkFrames int
	// LightOffTimeout bounds the final light-off command when the episode's context has ended
	// (default 2 s).
	LightOffTimeout time.Duration
	// Logger (default: discard).
	Logger *slog.Logger
	// TracerProvider makes the episode's worker.background and worker.loop spans (children
	// of the span in RunEpisode's context; light and tracking changes are events of the
	// loop's span). Nil: none.
	TracerProvider trace.TracerProvider
	// Metrics, when set, counts frames, lost frames and light-on frames and records every
	// frame's frame -> light latency (NewMetrics; one set per process).
	Metrics *Metrics
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{ChunkFrames: 90, LightOffTimeout: 2 * time.Second}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	if c.ChunkFrames < 1 {
		return fmt.Errorf("worker: chunk_frames %d must be >= 1", c.ChunkFrames)
	}
	if c.LightOffTimeout <= 0 {
		return fmt.Errorf("worker: light_off_timeout %v must be positive", c.LightOffTimeout)
	}
	return nil
}

// Worker runs episodes on one arena. It is used by one goroutine at a time.
type Worker struct {
	cfg   Config
	arena arenas.Arena
	obs   Observer
	sink  Sink
	log   *slog.Logger
	build *obs.Builder
	o     []float32
}

// New returns a worker for arena a, seen through observer o, sending records to sink (nil: no
// records are kept outside the Result).
func New(cfg Config, a arenas.Arena, o Observer, sink Sink) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if a == nil || o == nil {
		return nil, errors.New("worker: nil arena or observer")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{cfg: cfg, arena: a, obs: o, sink: sink, log: log, build: obs.NewBuilder(0, 0), o: make([]float32, obs.LightSize)}, nil
}

// RunEpisode runs one episode to its end and returns what it measured. On error the light is
// off and the Result holds what was measured until then.
func (w *Worker) RunEpisode(ctx context.Context, ep Episode) (res Result, err error) {
	if (ep.Schedule == nil) == (ep.Policy == nil) {
		return res, fmt.Errorf("worker: episode %q needs exactly one of a schedule and a policy", ep.ID)
	}
	if ep.Explore != 0 && (ep.Policy == nil || !(ep.Explore > 0 && ep.Explore <= 1) || !(ep.ExploreP >= 0 && ep.ExploreP <= 1) || ep.ExploreRand == nil) {
		return res, fmt.Errorf("worker: episode %q: exploration %v at P %v needs a policy, both within 0-1, and a random source", ep.ID, ep.Explore, ep.ExploreP)
	}
	cal := w.arena.Calibration()
	if !(ep.Seconds > 0) || math.IsInf(ep.Seconds, 0) {
		return res, fmt.Errorf("worker: episode %q: seconds %v must be positive", ep.ID, ep.Seconds)
	}
	steps := int(math.Round(ep.Seconds / cal.FramePeriod.Seconds()))
	if steps < 1 {
		return res, fmt.Errorf("worker: episode %q: %v s is shorter than one frame", ep.ID, ep.Seconds)
	}
	minConf := ep.MinConfidence
	if minConf == 0 {
		minConf = 0.5
	}
	tx := cal.CenterX + ep.TargetCM[0]*cal.PxPerCM
	ty := cal.CenterY + ep.TargetCM[1]*cal.PxPerCM
	if math.Hypot(tx-cal.CenterX, ty-cal.CenterY) > cal.PlateRadius {
		return res, fmt.Errorf("worker: episode %q: target (%g, %g) cm lies outside the plate", ep.ID, ep.TargetCM[0], ep.TargetCM[1])
	}
	res.TargetPx = [2]float64{tx, ty}
	if ep.Policy != nil {
		res.PolicyVersion = ep.PolicyVersion
	}
	size := obs.Size
	if p, ok := ep.Policy.(ObservationSizer); ok {
		size = p.ObservationSize()
	}
	if size != obs.Size && size != obs.LightSize {
		return res, fmt.Errorf("worker: episode %q: the policy acts on %d-number observations, the worker builds %d or %d", ep.ID, size, obs.Size, obs.LightSize)
	}
	if cap(w.o) < size {
		w.o = make([]float32, size)
	}
	w.o = w.o[:size]
	toRef := ReferencePxPerCM / cal.PxPerCM
	w.build.Reset(tx*toRef, ty*toRef)
	acc, err := episode.NewAccumulator(cal.PxPerCM)
	if err != nil {
		return res, err
	}

	// The light goes off on every exit path, with a context of its own since ctx may be done.
	defer func() {
		offCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.LightOffTimeout)
		defer cancel()
		if lerr := w.arena.SetLight(offCtx, arenas.Light{}); lerr != nil && !errors.Is(lerr, arenas.ErrClosed) {
			w.log.Error("light off failed", "episode", ep.ID, "err", lerr)
			err = errors.Join(err, fmt.Errorf("worker: light off: %w", lerr))
		}
	}()

	tp := w.cfg.TracerProvider
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	tracer := tp.Tracer(scope)
	bctx, bg := tracer.Start(ctx, "worker.background")
	if err := w.obs.Prepare(bctx); err != nil {
		bg.SetStatus(codes.Error, err.Error())
		bg.End()
		return res, fmt.Errorf("worker: episode %q: prepare: %w", ep.ID, err)
	}
	bg.End()
	_, loop := tracer.Start(ctx, "worker.loop", trace.WithAttributes(attribute.Int("optoloop.steps", steps)))
	defer func() {
		loop.SetAttributes(attribute.Int("optoloop.frames", res.Frames), attribute.Int("optoloop.lost_frames", res.Lost), attribute.Int("optoloop.light_on_frames", res.LightOn))
		if err != nil {
			loop.SetStatus(codes.Error, err.Error())
		}
		loop.End()
	}()
	recording := loop.IsRecording()
	met := w.cfg.Metrics
	var counted counts
	defer func() { met.add(ctx, &counted, res.Frames, res.Lost, res.LightOn) }()
	arrived, _ := w.obs.(ArrivalObserver)
	wasOK, wasOn := true, false
	res.Records = make([]replay.Record, 0, steps)
	flushed := 0
	flush := func() error {
		if w.sink == nil || flushed == len(res.Records) {
			return nil
		}
		if err := w.sink.Append(res.Records[flushed:]...); err != nil {
			return fmt.Errorf("worker: episode %q: replay: %w", ep.ID, err)
		}
		flushed = len(res.Records)
		return nil
	}
	var t0 time.Time
	held := false // the light of the policy's last decision (Episode.DecisionFrames)
	for i := 0; i < steps; i++ {
		frame, pose, err := w.obs.NextPose(ctx)
		if err != nil {
			return res, fmt.Errorf("worker: episode %q: frame %d: %w", ep.ID, i, err)
		}
		arrival := time.Now()
		if arrived != nil {
			if a := arrived.Arrived(); !a.IsZero() {
				arrival = a
			}
		}
		if i == 0 {
			t0 = frame.Time
		}
		t := frame.Time.Sub(t0).Seconds()
		ok := pose.OK && pose.Confidence >= minConf && !math.IsNaN(pose.X) && !math.IsNaN(pose.Y)
		rec := replay.Record{
			T: t, OK: ok, Episode: ep.ID,
			TargetX: tx * toRef, TargetY: ty * toRef,
		}
		if ok {
			rec.X, rec.Y, rec.Body, rec.Head = pose.X*toRef, pose.Y*toRef, pose.BodyAngle, pose.HeadAngle
			w.build.Push(obs.Pose{X: rec.X, Y: rec.Y, Body: rec.Body, Head: rec.Head}, true)
			if err := acc.Add(episode.Record{T: t, X: pose.X, Y: pose.Y, TargetX: tx, TargetY: ty, Light: frame.Light.On}); err != nil {
				return res, fmt.Errorf("worker: episode %q: frame %d: %w", ep.ID, i, err)
			}
		} else {
			res.Lost++
		}
		on, pOn, err := w.decide(ep, ok, i, &held)
		if err != nil {
			return res, err
		}
		rec.BehaviourP = pOn
		w.build.Decided(on)
		if err := w.arena.SetLight(ctx, arenas.Light{On: on}); err != nil {
			return res, fmt.Errorf("worker: episode %q: light: %w", ep.ID, err)
		}
		lat := time.Since(arrival)
		met.latency(ctx, lat)
		if ep.Watch != nil {
			ep.Watch(Tick{Index: i, Steps: steps, Frame: frame, Pose: pose, OK: ok, Light: on, Latency: lat, TargetPx: res.TargetPx})
		}
		if recording && (ok != wasOK || on != wasOn) {
			if ok != wasOK {
				loop.AddEvent(trackingEvent[ok], trace.WithAttributes(attribute.Int("optoloop.frame", i)))
			}
			if on != wasOn {
				loop.AddEvent(lightEvent[on], trace.WithAttributes(attribute.Int("optoloop.frame", i)))
			}
		}
		wasOK, wasOn = ok, on
		rec.Light = on
		if on {
			res.LightOn++
		}
		if ep.Policy != nil {
			rec.PolicyVersion = ep.PolicyVersion
		}
		res.Records = append(res.Records, rec)
		res.Frames++
		if len(res.Records)-flushed >= w.cfg.ChunkFrames {
			met.add(ctx, &counted, res.Frames, res.Lost, res.LightOn)
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	m, err := acc.Metrics()
	if err != nil {
		return res, fmt.Errorf("worker: episode %q: no tracked frame: %w", ep.ID, err)
	}
	res.Metrics = m
	return res, nil
}

// decide returns the light for the current step and the probability pOn with which it was
// going to be on (the behaviour probability). A schedule advances on every step; a lost frame
// switches the light off whatever the schedule or the policy says. With ep.Explore, a frame
// the policy decides is a random draw with that probability (the policy still runs, so that
// the step costs the same). With ep.DecisionFrames > 1 the policy decides only at step i a
// multiple of it; on the steps between, the light holds that decision (*held), pOn 1 or 0.
func (w *Worker) decide(ep Episode, ok bool, i int, held *bool) (on bool, pOn float64, err error) {
	if ep.Schedule != nil {
		on = ep.Schedule.Next()
		if !ok {
			return false, 0, nil
		}
		return on, ep.Schedule.LastP(), nil
	}
	if n := ep.DecisionFrames; n > 1 {
		if i%n != 0 {
			if !ok || !*held {
				return false, 0, nil
			}
			return true, 1, nil
		}
		defer func() { *held = on }()
	}
	if !ok || !w.build.Ready() || !w.build.Observation(w.o) {
		return false, 0, nil
	}
	defer func() {
		if r := recover(); r != nil {
			on, pOn = false, 0
			err = fmt.Errorf("worker: episode %q: %w: %v", ep.ID, ErrPolicyPanic, r)
		}
	}()
	greedy := ep.Policy.Act(w.o) == 1
	pOn = 0
	if greedy {
		pOn = 1
	}
	if ep.Explore <= 0 {
		return greedy, pOn, nil
	}
	pOn = (1-ep.Explore)*pOn + ep.Explore*ep.ExploreP
	if ep.ExploreRand.Float64() < ep.Explore {
		return ep.ExploreRand.Float64() < ep.ExploreP, pOn, nil
	}
	return greedy, pOn, nil
}
