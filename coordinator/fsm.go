package coordinator

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
)

// IdempotencyWindow is how long the FSM remembers an idempotency key and its response. It is a
// constant, not a setting, because every node must prune keys identically.
const IdempotencyWindow = 5 * time.Minute

func refuse(code api.Code, format string, args ...any) *api.Response {
	return &api.Response{Code: code, Error: fmt.Sprintf(format, args...)}
}

type idemEntry struct {
	Key  string        `json:"key"`
	At   time.Time     `json:"at"`
	Resp *api.Response `json:"resp"`
	// Hash is the request hash the key was first used with (Command.KeyHash; "" in snapshots
	// written before keys were bound to it: any request matches).
	Hash string `json:"hash,omitempty"`
}

// state is everything replicated; a snapshot is its JSON.
type state struct {
	Now            time.Time                  `json:"now"`
	NextExperiment uint64                     `json:"next_experiment"`
	NextQueue      uint64                     `json:"next_queue"`
	Experiments    map[string]*api.Experiment `json:"experiments"`
	// Items is omitted when empty: a snapshot streams the items itself (fsmSnapshot.Persist).
	Items    map[string]*api.Item               `json:"items,omitempty"`
	Archived map[string]*api.ArchivedExperiment `json:"archived,omitempty"`
	Workers  map[string]*api.Worker             `json:"workers"`
	Learners map[string]*api.Learner            `json:"learners"`
	Nodes    map[string]*api.NodeInfo           `json:"nodes"`
	Idem     []idemEntry                        `json:"idem"`
	// Applied is the index of the last command applied.
	Applied uint64    `json:"applied"`
	Stats   api.Stats `json:"stats"`
	// Term is the Raft term of the last command applied and ClockOffset what that term's
	// commands' times are shifted by now (see advanceClock). Zero in a snapshot of an older
	// version: its next command starts a term.
	Term        uint64        `json:"term,omitempty"`
	ClockOffset time.Duration `json:"clock_offset,omitempty"`
	// TermTime is the latest command time of the term (its leader's clock).
	TermTime time.Time `json:"term_time,omitzero"`
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
	idem        map[string]*api.Response
	idemHash    map[string]string // key -> Command.KeyHash of its first use
	idemHead    int
	held        map[string]string // worker id -> leased episode id
	// live counts the items (plan.ItemCount, made or still to make) of the experiments not
	// archived; files maps the SHA-256 of a live experiment's file to the ids submitted from
	// it, sorted.
	live  int64
	files map[string][]string
	// limits are the hard bounds the FSM refuses submissions over (api.MaxItemsPerExperiment,
	// api.MaxLiveItems); internal tests lower them.
	limits itemLimits
	// term is the Raft term of the entry being applied (0 for Local: one term).
	term uint64

	applied atomic.Uint64

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced after every apply
}

// NewFSM returns an empty state machine.
func NewFSM() *FSM {
	f := &FSM{notify: make(chan struct{}), limits: itemLimits{perExperiment: api.MaxItemsPerExperiment, live: api.MaxLiveItems}}
	f.reset(&state{})
	return f
}

func (f *FSM) reset(st *state) {
	if st.Experiments == nil {
		st.Experiments = map[string]*api.Experiment{}
	}
	if st.Items == nil {
		st.Items = map[string]*api.Item{}
	}
	if st.Workers == nil {
		st.Workers = map[string]*api.Worker{}
	}
	if st.Learners == nil {
		st.Learners = map[string]*api.Learner{}
	}
	if st.Nodes == nil {
		st.Nodes = map[string]*api.NodeInfo{}
	}
	if st.Archived == nil {
		st.Archived = map[string]*api.ArchivedExperiment{}
	}
	f.st = st
	f.live = 0
	f.files = map[string][]string{}
	for _, id := range slices.Sorted(maps.Keys(st.Experiments)) {
		f.addLive(st.Experiments[id])
	}
	f.queues = map[string][]queued{}
	f.heads = map[string]int{}
	f.leased = map[string]struct{}{}
	f.idem = map[string]*api.Response{}
	f.idemHash = map[string]string{}
	f.idemHead = 0
	f.held = map[string]string{}
	f.minDeadline = time.Time{}
	var pending []*api.Item
	for _, it := range st.Items {
		switch it.State {
		case api.StatePending:
			pending = append(pending, it)
		case api.StateLeased:
			f.leased[it.ID] = struct{}{}
			if f.minDeadline.IsZero() || it.Deadline.Before(f.minDeadline) {
				f.minDeadline = it.Deadline
			}
			if it.Type == plan.TypeEpisode {
				f.held[it.Holder] = it.ID
			}
		}
	}
	slices.SortFunc(pending, func(a, b *api.Item) int { return cmp.Compare(a.QueueSeq, b.QueueSeq) })
	for _, it := range pending {
		k := queueKey(it.Type, it.Line)
		f.queues[k] = append(f.queues[k], queued{it.ID, it.QueueSeq})
	}
	for _, e := range st.Idem {
		f.idem[e.Key] = e.Resp
		f.idemHash[e.Key] = e.Hash
	}
}

func queueKey(t plan.ItemType, line string) string {
	if t == plan.TypeTrain {
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
	f.term = l.Term
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
			f.term = l.Term
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
		r := refuse(api.CodeBadRequest, "%v", err)
		r.Index = index
		return r
	}
	if c.Type == CmdBatch {
		out := make([]*api.Response, len(c.Batch))
		for i, sub := range c.Batch {
			out[i] = f.applyCommand(sub, index, uint64(i))
		}
		return out
	}
	return f.applyCommand(c, index, 0)
}

// applyCommand applies one decoded command; pos is its position in a batch entry.
func (f *FSM) applyCommand(c Command, index, pos uint64) *api.Response {
	st := f.st
	st.Stats.Commands++
	f.advanceClock(c.Time)
	f.pruneIdem()
	if c.Key != "" {
		if r, ok := f.idem[c.Key]; ok {
			if h := f.idemHash[c.Key]; h != "" && c.KeyHash != "" && h != c.KeyHash {
				st.Stats.Refused++
				r := refuse(api.CodeKeyReused, "idempotency key %q was used for another request (within %v): nothing changed", c.Key, IdempotencyWindow)
				r.Index = index
				return r
			}
			st.Stats.Replayed++
			return r
		}
	}
	f.sweep()
	r := f.dispatch(c, index<<12|pos)
	r.Index = index
	if r.Code != api.CodeOK {
		st.Stats.Refused++
	}
	if c.Key != "" {
		f.idem[c.Key] = r
		f.idemHash[c.Key] = c.KeyHash
		st.Idem = append(st.Idem, idemEntry{Key: c.Key, At: st.Now, Resp: r, Hash: c.KeyHash})
	}
	return r
}

func (f *FSM) pruneIdem() {
	st := f.st
	limit := st.Now.Add(-IdempotencyWindow)
	for f.idemHead < len(st.Idem) && st.Idem[f.idemHead].At.Before(limit) {
		delete(f.idem, st.Idem[f.idemHead].Key)
		delete(f.idemHash, st.Idem[f.idemHead].Key)
		st.Idem[f.idemHead] = idemEntry{}
		f.idemHead++
	}
	if f.idemHead > 1024 && f.idemHead*2 > len(st.Idem) {
		st.Idem = slices.Clone(st.Idem[f.idemHead:])
		f.idemHead = 0
	}
}

// dispatch runs c; token is the lease token a lease would get (unique per command).
func (f *FSM) dispatch(c Command, token uint64) *api.Response {
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
	case CmdDeregister:
		return f.deregister(c.Deregister)
	case CmdSetNode:
		n := *c.SetNode
		f.st.Nodes[n.ID] = &n
		return &api.Response{}
	case CmdRemoveNode:
		if _, ok := f.st.Nodes[c.RemoveNode.ID]; !ok {
			return refuse(api.CodeNotFound, "node %q", c.RemoveNode.ID)
		}
		delete(f.st.Nodes, c.RemoveNode.ID)
		return &api.Response{}
	case CmdCancel:
		return f.cancel(c.Cancel)
	case CmdArchive:
		return f.archive(c.Archive)
	case CmdDrain:
		w, ok := f.st.Workers[c.Drain.Worker]
		if !ok {
			return refuse(api.CodeNotFound, "worker %q is not registered", c.Drain.Worker)
		}
		w.Draining = c.Drain.Drain
		return &api.Response{}
	case CmdTick:
		return &api.Response{}
	}
	return refuse(api.CodeBadRequest, "unknown command %q", c.Type)
}

// registerWorker registers a worker. A worker registers when its process starts, so an episode
// it still holds belongs to a process that died: that attempt ends at once (retried or failed),
// and the new process can never resume it under the old token and splice two runs' frames into
// one episode.
func (f *FSM) registerWorker(c *api.RegisterWorkerCmd) *api.Response {
	if id, ok := f.held[c.ID]; ok {
		it := f.st.Items[id]
		f.retryOrFail(it, fmt.Sprintf("attempt %d (%s, lease %d): the worker registered again (restarted) while holding it", it.Attempts, it.Holder, it.Token))
	}
	now := f.st.Now
	w, ok := f.st.Workers[c.ID]
	if !ok {
		w = &api.Worker{ID: c.ID, Registered: now}
		f.st.Workers[c.ID] = w
	}
	w.ArenaID, w.Line, w.Calibration, w.Capabilities, w.LastSeen = c.ArenaID, c.Line, c.Calibration, c.Capabilities, now
	return &api.Response{}
}

func (f *FSM) registerLearner(c *api.RegisterLearnerCmd) *api.Response {
	now := f.st.Now
	l, ok := f.st.Learners[c.ID]
	if !ok {
		l = &api.Learner{ID: c.ID, Registered: now}
		f.st.Learners[c.ID] = l
	}
	l.Capabilities, l.LastSeen = c.Capabilities, now
	return &api.Response{}
}

func (f *FSM) touch(holder string) {
	if w, ok := f.st.Workers[holder]; ok {
		w.LastSeen = f.st.Now
	}
	if l, ok := f.st.Learners[holder]; ok {
		l.LastSeen = f.st.Now
	}
}

func (f *FSM) enqueue(it *api.Item) {
	f.st.NextQueue++
	it.QueueSeq = f.st.NextQueue
	it.State = api.StatePending
	k := queueKey(it.Type, it.Line)
	f.queues[k] = append(f.queues[k], queued{it.ID, it.QueueSeq})
}

func (f *FSM) pop(key string) *api.Item {
	q := f.queues[key]
	h := f.heads[key]
	for h < len(q) {
		e := q[h]
		h++
		it, ok := f.st.Items[e.id]
		if ok && it.State == api.StatePending && it.QueueSeq == e.seq {
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

func (f *FSM) lease(c *LeaseCmd, token uint64) *api.Response {
	st := f.st
	var key string
	switch c.Type {
	case plan.TypeEpisode:
		w, ok := st.Workers[c.Holder]
		if !ok {
			return refuse(api.CodeNotRegistered, "worker %q is not registered", c.Holder)
		}
		w.LastSeen = st.Now
		if id, ok := f.held[c.Holder]; ok {
			// A worker holds one episode at a time: a repeated lease returns it, renewed.
			it := st.Items[id]
			f.setDeadline(it, st.Now.Add(c.TTL))
			return &api.Response{Item: copyItem(it)}
		}
		if w.Draining {
			return &api.Response{}
		}
		key = queueKey(plan.TypeEpisode, w.Line)
	case plan.TypeTrain:
		l, ok := st.Learners[c.Holder]
		if !ok {
			return refuse(api.CodeNotRegistered, "learner %q is not registered", c.Holder)
		}
		l.LastSeen = st.Now
		key = queueKey(plan.TypeTrain, "")
	}
	it := f.pop(key)
	if it == nil {
		return &api.Response{}
	}
	it.State = api.StateLeased
	it.Holder = c.Holder
	it.Token = token
	it.Progress = nil
	it.Attempts++
	f.leased[it.ID] = struct{}{}
	f.setDeadline(it, st.Now.Add(c.TTL))
	if it.Type == plan.TypeEpisode {
		f.held[c.Holder] = it.ID
	}
	st.Stats.LeasesGranted++
	return &api.Response{Item: copyItem(it)}
}

func (f *FSM) setDeadline(it *api.Item, d time.Time) {
	it.Deadline = d
	if f.minDeadline.IsZero() || d.Before(f.minDeadline) {
		f.minDeadline = d
	}
}

// current checks that (item, token, holder) is the item's live lease.
func (f *FSM) current(id string, token uint64, holder string) (*api.Item, *api.Response) {
	it, ok := f.st.Items[id]
	if !ok {
		return nil, refuse(api.CodeNotFound, "item %q", id)
	}
	if it.State == api.StateDone && it.Result != nil && it.Result.Token == token && it.Result.By == holder {
		return nil, refuse(api.CodeDuplicate, "item %q already done under lease %d", id, token)
	}
	if it.State != api.StateLeased || it.Token != token || it.Holder != holder {
		return nil, refuse(api.CodeStaleLease, "item %q: lease %d of %q is not current (item %s, lease %d of %q)", id, token, holder, it.State, it.Token, it.Holder)
	}
	return it, nil
}

func (f *FSM) heartbeat(c *HeartbeatCmd) *api.Response {
	if c.ItemID == "" {
		f.touch(c.Holder)
		return &api.Response{}
	}
	it, r := f.current(c.ItemID, c.Token, c.Holder)
	if r != nil {
		return r
	}
	f.touch(c.Holder)
	f.setDeadline(it, f.st.Now.Add(c.TTL))
	if c.Progress != nil {
		p := *c.Progress
		it.Progress = &p
	}
	return &api.Response{Item: copyItem(it)}
}

// deregister forgets a worker or learner that is leaving. Every lease it still holds ends as a
// failed attempt (with the holder's reason), so that the item is retried at once instead of
// when its lease runs out.
func (f *FSM) deregister(c *api.DeregisterRequest) *api.Response {
	st := f.st
	_, isWorker := st.Workers[c.Holder]
	_, isLearner := st.Learners[c.Holder]
	if !isWorker && !isLearner {
		return refuse(api.CodeNotFound, "holder %q is not registered", c.Holder)
	}
	reason := c.Reason
	if reason == "" {
		reason = "deregistered"
	}
	var held []string
	for id := range f.leased {
		if st.Items[id].Holder == c.Holder {
			held = append(held, id)
		}
	}
	slices.Sort(held)
	for _, id := range held {
		it := st.Items[id]
		f.retryOrFail(it, fmt.Sprintf("attempt %d (%s, lease %d): the holder left: %s", it.Attempts, it.Holder, it.Token, reason))
	}
	delete(st.Workers, c.Holder)
	delete(st.Learners, c.Holder)
	return &api.Response{}
}

func (f *FSM) endLease(it *api.Item) {
	delete(f.leased, it.ID)
	if it.Type == plan.TypeEpisode && f.held[it.Holder] == it.ID {
		delete(f.held, it.Holder)
	}
}

func (f *FSM) report(c *api.ReportCmd) *api.Response {
	st := f.st
	it, r := f.current(c.ItemID, c.Token, c.Holder)
	if r != nil {
		st.Stats.ReportsRefused++
		return r
	}
	f.touch(c.Holder)
	f.endLease(it)
	it.State = api.StateDone
	it.Result = &api.Result{By: c.Holder, Token: c.Token, At: st.Now, Outcome: c.Outcome, PolicyVersion: c.PolicyVersion, Output: c.Output}
	st.Stats.ReportsAccepted++
	out := copyItem(it)
	f.terminal(it)
	return &api.Response{Item: out}
}

func (f *FSM) fail(c *api.FailCmd) *api.Response {
	it, r := f.current(c.ItemID, c.Token, c.Holder)
	if r != nil {
		if r.Code == api.CodeDuplicate {
			r = refuse(api.CodeStaleLease, "item %q is done", c.ItemID)
		}
		return r
	}
	f.touch(c.Holder)
	f.retryOrFail(it, fmt.Sprintf("attempt %d (%s, lease %d): %s", it.Attempts, c.Holder, c.Token, c.Reason))
	return &api.Response{Item: copyItem(it)}
}

// retryOrFail ends it's lease after a failed attempt: back to pending, or failed after
// MaxAttempts attempts.
func (f *FSM) retryOrFail(it *api.Item, reason string) {
	f.endLease(it)
	f.st.Stats.Failures++
	it.Failures = append(it.Failures, reason)
	maxAttempts := 1
	if exp := f.st.Experiments[it.ExperimentID]; exp != nil {
		maxAttempts = exp.MaxAttempts
		if !exp.Running() {
			maxAttempts = 0
		}
	}
	if it.Attempts >= maxAttempts {
		it.State = api.StateFailed
		f.terminal(it)
		return
	}
	if it.Kind == episode.KindOnline {
		f.requeue(it)
		return
	}
	f.enqueue(it)
}

// requeue returns an item whose attempt failed to its queue at the place it had (its QueueSeq
// is kept), ahead of every item queued after it; enqueue would put it behind them. An online
// episode is retried so: the versions that the line's later online and checkpoint episodes
// wait for (holding their leases) are trained on its data (experiment.Spec.OnlineData), so
// behind them it could find every arena of its line held by an episode waiting for it. Any
// other retried item goes to the back of its queue, so that one that fails again and again
// does not hold up the others.
func (f *FSM) requeue(it *api.Item) {
	it.State = api.StatePending
	k := queueKey(it.Type, it.Line)
	q, h := f.queues[k], f.heads[k]
	// q[h:] is sorted by seq: enqueue appends increasing seqs, requeue inserts in order and
	// reset sorts.
	i, _ := slices.BinarySearchFunc(q[h:], it.QueueSeq, func(e queued, seq uint64) int { return cmp.Compare(e.seq, seq) })
	f.queues[k] = slices.Insert(q, h+i, queued{it.ID, it.QueueSeq})
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

// copyItem is a deep copy: what the read methods (and Local's calls) return shares nothing
// with the state, so a caller that changes it cannot change the state.
func copyItem(it *api.Item) *api.Item {
	c := *it
	c.Failures = slices.Clone(it.Failures)
	if it.Progress != nil {
		p := *it.Progress
		c.Progress = &p
	}
	if it.Target != nil {
		t := *it.Target
		c.Target = &t
	}
	if it.Train != nil {
		t := *it.Train
		c.Train = &t
	}
	if it.Result != nil {
		r := *it.Result
		r.Output = slices.Clone(it.Result.Output)
		if o := it.Result.Outcome; o != nil {
			oc := *o
			if o.TimeTo05cmS != nil {
				v := *o.TimeTo05cmS
				oc.TimeTo05cmS = &v
			}
			r.Outcome = &oc
		}
		c.Result = &r
	}
	return &c
}

func copyExperiment(e *api.Experiment) api.Experiment {
	c := *e
	c.Spec.Lines = slices.Clone(e.Spec.Lines)
	c.Spec.Evaluate.Targets = slices.Clone(e.Spec.Evaluate.Targets)
	if x := e.Spec.CrossEvaluate; x != nil {
		cx := *x
		cx.Lines = slices.Clone(x.Lines)
		c.Spec.CrossEvaluate = &cx
	}
	c.PolicyVersions = maps.Clone(e.PolicyVersions)
	c.RandomRates = maps.Clone(e.RandomRates)
	c.RandomFirst = maps.Clone(e.RandomFirst)
	c.AgentOpen = maps.Clone(e.AgentOpen)
	c.AgentLight = make(map[string]map[int]float64, len(e.AgentLight))
	for l, m := range e.AgentLight {
		c.AgentLight[l] = maps.Clone(m)
	}
	c.Items = slices.Clone(e.Items)
	return c
}

// Snapshot captures the whole state (raft.FSM). It only copies (raft calls no Apply meanwhile,
// and the read lock lets reads go on); Persist encodes the copy outside any lock, streaming it
// to the sink, while later commands apply.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.copyState(), nil
}

// copyState copies what a snapshot encodes. Items are copied by value: the state changes an
// item's fields in place but never the values its pointers and slices share (a progress, a
// result, a target are replaced, failures only appended), so the copies are stable.
func (f *FSM) copyState() *fsmSnapshot {
	st := f.st
	cp := *st
	cp.Items = nil
	cp.Experiments = make(map[string]*api.Experiment, len(st.Experiments))
	for id, e := range st.Experiments {
		c := copyExperiment(e)
		cp.Experiments[id] = &c
	}
	cp.Workers = copyValues(st.Workers)
	cp.Learners = copyValues(st.Learners)
	cp.Nodes = copyValues(st.Nodes)
	cp.Archived = copyValues(st.Archived)
	cp.Idem = slices.Clone(st.Idem[f.idemHead:])
	items := make([]api.Item, 0, len(st.Items))
	for _, it := range st.Items {
		items = append(items, *it)
	}
	return &fsmSnapshot{st: &cp, items: items}
}

// copyValues copies a map of pointers to new pointers to copies of the values.
func copyValues[T any](m map[string]*T) map[string]*T {
	out := make(map[string]*T, len(m))
	for k, v := range m {
		c := *v
		out[k] = &c
	}
	return out
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

// fsmSnapshot is a copy of the state, encoded by Persist.
type fsmSnapshot struct {
	st    *state // without its items
	items []api.Item
}

// Persist writes the snapshot as the state's JSON, item by item: the items map first, then the
// state's other fields (one JSON object, what Restore decodes).
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.encode(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("coordinator: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) encode(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if _, err := bw.WriteString(`{"items":{`); err != nil {
		return err
	}
	for i := range s.items {
		if i > 0 {
			if err := bw.WriteByte(','); err != nil {
				return err
			}
		}
		if err := enc.Encode(s.items[i].ID); err != nil {
			return err
		}
		if err := bw.WriteByte(':'); err != nil {
			return err
		}
		if err := enc.Encode(&s.items[i]); err != nil {
			return err
		}
	}
	if _, err := bw.WriteString("},"); err != nil {
		return err
	}
	// The other fields: the state's object without its opening brace (it always has fields).
	if err := json.NewEncoder(&skipFirstByte{w: bw}).Encode(s.st); err != nil {
		return err
	}
	return bw.Flush()
}

// skipFirstByte drops the first byte written through it.
type skipFirstByte struct {
	w       io.Writer
	skipped bool
}

func (s *skipFirstByte) Write(p []byte) (int, error) {
	if s.skipped || len(p) == 0 {
		return s.w.Write(p)
	}
	s.skipped = true
	n, err := s.w.Write(p[1:])
	return n + 1, err
}

func (s *fsmSnapshot) Release() {}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
