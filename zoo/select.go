package zoo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/worker"
)

// Agent selection: a line's agents trained under several settings (one experiment run per
// setting), the best chosen on episodes of their own and measured on fresh ones, as the hand
// policies' bound is. The agents are not retrained or tuned by hand: what adapts to the line is
// which setting's agents act. The episode sets follow the bounds' (setSelect...setRandom) so
// that no animal or schedule of a selection coincides with a bound's.
const (
	setAgentSelect = iota + setRandom + 1
	setAgent
	setAgentNone
	setAgentRandom
)

// Candidate is one trained ensemble a line's selection chooses among, named by the setting (or
// the run) that trained it.
type Candidate struct {
	Name     string
	Ensemble *policy.Ensemble
	// DecisionFrames is how often the ensemble decides (train.decision_frames of the run that
	// trained it; episode.Spec.DecisionFrames).
	DecisionFrames int
}

// SelectConfig configures an agent selection: the bounds' protocol (BoundsConfig: catalogue,
// lines, evaluation, seed, rendering, parallelism; its Policies are not used) and each line's
// candidates.
type SelectConfig struct {
	BoundsConfig
	// Candidates holds, per line of Lines, the ensembles to choose among (at least one each;
	// the same names, in the same order, for every line).
	Candidates map[string][]Candidate
}

// Validate reports the first unusable field.
func (c *SelectConfig) Validate() error {
	if err := c.BoundsConfig.Validate(); err != nil {
		return err
	}
	var names []string
	for _, l := range c.Lines {
		cs := c.Candidates[l]
		if len(cs) == 0 {
			return fmt.Errorf("zoo: select: line %s has no candidate agents", l)
		}
		var ns []string
		for _, cand := range cs {
			if cand.Ensemble == nil || cand.Name == "" {
				return fmt.Errorf("zoo: select: line %s: a candidate without a name or an ensemble", l)
			}
			ns = append(ns, cand.Name)
		}
		if names == nil {
			names = ns
		} else if !slices.Equal(names, ns) {
			return fmt.Errorf("zoo: select: line %s has candidates %v, the first line %v", l, ns, names)
		}
	}
	return nil
}

// Selected is one line's agent selection: every candidate's score on the selection episodes (in
// candidate order), the chosen one, and the chosen agents, no light and random light (at their
// measured on-rate) on fresh evaluation episodes with the report's Mann-Whitney p values.
type Selected struct {
	Line      string  `json:"line"`
	Chosen    string  `json:"chosen"`
	Selection []Score `json:"selection"`
	Agent     Sample  `json:"agent"`
	None      Sample  `json:"none"`
	Random    Sample  `json:"random"`
	// RandomRate is the random-light condition's light probability.
	RandomRate     float64 `json:"random_rate"`
	PAgentVsNone   float64 `json:"p_agent_vs_none"`
	PAgentVsRandom float64 `json:"p_agent_vs_random"`
}

// Select chooses each line's agents among its candidates: every candidate acts on the same
// selection episodes (EpisodesPerCondition per candidate), the one with the lowest mean closest
// approach is chosen, and it is measured with no light and random light on fresh episodes, so the
// reported figure carries no selection bias. Each episode acts with its own copy of the
// ensemble.
func Select(ctx context.Context, cfg SelectConfig) ([]Selected, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := cfg.Evaluate.EpisodesPerCondition
	agentJob := func(line string, set, i int, c Candidate) job {
		return job{line: line, set: set, i: i, act: func() worker.Policy { return c.Ensemble.Clone() }, name: c.Name, decision: c.DecisionFrames}
	}
	var sel []job
	for _, l := range cfg.Lines {
		for _, c := range cfg.Candidates[l] {
			for i := range n {
				sel = append(sel, agentJob(l, setAgentSelect, i, c))
			}
		}
	}
	log.Info("select: selection", "lines", len(cfg.Lines), "episodes", len(sel))
	selRes, err := runJobs(ctx, cfg.BoundsConfig, sel)
	if err != nil {
		return nil, err
	}
	out := make([]Selected, len(cfg.Lines))
	var chosen []func(i int) job
	k := 0
	for li, l := range cfg.Lines {
		s := Selected{Line: l}
		best := -1
		for ci, c := range cfg.Candidates[l] {
			var closest, light []float64
			for range n {
				closest, light = append(closest, selRes[k].closest), append(light, selRes[k].light)
				k++
			}
			m, _, _ := results.Summarize(closest)
			lf, _, _ := results.Summarize(light)
			s.Selection = append(s.Selection, Score{Policy: c.Name, MeanCM: m, LightFraction: lf, ClosestCM: closest})
			if best < 0 || m < s.Selection[best].MeanCM {
				best = ci
			}
		}
		pick := cfg.Candidates[l][best]
		s.Chosen = pick.Name
		out[li] = s
		chosen = append(chosen, func(i int) job { return agentJob(l, setAgent, i, pick) })
	}
	log.Info("select: evaluation", "lines", len(cfg.Lines))
	ms, err := measure(ctx, cfg.BoundsConfig, chosen, setAgentNone, setAgentRandom)
	if err != nil {
		return nil, err
	}
	for li := range out {
		s, m := &out[li], ms[li]
		s.Agent, s.None, s.Random, s.RandomRate, s.PAgentVsNone, s.PAgentVsRandom = m.chosen, m.none, m.random, m.rate, m.pNone, m.pRandom
		log.Info("select: line", "line", s.Line, "chosen", s.Chosen, "agent_cm", s.Agent.Mean, "none_cm", s.None.Mean, "random_cm", s.Random.Mean)
	}
	return out, nil
}

// SelectionReport is a report (results.Report) of the selected agents' evaluation episodes, for
// Compare: one line result per selection with its three conditions and p values.
func SelectionReport(sel []Selected) (*results.Report, error) {
	if len(sel) == 0 {
		return nil, errors.New("zoo: no selection")
	}
	rep := &results.Report{Name: "zoo agent selection"}
	for _, s := range sel {
		lr := results.LineResult{Line: s.Line, Conditions: map[episode.Kind]results.Condition{},
			PAgentVsNone: s.PAgentVsNone, PAgentVsRandom: s.PAgentVsRandom, RandomRate: s.RandomRate, AgentLightFraction: s.Agent.LightFraction}
		for kind, x := range map[episode.Kind]Sample{results.Agent: s.Agent, results.None: s.None, results.Random: s.Random} {
			lr.Conditions[kind] = results.Condition{N: x.N, ClosestCM: x.ClosestCM, MeanClosest: x.Mean, SDClosest: x.SD}
		}
		rep.Lines = append(rep.Lines, lr)
	}
	return rep, nil
}
