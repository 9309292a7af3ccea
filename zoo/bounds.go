package zoo

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"sync"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/station"
	"github.com/optoloop/optoloop/worker"
)

// BoundsConfig configures the hand-policy bounds of some lines.
type BoundsConfig struct {
	// Catalogue holds the lines; Lines are the codes to bound (at least one).
	Catalogue *sim.Catalogue
	Lines     []string
	// Evaluate is the evaluation protocol, as in an experiment file: episodes per condition,
	// episode length, target distance and directions taken in turn.
	Evaluate experiment.Evaluate
	// Seed roots every animal and schedule of the bounds.
	Seed uint64
	// Policies is the family the best policy is chosen from (default HandFamily()).
	Policies []HandPolicy
	// NoRender acts on the simulator's own pose instead of rendering and tracking frames.
	NoRender bool
	// Parallel is the number of episodes run at once (default runtime.GOMAXPROCS(0)); it
	// changes only the speed, never the results.
	Parallel int
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

// DefaultEvaluate is the evaluation protocol of the experiment defaults (experiment.Default).
func DefaultEvaluate() experiment.Evaluate { return experiment.Default().Evaluate }

// Validate reports the first unusable field.
func (c *BoundsConfig) Validate() error {
	if c.Catalogue == nil {
		return errors.New("zoo: bounds: no line catalogue")
	}
	if len(c.Lines) == 0 {
		return errors.New("zoo: bounds: no lines")
	}
	seen := map[string]bool{}
	for _, l := range c.Lines {
		if _, err := c.Catalogue.Line(l); err != nil {
			return fmt.Errorf("zoo: bounds: %w", err)
		}
		if seen[l] {
			return fmt.Errorf("zoo: bounds: line %q named twice", l)
		}
		seen[l] = true
	}
	// The evaluate section is checked as an experiment file's is.
	s := experiment.Default()
	s.Name, s.Lines, s.Evaluate = "bounds", []string{"x"}, c.Evaluate
	if err := s.Validate(); err != nil {
		return fmt.Errorf("zoo: bounds: %w", err)
	}
	for _, p := range c.Policies {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("zoo: bounds: %w", err)
		}
	}
	if c.Parallel < 0 {
		return fmt.Errorf("zoo: bounds: parallel %d must be >= 0", c.Parallel)
	}
	return nil
}

// Score is one policy's mean closest approach on the selection episodes.
type Score struct {
	Policy string  `json:"policy"`
	MeanCM float64 `json:"mean_cm"`
	// LightFraction is the mean share of frames with the light on.
	LightFraction float64 `json:"light_fraction"`
	// ClosestCM holds the selection episodes' closest approaches, in episode order.
	ClosestCM []float64 `json:"closest_cm"`
}

// Sample is one condition's closest approaches (cm) on the evaluation episodes.
type Sample struct {
	ClosestCM     []float64 `json:"closest_cm"`
	Mean          float64   `json:"mean_cm"`
	SD            float64   `json:"sd_cm"`
	N             int       `json:"n"`
	LightFraction float64   `json:"light_fraction"`
}

// Bound is one line's hand-policy bound: the best policy of the family chosen on the selection
// episodes, and that policy, no light and random light (at the chosen policy's measured
// on-rate) on fresh evaluation episodes (other animals, other schedules), with the two-sided
// Mann-Whitney p values the report uses (results.MannWhitneyU).
type Bound struct {
	Line string `json:"line"`
	// Best is the chosen policy; Selection every policy's score, in family order.
	Best      HandPolicy `json:"best"`
	Selection []Score    `json:"selection"`
	// Hand, None and Random are the evaluation episodes.
	Hand   Sample `json:"hand"`
	None   Sample `json:"none"`
	Random Sample `json:"random"`
	// RandomRate is the random-light condition's light probability.
	RandomRate float64 `json:"random_rate"`
	// PHandVsNone and PHandVsRandom are two-sided Mann-Whitney p values.
	PHandVsNone   float64 `json:"p_hand_vs_none"`
	PHandVsRandom float64 `json:"p_hand_vs_random"`
}

// BeatsNone reports whether the hand policy is closer than no light with p < alpha.
func (b Bound) BeatsNone(alpha float64) bool {
	return b.Hand.Mean < b.None.Mean && b.PHandVsNone < alpha
}

// Episode sets: the selection episodes, and the evaluation episodes of each condition. Their
// animals and schedules never coincide: set s, episode i of a line has seed
// plan.Seed(root, s*n + i), root derived from the bounds seed and the line code.
const (
	setSelect = iota
	setHand
	setNone
	setRandom
)

// lineRoot is the root seed of one line's bounds: the bounds of a line do not depend on which
// other lines are bounded with it.
func lineRoot(seed uint64, code string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(code))
	return plan.Seed(seed^h.Sum64(), 0)
}

// job is one episode of the bounds (or of an agent selection, select.go).
type job struct {
	line string
	set  int
	i    int
	// act returns a fresh policy for the episode, named name; nil: a fixed light (none, or
	// random at rate).
	act  func() worker.Policy
	name string
	rate float64
	// decision is the policy's episode.Spec.DecisionFrames (0: every frame).
	decision int
}

// handJob is an episode in which hand policy p acts.
func handJob(line string, set, i int, p HandPolicy) job {
	return job{line: line, set: set, i: i, act: func() worker.Policy { return p.New() }, name: p.Name}
}

type jobResult struct {
	closest, light float64
}

// Bounds measures every line's hand-policy bound. Each episode runs through a station (the
// worker loop the agent condition uses); hand policies act in it as an agent's ensemble does,
// through worker.Policy on the same observations. The best policy of the family is the one with
// the lowest mean closest approach on the selection episodes (all policies on the same
// animals); it is then measured, with no light and random light, on fresh episodes, so its
// reported figure carries no selection bias.
func Bounds(ctx context.Context, cfg BoundsConfig) ([]Bound, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pols := cfg.Policies
	if len(pols) == 0 {
		pols = HandFamily()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := cfg.Evaluate.EpisodesPerCondition
	// Selection: every policy on the same n animals of each line.
	var sel []job
	for _, l := range cfg.Lines {
		for p := range pols {
			for i := range n {
				sel = append(sel, handJob(l, setSelect, i, pols[p]))
			}
		}
	}
	log.Info("bounds: selection", "lines", len(cfg.Lines), "policies", len(pols), "episodes", len(sel))
	selRes, err := runJobs(ctx, cfg, sel)
	if err != nil {
		return nil, err
	}
	out := make([]Bound, len(cfg.Lines))
	var chosen []func(i int) job
	for li, l := range cfg.Lines {
		b := Bound{Line: l}
		best := -1
		for p := range pols {
			var c, f []float64
			for i := range n {
				r := selRes[(li*len(pols)+p)*n+i]
				c, f = append(c, r.closest), append(f, r.light)
			}
			m, _, _ := results.Summarize(c)
			lf, _, _ := results.Summarize(f)
			b.Selection = append(b.Selection, Score{Policy: pols[p].Name, MeanCM: m, LightFraction: lf, ClosestCM: c})
			if best < 0 || m < b.Selection[best].MeanCM {
				best = p
			}
		}
		b.Best = pols[best]
		out[li] = b
		chosen = append(chosen, func(i int) job { return handJob(l, setHand, i, pols[best]) })
	}
	ms, err := measure(ctx, cfg, chosen, setNone, setRandom)
	if err != nil {
		return nil, err
	}
	for li := range out {
		b, m := &out[li], ms[li]
		b.Hand, b.None, b.Random, b.RandomRate, b.PHandVsNone, b.PHandVsRandom = m.chosen, m.none, m.random, m.rate, m.pNone, m.pRandom
		log.Info("bounds: line", "line", b.Line, "best", b.Best.Name, "hand_cm", b.Hand.Mean, "none_cm", b.None.Mean, "random_cm", b.Random.Mean, "p", b.PHandVsNone)
	}
	return out, nil
}

// measured is one line's chosen policy measured on fresh episodes (measure).
type measured struct {
	chosen, none, random Sample
	rate, pNone, pRandom float64
}

// measure runs, for every line of cfg.Lines, EpisodesPerCondition episodes of the line's chosen
// policy (chosen[line index](i) is its episode i) and of no light (episode set none), then as
// many of random light (set random) at the chosen policy's measured on-rate, as the protocol's
// random condition runs at the agent's (experiment/plan); it returns the three samples with the
// two-sided Mann-Whitney p values of the chosen policy against each (results.MannWhitneyU).
func measure(ctx context.Context, cfg BoundsConfig, chosen []func(i int) job, none, random int) ([]measured, error) {
	n := cfg.Evaluate.EpisodesPerCondition
	var eval []job
	for li, l := range cfg.Lines {
		for i := range n {
			eval = append(eval, chosen[li](i), job{line: l, set: none, i: i})
		}
	}
	evRes, err := runJobs(ctx, cfg, eval)
	if err != nil {
		return nil, err
	}
	out := make([]measured, len(cfg.Lines))
	var rnd []job
	for li, l := range cfg.Lines {
		m := &out[li]
		for i := range n {
			c, no := evRes[(li*n+i)*2], evRes[(li*n+i)*2+1]
			m.chosen.ClosestCM = append(m.chosen.ClosestCM, c.closest)
			m.chosen.LightFraction += c.light / float64(n)
			m.none.ClosestCM = append(m.none.ClosestCM, no.closest)
		}
		m.rate = min(max(m.chosen.LightFraction, 0), 1)
		for i := range n {
			rnd = append(rnd, job{line: l, set: random, i: i, rate: m.rate})
		}
	}
	rndRes, err := runJobs(ctx, cfg, rnd)
	if err != nil {
		return nil, err
	}
	for li := range out {
		m := &out[li]
		for i := range n {
			r := rndRes[li*n+i]
			m.random.ClosestCM = append(m.random.ClosestCM, r.closest)
			m.random.LightFraction += r.light / float64(n)
		}
		for _, s := range []*Sample{&m.chosen, &m.none, &m.random} {
			s.Mean, s.SD, s.N = results.Summarize(s.ClosestCM)
		}
		if _, p, err := results.MannWhitneyU(m.chosen.ClosestCM, m.none.ClosestCM); err == nil {
			m.pNone = p
		}
		if _, p, err := results.MannWhitneyU(m.chosen.ClosestCM, m.random.ClosestCM); err == nil {
			m.pRandom = p
		}
	}
	return out, nil
}

// runJobs runs the episodes on cfg.Parallel goroutines and returns their results in job order.
func runJobs(ctx context.Context, cfg BoundsConfig, jobs []job) ([]jobResult, error) {
	par := cfg.Parallel
	if par == 0 {
		par = runtime.GOMAXPROCS(0)
	}
	out := make([]jobResult, len(jobs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				r, err := runJob(ctx, cfg, jobs[k])
				if err != nil {
					once.Do(func() { first = err; cancel() })
					continue
				}
				out[k] = r
			}
		}()
	}
feed:
	for k := range jobs {
		select {
		case next <- k:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// runJob runs one episode on a station of its own: an agent episode whose policy is the job's
// (a hand policy or a trained ensemble), or a fixed-light episode.
func runJob(ctx context.Context, cfg BoundsConfig, j job) (jobResult, error) {
	ev := cfg.Evaluate
	n := ev.EpisodesPerCondition
	spec := experiment.Spec{Evaluate: ev}
	name, x, y := spec.Target(j.i)
	sp := episode.Spec{
		Line: j.line, Seconds: ev.EpisodeSeconds,
		Seed:   plan.Seed(lineRoot(cfg.Seed, j.line), j.set*n+j.i),
		Target: &episode.Place{Name: name, XCM: x, YCM: y},
	}
	scfg := station.DefaultConfig()
	scfg.Catalogue, scfg.Line, scfg.NoRender = cfg.Catalogue, j.line, cfg.NoRender
	scfg.ArenaID = "bounds-" + j.line
	st, err := station.New(scfg)
	if err != nil {
		return jobResult{}, fmt.Errorf("zoo: bounds: %w", err)
	}
	defer st.Close()
	e := station.Episode{ID: fmt.Sprintf("bounds-%s-%d-%d", j.line, j.set, j.i)}
	switch {
	case j.act != nil:
		sp.Kind, sp.AgentLine, sp.DecisionFrames = episode.KindAgent, j.line, j.decision
		e.Policy = j.act()
		e.ID += "-" + j.name
	case j.set == setRandom:
		sp.Kind, sp.LightProbability = episode.KindRandom, j.rate
	default:
		sp.Kind = episode.KindNone
	}
	e.Spec = sp
	res, err := st.Run(ctx, e)
	if err != nil {
		return jobResult{}, fmt.Errorf("zoo: bounds: %w", err)
	}
	return jobResult{closest: res.Outcome.ClosestCM, light: res.Outcome.LightFraction}, nil
}
