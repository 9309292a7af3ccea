package episode

import (
	"errors"
	"fmt"
	"math"
)

// Kind is what an episode does. The same names are the coordinator's item kinds, the
// conditions of a run folder's report and what a worker is asked to run.
type Kind string

// Episode kinds. KindTrain is not an episode: it is the kind of every training task, so that
// one item vocabulary covers all the work of an experiment.
const (
	KindCollect Kind = "collect" // random light at the collect probability: data for training
	KindAgent   Kind = "agent"   // the line's own ensemble acts
	KindNone    Kind = "none"    // light never on
	KindRandom  Kind = "random"  // random light at the agent's measured on-rate
	KindCross   Kind = "cross"   // the ensemble of AgentLine acts on animals of Line
	// KindOnline collects data in online mode: the line's newest ensemble acts, with a share
	// of random-light frames (Spec.Explore), and its frames go to the training replay.
	KindOnline Kind = "online"
	// KindCheckpoint evaluates, in online mode, the version trained on the data recorded so
	// far (a point of the learning curve); it acts with exactly the version it names.
	KindCheckpoint Kind = "checkpoint"
	// KindTransfer runs the line's own ensemble, unchanged, in a transfer environment
	// (Spec.Environment: food, obstacles); KindTransferNone is its no-light control.
	KindTransfer     Kind = "transfer"
	KindTransferNone Kind = "transfer_none"
	KindTrain        Kind = "train" // a training task (not an episode)
)

// Acts reports whether episodes of kind k act with a learnt ensemble.
func (k Kind) Acts() bool {
	return k == KindAgent || k == KindCross || k == KindOnline || k == KindCheckpoint || k == KindTransfer
}

// Transfers reports whether episodes of kind k run in a transfer environment.
func (k Kind) Transfers() bool { return k == KindTransfer || k == KindTransferNone }

// Collects reports whether episodes of kind k record training data (random-light collection
// and online episodes); the others are evaluation.
func (k Kind) Collects() bool { return k == KindCollect || k == KindOnline }

// Valid reports whether k is one of the episode kinds (KindTrain excluded).
func (k Kind) Valid() bool {
	switch k {
	case KindCollect, KindAgent, KindNone, KindRandom, KindCross, KindOnline, KindCheckpoint, KindTransfer, KindTransferNone:
		return true
	}
	return false
}

// Place is a named point relative to the plate centre, in cm, image axes (x right, y down).
type Place struct {
	Name string  `json:"name,omitempty"`
	XCM  float64 `json:"x_cm"`
	YCM  float64 `json:"y_cm"`
}

// Spec is one episode as the protocol asks for it: what a coordinator item carries and what a
// station runs. A new animal is drawn from Seed for every episode.
type Spec struct {
	Kind Kind `json:"kind"`
	// Line is the animal's line (for a training task, the trained line).
	Line string `json:"line"`
	// AgentLine is the line whose ensemble acts (KindAgent and KindCross).
	AgentLine string `json:"agent_line,omitempty"`
	// PolicyVersion is the parameter version the ensemble must act with; MaxStaleness is how
	// many versions older than it a worker may still act on.
	PolicyVersion uint64 `json:"policy_version,omitempty"`
	MaxStaleness  int    `json:"max_staleness,omitempty"`
	// Target is the evaluation target (nil for collection episodes, whose target is
	// meaningless: the learners place virtual targets).
	Target *Place `json:"target,omitempty"`
	// Seconds is the episode's length on the arena's clock.
	Seconds float64 `json:"seconds,omitempty"`
	// Seed seeds the animal and the light schedule (or, for a training task, the learner).
	Seed uint64 `json:"seed"`
	// LightProbability is P of the random-light schedule (KindCollect and KindRandom), and of
	// an online episode's exploration draws.
	LightProbability float64 `json:"light_probability,omitempty"`
	// Explore is, for KindOnline, the probability that a frame's light is a random draw at
	// LightProbability instead of the ensemble's choice.
	Explore float64 `json:"explore,omitempty"`
	// DecisionFrames is, for an episode an ensemble acts in, how often it decides: at every
	// DecisionFrames-th frame, counted from the episode's first, the light it chooses holding
	// until the next decision (0 or 1: every frame; BlockFrames: once per block of the
	// random-light collection, the only light changes its data hold).
	DecisionFrames int `json:"decision_frames,omitempty"`
	// Environment is, for KindTransfer and KindTransferNone (and only them), what is on the
	// plate besides agar.
	Environment *Environment `json:"environment,omitempty"`
}

// Environment is a transfer episode's plate: a food lawn, debris, or both. A simulated station
// builds it into the simulator (the debris seeded from the episode's seed, between the start
// and the target); a rig's plate must be prepared so.
type Environment struct {
	// Name names the environment in the report ("obstacles", "food_5mm").
	Name string `json:"name"`
	// Food is the lawn's centre (nil: no lawn) and FoodRadiusCM its radius.
	Food         *Place  `json:"food,omitempty"`
	FoodRadiusCM float64 `json:"food_radius_cm,omitempty"`
	// Obstacles is the number of pieces of debris, of median radius ObstacleRadiusCM.
	Obstacles        int     `json:"obstacles,omitempty"`
	ObstacleRadiusCM float64 `json:"obstacle_radius_cm,omitempty"`
}

// Validate reports the first unusable field of an environment.
func (e Environment) Validate() error {
	switch {
	case e.Name == "":
		return errors.New("episode: environment has no name")
	case e.Food == nil && e.Obstacles == 0:
		return fmt.Errorf("episode: environment %q has neither food nor obstacles", e.Name)
	case e.Food != nil && (!finite(e.Food.XCM) || !finite(e.Food.YCM) || !(e.FoodRadiusCM > 0) || e.FoodRadiusCM > 1):
		return fmt.Errorf("episode: environment %q: food must be finite with a radius within (0, 1] cm", e.Name)
	case e.Obstacles < 0 || e.Obstacles > 200:
		return fmt.Errorf("episode: environment %q: %d obstacles must be within 0-200", e.Name, e.Obstacles)
	case e.Obstacles > 0 && !(e.ObstacleRadiusCM > 0 && e.ObstacleRadiusCM <= 0.3):
		return fmt.Errorf("episode: environment %q: obstacle radius %v cm must be within (0, 0.3]", e.Name, e.ObstacleRadiusCM)
	}
	return nil
}

// Validate reports the first unusable field of an episode spec (not a training task).
func (s Spec) Validate() error {
	switch {
	case !s.Kind.Valid():
		return fmt.Errorf("episode: kind %q is not an episode kind", s.Kind)
	case s.Line == "":
		return errors.New("episode: no line")
	case s.Kind.Acts() && s.AgentLine == "":
		return fmt.Errorf("episode: a %s episode needs an agent line", s.Kind)
	case !s.Kind.Acts() && s.AgentLine != "":
		return fmt.Errorf("episode: a %s episode has no agent line (got %q)", s.Kind, s.AgentLine)
	case !(s.Seconds > 0) || math.IsInf(s.Seconds, 0):
		return fmt.Errorf("episode: seconds %v must be positive", s.Seconds)
	case !(s.LightProbability >= 0 && s.LightProbability <= 1):
		return fmt.Errorf("episode: light probability %v must be within 0-1", s.LightProbability)
	case !(s.Explore >= 0 && s.Explore <= 1):
		return fmt.Errorf("episode: explore %v must be within 0-1", s.Explore)
	case s.Explore > 0 && s.Kind != KindOnline:
		return fmt.Errorf("episode: a %s episode does not explore (explore %v)", s.Kind, s.Explore)
	case s.MaxStaleness < 0:
		return fmt.Errorf("episode: max staleness %d must be >= 0", s.MaxStaleness)
	case s.DecisionFrames < 0 || s.DecisionFrames > MaxDecisionFrames:
		return fmt.Errorf("episode: decision frames %d must be within 0-%d", s.DecisionFrames, MaxDecisionFrames)
	case s.DecisionFrames > 1 && !s.Kind.Acts():
		return fmt.Errorf("episode: a %s episode follows a fixed light policy, it makes no decisions (decision frames %d)", s.Kind, s.DecisionFrames)
	case s.Kind.Transfers() && s.Environment == nil:
		return fmt.Errorf("episode: a %s episode needs an environment", s.Kind)
	case !s.Kind.Transfers() && s.Environment != nil:
		return fmt.Errorf("episode: a %s episode has no environment (got %q)", s.Kind, s.Environment.Name)
	}
	if s.Environment != nil {
		if err := s.Environment.Validate(); err != nil {
			return err
		}
	}
	if s.Target != nil && (!finite(s.Target.XCM) || !finite(s.Target.YCM)) {
		return errors.New("episode: target must be finite")
	}
	return nil
}

// LightPolicy is the fixed light policy of an episode that does not act with an ensemble:
// random light at LightProbability for KindCollect and KindRandom, none for KindNone.
func (s Spec) LightPolicy() Policy {
	switch s.Kind {
	case KindCollect, KindRandom:
		return Policy{Kind: Random, P: s.LightProbability}
	}
	return Policy{Kind: None}
}

// TargetCM is the target's offset from the plate centre in cm (0, 0 without a target).
func (s Spec) TargetCM() [2]float64 {
	if s.Target == nil {
		return [2]float64{}
	}
	return [2]float64{s.Target.XCM, s.Target.YCM}
}

// Outcome is what one episode measured: what a worker reports and what results are built from.
type Outcome struct {
	// Seconds is the tracked span of the episode.
	Seconds float64 `json:"seconds"`
	// ClosestCM is the closest approach to the target; TimeTo05cmS the time until the worm
	// first came within WithinCM of it (nil: never).
	ClosestCM   float64  `json:"closest_cm"`
	TimeTo05cmS *float64 `json:"time_to_05cm_s"`
	// FinalDistanceCM is the distance to the target at the last tracked frame.
	FinalDistanceCM float64 `json:"final_distance_cm"`
	// MeanSpeedMMs is the tracked path length over the tracked span.
	MeanSpeedMMs float64 `json:"mean_speed_mm_s"`
	// LightFraction is the share of steps whose chosen light was on; the random-light
	// baseline of a line runs at the mean LightFraction of its agent episodes.
	LightFraction float64 `json:"light_fraction"`
	// LostFraction is the share of steps without a usable pose.
	LostFraction float64 `json:"lost_fraction"`
	// Frames is the number of control steps run.
	Frames int `json:"frames"`
	// PolicyVersion is the parameter version the ensemble acted with (0: a fixed schedule).
	PolicyVersion uint64 `json:"policy_version,omitempty"`
	// TimeToFoodS is, in an environment with food, the time until the tracked centre first
	// lay on the lawn (nil: never, or no food).
	TimeToFoodS *float64 `json:"time_to_food_s,omitempty"`
}

// Validate reports whether the outcome's numbers are usable (finite, shares within 0-1).
func (o Outcome) Validate() error {
	for _, v := range []float64{o.Seconds, o.ClosestCM, o.FinalDistanceCM, o.MeanSpeedMMs, o.LightFraction, o.LostFraction} {
		if !finite(v) || v < 0 {
			return errors.New("episode: outcome has a negative or non-finite number")
		}
	}
	if o.TimeTo05cmS != nil && (!finite(*o.TimeTo05cmS) || *o.TimeTo05cmS < 0) {
		return errors.New("episode: outcome time to 0.5 cm must be finite and >= 0")
	}
	if o.TimeToFoodS != nil && (!finite(*o.TimeToFoodS) || *o.TimeToFoodS < 0) {
		return errors.New("episode: outcome time to food must be finite and >= 0")
	}
	if o.LightFraction > 1 || o.LostFraction > 1 {
		return errors.New("episode: outcome shares must be within 0-1")
	}
	if o.Frames < 0 {
		return errors.New("episode: outcome frames must be >= 0")
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
