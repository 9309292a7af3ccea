package coordinator

import (
	"encoding/json"
	"time"

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
	PhaseDone          Phase = "done"
)

// ExperimentState is the life cycle of an experiment.
type ExperimentState string

// Experiment states.
const (
	ExperimentRunning ExperimentState = "running"
	ExperimentDone    ExperimentState = "done"
	ExperimentFailed  ExperimentState = "failed"
)

// ItemType says who leases an item: workers lease episodes, learners lease training tasks.
type ItemType string

// Item types.
const (
	TypeEpisode ItemType = "episode"
	TypeTrain   ItemType = "train"
)

// Kind is what an episode does.
type Kind string

// Episode kinds. KindTrain is the kind of every training task.
const (
	KindCollect        Kind = "collect"         // random light at the collect probability
	KindEvaluateAgent  Kind = "evaluate-agent"  // the line's own ensemble acts
	KindEvaluateNone   Kind = "evaluate-none"   // no light
	KindEvaluateRandom Kind = "evaluate-random" // random light at the agent's measured on-rate
	KindCross          Kind = "cross"           // the ensemble of AgentLine on animals of Line
	KindTrain          Kind = "train"
)

// ItemState is the life cycle of a work item.
type ItemState string

// Item states. Done and failed are terminal.
const (
	StatePending ItemState = "pending"
	StateLeased  ItemState = "leased"
	StateDone    ItemState = "done"
	StateFailed  ItemState = "failed"
)

// Target is an evaluation target, relative to the plate centre, in cm, image coordinates (x right,
// y down).
type Target struct {
	Name string  `json:"name"`
	XCM  float64 `json:"x_cm"`
	YCM  float64 `json:"y_cm"`
}

// Item is an episode (leased by a worker whose arena holds Line) or a training task (leased by
// a learner). Lease mechanics are the same for both.
type Item struct {
	ID           string   `json:"id"`
	Type         ItemType `json:"type"`
	ExperimentID string   `json:"experiment_id"`
	Phase        Phase    `json:"phase"`
	Kind         Kind     `json:"kind"`
	// Line is the animal's line for an episode, the trained line for a training task.
	Line string `json:"line"`
	// AgentLine is the line whose ensemble acts (evaluate-agent and cross episodes).
	AgentLine string `json:"agent_line,omitempty"`
	// PolicyVersion is the parameter version the ensemble must act with (agent episodes);
	// MaxStaleness bounds how much older the parameters may be.
	PolicyVersion uint64 `json:"policy_version,omitempty"`
	MaxStaleness  int    `json:"max_staleness,omitempty"`
	// Target is the evaluation target (evaluate and cross episodes).
	Target *Target `json:"target,omitempty"`
	// Seconds is the episode length.
	Seconds float64 `json:"seconds,omitempty"`
	// Seed seeds the episode's animal and light schedule (or the training run).
	Seed uint64 `json:"seed"`
	// LightProbability is the random-light probability (collect and evaluate-random episodes).
	LightProbability float64 `json:"light_probability,omitempty"`
	// Training task fields: the experiment's whole train section, and its main numbers.
	Train           *experiment.Train `json:"train,omitempty"`
	EnsembleSize    int               `json:"ensemble_size,omitempty"`
	Updates         int               `json:"updates,omitempty"`
	BatchSize       int               `json:"batch_size,omitempty"`
	CheckpointEvery int               `json:"checkpoint_every,omitempty"`

	State    ItemState `json:"state"`
	Attempts int       `json:"attempts"`
	// Holder, Token and Deadline describe the current (or, after it ended, the last) lease.
	Holder   string    `json:"holder,omitempty"`
	Token    uint64    `json:"token,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	// Failures keeps the reason of every failed attempt (including expired leases).
	Failures []string `json:"failures,omitempty"`
	// Result is the accepted report (done items).
	Result *Result `json:"result,omitempty"`
	// QueueSeq orders pending items: lower is leased first.
	QueueSeq uint64    `json:"queue_seq"`
	Created  time.Time `json:"created"`
}

// Result is what a worker or learner reported for a done item.
type Result struct {
	// By is the holder whose report was accepted, Token its lease token.
	By    string    `json:"by"`
	Token uint64    `json:"token"`
	At    time.Time `json:"at"`
	// Metrics are the episode's metrics as reported (e.g. closest_cm, time_to_05cm_s,
	// light_fraction, tracking_loss_fraction). evaluate-agent episodes must report
	// light_fraction: the random-light episodes run at its mean.
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// PolicyVersion is, for a training task, the final parameter version; for an agent episode
	// the version the worker acted with.
	PolicyVersion uint64 `json:"policy_version,omitempty"`
	// Output is free-form JSON (at most MaxOutputBytes).
	Output json.RawMessage `json:"output,omitempty"`
}

// Experiment is a submitted experiment and its progress.
type Experiment struct {
	ID          string          `json:"id"`
	Spec        experiment.Spec `json:"spec"`
	State       ExperimentState `json:"state"`
	Phase       Phase           `json:"phase"`
	Reason      string          `json:"reason,omitempty"`
	MaxAttempts int             `json:"max_attempts"`
	SubmittedAt time.Time       `json:"submitted_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	// PolicyVersions maps a line to the final parameter version its training task reported.
	PolicyVersions map[string]uint64 `json:"policy_versions,omitempty"`
	// RandomRates maps a line to the light probability of its random-light episodes (the mean
	// light_fraction its agent episodes reported).
	RandomRates map[string]float64 `json:"random_rates,omitempty"`
	// Items lists the experiment's item ids in creation order.
	Items []string `json:"items"`
	// Open counts the non-terminal items of the current phase.
	Open int `json:"open"`
	// AgentOpen counts, per line, the non-terminal evaluate-agent episodes (evaluate phase).
	AgentOpen map[string]int `json:"agent_open,omitempty"`
	// NextItem numbers the experiment's items.
	NextItem int `json:"next_item"`
}

// Worker is a registered worker: one arena holding one line.
type Worker struct {
	ID      string `json:"id"`
	ArenaID string `json:"arena_id"`
	Line    string `json:"line"`
	// Calibration is the arena's calibration as the worker sent it (arenas.Calibration JSON);
	// the coordinator stores it without interpreting it.
	Calibration  json.RawMessage `json:"calibration,omitempty"`
	Capabilities []string        `json:"capabilities,omitempty"`
	Registered   time.Time       `json:"registered"`
	LastSeen     time.Time       `json:"last_seen"`
}

// Learner is a registered learner.
type Learner struct {
	ID           string    `json:"id"`
	Capabilities []string  `json:"capabilities,omitempty"`
	Registered   time.Time `json:"registered"`
	LastSeen     time.Time `json:"last_seen"`
}

// NodeInfo is a coordinator node as the replicated state knows it: where its Raft and HTTP
// endpoints are.
type NodeInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// Counts is the number of items by type and state.
type Counts struct {
	Episodes map[ItemState]int `json:"episodes"`
	Tasks    map[ItemState]int `json:"tasks"`
}
