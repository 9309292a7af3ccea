package coordinator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// IdempotencyWindow is how long the FSM remembers an idempotency key and its response. It is a
// constant, not a setting, because every node must prune keys identically.
const IdempotencyWindow = 5 * time.Minute

// Code classifies a refused command in a Response.
type Code string

// Response codes. The empty code means the command was applied.
const (
	CodeOK            Code = ""
	CodeBadRequest    Code = "bad_request"
	CodeNotFound      Code = "not_found"
	CodeNotRegistered Code = "not_registered"
	CodeStaleLease    Code = "stale_lease"
	CodeDuplicate     Code = "duplicate"
)

// Sentinel errors callers branch on. Response.Err and the client wrap them.
var (
	// ErrBadRequest: the request is malformed (including a bad experiment file); nothing changed.
	ErrBadRequest = errors.New("bad request")
	// ErrNotFound: no such experiment, item or node.
	ErrNotFound = errors.New("not found")
	// ErrNotRegistered: the worker or learner must register before it leases.
	ErrNotRegistered = errors.New("not registered")
	// ErrStaleLease: the token is not the item's current lease (expired, re-leased, wrong token
	// or holder); the report or heartbeat was refused and nothing changed.
	ErrStaleLease = errors.New("stale lease")
	// ErrDuplicate: the item is already done under this very lease; nothing changed.
	ErrDuplicate = errors.New("duplicate report")
)

// Response is what applying a command returns (and what the HTTP API returns for writes).
type Response struct {
	Code  Code   `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// Index is the log index at which the command was applied.
	Index uint64 `json:"index"`
	// ExperimentID is set by submit.
	ExperimentID string `json:"experiment_id,omitempty"`
	// Item is the leased item (lease; nil when there is no work), or the item after a
	// heartbeat, report or fail.
	Item *Item `json:"item,omitempty"`
}

// Err returns nil for an applied command, else an error wrapping the code's sentinel.
func (r *Response) Err() error {
	var s error
	switch r.Code {
	case CodeOK:
		return nil
	case CodeBadRequest:
		s = ErrBadRequest
	case CodeNotFound:
		s = ErrNotFound
	case CodeNotRegistered:
		s = ErrNotRegistered
	case CodeStaleLease:
		s = ErrStaleLease
	case CodeDuplicate:
		s = ErrDuplicate
	default:
		return fmt.Errorf("coordinator: %s: %s", r.Code, r.Error)
	}
	return fmt.Errorf("%w: %s", s, r.Error)
}

func refuse(code Code, format string, args ...any) *Response {
	return &Response{Code: code, Error: fmt.Sprintf(format, args...)}
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

type idemEntry struct {
	Key  string    `json:"key"`
	At   time.Time `json:"at"`
	Resp *Response `json:"resp"`
}

// state is everything replicated; a snapshot is its JSON.
type state struct {
	Now            time.Time              `json:"now"`
	NextExperiment uint64                 `json:"next_experiment"`
	NextQueue      uint64                 `json:"next_queue"`
	Experiments    map[string]*Experiment `json:"experiments"`
	Items          map[string]*Item       `json:"items"`
	Workers        map[string]*Worker     `json:"workers"`
	Learners       map[string]*Learner    `json:"learners"`
	Nodes          map[string]*NodeInfo   `json:"nodes"`
	Idem           []idemEntry            `json:"idem"`
	// Applied is the index of the last command applied.
	Applied uint64 `json:"applied"`
	Stats   Stats  `json:"stats"`
}

type queued struct {
	id  string
	seq uint64
}

// FSM is the coordinator's replicated state machine (raft.FSM).
//
// Contract: Apply is deterministic. It reads no clock, no random source and no map iteration
// order: time comes in the command (Command.Time; the FSM's now never goes backwards), lease
// tokens are the log index of the lease, ids come from counters in the state, and every loop
// whose order matters runs over sorted keys. Snapshot captures the whole state as JSON; Restore
// replaces the whole state and rebuilds the indexes (pending queues ordered by QueueSeq, the
// set of leases), so that a restored node leases exactly what the others do.
//
// Apply, Snapshot and Restore are called by raft from one goroutine; the read methods may be
// called concurrently from any goroutine.
type FSM struct {
	mu sync.RWMutex
	st *state

	// Indexes rebuilt from st.
	queues      map[string][]queued
	heads       map[string]int
	leased      map[string]struct{}
	minDeadline time.Time
	idem        map[string]*Response
	idemHead    int
	held        map[string]string // worker id -> leased episode id

	applied atomic.Uint64

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced after every apply
}

// NewFSM returns an empty state machine.
func NewFSM() *FSM {
	f := &FSM{notify: make(chan struct{})}
	f.reset(&state{})
	return f
}

func (f *FSM) reset(st *state) {
	if st.Experiments == nil {
		st.Experiments = map[string]*Experiment{}
	}
	if st.Items == nil {
		st.Items = map[string]*Item{}
	}
	if st.Workers == nil {
		st.Workers = map[string]*Worker{}
	}
	if st.Learners == nil {
		st.Learners = map[string]*Learner{}
	}
	if st.Nodes == nil {
		st.Nodes = map[string]*NodeInfo{}
	}
	f.st = st
	f.queues = map[string][]queued{}
	f.heads = map[string]int{}
	f.leased = map[string]struct{}{}
	f.idem = map[string]*Response{}
	f.idemHead = 0
	f.held = map[string]string{}
	f.minDeadline = time.Time{}
	var pending []*Item
	for _, it := range st.Items {
		switch it.State {
		case StatePending:
			pending = append(pending, it)
		case StateLeased:
			f.leased[it.ID] = struct{}{}
			if f.minDeadline.IsZero() || it.Deadline.Before(f.minDeadline) {
				f.minDeadline = it.Deadline
			}
			if it.Type == TypeEpisode {
				f.held[it.Holder] = it.ID
			}
		}
	}
	slices.SortFunc(pending, func(a, b *Item) int { return cmp.Compare(a.QueueSeq, b.QueueSeq) })
	for _, it := range pending {
		k := queueKey(it.Type, it.Line)
		f.queues[k] = append(f.queues[k], queued{it.ID, it.QueueSeq})
	}
	for _, e := range st.Idem {
		f.idem[e.Key] = e.Resp
	}
}

func queueKey(t ItemType, line string) string {
	if t == TypeTrain {
		return "t"
	}
	return "e/" + line
}

// Apply applies one committed log entry and returns its *Response ([]*Response for a batch
// entry, nil for non-command logs).
func (f *FSM) Apply(l *raft.Log) any {
	defer f.setApplied(l.Index)
	if l.Type != raft.LogCommand {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applyLocked(l.Data, l.Index)
}

func (f *FSM) setApplied(index uint64) {
	f.applied.Store(index)
	f.notifyMu.Lock()
	close(f.notify)
	f.notify = make(chan struct{})
	f.notifyMu.Unlock()
}

// WaitApplied blocks until the FSM has applied index (or a later one), or ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.notifyMu.Lock()
		ch := f.notify
		f.notifyMu.Unlock()
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("coordinator: waiting for index %d (applied %d): %w", index, f.applied.Load(), ctx.Err())
		}
	}
}

// ApplyBatch applies committed log entries in order (raft.BatchingFSM): one lock for the batch.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if len(logs) == 0 {
		return out
	}
	f.mu.Lock()
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = f.applyLocked(l.Data, l.Index)
		}
	}
	f.mu.Unlock()
	f.setApplied(logs[len(logs)-1].Index)
	return out
}

// applyLocked applies one log entry: a *Response, or a []*Response for a batch entry.
func (f *FSM) applyLocked(data []byte, index uint64) any {
	st := f.st
	st.Applied = index
	c, err := DecodeCommand(data)
	if err != nil {
		st.Stats.Commands++
		st.Stats.Refused++
		r := refuse(CodeBadRequest, "%v", err)
		r.Index = index
		return r
	}
	if c.Type == CmdBatch {
		out := make([]*Response, len(c.Batch))
		for i, sub := range c.Batch {
			out[i] = f.applyCommand(sub, index, uint64(i))
		}
		return out
	}
	return f.applyCommand(c, index, 0)
}

// applyCommand applies one decoded command; pos is its position in a batch entry.
func (f *FSM) applyCommand(c Command, index, pos uint64) *Response {
	st := f.st
	st.Stats.Commands++
	if c.Time.After(st.Now) {
		st.Now = c.Time
	}
	f.pruneIdem()
	if c.Key != "" {
		if r, ok := f.idem[c.Key]; ok {
			st.Stats.Replayed++
			return r
		}
	}
	f.sweep()
	r := f.dispatch(c, index<<12|pos)
	r.Index = index
	if r.Code != CodeOK {
		st.Stats.Refused++
	}
	if c.Key != "" {
		f.idem[c.Key] = r
		st.Idem = append(st.Idem, idemEntry{Key: c.Key, At: st.Now, Resp: r})
	}
	return r
}

func (f *FSM) pruneIdem() {
	st := f.st
	limit := st.Now.Add(-IdempotencyWindow)
	for f.idemHead < len(st.Idem) && st.Idem[f.idemHead].At.Before(limit) {
		delete(f.idem, st.Idem[f.idemHead].Key)
		st.Idem[f.idemHead] = idemEntry{}
		f.idemHead++
	}
	if f.idemHead > 1024 && f.idemHead*2 > len(st.Idem) {
		st.Idem = slices.Clone(st.Idem[f.idemHead:])
		f.idemHead = 0
	}
}

// dispatch runs c; token is the lease token a lease would get (unique per command).
func (f *FSM) dispatch(c Command, token uint64) *Response {
	switch c.Type {
	case CmdSubmit:
		return f.submit(c.Submit)
	case CmdRegisterWorker:
		return f.registerWorker(c.RegisterWorker)
	case CmdRegisterLearner:
		return f.registerLearner(c.RegisterLearner)
	case CmdLease:
		return f.lease(c.Lease, token)
	case CmdHeartbeat:
		return f.heartbeat(c.Heartbeat)
	case CmdReport:
		return f.report(c.Report)
	case CmdFail:
		return f.fail(c.Fail)
	case CmdSetNode:
		n := *c.SetNode
		f.st.Nodes[n.ID] = &n
		return &Response{}
	case CmdRemoveNode:
		if _, ok := f.st.Nodes[c.RemoveNode.ID]; !ok {
			return refuse(CodeNotFound, "node %q", c.RemoveNode.ID)
		}
		delete(f.st.Nodes, c.RemoveNode.ID)
		return &Response{}
	case CmdTick:
		return &Response{}
	}
	return refuse(CodeBadRequest, "unknown command %q", c.Type)
}

func (f *FSM) registerWorker(c *RegisterWorkerCmd) *Response {
	now := f.st.Now
	w, ok := f.st.Workers[c.ID]
	if !ok {
		w = &Worker{ID: c.ID, Registered: now}
		f.st.Workers[c.ID] = w
	}
	w.ArenaID, w.Line, w.Calibration, w.Capabilities, w.LastSeen = c.ArenaID, c.Line, c.Calibration, c.Capabilities, now
	return &Response{}
}

func (f *FSM) registerLearner(c *RegisterLearnerCmd) *Response {
	now := f.st.Now
	l, ok := f.st.Learners[c.ID]
	if !ok {
		l = &Learner{ID: c.ID, Registered: now}
		f.st.Learners[c.ID] = l
	}
	l.Capabilities, l.LastSeen = c.Capabilities, now
	return &Response{}
}

func (f *FSM) touch(holder string) {
	if w, ok := f.st.Workers[holder]; ok {
		w.LastSeen = f.st.Now
	}
	if l, ok := f.st.Learners[holder]; ok {
		l.LastSeen = f.st.Now
	}
}

func (f *FSM) enqueue(it *Item) {
	f.st.NextQueue++
	it.QueueSeq = f.st.NextQueue
	it.State = StatePending
	k := queueKey(it.Type, it.Line)
	f.queues[k] = append(f.queues[k], queued{it.ID, it.QueueSeq})
}

func (f *FSM) pop(key string) *Item {
	q := f.queues[key]
	h := f.heads[key]
	for h < len(q) {
		e := q[h]
		h++
		it, ok := f.st.Items[e.id]
		if ok && it.State == StatePending && it.QueueSeq == e.seq {
			f.compact(key, q, h)
			return it
		}
	}
	f.compact(key, q, h)
	return nil
}

func (f *FSM) compact(key string, q []queued, h int) {
	if h > 256 && h*2 > len(q) {
		f.queues[key] = slices.Clone(q[h:])
		f.heads[key] = 0
		return
	}
	f.heads[key] = h
}

func (f *FSM) lease(c *LeaseCmd, token uint64) *Response {
	st := f.st
	var key string
	switch c.Type {
	case TypeEpisode:
		w, ok := st.Workers[c.Holder]
		if !ok {
			return refuse(CodeNotRegistered, "worker %q is not registered", c.Holder)
		}
		w.LastSeen = st.Now
		if id, ok := f.held[c.Holder]; ok {
			// A worker holds one episode at a time: a repeated lease returns it, renewed.
			it := st.Items[id]
			f.setDeadline(it, st.Now.Add(c.TTL))
			return &Response{Item: copyItem(it)}
		}
		key = queueKey(TypeEpisode, w.Line)
	case TypeTrain:
		l, ok := st.Learners[c.Holder]
		if !ok {
			return refuse(CodeNotRegistered, "learner %q is not registered", c.Holder)
		}
		l.LastSeen = st.Now
		key = queueKey(TypeTrain, "")
	}
	it := f.pop(key)
	if it == nil {
		return &Response{}
	}
	it.State = StateLeased
	it.Holder = c.Holder
	it.Token = token
	it.Attempts++
	f.leased[it.ID] = struct{}{}
	f.setDeadline(it, st.Now.Add(c.TTL))
	if it.Type == TypeEpisode {
		f.held[c.Holder] = it.ID
	}
	st.Stats.LeasesGranted++
	return &Response{Item: copyItem(it)}
}

func (f *FSM) setDeadline(it *Item, d time.Time) {
	it.Deadline = d
	if f.minDeadline.IsZero() || d.Before(f.minDeadline) {
		f.minDeadline = d
	}
}

// current checks that (item, token, holder) is the item's live lease.
func (f *FSM) current(id string, token uint64, holder string) (*Item, *Response) {
	it, ok := f.st.Items[id]
	if !ok {
		return nil, refuse(CodeNotFound, "item %q", id)
	}
	if it.State == StateDone && it.Result != nil && it.Result.Token == token && it.Result.By == holder {
		return nil, refuse(CodeDuplicate, "item %q already done under lease %d", id, token)
	}
	if it.State != StateLeased || it.Token != token || it.Holder != holder {
		return nil, refuse(CodeStaleLease, "item %q: lease %d of %q is not current (item %s, lease %d of %q)", id, token, holder, it.State, it.Token, it.Holder)
	}
	return it, nil
}

func (f *FSM) heartbeat(c *HeartbeatCmd) *Response {
	if c.ItemID == "" {
		f.touch(c.Holder)
		return &Response{}
	}
	it, r := f.current(c.ItemID, c.Token, c.Holder)
	if r != nil {
		return r
	}
	f.touch(c.Holder)
	f.setDeadline(it, f.st.Now.Add(c.TTL))
	return &Response{Item: copyItem(it)}
}

func (f *FSM) endLease(it *Item) {
	delete(f.leased, it.ID)
	if it.Type == TypeEpisode && f.held[it.Holder] == it.ID {
		delete(f.held, it.Holder)
	}
}

func (f *FSM) report(c *ReportCmd) *Response {
	st := f.st
	it, r := f.current(c.ItemID, c.Token, c.Holder)
	if r != nil {
		st.Stats.ReportsRefused++
		return r
	}
	f.touch(c.Holder)
	f.endLease(it)
	it.State = StateDone
	it.Result = &Result{By: c.Holder, Token: c.Token, At: st.Now, Metrics: c.Metrics, PolicyVersion: c.PolicyVersion, Output: c.Output}
	st.Stats.ReportsAccepted++
	if exp := st.Experiments[it.ExperimentID]; exp != nil && it.Type == TypeTrain {
		if exp.PolicyVersions == nil {
			exp.PolicyVersions = map[string]uint64{}
		}
		exp.PolicyVersions[it.Line] = c.PolicyVersion
	}
	out := copyItem(it)
	f.terminal(it)
	return &Response{Item: out}
}

func (f *FSM) fail(c *FailCmd) *Response {
	it, r := f.current(c.ItemID, c.Token, c.Holder)
	if r != nil {
		if r.Code == CodeDuplicate {
			r = refuse(CodeStaleLease, "item %q is done", c.ItemID)
		}
		return r
	}
	f.touch(c.Holder)
	f.retryOrFail(it, fmt.Sprintf("attempt %d (%s, lease %d): %s", it.Attempts, c.Holder, c.Token, c.Reason))
	return &Response{Item: copyItem(it)}
}

// retryOrFail ends it's lease after a failed attempt: back to pending, or failed after
// MaxAttempts attempts.
func (f *FSM) retryOrFail(it *Item, reason string) {
	f.endLease(it)
	f.st.Stats.Failures++
	it.Failures = append(it.Failures, reason)
	maxAttempts := 1
	if exp := f.st.Experiments[it.ExperimentID]; exp != nil {
		maxAttempts = exp.MaxAttempts
		if exp.State != ExperimentRunning {
			maxAttempts = 0
		}
	}
	if it.Attempts >= maxAttempts {
		it.State = StateFailed
		f.terminal(it)
		return
	}
	f.enqueue(it)
}

// sweep returns expired leases to pending (or failed), in item id order.
func (f *FSM) sweep() {
	st := f.st
	if f.minDeadline.IsZero() || st.Now.Before(f.minDeadline) {
		return
	}
	var expired []string
	f.minDeadline = time.Time{}
	for id := range f.leased {
		it := st.Items[id]
		if !st.Now.Before(it.Deadline) {
			expired = append(expired, id)
		} else if f.minDeadline.IsZero() || it.Deadline.Before(f.minDeadline) {
			f.minDeadline = it.Deadline
		}
	}
	slices.Sort(expired)
	for _, id := range expired {
		it := st.Items[id]
		st.Stats.LeasesExpired++
		f.retryOrFail(it, fmt.Sprintf("attempt %d (%s, lease %d): lease expired at %s", it.Attempts, it.Holder, it.Token, it.Deadline.UTC().Format(time.RFC3339Nano)))
	}
}

func copyItem(it *Item) *Item {
	c := *it
	c.Failures = slices.Clone(it.Failures)
	return &c
}

func copyExperiment(e *Experiment) Experiment {
	c := *e
	c.PolicyVersions = maps.Clone(e.PolicyVersions)
	c.RandomRates = maps.Clone(e.RandomRates)
	c.AgentOpen = maps.Clone(e.AgentOpen)
	c.Items = slices.Clone(e.Items)
	return c
}

// Snapshot captures the whole state (raft.FSM). The JSON is encoded here, so Persist may run
// concurrently with later Applies.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Idem = f.st.Idem[f.idemHead:]
	f.idemHead = 0
	b, err := json.Marshal(f.st)
	if err != nil {
		return nil, fmt.Errorf("coordinator: snapshot: %w", err)
	}
	return &fsmSnapshot{data: b}, nil
}

// Restore replaces the whole state with a snapshot's (raft.FSM).
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var st state
	if err := json.NewDecoder(rc).Decode(&st); err != nil {
		return fmt.Errorf("coordinator: restore: %w", err)
	}
	f.mu.Lock()
	f.reset(&st)
	f.mu.Unlock()
	f.setApplied(st.Applied)
	return nil
}

type fsmSnapshot struct{ data []byte }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("coordinator: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
