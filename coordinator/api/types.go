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
	// ArchivedAt is set when the experiment was archived: its items are gone from the live
	// state, and a read returns only what its tombstone keeps (ArchivedExperiment).
	ArchivedAt time.Time `json:"archived_at,omitzero"`
}

// ArchivedExperiment is what the state keeps of an archived experiment: enough for a read to
// say what it was and how it ended. Its id is never given to another experiment.
type ArchivedExperiment struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Status      plan.Status `json:"status"`
	Phase       plan.Phase  `json:"phase"`
	Reason      string      `json:"reason,omitempty"`
	Counts      Counts      `json:"counts"`
	SubmittedAt time.Time   `json:"submitted_at"`
	ArchivedAt  time.Time   `json:"archived_at"`
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
	// Draining is set by an operator's drain: the worker is leased no new episode.
	Draining bool `json:"draining,omitempty"`
	// Holding is the episode the worker holds a lease on (set in reads; "" when none).
	Holding string `json:"holding,omitempty"`
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

// Role is what a credential may do (coordinator/DESIGN.md, "Credentials and roles"):
//
//   - admin (the --token-file token, or a signed admin credential): membership (join, remove)
//     and everything an operator may;
//   - operator: submit, cancel and archive experiments, drain workers, read;
//   - worker: register a worker, lease episodes, heartbeat, report, fail, deregister, read,
//     each only as the holder its credential names (HolderCovers);
//   - learner: the same for training tasks and learner registration;
//   - viewer: read.
//
// Admin, operator and viewer credentials name no holder: they cannot lease or report.
type Role string

// Credential roles.
const (
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
	RoleWorker   Role = "worker"
	RoleLearner  Role = "learner"
	RoleViewer   Role = "viewer"
	// RoleHolder is not a credential's role but what the lease calls need: a worker or
	// learner credential, acting for the holder it names.
	RoleHolder Role = "holder"
)

// Allows reports whether a credential of role r may make a call that needs role need: every
// credential may do what a viewer may; admin what an operator may; worker and learner what a
// holder may (their own holder's lease calls) and what their own role may (registration).
func (r Role) Allows(need Role) bool {
	switch {
	case r == "" || !isCredentialRole(r):
		return false
	case need == RoleViewer || r == need:
		return true
	case need == RoleOperator:
		return r == RoleAdmin
	case need == RoleHolder:
		return r.NamesHolder()
	}
	return false
}

// NamesHolder reports whether a credential of role r names the holder it acts for (worker,
// learner).
func (r Role) NamesHolder() bool { return r == RoleWorker || r == RoleLearner }

// WhoAmI is the role of the caller's credential and, for a signed one, the holder it names.
type WhoAmI struct {
	Role   Role   `json:"role"`
	Holder string `json:"holder,omitempty"`
}

// ExperimentProgress is an experiment's progress as a dashboard shows it, computed by the node
// that answers from its replicated state.
type ExperimentProgress struct {
	ID     string      `json:"id"`
	Name   string      `json:"name"`
	Status plan.Status `json:"status"`
	Phase  plan.Phase  `json:"phase"`
	Reason string      `json:"reason,omitempty"`
	// Phases lists every phase that has items, in protocol order.
	Phases []PhaseProgress `json:"phases"`
	// Failures are failed attempts (at most MaxProgressFailures): the newest items' first,
	// each item's latest attempt first (attempt times are not kept).
	Failures []ItemFailure `json:"failures,omitempty"`
	// Lines is the per-line table of the evaluation as it fills: one row per line, condition
	// and agent line.
	Lines       []LineProgress `json:"lines,omitempty"`
	SubmittedAt time.Time      `json:"submitted_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
}

// MaxProgressFailures bounds ExperimentProgress.Failures.
const MaxProgressFailures = 50

// PhaseProgress counts one phase's items and training updates.
type PhaseProgress struct {
	Phase          plan.Phase `json:"phase"`
	Episodes       int        `json:"episodes"`
	EpisodesDone   int        `json:"episodes_done"`
	EpisodesFailed int        `json:"episodes_failed"`
	EpisodesLeased int        `json:"episodes_leased"`
	Tasks          int        `json:"tasks"`
	TasksDone      int        `json:"tasks_done"`
	TasksFailed    int        `json:"tasks_failed"`
	// Updates and UpdatesDone are the phase's gradient updates (every member of every task),
	// done as the learners' heartbeats last said.
	Updates     int64 `json:"updates"`
	UpdatesDone int64 `json:"updates_done"`
}

// ItemFailure is one failed attempt.
type ItemFailure struct {
	Item   string `json:"item"`
	Line   string `json:"line,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Reason string `json:"reason"`
	// Final is set when the item failed for good (no attempt left).
	Final bool `json:"final,omitempty"`
}

// LineProgress is one row of the evaluation table: the done episodes of a line under one
// condition (agent, none, random, cross with AgentLine's agent).
type LineProgress struct {
	Line      string       `json:"line"`
	Kind      episode.Kind `json:"kind"`
	AgentLine string       `json:"agent_line,omitempty"`
	// Episodes are done out of Planned (the phase's items of this row so far).
	Episodes int `json:"episodes"`
	Planned  int `json:"planned"`
	// MeanClosestCM is the mean closest approach of the done episodes; Reached how many came
	// within 0.5 cm.
	MeanClosestCM float64 `json:"mean_closest_cm"`
	Reached       int     `json:"reached"`
}
