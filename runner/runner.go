// Package runner runs a whole experiment in one process, with no servers: random-light data
// collection on simulated arenas of every line in parallel, training of each line's ensemble,
// evaluation of the agent against no light and random light at the agent's own measured
// on-rate, and the optional cross-evaluation (agents of line A on animals of line B). It writes
// a run folder (package results) and returns the report.
//
// Every episode runs through the same worker loop as a cluster worker would: frame -> pose
// (the tracker on rendered frames, or the simulator's own pose when rendering is off) ->
// observation -> action -> light. Every random draw derives from the experiment's seed, so a
// run is reproducible.
package runner

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/optoloop/optoloop/agentlib/learner"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/agentlib/sac"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/arenas/track"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/worker"
)

// Config configures one run.
type Config struct {
	// Spec is the experiment; SpecYAML its file as submitted (copied into the run folder).
	Spec     experiment.Spec
	SpecYAML []byte
	// Dir is the run folder; it must not hold a report already.
	Dir string
	// Catalogue holds the lines the simulator knows.
	Catalogue *sim.Catalogue
	// NoRender runs the simulator without its camera: the worker then acts on the simulator's
	// true pose instead of the tracker's. Much faster; the default (false) renders and tracks.
	NoRender bool
	// Parallel is the number of arenas (episodes) run at once. Default runtime.GOMAXPROCS(0).
	Parallel int
	// Logger receives progress (default: discard).
	Logger *slog.Logger
	// Now is the clock for the report's timestamps (default time.Now).
	Now func() time.Time
}

// Validate reports the first unusable field.
func (c *Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("runner: no run folder")
	case c.Catalogue == nil:
		return errors.New("runner: no line catalogue")
	case c.Parallel < 0:
		return fmt.Errorf("runner: parallel %d must be >= 0", c.Parallel)
	}
	if err := c.Spec.Validate(); err != nil {
		return err
	}
	known := func(code string) bool { _, err := c.Catalogue.Line(code); return err == nil }
	return c.Spec.ValidateLines(known)
}

// Runner runs one experiment.
type Runner struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	rep  results.Report
	mu   sync.Mutex // guards rep while episodes finish in parallel
	ens  map[string]*policy.Ensemble
	ver  map[string]uint64
	data map[string]*replay.Memory
}

// New checks cfg and returns a runner.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = runtime.GOMAXPROCS(0)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Runner{cfg: cfg, log: log, now: now, ens: map[string]*policy.Ensemble{}, ver: map[string]uint64{}, data: map[string]*replay.Memory{}}, nil
}

// Run runs every phase and returns the report, also written to the run folder as report.json.
// A run that fails leaves what it finished in the folder (episodes, ensembles, a partial report).
func (r *Runner) Run(ctx context.Context) (*results.Report, error) {
	spec := r.cfg.Spec
	if err := r.start(); err != nil {
		return nil, err
	}
	phases := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"collect", r.collect},
		{"train", r.train},
		{"evaluate", r.evaluate},
		{"cross-evaluate", r.crossEvaluate},
	}
	for _, ph := range phases {
		t0 := time.Now()
		r.log.Info("phase start", "phase", ph.name, "experiment", spec.Name)
		if err := ph.fn(ctx); err != nil {
			if werr := r.writeReport(); werr != nil {
				err = errors.Join(err, werr)
			}
			return nil, fmt.Errorf("%s: %w", ph.name, err)
		}
		r.log.Info("phase done", "phase", ph.name, "seconds", time.Since(t0).Seconds())
		if err := r.writeReport(); err != nil {
			return nil, err
		}
	}
	r.rep.Finished = r.now().UTC()
	if err := r.writeReport(); err != nil {
		return nil, err
	}
	return &r.rep, nil
}

func (r *Runner) start() error {
	if _, err := os.Stat(filepath.Join(r.cfg.Dir, results.ReportFile)); err == nil {
		return fmt.Errorf("runner: %s already holds a report; choose a new run folder", r.cfg.Dir)
	}
	if r.cfg.SpecYAML != nil {
		if err := results.WriteFileAtomic(filepath.Join(r.cfg.Dir, results.ExperimentFile), r.cfg.SpecYAML); err != nil {
			return err
		}
	} else {
		b, err := experiment.Marshal(r.cfg.Spec)
		if err != nil {
			return err
		}
		if err := results.WriteFileAtomic(filepath.Join(r.cfg.Dir, results.ExperimentFile), b); err != nil {
			return err
		}
	}
	r.rep = results.Report{Name: r.cfg.Spec.Name, Started: r.now().UTC()}
	for _, l := range r.cfg.Spec.Lines {
		r.rep.Lines = append(r.rep.Lines, results.LineResult{Line: l, Conditions: map[string]results.Condition{}})
	}
	return nil
}

func (r *Runner) writeReport() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return results.WriteJSON(filepath.Join(r.cfg.Dir, results.ReportFile), &r.rep)
}

// seed derives a reproducible seed for one purpose from the experiment's seed.
func (r *Runner) seed(parts ...any) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, r.cfg.Spec.Seed)
	for _, p := range parts {
		fmt.Fprint(h, "/", p)
	}
	return h.Sum64()
}

// job is one episode to run on a fresh simulated arena (a new animal).
type job struct {
	id        string
	condition string
	line      string // the animal's line
	agentLine string
	animal    uint64 // the animal's seed
	seconds   float64
	targetCM  [2]float64
	light     episode.Policy // fixed policy; ignored when agent is set
	agent     *policy.Ensemble
	version   uint64
	keepTrack bool
}

type outcome struct {
	job job
	res worker.Result
	ep  results.Episode
}

// runJobs runs jobs on cfg.Parallel arenas at once and returns their outcomes in job order.
func (r *Runner) runJobs(ctx context.Context, jobs []job) ([]outcome, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]outcome, len(jobs))
	next := make(chan int)
	errc := make(chan error, r.cfg.Parallel)
	var wg sync.WaitGroup
	for w := 0; w < r.cfg.Parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				o, err := r.runJob(ctx, jobs[i])
				if err != nil {
					errc <- err
					cancel()
					return
				}
				out[i] = o
			}
		}()
	}
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (r *Runner) runJob(ctx context.Context, j job) (outcome, error) {
	line, err := r.cfg.Catalogue.Line(j.line)
	if err != nil {
		return outcome{}, err
	}
	acfg := sim.DefaultConfig(line)
	acfg.Seed = j.animal
	acfg.NoRender = r.cfg.NoRender
	arena, err := sim.New(acfg)
	if err != nil {
		return outcome{}, fmt.Errorf("episode %s: %w", j.id, err)
	}
	defer arena.Close()
	obsv, err := track.NewObserver(arena, track.DefaultConfig(arena.Calibration()), r.log)
	if err != nil {
		return outcome{}, fmt.Errorf("episode %s: %w", j.id, err)
	}
	defer obsv.Close()
	// Records reach the replay from collect, in job order (see there), not through a sink.
	w, err := worker.New(worker.DefaultConfig(), arena, obsv, nil)
	if err != nil {
		return outcome{}, err
	}
	ep := worker.Episode{ID: j.id, Seconds: j.seconds, TargetCM: j.targetCM}
	if j.agent != nil {
		ep.Policy, ep.PolicyVersion = j.agent, j.version
	} else {
		ep.Schedule = j.light.Schedule(r.seed("schedule", j.id))
	}
	res, err := w.RunEpisode(ctx, ep)
	if err != nil {
		return outcome{}, err
	}
	e := results.Episode{ID: j.id, Condition: j.condition, Line: j.line, AgentLine: j.agentLine, Seed: j.animal}
	res.Fill(&e, arena.Calibration(), j.keepTrack)
	if j.agent == nil && j.light.Kind == episode.Random {
		e.LightProbability = j.light.P
	}
	if err := results.WriteEpisode(r.cfg.Dir, &e); err != nil {
		return outcome{}, err
	}
	r.log.Debug("episode done", "id", j.id, "closest_cm", e.ClosestCM, "light", e.LightFraction)
	return outcome{job: j, res: res, ep: e}, nil
}

// collect records random-light episodes of every line, all lines' arenas in parallel.
func (r *Runner) collect(ctx context.Context) error {
	spec := r.cfg.Spec
	n := spec.CollectEpisodesPerLine()
	var jobs []job
	for _, l := range spec.Lines {
		mem, err := replay.NewMemory(replayConfig(spec.Train))
		if err != nil {
			return err
		}
		r.data[l] = mem
		for i := 0; i < n; i++ {
			jobs = append(jobs, job{
				id: fmt.Sprintf("collect-%s-%03d", l, i), condition: results.Collect, line: l,
				animal: r.seed("animal", "collect", l, i), seconds: spec.Collect.EpisodeSeconds,
				light: episode.Policy{Kind: episode.Random, P: spec.Collect.LightProbability},
			})
		}
	}
	// Interleave lines so that every line's arenas run at once.
	jobs = interleave(jobs, len(spec.Lines), n)
	outs, err := r.runJobs(ctx, jobs)
	if err != nil {
		return err
	}
	// The replay receives the episodes in job order, not in the order the parallel arenas
	// happen to finish: its windows, and so every minibatch the seeded learners draw, are then
	// the same in every run of the experiment.
	for _, o := range outs {
		if err := r.data[o.job.line].Append(o.res.Records...); err != nil {
			return fmt.Errorf("collect %s: %w", o.job.id, err)
		}
	}
	for _, l := range spec.Lines {
		r.log.Info("collected", "line", l, "episodes", n, "frames", r.data[l].Len(), "windows", r.data[l].Windows())
	}
	return nil
}

// interleave reorders line-major jobs (lines x n) into episode-major order.
func interleave(jobs []job, lines, n int) []job {
	out := make([]job, 0, len(jobs))
	for i := 0; i < n; i++ {
		for l := 0; l < lines; l++ {
			out = append(out, jobs[l*n+i])
		}
	}
	return out
}

// train trains each line's ensemble, members in parallel, and writes its policy map.
func (r *Runner) train(ctx context.Context) error {
	spec := r.cfg.Spec
	for i, l := range spec.Lines {
		lc := learnerConfig(spec.Train, results.LineDir(r.cfg.Dir, l))
		rng := rand.New(rand.NewPCG(r.seed("learner", l), 0))
		ln, err := learner.New(lc, r.data[l], nil, r.log.With("line", l), rng)
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := ln.Run(ctx); err != nil {
			return fmt.Errorf("line %s: %w", l, err)
		}
		ens, err := ln.Ensemble()
		if err != nil {
			return err
		}
		r.ens[l], r.ver[l] = ens, ln.Version()
		r.mu.Lock()
		r.rep.Lines[i].Members = lc.Members
		r.rep.Lines[i].Updates = int(ln.Updates())
		r.rep.Lines[i].TransitionsUsed = r.data[l].Windows()
		r.mu.Unlock()
		m, err := policy.ComputeMap(ens, policy.DefaultMapConfig())
		if err != nil {
			return err
		}
		if err := results.WriteJSON(filepath.Join(lc.Dir, results.PolicyMapFile), m); err != nil {
			return err
		}
		r.log.Info("trained", "line", l, "members", lc.Members, "updates", ln.Updates(), "seconds", time.Since(t0).Seconds())
	}
	return nil
}

// learnerConfig is the reference training schedule (learner.DefaultConfig) with the experiment's
// train section applied; dir is the line's folder.
func learnerConfig(t experiment.Train, dir string) learner.Config {
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

// replayConfig is the reference sampling (replay.DefaultConfig) with the experiment's reward.
func replayConfig(t experiment.Train) replay.Config {
	c := replay.DefaultConfig()
	c.ReachReward = t.ReachReward
	return c
}

// evalJobs returns the evaluation episodes of animals of line animal under one condition.
func (r *Runner) evalJobs(condition, animal, agentLine string, n int, lightP float64) []job {
	spec := r.cfg.Spec
	jobs := make([]job, n)
	for i := range jobs {
		_, x, y := spec.Target(i)
		j := job{
			id: fmt.Sprintf("%s-%s-%03d", condition, animal, i), condition: condition, line: animal,
			// A new animal in every episode, as in the reference.
			animal: r.seed("animal", condition, animal, agentLine, i), seconds: spec.Evaluate.EpisodeSeconds,
			targetCM: [2]float64{x, y}, keepTrack: true,
		}
		switch condition {
		case results.Agent:
			j.agentLine = animal
			j.agent, j.version = r.ens[animal], r.ver[animal]
		case results.Cross:
			j.id = fmt.Sprintf("cross-%s-by-%s-%03d", animal, agentLine, i)
			j.agentLine = agentLine
			j.agent, j.version = r.ens[agentLine], r.ver[agentLine]
		case results.None:
			j.light = episode.Policy{Kind: episode.None}
		case results.Random:
			j.light = episode.Policy{Kind: episode.Random, P: lightP}
		}
		jobs[i] = j
	}
	return jobs
}

// runAgentJobs gives every parallel arena its own copy of the ensembles (they are not safe for
// concurrent use) and runs the jobs.
func (r *Runner) runAgentJobs(ctx context.Context, jobs []job) ([]outcome, error) {
	for i := range jobs {
		if jobs[i].agent != nil {
			jobs[i].agent = jobs[i].agent.Clone()
		}
	}
	return r.runJobs(ctx, jobs)
}

func condition(outs []outcome) results.Condition {
	var c results.Condition
	for _, o := range outs {
		c.ClosestCM = append(c.ClosestCM, o.ep.ClosestCM)
		c.TimeTo05cmS = append(c.TimeTo05cmS, o.ep.TimeTo05cmS)
		c.EpisodeIDs = append(c.EpisodeIDs, o.ep.ID)
		c.LightFrac = append(c.LightFrac, o.ep.LightFraction)
		c.LostFraction = append(c.LostFraction, o.ep.LostFraction)
	}
	c.MeanClosest, c.SDClosest, c.N = results.Summarize(c.ClosestCM)
	return c
}

// evaluate compares each line's agent with no light and with random light at the agent's own
// measured on-rate.
func (r *Runner) evaluate(ctx context.Context) error {
	spec := r.cfg.Spec
	n := spec.Evaluate.EpisodesPerCondition
	for i, l := range spec.Lines {
		agentOut, err := r.runAgentJobs(ctx, r.evalJobs(results.Agent, l, l, n, 0))
		if err != nil {
			return err
		}
		agent := condition(agentOut)
		rate, _, _ := results.Summarize(agent.LightFrac)
		rate = math.Min(math.Max(rate, 0), 1)
		noneOut, err := r.runJobs(ctx, r.evalJobs(results.None, l, "", n, 0))
		if err != nil {
			return err
		}
		randOut, err := r.runJobs(ctx, r.evalJobs(results.Random, l, "", n, rate))
		if err != nil {
			return err
		}
		none, random := condition(noneOut), condition(randOut)
		_, pNone, err := results.MannWhitneyU(agent.ClosestCM, none.ClosestCM)
		if err != nil {
			return err
		}
		_, pRandom, err := results.MannWhitneyU(agent.ClosestCM, random.ClosestCM)
		if err != nil {
			return err
		}
		r.mu.Lock()
		lr := &r.rep.Lines[i]
		lr.Conditions[results.Agent], lr.Conditions[results.None], lr.Conditions[results.Random] = agent, none, random
		lr.RandomRate, lr.AgentLightFraction = rate, rate
		lr.PAgentVsNone, lr.PAgentVsRandom = pNone, pRandom
		r.mu.Unlock()
		r.log.Info("evaluated", "line", l, "agent_cm", agent.MeanClosest, "none_cm", none.MeanClosest,
			"random_cm", random.MeanClosest, "random_rate", rate, "p_none", pNone, "p_random", pRandom)
		if err := r.writeReport(); err != nil {
			return err
		}
	}
	return nil
}

// crossEvaluate runs the agents of each cross-evaluation line on animals of each such line.
func (r *Runner) crossEvaluate(ctx context.Context) error {
	lines := r.cfg.Spec.CrossLines()
	if len(lines) == 0 {
		return nil
	}
	n := r.cfg.Spec.CrossEvaluate.Episodes
	cr := &results.CrossResult{Agents: lines, Animals: lines}
	for _, animal := range lines {
		row := make([]float64, len(lines))
		nrow := make([]int, len(lines))
		for j, agentLine := range lines {
			outs, err := r.runAgentJobs(ctx, r.evalJobs(results.Cross, animal, agentLine, n, 0))
			if err != nil {
				return err
			}
			c := condition(outs)
			row[j], nrow[j] = c.MeanClosest, c.N
		}
		cr.ClosestCM = append(cr.ClosestCM, row)
		cr.N = append(cr.N, nrow)
	}
	r.mu.Lock()
	r.rep.Cross = cr
	r.mu.Unlock()
	return nil
}
