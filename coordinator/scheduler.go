package coordinator

import (
	"fmt"
	"strconv"

	"github.com/optoloop/optoloop/experiment"
)

// The scheduler turns an experiment into items phase by phase, inside the FSM (so every node
// expands identically):
//
//   - collect: per line, Spec.CollectEpisodesPerLine() collect episodes (random light at
//     collect.light_probability, collect.episode_seconds long);
//   - train: one training task per line (ensemble size, updates, batch size, checkpoint period);
//     it opens when every collect episode is done or failed. A training task that fails for good
//     fails the experiment (its line has no agents to evaluate);
//   - evaluate: per line, episodes_per_condition evaluate-agent episodes (acting with the
//     PolicyVersion the line's training task reported) and as many evaluate-none episodes, the
//     targets taken in turn. The line's evaluate-random episodes are created when its last
//     agent episode ends, at the mean light_fraction the agent episodes reported (the
//     collect light probability if none reported one);
//   - cross_evaluate (optional): for every agent line A and animal line B of
//     cross_evaluate.lines, cross_evaluate.episodes cross episodes;
//   - done.

func (f *FSM) submit(c *SubmitCmd) *Response {
	spec, err := experiment.Parse([]byte(c.Spec))
	if err != nil {
		return refuse(CodeBadRequest, "%v", err)
	}
	st := f.st
	st.NextExperiment++
	exp := &Experiment{
		ID:          spec.Name + "-" + strconv.FormatUint(st.NextExperiment, 10),
		Spec:        spec,
		State:       ExperimentRunning,
		MaxAttempts: c.MaxAttempts,
		SubmittedAt: st.Now,
		UpdatedAt:   st.Now,
	}
	st.Experiments[exp.ID] = exp
	f.openPhase(exp, PhaseCollect)
	return &Response{ExperimentID: exp.ID}
}

// seed derives an item's seed from the experiment's seed and the item's number (splitmix64).
func seed(root uint64, n int) uint64 {
	z := root + uint64(n+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (f *FSM) newItem(exp *Experiment, t ItemType, kind Kind, line string) *Item {
	n := exp.NextItem
	exp.NextItem++
	it := &Item{
		ID:           exp.ID + "." + strconv.Itoa(n),
		Type:         t,
		ExperimentID: exp.ID,
		Phase:        exp.Phase,
		Kind:         kind,
		Line:         line,
		Seed:         seed(exp.Spec.Seed, n),
		Created:      f.st.Now,
	}
	f.st.Items[it.ID] = it
	exp.Items = append(exp.Items, it.ID)
	exp.Open++
	f.enqueue(it)
	return it
}

func (f *FSM) newEval(exp *Experiment, kind Kind, animal, agent string, i int) *Item {
	s := exp.Spec
	it := f.newItem(exp, TypeEpisode, kind, animal)
	it.Seconds = s.Evaluate.EpisodeSeconds
	name, x, y := s.Target(i)
	it.Target = &Target{Name: name, XCM: x, YCM: y}
	if agent != "" {
		it.AgentLine = agent
		it.PolicyVersion = exp.PolicyVersions[agent]
		it.MaxStaleness = s.Policy.MaxStaleness
	}
	return it
}

func (f *FSM) openPhase(exp *Experiment, p Phase) {
	exp.Phase = p
	exp.UpdatedAt = f.st.Now
	s := exp.Spec
	switch p {
	case PhaseCollect:
		n := s.CollectEpisodesPerLine()
		for _, line := range s.Lines {
			for range n {
				it := f.newItem(exp, TypeEpisode, KindCollect, line)
				it.Seconds = s.Collect.EpisodeSeconds
				it.LightProbability = s.Collect.LightProbability
			}
		}
	case PhaseTrain:
		for _, line := range s.Lines {
			it := f.newItem(exp, TypeTrain, KindTrain, line)
			train := s.Train
			it.Train = &train
			it.EnsembleSize = s.Train.EnsembleSize
			it.Updates = s.Train.Updates
			it.BatchSize = s.Train.BatchSize
			it.CheckpointEvery = s.Train.CheckpointEvery
		}
	case PhaseEvaluate:
		exp.AgentOpen = map[string]int{}
		exp.RandomRates = map[string]float64{}
		for _, line := range s.Lines {
			for i := range s.Evaluate.EpisodesPerCondition {
				f.newEval(exp, KindEvaluateAgent, line, line, i)
				exp.AgentOpen[line]++
			}
			for i := range s.Evaluate.EpisodesPerCondition {
				f.newEval(exp, KindEvaluateNone, line, "", i)
			}
		}
	case PhaseCrossEvaluate:
		for _, agent := range s.CrossEvaluate.Lines {
			for _, animal := range s.CrossEvaluate.Lines {
				for i := range s.CrossEvaluate.Episodes {
					f.newEval(exp, KindCross, animal, agent, i)
				}
			}
		}
	case PhaseDone:
		exp.State = ExperimentDone
	}
}

// terminal records that it reached done or failed and advances its experiment.
func (f *FSM) terminal(it *Item) {
	exp := f.st.Experiments[it.ExperimentID]
	if exp == nil || exp.State != ExperimentRunning || it.Phase != exp.Phase {
		return
	}
	exp.Open--
	exp.UpdatedAt = f.st.Now
	if it.Kind == KindEvaluateAgent {
		exp.AgentOpen[it.Line]--
	}
	f.advance(exp)
}

func (f *FSM) advance(exp *Experiment) {
	s := exp.Spec
	for exp.State == ExperimentRunning {
		if exp.Phase == PhaseEvaluate {
			for _, line := range s.Lines {
				if _, made := exp.RandomRates[line]; made || exp.AgentOpen[line] > 0 {
					continue
				}
				rate := f.agentRate(exp, line)
				exp.RandomRates[line] = rate
				for i := range s.Evaluate.EpisodesPerCondition {
					it := f.newEval(exp, KindEvaluateRandom, line, "", i)
					it.LightProbability = rate
				}
			}
		}
		if exp.Open > 0 {
			return
		}
		switch exp.Phase {
		case PhaseCollect:
			f.openPhase(exp, PhaseTrain)
		case PhaseTrain:
			for _, id := range exp.Items {
				if it := f.st.Items[id]; it.Type == TypeTrain && it.State != StateDone {
					f.failExperiment(exp, fmt.Sprintf("training task %s of line %s failed", it.ID, it.Line))
					return
				}
			}
			f.openPhase(exp, PhaseEvaluate)
		case PhaseEvaluate:
			if s.CrossEvaluate != nil {
				f.openPhase(exp, PhaseCrossEvaluate)
			} else {
				f.openPhase(exp, PhaseDone)
			}
		case PhaseCrossEvaluate:
			f.openPhase(exp, PhaseDone)
		default:
			return
		}
	}
}

// agentRate is the mean light_fraction reported by line's evaluate-agent episodes, clamped to
// [0, 1]; the collect light probability when none reported one.
func (f *FSM) agentRate(exp *Experiment, line string) float64 {
	sum, n := 0.0, 0
	for _, id := range exp.Items {
		it := f.st.Items[id]
		if it.Kind != KindEvaluateAgent || it.Line != line || it.State != StateDone || it.Result == nil {
			continue
		}
		if v, ok := it.Result.Metrics["light_fraction"]; ok && v >= 0 && v <= 1 {
			sum += v
			n++
		}
	}
	if n == 0 {
		return exp.Spec.Collect.LightProbability
	}
	return sum / float64(n)
}

func (f *FSM) failExperiment(exp *Experiment, reason string) {
	exp.State = ExperimentFailed
	exp.Reason = reason
	exp.UpdatedAt = f.st.Now
	for _, id := range exp.Items {
		it := f.st.Items[id]
		if it.State == StatePending || it.State == StateLeased {
			f.endLease(it)
			it.State = StateFailed
			it.Failures = append(it.Failures, "experiment failed: "+reason)
		}
	}
	exp.Open = 0
}
