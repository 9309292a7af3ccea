// Package experiment defines the experiment file: which lines to compare, how much random-light
// data to collect per line, how to train each line's ensemble, how to evaluate it against no
// light and random light, and an optional cross-evaluation. Both the Raft coordinator and the
// single-process runner read it through Parse.
//
// The file is YAML. Unknown fields, wrong types and bad values are refused with the path of the
// field named (for example "collect.hours_per_line: -1 must be > 0"). A field that is omitted
// takes its value from the reference protocol (Default).
package experiment

import (
	"errors"
	"fmt"
	"math"
	"regexp"

	"github.com/optoloop/optoloop/episode"
)

// Spec is one experiment. Every field maps to the YAML key in its tag.
type Spec struct {
	// Name identifies the experiment in the run folder and the coordinator: 1-63 characters of
	// [a-z0-9-], starting with a letter or digit. Required.
	Name string `yaml:"name" json:"name"`
	// Seed is the root of every random draw of the experiment (animals, light schedules,
	// network initialisation, minibatches). Default 1.
	Seed uint64 `yaml:"seed" json:"seed"`
	// Lines are the transgenic line codes to compare (for example "301", "446", "73"): 1-32
	// characters of [A-Za-z0-9_.-], unique. Required, at least one.
	Lines []string `yaml:"lines" json:"lines"`
	// ArenasPerLine is how many arenas (plates) hold each line: the local run starts this many
	// simulated arenas (workers) per line; a cluster is sized by it. It changes the speed, never
	// the results. Default 4, at most 1000.
	ArenasPerLine int `yaml:"arenas_per_line" json:"arenas_per_line"`
	// Collect is the random-light data collection phase.
	Collect Collect `yaml:"collect" json:"collect"`
	// Train is the training phase: one ensemble per line.
	Train Train `yaml:"train" json:"train"`
	// Evaluate is the evaluation phase: agent, no light and random light per line.
	Evaluate Evaluate `yaml:"evaluate" json:"evaluate"`
	// CrossEvaluate, when present, runs the agents of each of its lines on animals of each of
	// its lines. Optional.
	CrossEvaluate *CrossEvaluate `yaml:"cross_evaluate,omitempty" json:"cross_evaluate,omitempty"`
	// Transfer, when present, runs trained agents unchanged in new environments (food
	// search, obstacles) against no-light controls. Optional.
	Transfer *Transfer `yaml:"transfer,omitempty" json:"transfer,omitempty"`
	// Policy bounds how stale the parameters a worker acts on may be.
	Policy Policy `yaml:"policy" json:"policy"`
}

// Collect configures the random-light data collection, one new animal per episode.
type Collect struct {
	// HoursPerLine is how many hours of random-light episodes to record per line (> 0, at
	// most 1000). Default 5 (the reference).
	HoursPerLine float64 `yaml:"hours_per_line" json:"hours_per_line"`
	// EpisodeSeconds is the length of one collection episode in seconds (> 0, at most 86400).
	// Default 1200 (20 min).
	EpisodeSeconds float64 `yaml:"episode_seconds" json:"episode_seconds"`
	// LightProbability is the probability that the light goes on for the next 3 frames,
	// decided every 3 frames (0 < p < 1). Default 0.1.
	LightProbability float64 `yaml:"light_probability" json:"light_probability"`
}

// Train configures each line's ensemble of discrete soft actor-critic agents.
type Train struct {
	// EnsembleSize is the number of agents per line (1-1000). Default 20.
	EnsembleSize int `yaml:"ensemble_size" json:"ensemble_size"`
	// Updates is the number of gradient updates per agent (1-100,000,000). Default 100000.
	Updates int `yaml:"updates" json:"updates"`
	// BatchSize is the minibatch size (1-65536). Default 64.
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// CheckpointEvery is the number of updates between checkpoints and parameter versions
	// (1..updates). Default 5000.
	CheckpointEvery int `yaml:"checkpoint_every" json:"checkpoint_every"`
	// TargetEvery is the number of updates between soft updates (tau 0.005) of the target
	// critics (1-100,000,000). Default 500, the reference's; with the reference's independently
	// initialised target critics, 500 leaves the targets mostly at their random initial weights
	// for runs much shorter than 100,000 updates (runner/SCIENCE.md).
	TargetEvery int `yaml:"target_every" json:"target_every"`
	// TargetEntropyRatio sets the temperature's target entropy to this share of log 2 (0-1).
	// Default 0.98, the reference's: it holds every member's P(light on) near 0.4-0.6, so the
	// critics evaluate a policy that keeps the light on about half the time, under which one more
	// step of light changes little (runner/SCIENCE.md).
	TargetEntropyRatio float64 `yaml:"target_entropy_ratio" json:"target_entropy_ratio"`
	// RewardScale multiplies every reward in the critics' targets (> 0, at most 1e6). Default 1,
	// the reference's. The light's effect on Q is about 0.01 at scale 1, less than one Adam
	// step moves the critics' outputs by (runner/SCIENCE.md).
	RewardScale float64 `yaml:"reward_scale" json:"reward_scale"`
	// ReachReward is the reward of a step that ends within 30 px of the (virtual) target
	// (finite, -1000..1000). Default 4, the reference's. Under augmentation such steps are
	// about 0.1 % of the samples but carry almost all of the rewards' variance
	// (runner/SCIENCE.md).
	ReachReward float64 `yaml:"reach_reward" json:"reach_reward"`
	// LightCostCM is what a frame of light costs the agents, in cm of approach to the target
	// (0-1): the reward of every step with the light on is reduced by the reward of that much
	// approach, so the agents light only where the light buys more. Default 0, the reference's.
	// The light's effect on the critics' values is about 0.01 cm per decision (runner/SCIENCE.md);
	// without a cost, the near-uniform actors' argmax lights wherever estimation noise favours it.
	LightCostCM float64 `yaml:"light_cost_cm" json:"light_cost_cm,omitempty"`
	// Gamma is the discount factor (0 <= gamma < 1). Default 0.99, the reference's: a horizon
	// of about 100 frames (33 s), over which the reward of a worm moving in a random direction
	// relative to a (virtual) target varies far more than the light changes it; the light acts
	// within a few seconds (runner/SCIENCE.md).
	Gamma float64 `yaml:"gamma" json:"gamma"`
	// CriticTarget is what the critics bootstrap with: "policy" (default, the reference's
	// discrete SAC: the actor's expected soft value at the next frame, so the critics estimate
	// the near-uniform actor) or "behaviour" (the light the data recorded at the next frame, so
	// the critics estimate the random-light collection and the actor is one improvement step
	// over it). On line 446 the value of light depends on which (runner/SCIENCE.md).
	CriticTarget string `yaml:"critic_target" json:"critic_target"`
	// LearningRate is the actor's and critics' Adam learning rate. Default (and what 0, in a
	// spec recorded before there was this field, reads as) the reference's 1e-3. Adam moves
	// each parameter by about the learning rate per update whatever the loss, so a smaller
	// rate makes the critics' small light advantages drift less between versions (tried online:
	// runner/SCIENCE.md, "Online mode").
	LearningRate float64 `yaml:"learning_rate" json:"learning_rate,omitempty"`
	// WeightDecay is the L2 weight decay of the actors' and critics' Adam (added to the
	// gradient, torch style; the temperature has none). Default 0, as the reference trained.
	// It pulls every weight toward 0 by WeightDecay times itself per update, so critics trained
	// on little data fit its noise less (tried online: runner/SCIENCE.md, "Online mode").
	WeightDecay float64 `yaml:"weight_decay" json:"weight_decay,omitempty"`
	// Mirror also reflects half the training samples (package agentlib/replay): a worm lies on
	// its left or right side, so a line's tracks reflected are as likely as the tracks
	// themselves. Default false, as the reference.
	Mirror bool `yaml:"mirror" json:"mirror,omitempty"`
	// Mode is "offline" (default, and what "" reads as; the reference's protocol:
	// collect.hours_per_line of random light, then training, then evaluation) or "online":
	// after warmup_hours of random light per line, the rest of collect.hours_per_line is collected by episodes in which the line's
	// newest published ensemble acts (with explore), while the line's learner trains on the
	// growing replay and publishes a version every checkpoint_every updates (the online
	// protocol: package experiment/plan).
	Mode string `yaml:"mode" json:"mode,omitempty"`
	// WarmupHours is, in online mode, the hours of random-light episodes per line before the
	// agents act (> 0 and < collect.hours_per_line). Default 0.25.
	WarmupHours float64 `yaml:"warmup_hours" json:"warmup_hours,omitempty"`
	// Explore is, in online mode, the share of the online episodes' frames whose light is a
	// random-light draw at collect.light_probability instead of the ensemble's choice (0-1).
	// Default 0.1.
	Explore float64 `yaml:"explore" json:"explore,omitempty"`
	// Observation is what the agents see: "reference" (default, and what "" reads as; the
	// reference's 90 numbers, the worm's pose over the last 15 frames relative to the target)
	// or "light" (those and the light under which each of the 15 frames was captured, 105
	// numbers: package agentlib/obs). The reference's agents do not see their own light; an
	// opsin's effect outlasts it by up to seconds and a response at light offset follows it,
	// so on such lines the pose alone does not say what the light is doing.
	Observation string `yaml:"observation" json:"observation,omitempty"`
	// DecisionFrames is how often the agents decide: at every DecisionFrames-th frame of an
	// episode, the light holding until the next decision (episode.Spec.DecisionFrames). 0 or 1
	// (the default): every frame, as the reference. 3, the collection's block: the agents
	// decide only where the random-light data hold a choice, so the critics never extrapolate
	// to a pulse ended early or begun mid-block (runner/SCIENCE.md, "Line zoo").
	DecisionFrames int `yaml:"decision_frames" json:"decision_frames,omitempty"`
}

// The values of Train.Observation.
const (
	ObservationReference = "reference"
	ObservationLight     = "light"
)

// LightObservation reports whether the agents see the light (Observation "light").
func (t Train) LightObservation() bool { return t.Observation == ObservationLight }

// DefaultLearningRate is the reference's Adam learning rate, Train.LearningRate's default.
const DefaultLearningRate = 1e-3

// LR returns the learning rate to train with: LearningRate, or DefaultLearningRate when it is 0.
func (t Train) LR() float64 {
	if t.LearningRate == 0 {
		return DefaultLearningRate
	}
	return t.LearningRate
}

// The values of Train.Mode.
const (
	ModeOffline = "offline"
	ModeOnline  = "online"
)

// The values of Train.CriticTarget.
const (
	CriticTargetPolicy    = "policy"
	CriticTargetBehaviour = "behaviour"
	// CriticTargetCollection bootstraps with the collection schedule's expected value at the
	// next frame (the light continues to the end of its 3-frame block, then goes on with
	// collect.light_probability): the critics estimate the random-light collection whatever
	// policy recorded the data, as "behaviour" does on random-light data only.
	CriticTargetCollection = "collection"
	// CriticTargetGreedy bootstraps with each actor's most likely light at the next frame, the
	// rule the agents act by: the critics estimate the agents' own greedy policy, which in
	// online mode is also what collects the data.
	CriticTargetGreedy = "greedy"
)

// Evaluate configures the comparison of the agent with no light and random light.
type Evaluate struct {
	// EpisodesPerCondition is the number of episodes per line and condition (agent, none,
	// random), the targets taken in turn (1-10000). Default 10.
	EpisodesPerCondition int `yaml:"episodes_per_condition" json:"episodes_per_condition"`
	// EpisodeSeconds is the length of one evaluation episode in seconds (> 0, at most 86400).
	// Default 600.
	EpisodeSeconds float64 `yaml:"episode_seconds" json:"episode_seconds"`
	// TargetDistanceCM is the distance of the target from the plate centre in cm (> 0, at
	// most 2, the plate radius). Default 1.5.
	TargetDistanceCM float64 `yaml:"target_distance_cm" json:"target_distance_cm"`
	// Targets are the directions of the target from the plate centre, taken in turn: any of
	// up, down, left, right (image coordinates: up is -y), unique. Default all four.
	Targets []string `yaml:"targets" json:"targets"`
	// CheckpointHours is, in online mode, the animal time per line between two evaluation
	// checkpoints of the learning curve: at 0, K, 2K, ... hours of online collection (and so
	// at warmup_hours, warmup_hours + K, ... of animal time) checkpoint_episodes agent
	// episodes act with the version trained on exactly the data recorded until then. 0: none.
	// Default 0.25. Checkpoint episodes are evaluation: their animal time is not counted.
	CheckpointHours float64 `yaml:"checkpoint_hours" json:"checkpoint_hours,omitempty"`
	// CheckpointEpisodes is the number of agent episodes per checkpoint (1-10000 when
	// checkpoint_hours is set in online mode), the targets taken in turn. Default 4.
	CheckpointEpisodes int `yaml:"checkpoint_episodes" json:"checkpoint_episodes,omitempty"`
}

// CrossEvaluate runs agents of line A on animals of line B for every pair of its lines.
type CrossEvaluate struct {
	// Lines are the lines whose agents and animals are crossed; each must be one of the
	// experiment's lines (it needs a trained ensemble), unique, at least two.
	Lines []string `yaml:"lines" json:"lines"`
	// Episodes is the number of episodes per (agent line, animal line) pair (1-10000).
	// Default 10.
	Episodes int `yaml:"episodes" json:"episodes"`
}

// Policy bounds the parameters that workers act on.
type Policy struct {
	// MaxStaleness is how many parameter versions older than the one an episode names a worker
	// may act on when that version is not yet available to it (0 = only the named version; at
	// most 1000). Default 2.
	MaxStaleness int `yaml:"max_staleness" json:"max_staleness"`
}

// Default returns the reference protocol (docs/PROTOCOL.md section 1) with no name and no lines.
func Default() Spec {
	return Spec{
		Seed:          1,
		ArenasPerLine: 4,
		Collect:       Collect{HoursPerLine: 5, EpisodeSeconds: 1200, LightProbability: 0.1},
		Train: Train{EnsembleSize: 20, Updates: 100000, BatchSize: 64, CheckpointEvery: 5000, TargetEvery: 500, TargetEntropyRatio: 0.98,
			RewardScale: 1, ReachReward: 4, Gamma: 0.99, CriticTarget: CriticTargetPolicy,
			LearningRate: DefaultLearningRate, Mode: ModeOffline, WarmupHours: 0.25, Explore: 0.1},
		Evaluate: Evaluate{
			EpisodesPerCondition: 10,
			EpisodeSeconds:       600,
			TargetDistanceCM:     1.5,
			Targets:              []string{"up", "down", "left", "right"},
			CheckpointHours:      0.25,
			CheckpointEpisodes:   4,
		},
		Policy: Policy{MaxStaleness: 2},
	}
}

// DefaultCrossEpisodes is the number of cross-evaluation episodes per pair when the
// cross_evaluate section omits episodes.
const DefaultCrossEpisodes = 10

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	lineRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)
)

// ErrUnknownLine is wrapped by ValidateLines when a line is not in the catalogue.
var ErrUnknownLine = errors.New("unknown line")

// FieldError is a bad value, naming the field's path in the file.
type FieldError struct {
	// Path is the field's path, dot separated, with list indices: "evaluate.targets[2]".
	Path string
	// Msg says what is wrong with it.
	Msg string
	// Err is the underlying error, if any.
	Err error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(path, format string, args ...any) error {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// ValidLineCode reports whether code is syntactically a line code.
func ValidLineCode(code string) bool { return lineRE.MatchString(code) }

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func checkFloat(path string, v, lo, hi float64, loOpen bool) error {
	if !finite(v) {
		return fieldErr(path, "%v must be a finite number", v)
	}
	if loOpen && v <= lo {
		return fieldErr(path, "%v must be > %v", v, lo)
	}
	if !loOpen && v < lo {
		return fieldErr(path, "%v must be >= %v", v, lo)
	}
	if v > hi {
		return fieldErr(path, "%v must be <= %v", v, hi)
	}
	return nil
}

func checkInt(path string, v, lo, hi int) error {
	if v < lo {
		return fieldErr(path, "%d must be >= %d", v, lo)
	}
	if v > hi {
		return fieldErr(path, "%d must be <= %d", v, hi)
	}
	return nil
}

func checkLines(path string, lines []string, min int) error {
	if len(lines) < min {
		return fieldErr(path, "needs at least %d line(s), got %d", min, len(lines))
	}
	if len(lines) > 1000 {
		return fieldErr(path, "at most 1000 lines, got %d", len(lines))
	}
	seen := make(map[string]bool, len(lines))
	for i, l := range lines {
		p := fmt.Sprintf("%s[%d]", path, i)
		if !lineRE.MatchString(l) {
			return fieldErr(p, "%q is not a line code (1-32 characters of [A-Za-z0-9_.-])", l)
		}
		if seen[l] {
			return fieldErr(p, "%q appears twice", l)
		}
		seen[l] = true
	}
	return nil
}

// Validate reports the first bad field of s, naming its path. It checks line syntax only;
// ValidateLines checks lines against a catalogue.
func (s Spec) Validate() error {
	if s.Name == "" {
		return fieldErr("name", "required")
	}
	if !nameRE.MatchString(s.Name) {
		return fieldErr("name", "%q must be 1-63 characters of [a-z0-9-] starting with a letter or digit", s.Name)
	}
	if err := checkLines("lines", s.Lines, 1); err != nil {
		return err
	}
	if err := checkInt("arenas_per_line", s.ArenasPerLine, 1, 1000); err != nil {
		return err
	}
	c := s.Collect
	if err := checkFloat("collect.hours_per_line", c.HoursPerLine, 0, 1000, true); err != nil {
		return err
	}
	if err := checkFloat("collect.episode_seconds", c.EpisodeSeconds, 0, 86400, true); err != nil {
		return err
	}
	if !finite(c.LightProbability) || c.LightProbability <= 0 || c.LightProbability >= 1 {
		return fieldErr("collect.light_probability", "%v must be > 0 and < 1", c.LightProbability)
	}
	if n := c.HoursPerLine * 3600 / c.EpisodeSeconds; n > 1e6 {
		return fieldErr("collect.hours_per_line", "%v h in %v s episodes is %.0f episodes per line, more than 1000000", c.HoursPerLine, c.EpisodeSeconds, n)
	}
	t := s.Train
	if err := checkInt("train.ensemble_size", t.EnsembleSize, 1, 1000); err != nil {
		return err
	}
	if err := checkInt("train.updates", t.Updates, 1, 100_000_000); err != nil {
		return err
	}
	if err := checkInt("train.batch_size", t.BatchSize, 1, 65536); err != nil {
		return err
	}
	if err := checkInt("train.checkpoint_every", t.CheckpointEvery, 1, t.Updates); err != nil {
		return err
	}
	if err := checkInt("train.target_every", t.TargetEvery, 1, 100_000_000); err != nil {
		return err
	}
	if err := checkFloat("train.target_entropy_ratio", t.TargetEntropyRatio, 0, 1, false); err != nil {
		return err
	}
	if err := checkFloat("train.reward_scale", t.RewardScale, 0, 1e6, true); err != nil {
		return err
	}
	if err := checkFloat("train.reach_reward", t.ReachReward, -1000, 1000, false); err != nil {
		return err
	}
	if err := checkFloat("train.light_cost_cm", t.LightCostCM, 0, 1, false); err != nil {
		return err
	}
	if err := checkFloat("train.gamma", t.Gamma, 0, 1, false); err != nil {
		return err
	}
	if t.Gamma == 1 {
		return fieldErr("train.gamma", "1 must be < 1 (there are no terminal states)")
	}
	if t.Observation != "" && t.Observation != ObservationReference && t.Observation != ObservationLight {
		return fieldErr("train.observation", "%q must be %q or %q", t.Observation, ObservationReference, ObservationLight)
	}
	if t.CriticTarget != CriticTargetPolicy && t.CriticTarget != CriticTargetBehaviour && t.CriticTarget != CriticTargetCollection && t.CriticTarget != CriticTargetGreedy {
		return fieldErr("train.critic_target", "%q must be %q, %q, %q or %q", t.CriticTarget, CriticTargetPolicy, CriticTargetBehaviour, CriticTargetCollection, CriticTargetGreedy)
	}
	if t.LearningRate != 0 {
		if err := checkFloat("train.learning_rate", t.LearningRate, 0, 1, true); err != nil {
			return err
		}
	}
	if err := checkFloat("train.weight_decay", t.WeightDecay, 0, 1, false); err != nil {
		return err
	}
	// An empty mode is offline: specs recorded before there were modes (a coordinator's log
	// and snapshots) hold none.
	if t.Mode != "" && t.Mode != ModeOffline && t.Mode != ModeOnline {
		return fieldErr("train.mode", "%q must be %q or %q", t.Mode, ModeOffline, ModeOnline)
	}
	if err := checkFloat("train.explore", t.Explore, 0, 1, false); err != nil {
		return err
	}
	if err := checkInt("train.decision_frames", t.DecisionFrames, 0, episode.MaxDecisionFrames); err != nil {
		return err
	}
	e := s.Evaluate
	if err := checkInt("evaluate.episodes_per_condition", e.EpisodesPerCondition, 1, 10000); err != nil {
		return err
	}
	if err := checkFloat("evaluate.episode_seconds", e.EpisodeSeconds, 0, 86400, true); err != nil {
		return err
	}
	if err := checkFloat("evaluate.target_distance_cm", e.TargetDistanceCM, 0, 2, true); err != nil {
		return err
	}
	if len(e.Targets) == 0 {
		return fieldErr("evaluate.targets", "needs at least one target")
	}
	seen := map[string]bool{}
	for i, name := range e.Targets {
		p := fmt.Sprintf("evaluate.targets[%d]", i)
		if _, _, ok := direction(name); !ok {
			return fieldErr(p, "%q must be one of up, down, left, right", name)
		}
		if seen[name] {
			return fieldErr(p, "%q appears twice", name)
		}
		seen[name] = true
	}
	if err := checkFloat("evaluate.checkpoint_hours", e.CheckpointHours, 0, 1000, false); err != nil {
		return err
	}
	if ce := s.CrossEvaluate; ce != nil {
		if err := checkLines("cross_evaluate.lines", ce.Lines, 2); err != nil {
			return err
		}
		own := map[string]bool{}
		for _, l := range s.Lines {
			own[l] = true
		}
		for i, l := range ce.Lines {
			if !own[l] {
				return fieldErr(fmt.Sprintf("cross_evaluate.lines[%d]", i), "%q is not one of lines (its agents must be trained)", l)
			}
		}
		if err := checkInt("cross_evaluate.episodes", ce.Episodes, 1, 10000); err != nil {
			return err
		}
	}
	if err := checkInt("policy.max_staleness", s.Policy.MaxStaleness, 0, 1000); err != nil {
		return err
	}
	if s.Transfer != nil {
		if err := s.validateTransfer(); err != nil {
			return err
		}
	}
	if s.Online() {
		return s.validateOnline()
	}
	return nil
}

// validateOnline checks what online mode needs beyond each field's own range.
func (s Spec) validateOnline() error {
	t := s.Train
	if err := checkFloat("train.warmup_hours", t.WarmupHours, 0, 1000, true); err != nil {
		return err
	}
	if t.CriticTarget == CriticTargetBehaviour {
		return fieldErr("train.critic_target", "%q is for offline mode: on data of many policy versions it would value their mixture; use %q (or %q)",
			t.CriticTarget, CriticTargetCollection, CriticTargetPolicy)
	}
	if t.WarmupHours >= s.Collect.HoursPerLine {
		return fieldErr("train.warmup_hours", "%v must be < collect.hours_per_line (%v): online mode needs online episodes", t.WarmupHours, s.Collect.HoursPerLine)
	}
	if s.OnlineEpisodesPerLine() < 1 {
		return fieldErr("train.warmup_hours", "%v h of %v s episodes leaves no online episode in collect.hours_per_line (%v)", t.WarmupHours, s.Collect.EpisodeSeconds, s.Collect.HoursPerLine)
	}
	if err := checkInt("evaluate.checkpoint_episodes", s.Evaluate.CheckpointEpisodes, 1, 10000); err != nil && s.Evaluate.CheckpointHours > 0 {
		return err
	}
	if need := s.OnlineEpisodesPerLine() + 1 + s.Policy.MaxStaleness; s.Versions() < need {
		return fieldErr("train.updates", "%d updates in rounds of %d make %d versions; online mode needs at least %d (one per online episode, plus policy.max_staleness + 1 so that the last round trains on every episode)",
			t.Updates, t.CheckpointEvery, s.Versions(), need)
	}
	return nil
}

// Online reports whether the experiment trains online (train.mode: online).
func (s Spec) Online() bool { return s.Train.Mode == ModeOnline }

// Versions is the number of parameter versions a line's training publishes:
// ceil(updates / checkpoint_every).
func (s Spec) Versions() int {
	return (s.Train.Updates + s.Train.CheckpointEvery - 1) / s.Train.CheckpointEvery
}

// WarmupEpisodesPerLine is, in online mode, the number of random-light warm-up episodes per
// line: ceil(warmup_hours * 3600 / episode_seconds), at most the collect episodes.
func (s Spec) WarmupEpisodesPerLine() int {
	return min(int(math.Ceil(s.Train.WarmupHours*3600/s.Collect.EpisodeSeconds-1e-9)), s.CollectEpisodesPerLine())
}

// OnlineEpisodesPerLine is, in online mode, the number of episodes per line in which the agents
// act: the collect episodes after the warm-up.
func (s Spec) OnlineEpisodesPerLine() int {
	return s.CollectEpisodesPerLine() - s.WarmupEpisodesPerLine()
}

// OnlineVersion is the parameter version online episode i (0-based, of one line) names: i + 1.
// Its worker acts with the newest version once one at least OnlineVersion - max_staleness
// (and at least 1) is published.
func (s Spec) OnlineVersion(i int) uint64 { return uint64(i + 1) }

// OnlineData is the number of a line's online episodes that version v trains on (online mode):
// those naming a version up to v - 1 - max_staleness. A learner publishes v only once each of
// them is done or failed, so a worker acts at most max_staleness versions before the one its
// episode names and a learner trains at most max_staleness versions ahead of the data.
func (s Spec) OnlineData(v uint64) int {
	n := int64(v) - 1 - int64(s.Policy.MaxStaleness)
	return int(min(max(n, 0), int64(s.OnlineEpisodesPerLine())))
}

// CheckpointVersions lists, in online mode, the versions the learning curve's evaluation
// checkpoints act with: for each mark k * checkpoint_hours of online collection (k = 0, 1, ...)
// below the online episodes' total, the first version that trains on at least that much online
// data. Empty when checkpoint_hours is 0 or the mode is offline.
func (s Spec) CheckpointVersions() []uint64 {
	if !s.Online() || s.Evaluate.CheckpointHours <= 0 {
		return nil
	}
	var out []uint64
	per := s.Collect.EpisodeSeconds / (s.Evaluate.CheckpointHours * 3600) // marks per episode
	for j := range s.OnlineEpisodesPerLine() {
		// j online episodes make the first data at or past a mark when a mark lies in
		// ((j-1) * per, j * per].
		if j > 0 && math.Floor(float64(j)*per+1e-9) == math.Floor(float64(j-1)*per+1e-9) {
			continue
		}
		out = append(out, uint64(j+1+s.Policy.MaxStaleness))
	}
	return out
}

// ValidateLines reports the first line of s (in lines, then cross_evaluate.lines) for which
// known returns false; the error wraps ErrUnknownLine. A nil known accepts every line.
func (s Spec) ValidateLines(known func(code string) bool) error {
	if known == nil {
		return nil
	}
	for i, l := range s.Lines {
		if !known(l) {
			return &FieldError{Path: fmt.Sprintf("lines[%d]", i), Msg: fmt.Sprintf("%q is not in the lines catalogue", l), Err: ErrUnknownLine}
		}
	}
	if s.CrossEvaluate != nil {
		for i, l := range s.CrossEvaluate.Lines {
			if !known(l) {
				return &FieldError{Path: fmt.Sprintf("cross_evaluate.lines[%d]", i), Msg: fmt.Sprintf("%q is not in the lines catalogue", l), Err: ErrUnknownLine}
			}
		}
	}
	if s.Transfer != nil {
		for i, l := range s.Transfer.Lines {
			if !known(l) {
				return &FieldError{Path: fmt.Sprintf("transfer.lines[%d]", i), Msg: fmt.Sprintf("%q is not in the lines catalogue", l), Err: ErrUnknownLine}
			}
		}
	}
	return nil
}

// CollectEpisodesPerLine is the number of collection episodes per line:
// ceil(hours_per_line * 3600 / episode_seconds).
func (s Spec) CollectEpisodesPerLine() int {
	return int(math.Ceil(s.Collect.HoursPerLine*3600/s.Collect.EpisodeSeconds - 1e-9))
}

// CrossLines returns the cross-evaluation lines, or nil when there is no cross-evaluation.
func (s Spec) CrossLines() []string {
	if s.CrossEvaluate == nil {
		return nil
	}
	return s.CrossEvaluate.Lines
}

// Target returns the i-th evaluation target (taken in turn through Targets) as its name and
// its offset from the plate centre in cm, in image coordinates (x right, y down).
func (s Spec) Target(i int) (name string, xCM, yCM float64) {
	name = s.Evaluate.Targets[i%len(s.Evaluate.Targets)]
	dx, dy, _ := direction(name)
	d := s.Evaluate.TargetDistanceCM
	return name, dx * d, dy * d
}

func direction(name string) (dx, dy float64, ok bool) {
	switch name {
	case "up":
		return 0, -1, true
	case "down":
		return 0, 1, true
	case "left":
		return -1, 0, true
	case "right":
		return 1, 0, true
	}
	return 0, 0, false
}
