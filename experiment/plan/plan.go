// Package plan is the experiment protocol as a pure state machine: an experiment's phases, the
// items of each phase with their seeds, the rule that random light runs at the agent's measured
// on-rate, what opens the next phase and what fails an experiment. It reads no clock, does no
// IO and knows nothing of Raft or leases: the coordinator's FSM (replicated, or applied in one
// process by coordinator.Local) steps it and nothing else decides phases.
//
// The protocol, phase by phase:
//
//   - collect: per line, Spec.CollectEpisodesPerLine() collect episodes (random light at
//     collect.light_probability, collect.episode_seconds long), interleaved across lines so
//     that every line's arenas start at once;
//   - train: one training task per line, carrying the experiment's whole train section. It
//     opens when every collect episode is done or failed. A training task that fails for good
//     fails the experiment at once: its line has no agents to evaluate;
//   - online mode (train.mode: online) changes collect and train: collect holds only the
//     warm-up's random-light episodes (train.warmup_hours), and train opens, with the training
//     tasks, the online episodes (the rest of collect.hours_per_line, acting with the line's
//     newest version; online episode i names version i+1, see experiment.Spec.OnlineData) and
//     the learning curve's checkpoint episodes (experiment.Spec.CheckpointVersions); a line's
//     training task publishes version v only once the online episodes it trains on are done
//     or failed (package fleet), and train closes when all of them are;
//   - evaluate: per line, evaluate.episodes_per_condition agent episodes (acting with the
//     parameter version the line's training task reported) and as many no-light episodes, the
//     targets taken in turn. A line's random-light episodes are created when its last agent
//     episode ends, at the mean light fraction its done agent episodes reported (the collect
//     light probability when none is done);
//   - cross_evaluate (when the file has one): for every agent line A and animal line B of
//     cross_evaluate.lines, cross_evaluate.episodes cross episodes;
//   - transfer (when the file has one): for every line of transfer.lines, every environment
//     (experiment.Transfer.Environments: obstacles, then the food distances) and i below
//     transfer.episodes, a transfer episode (the line's ensemble acts, with the version its
//     training task reported) and its no-light control, numbered one after the other and
//     sharing one seed (the same animal, the same debris), the targets taken in turn and the
//     lawn placed by experiment.Spec.FoodPlace;
//   - done.
//
// Items are numbered from 0 in creation order, except a line's random-light episodes, whose
// numbers are reserved when evaluate opens (after the line's no-light episodes) so that they do
// not depend on which line's agents finish first; item n's seed is splitmix64 of the experiment's
// seed and n, so the same file and seed give the same animals, schedules and learners wherever
// the experiment runs.
//
// Contract: Start, then Done or Failed exactly once for every item, each returning the items the
// plan opens in reply. The Plan is plain data (JSON), so a replicated state machine can
// snapshot and restore it; its methods are deterministic.
package plan

import (
	"fmt"
	"maps"
	"slices"

	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
)

// Phase is a stage of an experiment. Phases run in this order; a phase opens when every item of
// the previous one is done or failed.
type Phase string

// The phases of an experiment.
const (
	PhaseCollect       Phase = "collect"
	PhaseTrain         Phase = "train"
	PhaseEvaluate      Phase = "evaluate"
	PhaseCrossEvaluate Phase = "cross_evaluate"
	PhaseTransfer      Phase = "transfer"
	PhaseDone          Phase = "done"
)

// Status is the life cycle of an experiment.
type Status string

// Experiment statuses. Done and failed are final.
const (
	StatusRunning Status = "running"
	StatusDone    Status = "done"
	StatusFailed  Status = "failed"
)

// ItemType says who does an item: workers run episodes, learners run training tasks.
type ItemType string

// Item types.
const (
	TypeEpisode ItemType = "episode"
	TypeTrain   ItemType = "train"
)

// Item is one unit of work the plan asks for.
type Item struct {
	// N numbers the experiment's items from 0 (see the package doc for the order).
	N     int      `json:"n"`
	Type  ItemType `json:"type"`
	Phase Phase    `json:"phase"`
	// Spec is the episode (for a training task: KindTrain, the line and the learner's seed).
	episode.Spec
	// Train is the experiment's train section (training tasks only).
	Train *experiment.Train `json:"train,omitempty"`
}

// Result is what a done item reported that the plan uses.
type Result struct {
	// Outcome is a done episode's outcome (nil for a training task).
	Outcome *episode.Outcome
	// PolicyVersion is, for a training task, the final parameter version it published.
	PolicyVersion uint64
}

// Plan is one experiment's progress through the protocol.
type Plan struct {
	Spec   experiment.Spec `json:"spec"`
	Phase  Phase           `json:"phase"`
	Status Status          `json:"state"`
	// Reason says why a failed experiment failed.
	Reason string `json:"reason,omitempty"`
	// NextItem is the number the next new item gets: each number below it is an item's, or
	// reserved for a random-light episode not yet created (see RandomFirst).
	NextItem int `json:"next_item"`
	// Open counts the items of the current phase that are neither done nor failed.
	Open int `json:"open"`
	// AgentOpen counts, per line, the open agent episodes (evaluate phase).
	AgentOpen map[string]int `json:"agent_open,omitempty"`
	// AgentLight holds, per line, the light fraction each of its done agent episodes reported,
	// by item number (summed in item order, so the rate does not depend on completion order).
	AgentLight map[string]map[int]float64 `json:"agent_light,omitempty"`
	// RandomFirst maps a line to the number of its first random-light episode: the numbers are
	// reserved when evaluate opens.
	RandomFirst map[string]int `json:"random_first,omitempty"`
	// RandomRates maps a line to the light probability of its random-light episodes, set when
	// they are created.
	RandomRates map[string]float64 `json:"random_rates,omitempty"`
	// PolicyVersions maps a line to the final parameter version its training task reported.
	PolicyVersions map[string]uint64 `json:"policy_versions,omitempty"`
}

// Start returns the plan of an experiment and the items of its first phase. spec must be valid
// (experiment.Spec.Validate).
func Start(spec experiment.Spec) (*Plan, []Item) {
	p := &Plan{Spec: spec, Status: StatusRunning}
	return p, p.open(PhaseCollect)
}

// Seed derives item n's seed from the experiment's root seed (splitmix64).
func Seed(root uint64, n int) uint64 {
	z := root + uint64(n+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Running reports whether the experiment still runs.
func (p *Plan) Running() bool { return p.Status == StatusRunning }

// Done records that item it (of this plan) is done with result r and returns the items it
// opens. An item of a phase that has closed, or of an experiment that no longer runs, changes
// nothing.
func (p *Plan) Done(it Item, r Result) []Item {
	if !p.counts(it) {
		return nil
	}
	switch {
	case it.Type == TypeTrain:
		if p.PolicyVersions == nil {
			p.PolicyVersions = map[string]uint64{}
		}
		p.PolicyVersions[it.Line] = r.PolicyVersion
	case it.Kind == episode.KindAgent && r.Outcome != nil:
		if f := r.Outcome.LightFraction; f >= 0 && f <= 1 {
			if p.AgentLight == nil {
				p.AgentLight = map[string]map[int]float64{}
			}
			if p.AgentLight[it.Line] == nil {
				p.AgentLight[it.Line] = map[int]float64{}
			}
			p.AgentLight[it.Line][it.N] = f
		}
	}
	return p.terminal(it)
}

// Failed records that item it failed for good (its attempts are spent) and returns the items
// it opens. A failed training task fails the experiment: the caller then ends the experiment's
// other open items.
func (p *Plan) Failed(it Item, reason string) []Item {
	if !p.counts(it) {
		return nil
	}
	if it.Type == TypeTrain {
		p.Open--
		p.fail(fmt.Sprintf("training task %d of line %s failed: %s", it.N, it.Line, reason))
		return nil
	}
	return p.terminal(it)
}

// Cancel fails the experiment for reason (an operator's cancel); the caller ends its open
// items.
func (p *Plan) Cancel(reason string) {
	if p.Running() {
		p.fail(reason)
	}
}

func (p *Plan) fail(reason string) {
	p.Status = StatusFailed
	p.Reason = reason
	p.Open = 0
}

// counts reports whether it still counts: the experiment runs and it belongs to the open phase.
func (p *Plan) counts(it Item) bool {
	return p.Running() && it.Phase == p.Phase && 0 <= it.N && it.N < p.NextItem
}

func (p *Plan) terminal(it Item) []Item {
	p.Open--
	if it.Kind == episode.KindAgent && p.Phase == PhaseEvaluate {
		p.AgentOpen[it.Line]--
	}
	return p.advance()
}

// RandomRate is the light probability of line's random-light episodes: the mean light fraction
// of its done agent episodes, or the collect light probability when none is done.
func (p *Plan) RandomRate(line string) float64 {
	fs := p.AgentLight[line]
	if len(fs) == 0 {
		return p.Spec.Collect.LightProbability
	}
	ns := slices.Sorted(maps.Keys(fs))
	sum := 0.0
	for _, n := range ns {
		sum += fs[n]
	}
	return min(max(sum/float64(len(ns)), 0), 1)
}

func (p *Plan) advance() []Item {
	var out []Item
	s := p.Spec
	for p.Running() {
		if p.Phase == PhaseEvaluate {
			for _, line := range s.Lines {
				if _, made := p.RandomRates[line]; made || p.AgentOpen[line] > 0 {
					continue
				}
				rate := p.RandomRate(line)
				if p.RandomRates == nil {
					p.RandomRates = map[string]float64{}
				}
				p.RandomRates[line] = rate
				for i := range s.Evaluate.EpisodesPerCondition {
					it := p.evalN(p.RandomFirst[line]+i, episode.KindRandom, line, "", i)
					it.LightProbability = rate
					out = append(out, it)
				}
			}
		}
		if p.Open > 0 {
			return out
		}
		switch p.Phase {
		case PhaseCollect:
			out = append(out, p.open(PhaseTrain)...)
		case PhaseTrain:
			out = append(out, p.open(PhaseEvaluate)...)
		case PhaseEvaluate:
			switch {
			case s.CrossEvaluate != nil:
				out = append(out, p.open(PhaseCrossEvaluate)...)
			case s.Transfer != nil:
				out = append(out, p.open(PhaseTransfer)...)
			default:
				p.open(PhaseDone)
			}
		case PhaseCrossEvaluate:
			if s.Transfer != nil {
				out = append(out, p.open(PhaseTransfer)...)
			} else {
				p.open(PhaseDone)
			}
		case PhaseTransfer:
			p.open(PhaseDone)
		default:
			return out
		}
	}
	return out
}

func (p *Plan) item(t ItemType, kind episode.Kind, line string) Item {
	n := p.NextItem
	p.NextItem++
	return p.itemN(n, t, kind, line)
}

// itemN makes the item numbered n (a new number, or one reserved earlier).
func (p *Plan) itemN(n int, t ItemType, kind episode.Kind, line string) Item {
	p.Open++
	return Item{N: n, Type: t, Phase: p.Phase, Spec: episode.Spec{Kind: kind, Line: line, Seed: Seed(p.Spec.Seed, n)}}
}

// eval is the i-th evaluation episode of animals of line animal (agent: the acting line, empty
// for a fixed light policy).
func (p *Plan) eval(kind episode.Kind, animal, agent string, i int) Item {
	n := p.NextItem
	p.NextItem++
	return p.evalN(n, kind, animal, agent, i)
}

// evalN is eval with the item number n.
func (p *Plan) evalN(n int, kind episode.Kind, animal, agent string, i int) Item {
	s := p.Spec
	it := p.itemN(n, TypeEpisode, kind, animal)
	it.Seconds = s.Evaluate.EpisodeSeconds
	name, x, y := s.Target(i)
	it.Target = &episode.Place{Name: name, XCM: x, YCM: y}
	if agent != "" {
		it.AgentLine = agent
		it.PolicyVersion = p.PolicyVersions[agent]
		it.MaxStaleness = s.Policy.MaxStaleness
		it.DecisionFrames = s.Train.DecisionFrames
	}
	return it
}

// online makes, in online mode, the train phase's episodes: every line's online episodes
// (episode-major; online episode i names version i+1 and may act up to max_staleness versions
// before it, with exploration) and then the learning curve's checkpoint episodes (each acting
// with exactly the version it names), the targets taken in turn.
func (p *Plan) online() []Item {
	s := p.Spec
	var out []Item
	for i := range s.OnlineEpisodesPerLine() {
		for _, line := range s.Lines {
			it := p.item(TypeEpisode, episode.KindOnline, line)
			it.Seconds = s.Collect.EpisodeSeconds
			it.LightProbability = s.Collect.LightProbability
			it.Explore = s.Train.Explore
			name, x, y := s.Target(i)
			it.Target = &episode.Place{Name: name, XCM: x, YCM: y}
			it.AgentLine = line
			it.PolicyVersion = s.OnlineVersion(i)
			it.MaxStaleness = s.Policy.MaxStaleness
			it.DecisionFrames = s.Train.DecisionFrames
			out = append(out, it)
		}
	}
	for _, v := range s.CheckpointVersions() {
		for i := range s.Evaluate.CheckpointEpisodes {
			for _, line := range s.Lines {
				it := p.eval(episode.KindCheckpoint, line, line, i)
				it.PolicyVersion = v
				it.MaxStaleness = 0
				out = append(out, it)
			}
		}
	}
	return out
}

func (p *Plan) open(ph Phase) []Item {
	p.Phase = ph
	s := p.Spec
	var out []Item
	switch ph {
	case PhaseCollect:
		// Episode-major: every line's first episode, then every line's second, ...
		n := s.CollectEpisodesPerLine()
		if s.Online() {
			n = s.WarmupEpisodesPerLine()
		}
		for range n {
			for _, line := range s.Lines {
				it := p.item(TypeEpisode, episode.KindCollect, line)
				it.Seconds = s.Collect.EpisodeSeconds
				it.LightProbability = s.Collect.LightProbability
				out = append(out, it)
			}
		}
	case PhaseTrain:
		for _, line := range s.Lines {
			it := p.item(TypeTrain, episode.KindTrain, line)
			train := s.Train
			it.Train = &train
			if s.Online() {
				it.MaxStaleness = s.Policy.MaxStaleness
			}
			if train.CriticTarget == experiment.CriticTargetCollection {
				// The critics' target averages the next light under the collection's schedule.
				it.LightProbability = s.Collect.LightProbability
			}
			out = append(out, it)
		}
		if s.Online() {
			out = append(out, p.online()...)
		}
	case PhaseEvaluate:
		p.AgentOpen = map[string]int{}
		p.RandomFirst = map[string]int{}
		for _, line := range s.Lines {
			for i := range s.Evaluate.EpisodesPerCondition {
				out = append(out, p.eval(episode.KindAgent, line, line, i))
				p.AgentOpen[line]++
			}
			for i := range s.Evaluate.EpisodesPerCondition {
				out = append(out, p.eval(episode.KindNone, line, "", i))
			}
			// The random-light episodes are created later, at the agent's rate, but numbered
			// now: their numbers (so ids and seeds: animals) must not depend on which line's
			// agents finished first.
			p.RandomFirst[line] = p.NextItem
			p.NextItem += s.Evaluate.EpisodesPerCondition
		}
	case PhaseCrossEvaluate:
		for _, agent := range s.CrossEvaluate.Lines {
			for _, animal := range s.CrossEvaluate.Lines {
				for i := range s.CrossEvaluate.Episodes {
					out = append(out, p.eval(episode.KindCross, animal, agent, i))
				}
			}
		}
	case PhaseTransfer:
		out = p.transfer()
	case PhaseDone:
		p.Status = StatusDone
	}
	return out
}

// transfer makes the transfer phase's episodes: per line, environment and episode, the agent's
// episode and then its no-light control on the same seed.
func (p *Plan) transfer() []Item {
	s := p.Spec
	t := s.Transfer
	var out []Item
	for _, line := range t.Lines {
		for k, env := range t.Environments() {
			for i := range t.Episodes {
				agent := p.eval(episode.KindTransfer, line, line, i)
				none := p.eval(episode.KindTransferNone, line, "", i)
				for _, it := range []*Item{&agent, &none} {
					it.Seconds = t.EpisodeSeconds
					e := &episode.Environment{Name: env}
					if env == experiment.EnvObstacles {
						e.Obstacles, e.ObstacleRadiusCM = t.Obstacles, t.ObstacleRadiusCM
					} else {
						d := t.FoodDistancesCM[k-min(t.Obstacles, 1)]
						x, y := s.FoodPlace(i, d)
						e.Food, e.FoodRadiusCM = &episode.Place{Name: env, XCM: x, YCM: y}, t.FoodRadiusCM
					}
					it.Environment = e
				}
				none.Seed = agent.Seed
				out = append(out, agent, none)
			}
		}
	}
	return out
}

// ItemCount is the number of items the experiment of spec makes over its whole life, counted
// from the spec without making them: per line the collect episodes, one training task and
// three evaluation conditions (agent, no light, random light), every cross pair's episodes
// and, per transfer line and environment, the agent's and the no-light episodes. It is what open makes for every phase (and the reserved random-light numbers),
// so a caller can bound an experiment's size before starting it. spec must be valid.
func ItemCount(spec experiment.Spec) int64 {
	lines := int64(len(spec.Lines))
	n := lines * int64(spec.CollectEpisodesPerLine()) // collect (online: warm-up and online episodes)
	if spec.Online() {
		n += lines * int64(len(spec.CheckpointVersions())) * int64(spec.Evaluate.CheckpointEpisodes) // checkpoints
	}
	n += lines                                                 // train
	n += lines * 3 * int64(spec.Evaluate.EpisodesPerCondition) // evaluate
	if x := int64(len(spec.CrossLines())); x > 0 {
		n += x * x * int64(spec.CrossEvaluate.Episodes) // cross_evaluate
	}
	if t := spec.Transfer; t != nil {
		n += int64(len(t.Lines)) * int64(len(t.Environments())) * 2 * int64(t.Episodes) // transfer
	}
	return n
}
