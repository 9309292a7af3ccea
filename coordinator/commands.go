package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

// CommandType names a replicated command.
type CommandType string

// The commands of the replicated log. Every command carries the leader's time; the FSM never
// reads a clock.
const (
	CmdSubmit          CommandType = "submit"
	CmdRegisterWorker  CommandType = "register_worker"
	CmdRegisterLearner CommandType = "register_learner"
	CmdLease           CommandType = "lease"
	CmdHeartbeat       CommandType = "heartbeat"
	CmdReport          CommandType = "report"
	CmdFail            CommandType = "fail"
	CmdDeregister      CommandType = "deregister"
	CmdTick            CommandType = "tick"
	CmdSetNode         CommandType = "set_node"
	CmdRemoveNode      CommandType = "remove_node"
	CmdCancel          CommandType = "cancel"
	CmdDrain           CommandType = "drain"
	CmdArchive         CommandType = "archive"
	// CmdBatch carries several commands in one log entry (the leader groups concurrent
	// writes); they apply in order, each with its own response.
	CmdBatch CommandType = "batch"
)

// Command is one entry of the replicated log: a type, the leader's time, an optional
// idempotency key, and exactly the payload that matches the type.
type Command struct {
	Type CommandType `json:"type"`
	// Time is the leader's clock when it proposed the command; the FSM's notion of now is the
	// largest Time applied so far.
	Time time.Time `json:"time"`
	// Key is the client's idempotency key: a second command with the same key (within
	// IdempotencyWindow of the first) returns the first one's response and changes nothing.
	Key string `json:"key,omitempty"`
	// KeyHash binds Key to the request it came with (RequestHash of an HTTP write, PayloadHash
	// of a Local call): a command whose Key was first used with another hash is refused
	// (api.CodeKeyReused) and changes nothing.
	KeyHash string `json:"key_hash,omitempty"`

	Submit          *api.SubmitCmd          `json:"submit,omitempty"`
	RegisterWorker  *api.RegisterWorkerCmd  `json:"register_worker,omitempty"`
	RegisterLearner *api.RegisterLearnerCmd `json:"register_learner,omitempty"`
	Lease           *LeaseCmd               `json:"lease,omitempty"`
	Heartbeat       *HeartbeatCmd           `json:"heartbeat,omitempty"`
	Report          *api.ReportCmd          `json:"report,omitempty"`
	Fail            *api.FailCmd            `json:"fail,omitempty"`
	Deregister      *api.DeregisterRequest  `json:"deregister,omitempty"`
	SetNode         *api.NodeInfo           `json:"set_node,omitempty"`
	RemoveNode      *RemoveNodeCmd          `json:"remove_node,omitempty"`
	Cancel          *CancelCmd              `json:"cancel,omitempty"`
	Drain           *DrainCmd               `json:"drain,omitempty"`
	Archive         *ArchiveCmd             `json:"archive,omitempty"`
	// Batch holds the commands of a batch entry (none of them a batch).
	Batch []Command `json:"batch,omitempty"`
}

// LeaseCmd asks for one item for Holder: an episode of the holder's line (workers) or a
// training task (learners).
type LeaseCmd struct {
	Holder string        `json:"holder"`
	Type   plan.ItemType `json:"type"`
	TTL    time.Duration `json:"ttl"`
}

// HeartbeatCmd renews the lease (ItemID, Token) for TTL from now. With no ItemID it only
// records that the holder is alive.
type HeartbeatCmd struct {
	Holder string        `json:"holder"`
	ItemID string        `json:"item_id,omitempty"`
	Token  uint64        `json:"token,omitempty"`
	TTL    time.Duration `json:"ttl"`
	// Progress, when set, replaces the item's progress.
	Progress *api.Progress `json:"progress,omitempty"`
}

// RemoveNodeCmd forgets a node's addresses (after it left the Raft configuration).
type RemoveNodeCmd struct {
	ID string `json:"id"`
}

// CancelCmd cancels a running experiment (an operator's cancel): the plan fails with Reason and
// the experiment's open items end.
type CancelCmd struct {
	Experiment string `json:"experiment"`
	Reason     string `json:"reason"`
}

// DrainCmd stops (Drain) or resumes leasing episodes to a worker. A draining worker keeps the
// episode it holds and is leased nothing new.
type DrainCmd struct {
	Worker string `json:"worker"`
	Drain  bool   `json:"drain"`
}

// ArchiveCmd drops a finished experiment's items from the live state, keeping its tombstone
// (api.ArchivedExperiment).
type ArchiveCmd struct {
	Experiment string `json:"experiment"`
}

// ErrBadCommand is wrapped by DecodeCommand for every malformed command.
var ErrBadCommand = errors.New("bad command")

// EncodeCommand returns the log entry for c.
func EncodeCommand(c Command) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// DecodeCommand parses and checks a log entry. Unknown fields, a payload that does not match
// the type, missing or oversized fields are refused with an error wrapping ErrBadCommand.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) > api.MaxCommandBytes {
		return c, fmt.Errorf("%w: %d bytes", ErrBadCommand, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Command{}, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	if dec.More() {
		return Command{}, fmt.Errorf("%w: trailing data", ErrBadCommand)
	}
	if err := c.validate(); err != nil {
		return Command{}, err
	}
	return c, nil
}

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadCommand, fmt.Sprintf(format, args...))
}

func checkID(what, id string) error {
	if err := api.ValidID(what, id); err != nil {
		return badf("%v", err)
	}
	return nil
}

// checkAddr checks a host:port (any bytes a host name or an IPv6 literal needs).
func checkAddr(what, addr string) error {
	if addr == "" {
		return badf("%s is required", what)
	}
	if len(addr) > api.MaxIDLength {
		return badf("%s longer than %d bytes", what, api.MaxIDLength)
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > 24*time.Hour {
		return badf("ttl %v must be in (0, 24h]", ttl)
	}
	return nil
}

func (c Command) validate() error {
	if c.Time.IsZero() {
		return badf("time is required")
	}
	if c.Key != "" {
		if err := checkID("idempotency key", c.Key); err != nil {
			return err
		}
	}
	if len(c.KeyHash) > 64 || c.KeyHash != "" && c.Key == "" {
		return badf("key hash of %d bytes (at most 64, only with a key)", len(c.KeyHash))
	}
	n := 0
	for _, set := range []bool{c.Submit != nil, c.RegisterWorker != nil, c.RegisterLearner != nil, c.Lease != nil,
		c.Heartbeat != nil, c.Report != nil, c.Fail != nil, c.Deregister != nil, c.SetNode != nil, c.RemoveNode != nil, c.Cancel != nil, c.Drain != nil,
		c.Archive != nil} {
		if set {
			n++
		}
	}
	want := 1
	if c.Type == CmdTick || c.Type == CmdBatch {
		want = 0
	}
	if n != want {
		return badf("%s command with %d payloads", c.Type, n)
	}
	if c.Type != CmdBatch && c.Batch != nil {
		return badf("%s command with a batch", c.Type)
	}
	switch c.Type {
	case CmdTick:
		return nil
	case CmdBatch:
		if len(c.Batch) == 0 || len(c.Batch) > api.MaxBatch {
			return badf("batch of %d commands must hold 1..%d", len(c.Batch), api.MaxBatch)
		}
		for i, sub := range c.Batch {
			if sub.Type == CmdBatch {
				return badf("batch[%d]: nested batch", i)
			}
			if err := sub.validate(); err != nil {
				return fmt.Errorf("batch[%d]: %w", i, err)
			}
		}
		return nil
	case CmdSubmit:
		if c.Submit == nil {
			break
		}
		if c.Submit.Spec == "" {
			return badf("submit: spec is required")
		}
		if c.Submit.MaxAttempts < 1 || c.Submit.MaxAttempts > 1000 {
			return badf("submit: max_attempts %d must be in 1..1000", c.Submit.MaxAttempts)
		}
		return nil
	case CmdRegisterWorker:
		if c.RegisterWorker == nil {
			break
		}
		w := c.RegisterWorker
		if err := checkID("worker id", w.ID); err != nil {
			return err
		}
		if err := checkID("arena id", w.ArenaID); err != nil {
			return err
		}
		if err := checkID("line", w.Line); err != nil {
			return err
		}
		if len(w.Calibration) > api.MaxOutputBytes || len(w.Capabilities) > 64 {
			return badf("worker registration too large")
		}
		return nil
	case CmdRegisterLearner:
		if c.RegisterLearner == nil {
			break
		}
		if len(c.RegisterLearner.Capabilities) > 64 {
			return badf("learner registration too large")
		}
		return checkID("learner id", c.RegisterLearner.ID)
	case CmdLease:
		if c.Lease == nil {
			break
		}
		if err := checkID("holder", c.Lease.Holder); err != nil {
			return err
		}
		if c.Lease.Type != plan.TypeEpisode && c.Lease.Type != plan.TypeTrain {
			return badf("lease: type %q must be episode or train", c.Lease.Type)
		}
		return checkTTL(c.Lease.TTL)
	case CmdHeartbeat:
		if c.Heartbeat == nil {
			break
		}
		if err := checkID("holder", c.Heartbeat.Holder); err != nil {
			return err
		}
		if c.Heartbeat.ItemID != "" {
			if err := checkID("item id", c.Heartbeat.ItemID); err != nil {
				return err
			}
		}
		if p := c.Heartbeat.Progress; p != nil && (p.Done < 0 || p.Total < 0 || p.Done > p.Total) {
			return badf("heartbeat: progress %d of %d", p.Done, p.Total)
		}
		return checkTTL(c.Heartbeat.TTL)
	case CmdReport:
		if c.Report == nil {
			break
		}
		r := c.Report
		if err := checkID("holder", r.Holder); err != nil {
			return err
		}
		if err := checkID("item id", r.ItemID); err != nil {
			return err
		}
		if r.Token == 0 {
			return badf("report: token is required")
		}
		if r.Outcome != nil {
			if err := r.Outcome.Validate(); err != nil {
				return badf("report: %v", err)
			}
		}
		if len(r.Output) > api.MaxOutputBytes {
			return badf("report: output larger than %d bytes", api.MaxOutputBytes)
		}
		return nil
	case CmdFail:
		if c.Fail == nil {
			break
		}
		if err := checkID("holder", c.Fail.Holder); err != nil {
			return err
		}
		if err := checkID("item id", c.Fail.ItemID); err != nil {
			return err
		}
		if c.Fail.Token == 0 {
			return badf("fail: token is required")
		}
		if len(c.Fail.Reason) > api.MaxReasonLength {
			return badf("fail: reason longer than %d bytes", api.MaxReasonLength)
		}
		return nil
	case CmdDeregister:
		if c.Deregister == nil {
			break
		}
		if len(c.Deregister.Reason) > api.MaxReasonLength {
			return badf("deregister: reason longer than %d bytes", api.MaxReasonLength)
		}
		return checkID("holder", c.Deregister.Holder)
	case CmdSetNode:
		if c.SetNode == nil {
			break
		}
		if err := checkID("node id", c.SetNode.ID); err != nil {
			return err
		}
		if err := checkAddr("raft address", c.SetNode.RaftAddr); err != nil {
			return err
		}
		return checkAddr("http address", c.SetNode.HTTPAddr)
	case CmdRemoveNode:
		if c.RemoveNode == nil {
			break
		}
		return checkID("node id", c.RemoveNode.ID)
	case CmdCancel:
		if c.Cancel == nil {
			break
		}
		if len(c.Cancel.Reason) > api.MaxReasonLength {
			return badf("cancel: reason longer than %d bytes", api.MaxReasonLength)
		}
		return checkID("experiment id", c.Cancel.Experiment)
	case CmdDrain:
		if c.Drain == nil {
			break
		}
		return checkID("worker id", c.Drain.Worker)
	case CmdArchive:
		if c.Archive == nil {
			break
		}
		return checkID("experiment id", c.Archive.Experiment)
	default:
		return badf("unknown command type %q", c.Type)
	}
	return badf("%s command without its payload", c.Type)
}
