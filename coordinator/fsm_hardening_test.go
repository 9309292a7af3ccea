package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

// HugeSpec (exported for the package's external tests) makes 4 x 750,000 collect episodes: 3,000,016 items over its life.
const HugeSpec = `name: huge
lines: ["301", "446", "73", "13"]
collect: {hours_per_line: 1000, episode_seconds: 4.8}
evaluate: {episodes_per_condition: 1}
`

// SmallSpec (exported for the package's external tests) makes 5 items: 1 collect episode, 1 training task, 3 evaluation episodes.
const SmallSpec = `name: small
lines: ["301"]
collect: {hours_per_line: 0.01, episode_seconds: 36}
train: {ensemble_size: 1, updates: 2, checkpoint_every: 1}
evaluate: {episodes_per_condition: 1}
`

func heapAlloc() (heap, total uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.TotalAlloc
}

// TestFSMRefusesOversizedSubmitEntryWithoutExpandingIt applies a raw submit log entry of
// 3 million items, as a node replays an entry an older version accepted: the FSM refuses it
// naming the limit, makes no item and allocates next to nothing (3 million items are ~1.7 GB).
func TestFSMRefusesOversizedSubmitEntryWithoutExpandingIt(t *testing.T) {
	b, err := json.Marshal(Command{Type: CmdSubmit, Time: t0, Submit: &api.SubmitCmd{Spec: HugeSpec, MaxAttempts: 3}})
	if err != nil {
		t.Fatal(err)
	}
	f := NewFSM()
	heap0, total0 := heapAlloc()
	r := f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: b}).(*api.Response)
	heap1, total1 := heapAlloc()
	if r.Code != api.CodeBadRequest || !strings.Contains(r.Error, "3000016 items") || !strings.Contains(r.Error, "limit of 1000000 items per experiment") {
		t.Fatalf("3-million-item submit entry: %+v", r)
	}
	if n := len(f.Experiments()); n != 0 || f.Counts().Episodes[api.StatePending] != 0 || f.LiveItems() != 0 {
		t.Fatalf("after the refusal: %d experiments, %d live items", n, f.LiveItems())
	}
	const slack = 32 << 20
	if total1-total0 > slack || int64(heap1)-int64(heap0) > slack {
		t.Fatalf("refusing the entry allocated %d MB (heap %+d MB)", (total1-total0)>>20, (int64(heap1)-int64(heap0))>>20)
	}
	t.Logf("refused: %s (allocated %d KB)", r.Error, (total1-total0)>>10)
}

// finish runs every item of the harness's experiments to done, with worker w (line 301) and
// learner l.
func (h *fsmHarness) finish(id string) {
	h.t.Helper()
	for range 10 {
		h.drain("w", plan.TypeEpisode, lightOutcome(0.2), 0)
		h.drain("l", plan.TypeTrain, nil, 7)
		if e, _, _ := h.f.Experiment(id); e.Status == plan.StatusDone {
			return
		}
	}
	e, _, _ := h.f.Experiment(id)
	h.t.Fatalf("experiment %s did not finish: %s %s", id, e.Status, e.Phase)
}

// TestFSMLiveItemsCountedAcrossExperiments lowers the FSM's hard bounds and checks that the
// live total counts every experiment not archived (made and still to make), and that
// archiving frees it.
func TestFSMLiveItemsCountedAcrossExperiments(t *testing.T) {
	h := newFSMHarness(t)
	h.f.limits = itemLimits{perExperiment: 5, live: 12}
	h.worker("w", "301")
	h.ok(Command{Type: CmdRegisterLearner, RegisterLearner: &api.RegisterLearnerCmd{ID: "l"}})
	a := h.submit(SmallSpec)
	b := h.ok(Command{Type: CmdSubmit, Submit: &api.SubmitCmd{Spec: SmallSpec, MaxAttempts: 3, Again: true}}).ExperimentID
	if got := h.f.LiveItems(); got != 10 {
		t.Fatalf("live items %d after two 5-item experiments, want 10 (one collect episode made each)", got)
	}
	r := h.apply(Command{Type: CmdSubmit, Submit: &api.SubmitCmd{Spec: SmallSpec, MaxAttempts: 3, Again: true}})
	if r.Code != api.CodeBadRequest || !strings.Contains(r.Error, "10 items are live") || !strings.Contains(r.Error, "limit of 12 live items") {
		t.Fatalf("third experiment over the live limit: %+v", r)
	}
	if r := h.apply(Command{Type: CmdSubmit, Submit: &api.SubmitCmd{Spec: tinySpec, MaxAttempts: 3}}); r.Code != api.CodeBadRequest || !strings.Contains(r.Error, "limit of 5 items per experiment") {
		t.Fatalf("experiment over the per-experiment limit: %+v", r)
	}
	h.finish(a)
	h.ok(Command{Type: CmdArchive, Archive: &ArchiveCmd{Experiment: a}})
	if got := h.f.LiveItems(); got != 5 {
		t.Fatalf("live items %d after archiving %s, want 5", got, a)
	}
	c := h.ok(Command{Type: CmdSubmit, Submit: &api.SubmitCmd{Spec: SmallSpec, MaxAttempts: 3, Again: true}}).ExperimentID
	if c == a || c == b {
		t.Fatalf("new experiment got the id %s again", c)
	}
	// A restored FSM counts the same.
	g := restored(t, h.f)
	if g.LiveItems() != h.f.LiveItems() {
		t.Fatalf("restored FSM counts %d live items, the original %d", g.LiveItems(), h.f.LiveItems())
	}
}

// restored snapshots f (Snapshot, Persist) and restores the bytes into a new FSM.
func restored(t *testing.T, f *FSM) *FSM {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	a, _ := f.StateDigest()
	b, _ := g.StateDigest()
	if !bytes.Equal(a, b) {
		t.Fatalf("restored state differs:\n%s\n%s", a, b)
	}
	return g
}

// TestFSMArchive archives a done and a cancelled experiment: their items leave the live
// state, a tombstone keeps id, name, status and counts (through a snapshot too), the ids are
// not given again, and a running experiment is refused.
func TestFSMArchive(t *testing.T) {
	h := newFSMHarness(t)
	h.worker("w", "301")
	h.ok(Command{Type: CmdRegisterLearner, RegisterLearner: &api.RegisterLearnerCmd{ID: "l"}})
	done := h.submit(SmallSpec)
	running := h.submit(tinySpec)
	r := h.apply(Command{Type: CmdArchive, Archive: &ArchiveCmd{Experiment: running}})
	if r.Code != api.CodeBadRequest || !strings.Contains(r.Error, "is running") {
		t.Fatalf("archive of a running experiment: %+v", r)
	}
	if r := h.apply(Command{Type: CmdArchive, Archive: &ArchiveCmd{Experiment: "nope-9"}}); r.Code != api.CodeNotFound {
		t.Fatalf("archive of an unknown experiment: %+v", r)
	}
	h.finish(done)
	v, _ := h.f.ExperimentView(done)
	items := v.Experiment.Items
	h.now = h.now.Add(time.Minute)
	h.ok(Command{Type: CmdArchive, Archive: &ArchiveCmd{Experiment: done}})
	h.ok(Command{Type: CmdArchive, Archive: &ArchiveCmd{Experiment: done}}) // archived already: nothing to do
	for _, id := range items {
		if _, ok := h.f.Item(id); ok {
			t.Fatalf("item %s of the archived experiment is still there", id)
		}
	}
	check := func(f *FSM, when string) {
		t.Helper()
		v, ok := f.ExperimentView(done)
		e := v.Experiment
		if !ok || e.ID != done || e.Spec.Name != "small" || e.Status != plan.StatusDone || !e.ArchivedAt.Equal(h.f.Now()) ||
			len(v.Items) != 0 || v.Counts.Episodes[api.StateDone] != 4 || v.Counts.Tasks[api.StateDone] != 1 {
			t.Fatalf("%s: archived experiment reads %+v (ok %v)", when, v, ok)
		}
		list := f.Experiments()
		if len(list) != 2 || list[0].ID != done || list[0].ArchivedAt.IsZero() || list[1].ID != running || !list[1].ArchivedAt.IsZero() {
			t.Fatalf("%s: experiment list %+v", when, list)
		}
	}
	check(h.f, "after archive")
	check(restored(t, h.f), "restored from a snapshot")

	h.ok(Command{Type: CmdCancel, Cancel: &CancelCmd{Experiment: running, Reason: "enough"}})
	h.ok(Command{Type: CmdArchive, Archive: &ArchiveCmd{Experiment: running}})
	v, _ = h.f.ExperimentView(running)
	if v.Experiment.Status != plan.StatusFailed || v.Experiment.Reason != "cancelled: enough" || v.Counts.Episodes[api.StateFailed] == 0 {
		t.Fatalf("archived cancelled experiment: %+v", v)
	}
	if r := h.apply(Command{Type: CmdCancel, Cancel: &CancelCmd{Experiment: running}}); r.Code != api.CodeBadRequest || !strings.Contains(r.Error, "archived") {
		t.Fatalf("cancel of an archived experiment: %+v", r)
	}
	if n := len(h.f.st.Items); n != 0 {
		t.Fatalf("%d items left after archiving every experiment", n)
	}
	again := h.submit(SmallSpec)
	if again == done || again == running {
		t.Fatalf("a new experiment reused the archived id %s", again)
	}
}

// TestFSMRefusesDuplicateFile submits the same bytes twice: the second is refused naming the
// first, unless it says Again; a file that differs by one byte, or the same file once the
// first is archived, is accepted.
func TestFSMRefusesDuplicateFile(t *testing.T) {
	h := newFSMHarness(t)
	first := h.submit(tinySpec)
	r := h.apply(Command{Type: CmdSubmit, Submit: &api.SubmitCmd{Spec: tinySpec, MaxAttempts: 3}})
	if r.Code != api.CodeExists || !errors.Is(r.Err(), api.ErrExists) || !strings.Contains(r.Error, first) || !strings.Contains(r.Error, "--again") {
		t.Fatalf("resubmitted file: %+v", r)
	}
	if n := len(h.f.Experiments()); n != 1 {
		t.Fatalf("%d experiments after a refused duplicate", n)
	}
	second := h.ok(Command{Type: CmdSubmit, Submit: &api.SubmitCmd{Spec: tinySpec, MaxAttempts: 3, Again: true}}).ExperimentID
	h.submit(tinySpec + "\n")
	h.ok(Command{Type: CmdCancel, Cancel: &CancelCmd{Experiment: first}})
	h.ok(Command{Type: CmdArchive, Archive: &ArchiveCmd{Experiment: first}})
	// second still holds the file.
	if r := h.apply(Command{Type: CmdSubmit, Submit: &api.SubmitCmd{Spec: tinySpec, MaxAttempts: 3}}); r.Code != api.CodeExists || !strings.Contains(r.Error, second) {
		t.Fatalf("resubmitted while %s is live: %+v", second, r)
	}
	h.ok(Command{Type: CmdCancel, Cancel: &CancelCmd{Experiment: second}})
	h.ok(Command{Type: CmdArchive, Archive: &ArchiveCmd{Experiment: second}})
	h.submit(tinySpec)
	restored(t, h.f)
}

// applyTerm applies c as the log entry of the given Raft term.
func (h *fsmHarness) applyTerm(term uint64, c Command) *api.Response {
	h.t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	return h.f.Apply(&raft.Log{Index: h.index, Term: term, Type: raft.LogCommand, Data: b}).(*api.Response)
}

// TestFSMClockRebasedPerTerm: the leader of term 2 runs an hour ahead and grants a lease; the
// leader of term 3 runs on time. Under term 3 the lease expires a TTL after its last renewal
// counted on term 3's clock (the election gap not counted), instead of an hour later, and the
// FSM's now then slews back to term 3's clock.
func TestFSMClockRebasedPerTerm(t *testing.T) {
	h := newFSMHarness(t)
	wall := t0
	h.applyTerm(1, Command{Type: CmdSubmit, Time: wall, Submit: &api.SubmitCmd{Spec: tinySpec, MaxAttempts: 3}})
	h.applyTerm(1, Command{Type: CmdRegisterWorker, Time: wall, RegisterWorker: &api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}})
	ahead := wall.Add(time.Hour)
	it := h.applyTerm(2, Command{Type: CmdLease, Time: ahead, Lease: &LeaseCmd{Holder: "w", Type: plan.TypeEpisode, TTL: 10 * time.Second}}).Item
	if it == nil || !it.Deadline.Equal(wall.Add(10*time.Second)) {
		t.Fatalf("lease under term 2: %+v (the first command of a term carries on from the last term's now)", it)
	}
	h.applyTerm(2, Command{Type: CmdHeartbeat, Time: ahead.Add(2 * time.Second), Heartbeat: &HeartbeatCmd{Holder: "w", ItemID: it.ID, Token: it.Token, TTL: 10 * time.Second}})
	// Term 3's leader, an hour behind term 2's, after a 3 s election.
	wall = wall.Add(5 * time.Second)
	tick := func(at time.Time) api.Item {
		h.applyTerm(3, Command{Type: CmdTick, Time: at})
		got, _ := h.f.Item(it.ID)
		return got
	}
	if got := tick(wall); got.State != api.StateLeased {
		t.Fatalf("lease ended at the change of term: %+v", got)
	}
	if got := tick(wall.Add(9 * time.Second)); got.State != api.StateLeased {
		t.Fatalf("lease ended 9 s into term 3, before its 10 s TTL: %+v", got)
	}
	if got := tick(wall.Add(10 * time.Second)); got.State != api.StatePending {
		t.Fatalf("lease still %s 10 s into term 3 (its TTL after the heartbeat): the clock froze at the ahead leader's time", got.State)
	}
	// The offset slews back to zero at 1 % of the leader's time: 400 s later now is its clock.
	if tick(wall.Add(400 * time.Second)); !h.f.Now().Equal(wall.Add(400*time.Second)) || h.f.st.ClockOffset != 0 {
		t.Fatalf("now %v (offset %v), want the leader's clock %v", h.f.Now(), h.f.st.ClockOffset, wall.Add(400*time.Second))
	}
}

// blockingSink is a snapshot sink whose first Write signals started and waits for release.
type blockingSink struct {
	memSink
	once    sync.Once
	started chan int // the size of the first write
	release chan struct{}
}

func (s *blockingSink) Write(p []byte) (int, error) {
	s.once.Do(func() {
		s.started <- len(p)
		<-s.release
	})
	return s.memSink.Write(p)
}

// TestFSMSnapshotPersistStreamsOutsideTheLock blocks Persist in its first write to the sink
// and checks that meanwhile commands apply and reads answer, that the snapshot is streamed (the
// first write is a small part of it, not the whole state as one byte slice), and that it holds
// the state as of Snapshot, not the commands applied during Persist.
func TestFSMSnapshotPersistStreamsOutsideTheLock(t *testing.T) {
	h := newFSMHarness(t)
	h.submit(strings.Replace(tinySpec, "hours_per_line: 0.1", "hours_per_line: 50", 1)) // 2,000 collect episodes
	h.worker("w", "301")
	leased := h.lease("w", plan.TypeEpisode)
	want, _ := h.f.StateDigest()
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &blockingSink{started: make(chan int), release: make(chan struct{})}
	persisted := make(chan error, 1)
	go func() { persisted <- snap.Persist(sink) }()
	first := <-sink.started
	// Persist is blocked writing: the FSM must not be.
	h.report("w", leased, lightOutcome(0.1), 0)
	h.worker("v", "446")
	if it := h.lease("v", plan.TypeEpisode); it == nil {
		t.Fatal("no lease while the snapshot persists")
	}
	if c := h.f.Counts(); c.Episodes[api.StateDone] != 1 {
		t.Fatalf("read during persist: %+v", c)
	}
	close(sink.release)
	if err := <-persisted; err != nil {
		t.Fatal(err)
	}
	if total := sink.Len(); first >= total || first > 64<<10 {
		t.Fatalf("first write %d bytes of %d: the snapshot is not streamed", first, total)
	}
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	got, _ := g.StateDigest()
	if !bytes.Equal(got, want) {
		t.Fatal("the snapshot does not hold the state as of Snapshot")
	}
}

// TestFSMRestoresSnapshotWithoutClockFields restores a snapshot of the previous version (no
// term, no clock offset, no tombstones): its next command carries on from its now.
func TestFSMRestoresSnapshotWithoutClockFields(t *testing.T) {
	h := newFSMHarness(t)
	h.submit(tinySpec)
	h.worker("w", "301")
	it := h.lease("w", plan.TypeEpisode)
	b, err := h.f.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "term")
	delete(m, "clock_offset")
	delete(m, "archived")
	old, _ := json.Marshal(m)
	g := &fsmHarness{t: t, f: NewFSM(), index: h.index}
	if err := g.f.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
		t.Fatal(err)
	}
	// The next leader's clock is a day behind: now carries on, the lease runs its minute.
	g.applyTerm(7, Command{Type: CmdTick, Time: t0.Add(-24 * time.Hour)})
	if !g.f.Now().Equal(t0) {
		t.Fatalf("now %v after restore, want %v", g.f.Now(), t0)
	}
	// A minute later (1 % more: the offset slews back) the lease has run out.
	g.applyTerm(7, Command{Type: CmdTick, Time: t0.Add(-24*time.Hour + time.Minute + time.Second)})
	if got, _ := g.f.Item(it.ID); got.State != api.StatePending {
		t.Fatalf("lease %s a minute later", got.State)
	}
}
