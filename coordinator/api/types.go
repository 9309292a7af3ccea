// Package api holds the coordinator's wire types, response codes, the sentinel errors callers
// branch on and the HTTP client. It imports no Raft and no bbolt, so workers, learners and the
// CLI link neither.
package api

import (
	"encoding/json"
	"time"

	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
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

// Item is an episode (leased by a worker whose arena holds Line) or a training task (leased by
// a learner), as the plan created it, with its lease state. Lease mechanics are the same for
// both.
type Item struct {
	ID           string `json:"id"`
	ExperimentID string `json:"experiment_id"`
	// Item is what the plan asks for: number, type, phase, the episode spec (kind, line,
	// agent line, policy version, target, seconds, seed, light probability) and, for a
	// training task, the experiment's train section.
	plan.Item

	State    ItemState `json:"state"`
	Attempts int       `json:"attempts"`
	// Holder, Token and Deadline describe the current (or, after it ended, the last) lease.
	Holder   string    `json:"holder,omitempty"`
	Token    uint64    `json:"token,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	// Failures keeps the reason of every failed attempt (including expired leases).
	Failures []string `json:"failures,omitempty"`
	// Progress is how far the current lease's holder says it is (a training task's updates),
	// as its last heartbeat carried it; nil when it said nothing.
	Progress *Progress `json:"progress,omitempty"`
	// Result is the accepted report (done items).
	Result *Result `json:"result,omitempty"`
	// QueueSeq orders pending items: lower is leased first.
	QueueSeq uint64    `json:"queue_seq"`
	Created  time.Time `json:"created"`
}

// Progress is a holder's count of work done out of a total (a training task: gradient updates
// done by every member together, out of members x updates).
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// Result is what a worker or learner reported for a done item.
type Result struct {
	// By is the holder whose report was accepted, Token its lease token.
	By    string    `json:"by"`
	Token uint64    `json:"token"`
	At    time.Time `json:"at"`
	// Outcome is a done episode's outcome.
	Outcome *episode.Outcome `json:"outcome,omitempty"`
	// PolicyVersion is, for a training task, the final parameter version it published.
	PolicyVersion uint64 `json:"policy_version,omitempty"`
	// Output is free-form JSON (at most MaxOutputBytes).
	Output json.RawMessage `json:"output,omitempty"`
}

// Experiment is a submitted experiment and its progress.
type Experiment struct {
	ID string `json:"id"`
	// Plan is the experiment's file and its progress through the protocol: phase, status,
	// reason, open items, policy versions and random-light rates.
	plan.Plan
	// File is the experiment file as submitted (its comments and layout kept: a run folder's
	// experiment.yaml is this file).
	File        string    `json:"file,omitempty"`
	MaxAttempts int       `json:"max_attempts"`
	SubmittedAt time.Time `json:"submitted_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Items lists the experiment's item ids in creation order.
	Items []string `json:"items"`
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
