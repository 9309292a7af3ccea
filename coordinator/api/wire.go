package api

import (
	"encoding/json"

	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
)

// Limits on command contents.
const (
	MaxCommandBytes = 2 << 20
	MaxOutputBytes  = 64 << 10
	MaxIDLength     = 128
	MaxReasonLength = 1024
	// MaxBatch is the most commands one batch entry holds; lease tokens number a batch's
	// commands in the low 12 bits (index<<12 | position).
	MaxBatch = 1024
)

// SubmitCmd submits an experiment file (YAML). The leader checks it before proposing; the FSM
// parses it again, so what is replicated is the file itself.
type SubmitCmd struct {
	Spec        string `json:"spec"`
	MaxAttempts int    `json:"max_attempts"`
	// Again submits the file although a live experiment was submitted from the very same
	// bytes (without it the FSM refuses the duplicate with ErrExists).
	Again bool `json:"again,omitempty"`
}

// The cluster's hard bounds on work items, counted from an experiment's file without making
// its items (plan.ItemCount): the FSM refuses a submission over them before it expands
// anything, so no accepted log entry can make a node run out of memory. A node's operator may
// set lower bounds (checked by the leader before it proposes).
const (
	// MaxItemsPerExperiment bounds the items one experiment makes over its life.
	MaxItemsPerExperiment = 1_000_000
	// MaxLiveItems bounds the items of every experiment not archived, together.
	MaxLiveItems = 2_000_000
)

// QueryAgain is the query parameter of POST /v1/experiments that submits a file again
// (SubmitCmd.Again): "?again=true".
const QueryAgain = "again"

// RegisterWorkerCmd registers (or re-registers) a worker.
type RegisterWorkerCmd struct {
	ID           string          `json:"id"`
	ArenaID      string          `json:"arena_id"`
	Line         string          `json:"line"`
	Calibration  json.RawMessage `json:"calibration,omitempty"`
	Capabilities []string        `json:"capabilities,omitempty"`
}

// RegisterLearnerCmd registers (or re-registers) a learner.
type RegisterLearnerCmd struct {
	ID           string   `json:"id"`
	Capabilities []string `json:"capabilities,omitempty"`
}

// ReportCmd reports the item done under lease Token.
type ReportCmd struct {
	Holder string `json:"holder"`
	ItemID string `json:"item_id"`
	Token  uint64 `json:"token"`
	// Outcome is a done episode's outcome (nil for a training task).
	Outcome *episode.Outcome `json:"outcome,omitempty"`
	// PolicyVersion is, for a training task, the final parameter version it published.
	PolicyVersion uint64          `json:"policy_version,omitempty"`
	Output        json.RawMessage `json:"output,omitempty"`
}

// FailCmd reports that the attempt under lease Token failed.
type FailCmd struct {
	Holder string `json:"holder"`
	ItemID string `json:"item_id"`
	Token  uint64 `json:"token"`
	Reason string `json:"reason"`
}

// HTTP headers of the API.
const (
	// HeaderIdempotencyKey carries the client's key on every write.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderForwarded marks a write a follower forwarded to the leader (one hop only).
	HeaderForwarded = "X-Optoloop-Forwarded-By"
	// Freshness headers on every response: the answering node, its Raft state and applied
	// index, the leader it knows (id and URL) and how long ago it heard from it.
	HeaderNode         = "X-Optoloop-Node"
	HeaderRaftState    = "X-Optoloop-Raft-State"
	HeaderAppliedIndex = "X-Optoloop-Applied-Index"
	HeaderLeader       = "X-Optoloop-Leader"
	HeaderLeaderURL    = "X-Optoloop-Leader-Url"
	HeaderLastContact  = "X-Optoloop-Last-Contact-Ms"
)

// LeaseRequest asks for one item. TTLSeconds 0 takes the node's LeaseTTL.
type LeaseRequest struct {
	Holder     string        `json:"holder"`
	Type       plan.ItemType `json:"type"`
	TTLSeconds float64       `json:"ttl_seconds,omitempty"`
}

// HeartbeatRequest renews a lease (or, with no item, says the holder is alive).
type HeartbeatRequest struct {
	Holder     string  `json:"holder"`
	ItemID     string  `json:"item_id,omitempty"`
	Token      uint64  `json:"token,omitempty"`
	TTLSeconds float64 `json:"ttl_seconds,omitempty"`
	// Progress, when set, replaces the item's Progress.
	Progress *Progress `json:"progress,omitempty"`
}

// DeregisterRequest removes a worker or learner that is leaving (a worker drained on SIGTERM):
// a lease it still holds is failed with Reason so that the item is retried at once.
type DeregisterRequest struct {
	Holder string `json:"holder"`
	Reason string `json:"reason,omitempty"`
}

// CancelRequest cancels an experiment.
type CancelRequest struct {
	Reason string `json:"reason,omitempty"`
}

// DrainRequest drains (or resumes) a worker.
type DrainRequest struct {
	Drain bool `json:"drain"`
}

// JoinRequest asks the cluster to add a node as a voter.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// Nonce names the joining process (random, made at its start): the leader sends it back
	// over Raft to admit the node (a node that joins holds its Raft port shut until then), and a
	// retried join with the nonce that added the voter is answered as a success.
	Nonce string `json:"nonce,omitempty"`
}

// RemoveRequest asks the cluster to remove a node.
type RemoveRequest struct {
	ID string `json:"id"`
	// Force removes the node even when the voters left would be fewer than a quorum of the
	// configured size, or fewer of them reachable than their own quorum.
	Force bool `json:"force,omitempty"`
}

// ExperimentView is an experiment with its items. Over HTTP it is one page (see
// DefaultPageSize): Items are the page's items, Experiment.Items is left empty, Counts count
// every item (on the first page only), Total is the number of items and Next the cursor of the
// next page ("" on the last). Client.Experiment pages through it all and returns the whole view.
type ExperimentView struct {
	Experiment Experiment `json:"experiment"`
	Items      []Item     `json:"items"`
	Counts     Counts     `json:"counts"`
	Total      int        `json:"total,omitempty"`
	Next       string     `json:"next,omitempty"`
}

// NodeStatus is one node's view of itself.
type NodeStatus struct {
	ID            string `json:"id"`
	RaftAddr      string `json:"raft_addr"`
	HTTPAddr      string `json:"http_addr,omitempty"`
	Voter         bool   `json:"voter"`
	Reachable     bool   `json:"reachable"`
	Error         string `json:"error,omitempty"`
	State         string `json:"state,omitempty"`
	Term          uint64 `json:"term,omitempty"`
	AppliedIndex  uint64 `json:"applied_index"`
	CommitIndex   uint64 `json:"commit_index"`
	LastIndex     uint64 `json:"last_index"`
	Leader        string `json:"leader,omitempty"`
	LastContactMs int64  `json:"last_contact_ms"`
}

// LeaderInfo names the leader.
type LeaderInfo struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr"`
}

// ExperimentSummary is one line of the status.
type ExperimentSummary struct {
	ID    string      `json:"id"`
	Name  string      `json:"name"`
	State plan.Status `json:"state"`
	Phase plan.Phase  `json:"phase"`
	Open  int         `json:"open"`
}

// Status is the cluster's status as one node sees it.
type Status struct {
	// AnsweredBy is the node that answered; AppliedIndex its applied index (how fresh the
	// counts are).
	AnsweredBy   string              `json:"answered_by"`
	AppliedIndex uint64              `json:"applied_index"`
	Leader       LeaderInfo          `json:"leader"`
	Nodes        []NodeStatus        `json:"nodes"`
	Episodes     map[ItemState]int   `json:"episodes"`
	Tasks        map[ItemState]int   `json:"tasks"`
	Experiments  []ExperimentSummary `json:"experiments"`
	Workers      int                 `json:"workers"`
	Learners     int                 `json:"learners"`
	Stats        Stats               `json:"stats"`
}

// ErrorBody is the JSON body of a refused call.
type ErrorBody struct {
	Code  string `json:"code"`
	Error string `json:"error"`
}

// Stats are replicated counters.
type Stats struct {
	Commands        uint64 `json:"commands"`
	Refused         uint64 `json:"refused"`
	Replayed        uint64 `json:"replayed"`
	LeasesGranted   uint64 `json:"leases_granted"`
	LeasesExpired   uint64 `json:"leases_expired"`
	ReportsAccepted uint64 `json:"reports_accepted"`
	ReportsRefused  uint64 `json:"reports_refused"`
	Failures        uint64 `json:"failures"`
}
