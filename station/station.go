// Package station is one arena ready for episodes: a real rig (arenas/rig) or a simulated line
// (arenas/sim), seen through the tracker (track.Observer) and driven by the closed loop of
// package worker. Run takes one episode as the protocol asks for it (an episode.Spec, with the
// ensemble for the kinds that act) and returns its typed outcome, its per-frame records and its
// track. `optoloop episode`, `optoloop sim`, the local run and the worker process all run their
// episodes through a Station.
//
// Animals. A simulated station draws a new animal for every episode: each Run opens a fresh
// sim.Arena seeded with Spec.Seed (the animal, its behaviour and the camera's look) and a fresh
// tracker, and closes both when the episode ends. A rig station is given its rig open
// (rig.Open) and keeps it open across episodes until Close: its plates are real, the animal is
// whatever is on the plate, and Spec.Seed seeds only the light schedule.
//
// Seeds. A fixed-policy episode (KindCollect, KindRandom, KindNone) switches the light by
// Spec.LightPolicy().Schedule(ScheduleSeed(Spec.Seed)). The simulator seeds each of its
// generators as PCG(Spec.Seed, s) with a constant s per purpose (placement, behaviour, camera
// noise, texture...); the schedule's generator is PCG(ScheduleSeed(Spec.Seed), 0x11647), where
// ScheduleSeed is one splitmix64 step. The generators' 128-bit states then differ in both
// words, not only in the constant, so the light and the animal are unrelated draws from one
// seed; and since the schedule draws from a generator of its own, the same seed gives the same
// animal whatever the light does.
//
// Refusals. Run checks the episode before it touches the arena and refuses, with a one-line
// error, an episode without an id, a spec that fails episode.Spec.Validate, a spec of another
// line than the station's, a target off the plate, an episode shorter than one frame, an acting
// kind (KindAgent, KindCross) without a policy and a fixed kind with one.
//
// Safety. The light is off when Run returns, on every path: normal end, error, a sink that
// fails, a cancelled context, a panicking policy (the worker loop's guarantee, kept by running
// every episode through it). Close switches a rig's light off and releases it.
package station

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/arenas/track"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/worker"
)

// Config configures a Station: exactly one of a simulated line (Catalogue) and a real arena
// (Arena).
type Config struct {
	// ArenaID names the arena in logs and errors (default: the line).
	ArenaID string
	// Line is the line of the station's animals: for a simulated station a code of Catalogue,
	// for a rig the line of the animals put on its plates. Only episodes of this line run.
	Line string
	// Catalogue holds the simulated lines (a simulated station).
	Catalogue *sim.Catalogue
	// NoRender runs the simulator without its camera: the worker then acts on the simulator's
	// true pose instead of the tracker's (much faster; simulated stations only).
	NoRender bool
	// Calibration is the simulated camera and plate (simulated stations only; zero: the
	// reference rig, arenas.DefaultCalibration()).
	Calibration arenas.Calibration
	// Realtime paces simulated frames at the frame period on the wall clock (simulated
	// stations only); otherwise the virtual clock runs as fast as the CPU allows.
	Realtime bool
	// Speed, with Realtime, paces frames Speed times faster than real time (0: real time).
	Speed float64
	// Arena is a real arena open for episodes, a rig (rig.Open). New takes it over: the station
	// keeps it open across episodes and closes it in Close.
	Arena arenas.Arena
	// Worker configures the closed loop (chunk size of the records sent to a sink, light-off
	// timeout). Default worker.DefaultConfig().
	Worker worker.Config
	// Logger receives the station's events (default: discard).
	Logger *slog.Logger
	// TracerProvider makes every episode's worker.prepare span (opening the arena and its
	// tracker) and the loop's spans (see worker.Config), children of the span in Run's
	// context. Nil: none.
	TracerProvider trace.TracerProvider
	// MeterProvider receives the loop's metrics (worker.NewMetrics). Nil: none.
	MeterProvider metric.MeterProvider
}

// DefaultConfig returns the defaults; Line and one of Catalogue and Arena must still be set.
func DefaultConfig() Config {
	return Config{Worker: worker.DefaultConfig()}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	switch {
	case c.Line == "":
		return errors.New("station: no line")
	case (c.Catalogue == nil) == (c.Arena == nil):
		return errors.New("station: give exactly one of a line catalogue (simulated) and a real arena")
	case c.Speed < 0 || c.Speed > 1e6:
		return fmt.Errorf("station: speed %v must be within 0-1e6", c.Speed)
	case c.Arena != nil && (c.NoRender || c.Realtime || c.Calibration != arenas.Calibration{}):
		return errors.New("station: no_render, realtime and calibration are for simulated stations (a real arena has its own calibration)")
	}
	if c.Calibration != (arenas.Calibration{}) {
		if err := c.Calibration.Validate(); err != nil {
			return fmt.Errorf("station: %w", err)
		}
	}
	if c.Catalogue != nil {
		if _, err := c.Catalogue.Line(c.Line); err != nil {
			return fmt.Errorf("station: %w", err)
		}
	}
	if err := c.Worker.Validate(); err != nil {
		return fmt.Errorf("station: %w", err)
	}
	return nil
}

// Episode is one episode to run.
type Episode struct {
	// ID names the episode (the coordinator's item id); every record carries it. Required.
	ID string
	// Spec is the episode as the protocol asks for it: kind, line, target, seconds, seed, light
	// probability.
	Spec episode.Spec
	// Policy is the ensemble that acts in KindAgent and KindCross episodes (nil otherwise);
	// PolicyVersion is the parameter version it is, recorded with every frame it decided.
	Policy        worker.Policy
	PolicyVersion uint64
	// Sink, when set, receives the records in chunks (Config.Worker.ChunkFrames) while the
	// episode runs; an error from it ends the episode.
	Sink worker.Sink
	// KeepFrames puts the per-frame track into Result.Track.Frames.
	KeepFrames bool
	// OnStep, when set, is called at every control step, after the pose and before the light
	// decision; an error from it ends the episode. For frame dumps and live views.
	OnStep func(Step) error
	// Watch, when set, is called at every control step after the light is set, with the
	// step's frame, pose, light and frame -> light latency (worker.Episode.Watch: it must
	// return at once and copy what it keeps). For live tiles.
	Watch func(worker.Tick)
	// Logger, when set, receives the episode's log lines instead of the station's logger (a
	// worker's logger naming the item and its trace id).
	Logger *slog.Logger
}

// Step is one control step as Episode.OnStep sees it.
type Step struct {
	// Index counts the episode's control steps from 0.
	Index int
	// Frame is the camera frame; its Pix is valid only during the call (nil without rendering).
	Frame arenas.Frame
	// Pose is the pose the worker acts on: the tracker's, or without rendering the
	// simulator's own.
	Pose arenas.Pose
	// True is the simulator's true pose (simulated stations; nil on a rig).
	True *arenas.Pose
}

// Result is what one episode gave.
type Result struct {
	// Outcome is the typed metrics a worker reports.
	Outcome episode.Outcome
	// Records are the per-frame records in reference pixels, as sent to the sink.
	Records []replay.Record
	// Track is the episode for the run folder: ID, condition (the spec's kind), lines, seed,
	// light probability, plate geometry, target and metrics in the arena's pixels, and with
	// Episode.KeepFrames the per-frame track.
	Track results.Episode
	// Sim is what the simulator itself counted (simulated stations; nil on a rig).
	Sim *SimStats
}

// SimStats is the simulator's truth about one simulated episode's animal, as opposed to what
// the tracker saw.
type SimStats struct {
	// Seconds is the animal's simulated time from its placement to the last frame (the
	// tracker's background frames included).
	Seconds float64 `json:"seconds"`
	// Reversals counts every reversal (spontaneous, light-evoked and at the plate edge);
	// EdgeReversals how many of them the plate edge triggered.
	Reversals     int `json:"reversals"`
	EdgeReversals int `json:"edge_reversals"`
	// Omegas counts omega turns.
	Omegas int `json:"omegas"`
}

// PerMinute returns n events per minute of the animal's simulated time (0 before any time).
func (s SimStats) PerMinute(n int) float64 {
	if !(s.Seconds > 0) {
		return 0
	}
	return float64(n) / (s.Seconds / 60)
}

// ScheduleSeed derives the seed of a fixed-policy episode's light schedule from the episode's
// seed: one splitmix64 step (Steele, Lea and Flood 2014), a bijection, so that distinct
// episodes get distinct schedules and the schedule's generator shares no state with the
// simulator's (see the package comment).
func ScheduleSeed(seed uint64) uint64 {
	z := seed + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Station is one arena ready for episodes. Episodes run one at a time (concurrent calls of Run
// wait their turn); Close may be called from any goroutine and ends a running episode.
type Station struct {
	cfg Config
	id  string
	log *slog.Logger
	cal arenas.Calibration

	line       sim.Line        // simulated stations
	rig        arenas.Arena    // rig stations: open until Close
	obs        *track.Observer // rig stations: the rig's tracker
	rigArrival arrivals        // rig stations: when the rig's frames arrived

	tracer  trace.Tracer
	metrics *worker.Metrics

	run     sync.Mutex // held by Run for the whole episode
	obsOnce sync.Once
	obsErr  error

	mu      sync.Mutex
	closed  bool
	running bool       // an episode holds the arena
	current *sim.Arena // the running simulated episode's arena
}

// New returns a station. A simulated station opens nothing yet (every episode opens its own
// arena); a rig station takes over cfg.Arena (on error the caller keeps it).
func New(cfg Config) (*Station, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Station{cfg: cfg, id: cfg.ArenaID, log: cfg.Logger}
	if s.id == "" {
		s.id = cfg.Line
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("arena", s.id)
	tp := cfg.TracerProvider
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	s.tracer = tp.Tracer(scope)
	m, err := worker.NewMetrics(cfg.MeterProvider)
	if err != nil {
		return nil, fmt.Errorf("station %s: %w", s.id, err)
	}
	s.metrics = m
	if cfg.Catalogue != nil {
		s.line, _ = cfg.Catalogue.Line(cfg.Line) // checked by Validate
		s.cal = sim.DefaultConfig(s.line).Calibration
		if cfg.Calibration != (arenas.Calibration{}) {
			s.cal = cfg.Calibration
		}
		return s, nil
	}
	a := cfg.Arena
	if err := a.Calibration().Validate(); err != nil {
		return nil, fmt.Errorf("station %s: %w", s.id, err)
	}
	stamped := stamp(a)
	tcfg := track.DefaultConfig(a.Calibration())
	// A rig says how its worms show (bright-field or dark-field); without a word the tracker
	// decides it from the background built before each episode.
	tcfg.Polarity = track.AutoPolarity
	if p, ok := a.(interface{ Polarity() string }); ok {
		if tcfg.Polarity, err = track.ParsePolarity(p.Polarity()); err != nil {
			return nil, fmt.Errorf("station %s: %w", s.id, err)
		}
	}
	o, err := track.NewObserver(stamped, tcfg, s.log)
	if err != nil {
		return nil, fmt.Errorf("station %s: %w", s.id, err)
	}
	s.rig, s.obs, s.rigArrival, s.cal = a, o, stamped, a.Calibration()
	return s, nil
}

// Line returns the line of the station's animals.
func (s *Station) Line() string { return s.cfg.Line }

// Calibration returns the station's camera and plate.
func (s *Station) Calibration() arenas.Calibration { return s.cal }

// Simulated reports whether the station simulates its animals.
func (s *Station) Simulated() bool { return s.rig == nil }

// Run runs one episode to its end and returns what it gave. On error (a refused episode, an
// arena that fails, a sink that fails, ctx done) the Result is zero and the light is off.
func (s *Station) Run(ctx context.Context, e Episode) (Result, error) {
	if err := s.check(e); err != nil {
		return Result{}, err
	}
	s.run.Lock()
	defer s.run.Unlock()
	log := s.log
	if e.Logger != nil {
		log = e.Logger.With("arena", s.id)
	}
	_, prep := s.tracer.Start(ctx, "worker.prepare", trace.WithAttributes(attribute.String("optoloop.arena", s.id), attribute.Bool("optoloop.simulated", s.rig == nil)))
	var (
		arena   arenas.Arena
		obs     worker.Observer
		simA    *sim.Arena
		simO    *track.Observer
		arrival arrivals
	)
	if s.rig != nil {
		arena, obs, arrival = s.rig, s.obs, s.rigArrival
	} else {
		a, o, st, err := s.openSim(e.Spec)
		if err != nil {
			endSpan(prep, err)
			return Result{}, err
		}
		arena, obs, simA, simO, arrival = a, o, a, o, st
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.release(simA, simO)
		err := fmt.Errorf("station %s: %w", s.id, arenas.ErrClosed)
		endSpan(prep, err)
		return Result{}, err
	}
	s.running, s.current = true, simA
	s.mu.Unlock()
	defer s.finish(simA, simO)
	if e.OnStep != nil {
		obs = &stepObserver{Observer: obs, sim: simA, fn: e.OnStep}
	}
	obs = &arrivalObserver{Observer: obs, at: arrival}
	wcfg := s.cfg.Worker
	if wcfg.Logger == nil || e.Logger != nil {
		wcfg.Logger = log
	}
	if wcfg.TracerProvider == nil {
		wcfg.TracerProvider = s.cfg.TracerProvider
	}
	if wcfg.Metrics == nil {
		wcfg.Metrics = s.metrics
	}
	w, err := worker.New(wcfg, arena, obs, e.Sink)
	if err != nil {
		err = fmt.Errorf("station %s: %w", s.id, err)
		endSpan(prep, err)
		return Result{}, err
	}
	prep.End()
	wep := worker.Episode{ID: e.ID, Seconds: e.Spec.Seconds, TargetCM: e.Spec.TargetCM(), Watch: e.Watch}
	if e.Spec.Kind.Acts() {
		wep.Policy, wep.PolicyVersion, wep.DecisionFrames = e.Policy, e.PolicyVersion, e.Spec.DecisionFrames
		if e.Spec.Explore > 0 {
			// The exploration draws are seeded as a fixed policy's schedule is.
			wep.Explore, wep.ExploreP = e.Spec.Explore, e.Spec.LightProbability
			wep.ExploreRand = rand.New(rand.NewPCG(ScheduleSeed(e.Spec.Seed), 0x11647))
		}
	} else {
		wep.Schedule = e.Spec.LightPolicy().Schedule(ScheduleSeed(e.Spec.Seed))
	}
	res, err := w.RunEpisode(ctx, wep)
	if err != nil {
		return Result{}, fmt.Errorf("station %s: %w", s.id, err)
	}
	out := Result{Outcome: res.Outcome(), Records: res.Records}
	if err := out.Outcome.Validate(); err != nil {
		return Result{}, fmt.Errorf("station %s: episode %q: %w", s.id, e.ID, err)
	}
	out.Track = results.Episode{
		ID: e.ID, Condition: e.Spec.Kind, Line: e.Spec.Line, AgentLine: e.Spec.AgentLine, Seed: e.Spec.Seed,
	}
	if lp := e.Spec.LightPolicy(); !e.Spec.Kind.Acts() && lp.Kind == episode.Random {
		out.Track.LightProbability = lp.P
	}
	if env := e.Spec.Environment; env != nil {
		out.Outcome.TimeToFoodS = TimeToFood(res.Records, s.cal, env)
		out.Track.Environment = env.Name
		out.Track.TimeToFoodS = out.Outcome.TimeToFoodS
	}
	res.Fill(&out.Track, s.cal, e.KeepFrames)
	if simA != nil {
		m := simA.Model()
		out.Sim = &SimStats{Seconds: m.Seconds(), Reversals: m.Reversals(), EdgeReversals: m.EdgeReversals(), Omegas: m.Omegas()}
	}
	log.Debug("episode done", "id", e.ID, "kind", e.Spec.Kind, "closest_cm", out.Outcome.ClosestCM, "light", out.Outcome.LightFraction)
	return out, nil
}

// check refuses an episode that cannot run here, before the arena is touched.
func (s *Station) check(e Episode) error {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("station %s: episode %q: "+format, append([]any{s.id, e.ID}, args...)...)
	}
	sp := e.Spec
	if e.ID == "" {
		return fmt.Errorf("station %s: episode without an id", s.id)
	}
	if err := sp.Validate(); err != nil {
		return refuse("%w", err)
	}
	if sp.Line != s.cfg.Line {
		return refuse("line %q, but this station holds animals of line %q", sp.Line, s.cfg.Line)
	}
	if sp.Kind.Acts() && e.Policy == nil {
		return refuse("a %s episode needs a policy", sp.Kind)
	}
	if !sp.Kind.Acts() && e.Policy != nil {
		return refuse("a %s episode follows a fixed light policy, not an ensemble", sp.Kind)
	}
	t := sp.TargetCM()
	if r := s.cal.PlateRadius / s.cal.PxPerCM; math.Hypot(t[0], t[1]) > r {
		return refuse("target (%g, %g) cm lies outside the plate (radius %.3g cm)", t[0], t[1], r)
	}
	if steps := math.Round(sp.Seconds / s.cal.FramePeriod.Seconds()); steps < 1 {
		return refuse("%v s is shorter than one frame (%v)", sp.Seconds, s.cal.FramePeriod)
	}
	return nil
}

// openSim opens a new animal's arena and tracker (which reads the arena through a wrapper
// that stamps each frame's arrival).
func (s *Station) openSim(sp episode.Spec) (*sim.Arena, *track.Observer, arrivals, error) {
	cfg := sim.DefaultConfig(s.line)
	cfg.Calibration = s.cal
	cfg.Seed = sp.Seed
	if sp.Environment != nil {
		env, err := SimEnvironment(sp, s.cal)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("station %s: %w", s.id, err)
		}
		cfg.Environment = env
	}
	cfg.NoRender = s.cfg.NoRender
	cfg.Realtime, cfg.Speed = s.cfg.Realtime, s.cfg.Speed
	cfg.Logger = s.log
	a, err := sim.New(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("station %s: %w", s.id, err)
	}
	stamped := stamp(a)
	o, err := track.NewObserver(stamped, track.DefaultConfig(a.Calibration()), s.log)
	if err != nil {
		return nil, nil, nil, errors.Join(fmt.Errorf("station %s: %w", s.id, err), a.Close())
	}
	return a, o, stamped, nil
}

// finish ends a running episode: a simulated arena and its tracker are released; a rig's
// tracker is released when Close came while the episode ran.
func (s *Station) finish(a *sim.Arena, o *track.Observer) {
	s.mu.Lock()
	s.running, s.current = false, nil
	closed := s.closed
	s.mu.Unlock()
	s.release(a, o)
	if closed && s.rig != nil {
		if err := s.closeObs(); err != nil {
			s.log.Error("closing the tracker", "err", err)
		}
	}
}

// release closes a simulated episode's tracker and arena (nil: nothing to do).
func (s *Station) release(a *sim.Arena, o *track.Observer) {
	if a == nil {
		return
	}
	if err := errors.Join(o.Close(), a.Close()); err != nil {
		s.log.Error("closing a simulated arena", "err", err)
	}
}

// closeObs closes a rig station's tracker once.
func (s *Station) closeObs() error {
	s.obsOnce.Do(func() { s.obsErr = s.obs.Close() })
	return s.obsErr
}

// Close releases the station: a rig's light goes off and its camera and tracker are released.
// A running episode ends at its next frame with an error wrapping arenas.ErrClosed (light off);
// Close does not wait for it. A rig whose light does not switch off makes Close return an
// error; calling Close again tries again.
func (s *Station) Close() error {
	s.mu.Lock()
	s.closed = true
	running, cur := s.running, s.current
	s.mu.Unlock()
	if cur != nil {
		cur.Close() // unblocks the running episode, which releases the rest
	}
	if s.rig == nil {
		return nil
	}
	err := s.rig.Close()
	if !running {
		err = errors.Join(err, s.closeObs())
	}
	if err != nil {
		return fmt.Errorf("station %s: %w", s.id, err)
	}
	return nil
}

// stepObserver calls an episode's OnStep hook after every pose.
type stepObserver struct {
	worker.Observer
	sim *sim.Arena
	fn  func(Step) error
	n   int
}

func (o *stepObserver) NextPose(ctx context.Context) (arenas.Frame, arenas.Pose, error) {
	f, p, err := o.Observer.NextPose(ctx)
	if err != nil {
		return f, p, err
	}
	st := Step{Index: o.n, Frame: f, Pose: p}
	if o.sim != nil {
		tp := o.sim.Pose()
		st.True = &tp
	}
	o.n++
	if err := o.fn(st); err != nil {
		return f, p, fmt.Errorf("step hook: %w", err)
	}
	return f, p, nil
}

// FixedLight returns the episode kind and light probability that run the fixed light policy p:
// none is KindNone; random:P is KindRandom at P; always is KindRandom at P = 1, since a random
// schedule at P = 1 lights every block.
func FixedLight(p episode.Policy) (episode.Kind, float64) {
	switch p.Kind {
	case episode.Always:
		return episode.KindRandom, 1
	case episode.Random:
		return episode.KindRandom, p.P
	}
	return episode.KindNone, 0
}
