package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fsmHarness applies commands to an FSM directly, numbering log entries.
type fsmHarness struct {
	t     *testing.T
	f     *FSM
	index uint64
	now   time.Time
}

func newFSMHarness(t *testing.T) *fsmHarness {
	return &fsmHarness{t: t, f: NewFSM(), now: t0}
}

func (h *fsmHarness) apply(c Command) *api.Response {
	h.t.Helper()
	if c.Time.IsZero() {
		c.Time = h.now
	}
	b, err := json.Marshal(c)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	r := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: b})
	return r.(*api.Response)
}

func (h *fsmHarness) ok(c Command) *api.Response {
	h.t.Helper()
	r := h.apply(c)
	if err := r.Err(); err != nil {
		h.t.Fatalf("%s: %v", c.Type, err)
	}
	return r
}

const tinySpec = `name: tiny
lines: ["301", "446"]
collect: {hours_per_line: 0.1, episode_seconds: 180}
train: {ensemble_size: 2, updates: 10, checkpoint_every: 5}
evaluate: {episodes_per_condition: 2}
cross_evaluate: {lines: ["301", "446"], episodes: 1}
`

func (h *fsmHarness) submit(spec string) string {
	h.t.Helper()
	return h.ok(Command{Type: CmdSubmit, Submit: &api.SubmitCmd{Spec: spec, MaxAttempts: 3}}).ExperimentID
}

func (h *fsmHarness) worker(id, line string) {
	h.t.Helper()
	h.ok(Command{Type: CmdRegisterWorker, RegisterWorker: &api.RegisterWorkerCmd{ID: id, ArenaID: "arena-" + id, Line: line}})
}

func (h *fsmHarness) lease(holder string, t plan.ItemType) *api.Item {
	h.t.Helper()
	return h.ok(Command{Type: CmdLease, Lease: &LeaseCmd{Holder: holder, Type: t, TTL: time.Minute}}).Item
}

func (h *fsmHarness) report(holder string, it *api.Item, o *episode.Outcome, version uint64) *api.Response {
	h.t.Helper()
	return h.apply(Command{Type: CmdReport, Report: &api.ReportCmd{Holder: holder, ItemID: it.ID, Token: it.Token, Outcome: o, PolicyVersion: version}})
}

// lightOutcome is a valid episode outcome whose light fraction is lf.
func lightOutcome(lf float64) *episode.Outcome {
	return &episode.Outcome{Seconds: 60, ClosestCM: 1, FinalDistanceCM: 1.5, LightFraction: lf, Frames: 20}
}

// drain leases and reports every item a holder can get.
func (h *fsmHarness) drain(holder string, t plan.ItemType, o *episode.Outcome, version uint64) []*api.Item {
	h.t.Helper()
	var done []*api.Item
	for {
		it := h.lease(holder, t)
		if it == nil {
			return done
		}
		if err := h.report(holder, it, o, version).Err(); err != nil {
			h.t.Fatal(err)
		}
		done = append(done, it)
	}
}

func TestFSMPhases(t *testing.T) {
	h := newFSMHarness(t)
	id := h.submit(tinySpec)
	h.worker("w301", "301")
	h.worker("w446", "446")
	h.ok(Command{Type: CmdRegisterLearner, RegisterLearner: &api.RegisterLearnerCmd{ID: "l1"}})

	// collect: ceil(0.1 h / 180 s) = 2 per line, leased only by the line's worker.
	if got := h.drain("w301", plan.TypeEpisode, nil, 0); len(got) != 2 || got[0].Kind != episode.KindCollect || got[0].Line != "301" || got[0].LightProbability != 0.1 || got[0].Seconds != 180 {
		t.Fatalf("collect 301: %+v", got)
	}
	if it := h.lease("l1", plan.TypeTrain); it != nil {
		t.Fatalf("training task leased before collect finished: %+v", it)
	}
	h.drain("w446", plan.TypeEpisode, nil, 0)
	exp, _, _ := h.f.Experiment(id)
	if exp.Phase != plan.PhaseTrain {
		t.Fatalf("phase %s, want train", exp.Phase)
	}
	tasks := h.drain("l1", plan.TypeTrain, nil, 42)
	if len(tasks) != 2 || tasks[0].Kind != episode.KindTrain || tasks[0].Line != "301" || tasks[1].Line != "446" || tasks[0].Seed == tasks[1].Seed ||
		tasks[0].Train == nil || tasks[0].Train.EnsembleSize != 2 || tasks[0].Train.Updates != 10 || tasks[0].Train.CheckpointEvery != 5 || tasks[0].Train.BatchSize != 64 {
		t.Fatalf("tasks: %+v", tasks)
	}
	// evaluate: agent episodes carry the policy version; random ones wait for the agent's.
	var agent, none int
	for {
		it := h.lease("w301", plan.TypeEpisode)
		if it == nil {
			break
		}
		switch it.Kind {
		case episode.KindAgent:
			agent++
			if it.PolicyVersion != 42 || it.AgentLine != "301" || it.MaxStaleness != 2 || it.Target == nil {
				t.Fatalf("agent episode: %+v", it)
			}
		case episode.KindNone:
			none++
		case episode.KindRandom:
			if agent != 2 {
				t.Fatalf("random episode before the agent episodes ended")
			}
			if it.LightProbability != 0.25 {
				t.Fatalf("random rate %v, want the agent's mean light fraction 0.25", it.LightProbability)
			}
		}
		lf := 0.2
		if agent == 2 {
			lf = 0.3
		}
		if err := h.report("w301", it, lightOutcome(lf), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if agent != 2 || none != 2 {
		t.Fatalf("agent %d none %d, want 2 and 2", agent, none)
	}
	h.drain("w446", plan.TypeEpisode, lightOutcome(0.1), 0)
	exp, items, _ := h.f.Experiment(id)
	if exp.Phase != plan.PhaseCrossEvaluate || exp.RandomRates["301"] != 0.25 || exp.RandomRates["446"] != 0.1 || exp.PolicyVersions["446"] != 42 {
		t.Fatalf("experiment %+v", exp)
	}
	h.drain("w301", plan.TypeEpisode, nil, 0)
	h.drain("w446", plan.TypeEpisode, nil, 0)
	exp, items, _ = h.f.Experiment(id)
	if exp.Status != plan.StatusDone || exp.Phase != plan.PhaseDone || exp.Open != 0 {
		t.Fatalf("experiment not done: %+v", exp)
	}
	// 4 collect + 2 train + 2 lines x 3 conditions x 2 + 4 cross = 22.
	if len(items) != 22 {
		t.Fatalf("%d items, want 22", len(items))
	}
	// Items are listed in creation order; their numbers are 0-21, each once. Line 301's
	// random-light episodes, created after line 446's agent and no-light episodes, have the
	// numbers reserved right after 301's own no-light ones (6-7 agent, 8-9 none).
	used := map[int]bool{}
	for i, it := range items {
		if it.State != api.StateDone || it.N < 0 || it.N >= len(items) || used[it.N] || it.ID != fmt.Sprintf("%s.%d", id, it.N) || it.Seed != plan.Seed(exp.Spec.Seed, it.N) {
			t.Fatalf("item %d: %s n %d %s seed %d", i, it.ID, it.N, it.State, it.Seed)
		}
		used[it.N] = true
		if it.Kind == episode.KindRandom && it.Line == "301" && it.N != 10 && it.N != 11 {
			t.Fatalf("line 301 random-light episode numbered %d, want 10 or 11", it.N)
		}
		if it.Kind == episode.KindCross && (it.PolicyVersion != 42 || it.AgentLine == "") {
			t.Fatalf("cross episode %+v", it)
		}
	}
}

func TestFSMLeaseRules(t *testing.T) {
	h := newFSMHarness(t)
	h.submit(tinySpec)
	h.worker("a", "301")
	h.worker("b", "301")
	it := h.lease("a", plan.TypeEpisode)
	again := h.lease("a", plan.TypeEpisode)
	if again.ID != it.ID || again.Token != it.Token {
		t.Fatalf("second lease of a holder returned %s/%d, want its held %s/%d", again.ID, again.Token, it.ID, it.Token)
	}
	before, _ := h.f.StateDigest()
	cases := []struct {
		name string
		cmd  api.ReportCmd
		want error
	}{
		{"light fraction above 1", api.ReportCmd{Holder: "a", ItemID: it.ID, Token: it.Token, Outcome: &episode.Outcome{Seconds: 60, LightFraction: 1.5}}, api.ErrBadRequest},
		{"negative closest distance", api.ReportCmd{Holder: "a", ItemID: it.ID, Token: it.Token, Outcome: &episode.Outcome{Seconds: 60, ClosestCM: -1}}, api.ErrBadRequest},
		{"negative frames", api.ReportCmd{Holder: "a", ItemID: it.ID, Token: it.Token, Outcome: &episode.Outcome{Seconds: 60, Frames: -1}}, api.ErrBadRequest},
		{"wrong token", api.ReportCmd{Holder: "a", ItemID: it.ID, Token: it.Token + 100}, api.ErrStaleLease},
		{"wrong holder", api.ReportCmd{Holder: "b", ItemID: it.ID, Token: it.Token}, api.ErrStaleLease},
		{"unknown item", api.ReportCmd{Holder: "a", ItemID: "nope", Token: it.Token}, api.ErrNotFound},
	}
	for _, c := range cases {
		r := h.apply(Command{Type: CmdReport, Report: &c.cmd})
		if !errors.Is(r.Err(), c.want) {
			t.Errorf("%s: %v, want %v", c.name, r.Err(), c.want)
		}
	}
	after, _ := h.f.StateDigest()
	if !bytes.Equal(withoutStats(t, before), withoutStats(t, after)) {
		t.Fatalf("refused reports changed the state")
	}
	// Expiry: the lease ends, another worker gets the item, the old holder's report is refused.
	h.now = h.now.Add(2 * time.Minute)
	h.ok(Command{Type: CmdTick})
	got, _ := h.f.Item(it.ID)
	if got.State != api.StatePending || len(got.Failures) != 1 || !strings.Contains(got.Failures[0], "expired") {
		t.Fatalf("after expiry: %+v", got)
	}
	var second *api.Item
	for second == nil || second.ID != it.ID {
		second = h.lease("b", plan.TypeEpisode)
		if second.ID != it.ID {
			h.report("b", second, nil, 0)
		}
	}
	if r := h.report("a", it, nil, 0); !errors.Is(r.Err(), api.ErrStaleLease) {
		t.Fatalf("late report of the expired lease: %v", r.Err())
	}
	if r := h.report("b", second, nil, 0); r.Err() != nil {
		t.Fatal(r.Err())
	}
	if r := h.report("b", second, nil, 0); !errors.Is(r.Err(), api.ErrDuplicate) {
		t.Fatalf("duplicate report: %v", r.Err())
	}
	if s := h.f.Stats(); s.ReportsAccepted != 2 {
		t.Fatalf("accepted %d reports, want 2", s.ReportsAccepted)
	}
	// An idempotency key replays the first response and changes nothing.
	h.worker("c", "446")
	w := Command{Type: CmdLease, Key: "k1", Lease: &LeaseCmd{Holder: "c", Type: plan.TypeEpisode, TTL: time.Minute}}
	r1 := h.ok(w)
	r2 := h.ok(w)
	if r1.Item == nil || r2.Item.Token != r1.Item.Token || r2.Index != r1.Index {
		t.Fatalf("replayed lease differs: %+v vs %+v", r1, r2)
	}
	if s := h.f.Stats(); s.LeasesGranted != 4 || s.Replayed != 1 {
		t.Fatalf("stats %+v: want 4 leases granted (a, b twice, c) and 1 replay", s)
	}
}

func withoutStats(t *testing.T, b []byte) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// Counters, the clock and the applied index move with every command (ticks included);
	// everything else must not move when a command is refused.
	delete(m, "stats")
	delete(m, "now")
	delete(m, "term")
	delete(m, "term_time")
	delete(m, "clock_offset")
	delete(m, "applied")
	out, _ := json.Marshal(m)
	return out
}

func TestFSMBatch(t *testing.T) {
	h := newFSMHarness(t)
	h.submit(tinySpec)
	h.worker("a", "301")
	h.worker("b", "301")
	lease := func(holder string) Command {
		return Command{Type: CmdLease, Time: h.now, Lease: &LeaseCmd{Holder: holder, Type: plan.TypeEpisode, TTL: time.Minute}}
	}
	b, err := json.Marshal(Command{Type: CmdBatch, Time: h.now, Batch: []Command{lease("a"), lease("b"), {Type: CmdTick, Time: h.now}}})
	if err != nil {
		t.Fatal(err)
	}
	h.index++
	rs, ok := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: b}).([]*api.Response)
	if !ok || len(rs) != 3 {
		t.Fatalf("batch responses: %v", rs)
	}
	a, bb := rs[0].Item, rs[1].Item
	if a == nil || bb == nil || a.ID == bb.ID || a.Token == bb.Token || rs[0].Index != h.index {
		t.Fatalf("batch leases: %+v %+v", a, bb)
	}
	for _, r := range []struct {
		holder string
		it     *api.Item
	}{{"a", a}, {"b", bb}} {
		if err := h.report(r.holder, r.it, nil, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{
		`{"type":"batch","time":"2026-01-01T00:00:00Z","batch":[]}`,
		`{"type":"batch","time":"2026-01-01T00:00:00Z","batch":[{"type":"batch","time":"2026-01-01T00:00:00Z","batch":[{"type":"tick","time":"2026-01-01T00:00:00Z"}]}]}`,
		`{"type":"tick","time":"2026-01-01T00:00:00Z","batch":[{"type":"tick","time":"2026-01-01T00:00:00Z"}]}`,
		`{"type":"batch","time":"2026-01-01T00:00:00Z","batch":[{"type":"lease","time":"2026-01-01T00:00:00Z"}]}`,
	} {
		if _, err := DecodeCommand([]byte(bad)); !errors.Is(err, ErrBadCommand) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestFSMMaxAttemptsAndTrainFailure(t *testing.T) {
	h := newFSMHarness(t)
	spec := "name: two\nlines: [\"301\", \"446\"]\ncollect: {hours_per_line: 0.05, episode_seconds: 180}\ntrain: {updates: 10, checkpoint_every: 5}\n"
	id := h.submit(spec)
	h.worker("w", "301")
	h.worker("v", "446")
	h.ok(Command{Type: CmdRegisterLearner, RegisterLearner: &api.RegisterLearnerCmd{ID: "l"}})
	var last *api.Item
	for i := range 3 {
		it := h.lease("w", plan.TypeEpisode)
		if it.Attempts != i+1 || (last != nil && it.ID != last.ID) {
			t.Fatalf("lease %d: %s attempt %d, want the same item's attempt %d", i, it.ID, it.Attempts, i+1)
		}
		r := h.ok(Command{Type: CmdFail, Fail: &api.FailCmd{Holder: "w", ItemID: it.ID, Token: it.Token, Reason: fmt.Sprintf("camera stopped %d", i)}})
		want := api.StatePending
		if i == 2 {
			want = api.StateFailed
		}
		if r.Item.State != want {
			t.Fatalf("after failure %d: %s, want %s", i+1, r.Item.State, want)
		}
		last = it
	}
	got, _ := h.f.Item(last.ID)
	if got.State != api.StateFailed || len(got.Failures) != 3 {
		t.Fatalf("after 3 failures: %+v", got)
	}
	for i, f := range got.Failures {
		if !strings.Contains(f, fmt.Sprintf("attempt %d", i+1)) || !strings.Contains(f, fmt.Sprintf("camera stopped %d", i)) {
			t.Fatalf("failure %d: %q", i, f)
		}
	}
	// A failed episode ends like a done one: the collect phase closes and train opens.
	h.drain("w", plan.TypeEpisode, lightOutcome(0.1), 0)
	h.drain("v", plan.TypeEpisode, lightOutcome(0.1), 0)
	exp, _, _ := h.f.Experiment(id)
	if exp.Phase != plan.PhaseTrain || exp.Status != plan.StatusRunning {
		t.Fatalf("after collect: %s %s", exp.Phase, exp.Status)
	}
	// Line 446's task is leased and stays open while line 301's fails three times: the
	// experiment fails at the third failure, at once, and the other task ends with it.
	first := h.lease("l", plan.TypeTrain)
	if first.Line != "301" {
		t.Fatalf("first training task of line %s, want 301", first.Line)
	}
	other := h.lease("l", plan.TypeTrain)
	h.ok(Command{Type: CmdFail, Fail: &api.FailCmd{Holder: "l", ItemID: first.ID, Token: first.Token, Reason: "nan loss"}})
	for range 2 {
		it := h.lease("l", plan.TypeTrain)
		if it == nil || it.ID != first.ID {
			t.Fatalf("retry of the failed training task: %+v", it)
		}
		h.ok(Command{Type: CmdFail, Fail: &api.FailCmd{Holder: "l", ItemID: it.ID, Token: it.Token, Reason: "nan loss"}})
	}
	exp, items, _ := h.f.Experiment(id)
	if exp.Status != plan.StatusFailed || exp.Phase != plan.PhaseTrain || !strings.Contains(exp.Reason, "training task") || !strings.Contains(exp.Reason, "301") {
		t.Fatalf("experiment %s in %s: %q", exp.Status, exp.Phase, exp.Reason)
	}
	for _, it := range items {
		if it.State == api.StatePending || it.State == api.StateLeased {
			t.Fatalf("item %s still %s after the experiment failed", it.ID, it.State)
		}
	}
	o, _ := h.f.Item(other.ID)
	if o.State != api.StateFailed || len(o.Failures) != 1 || !strings.Contains(o.Failures[0], "experiment failed") {
		t.Fatalf("the other training task: %+v", o)
	}
	// Its holder's late report is refused; nothing opens, no more work is handed out.
	if r := h.report("l", other, nil, 9); !errors.Is(r.Err(), api.ErrStaleLease) {
		t.Fatalf("report of a task of a failed experiment: %v", r.Err())
	}
	if it := h.lease("l", plan.TypeTrain); it != nil {
		t.Fatalf("leased %s of a failed experiment", it.ID)
	}
}

func TestFSMSnapshotRoundTrip(t *testing.T) {
	h := newFSMHarness(t)
	h.submit(tinySpec)
	h.worker("w", "301")
	h.worker("v", "446")
	it := h.lease("w", plan.TypeEpisode)
	h.report("w", it, lightOutcome(0.1), 0)
	h.lease("w", plan.TypeEpisode)
	h.ok(Command{Type: CmdLease, Key: "key", Lease: &LeaseCmd{Holder: "v", Type: plan.TypeEpisode, TTL: time.Second}})
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := &fsmHarness{t: t, f: NewFSM(), index: h.index, now: h.now}
	if err := g.f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	a, _ := h.f.StateDigest()
	b, _ := g.f.StateDigest()
	if !bytes.Equal(a, b) {
		t.Fatalf("restored state differs")
	}
	// Both continue identically: same leases, same expiries, same idempotent replay.
	for _, x := range []*fsmHarness{h, g} {
		x.now = x.now.Add(2 * time.Second)
		x.worker("u", "446")
		x.lease("u", plan.TypeEpisode)
		x.ok(Command{Type: CmdLease, Key: "key", Lease: &LeaseCmd{Holder: "v", Type: plan.TypeEpisode, TTL: time.Second}})
	}
	a, _ = h.f.StateDigest()
	b, _ = g.f.StateDigest()
	if !bytes.Equal(a, b) {
		t.Fatalf("states diverged after restore:\n%s\n%s", a, b)
	}
}

type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

func TestDecodeCommandRejects(t *testing.T) {
	cases := []struct{ name, json string }{
		{"empty", ``},
		{"not json", `{`},
		{"unknown field", `{"type":"tick","time":"2026-01-01T00:00:00Z","bogus":1}`},
		{"no time", `{"type":"tick"}`},
		{"unknown type", `{"type":"explode","time":"2026-01-01T00:00:00Z"}`},
		{"missing payload", `{"type":"lease","time":"2026-01-01T00:00:00Z"}`},
		{"wrong payload", `{"type":"lease","time":"2026-01-01T00:00:00Z","fail":{"holder":"a","item_id":"x","token":1}}`},
		{"two payloads", `{"type":"tick","time":"2026-01-01T00:00:00Z","remove_node":{"id":"a"}}`},
		{"bad ttl", `{"type":"lease","time":"2026-01-01T00:00:00Z","lease":{"holder":"a","type":"episode","ttl":-1}}`},
		{"bad item type", `{"type":"lease","time":"2026-01-01T00:00:00Z","lease":{"holder":"a","type":"x","ttl":1}}`},
		{"no token", `{"type":"report","time":"2026-01-01T00:00:00Z","report":{"holder":"a","item_id":"x"}}`},
		{"outcome share above 1", `{"type":"report","time":"2026-01-01T00:00:00Z","report":{"holder":"a","item_id":"x","token":1,"outcome":{"seconds":1,"lost_fraction":1.01}}}`},
		{"negative time to target", `{"type":"report","time":"2026-01-01T00:00:00Z","report":{"holder":"a","item_id":"x","token":1,"outcome":{"seconds":1,"time_to_05cm_s":-2}}}`},
		{"metrics map", `{"type":"report","time":"2026-01-01T00:00:00Z","report":{"holder":"a","item_id":"x","token":1,"metrics":{"closest_cm":1}}}`},
		{"trailing", `{"type":"tick","time":"2026-01-01T00:00:00Z"} {}`},
	}
	for _, c := range cases {
		if _, err := DecodeCommand([]byte(c.json)); !errors.Is(err, ErrBadCommand) {
			t.Errorf("%s: err = %v, want ErrBadCommand", c.name, err)
		}
	}
	h := newFSMHarness(t)
	before, _ := h.f.StateDigest()
	h.index++
	r := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: []byte(`{"type":"submit","time":"2026-01-01T00:00:00Z","submit":{"spec":"name: x\nlines: [\"3 01\"]\n","max_attempts":1}}`)}).(*api.Response)
	if !errors.Is(r.Err(), api.ErrBadRequest) || !strings.Contains(r.Error, "lines[0]") {
		t.Fatalf("bad spec: %v", r.Err())
	}
	after, _ := h.f.StateDigest()
	if !bytes.Equal(withoutStats(t, before), withoutStats(t, after)) {
		t.Fatal("refused submit changed the state")
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte(`{"type":"tick","time":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"type":"lease","time":"2026-01-01T00:00:00Z","lease":{"holder":"w","type":"episode","ttl":60000000000}}`))
	f.Add([]byte(`{"type":"report","time":"2026-01-01T00:00:00Z","report":{"holder":"w","item_id":"tiny-1.0","token":3,"outcome":{"seconds":60,"closest_cm":1,"time_to_05cm_s":null,"final_distance_cm":1,"mean_speed_mm_s":0.1,"light_fraction":0.2,"lost_fraction":0,"frames":20}}}`))
	f.Add([]byte(`{"type":"fail","time":"2026-01-01T00:00:00Z","fail":{"holder":"w","item_id":"tiny-1.0","token":3,"reason":"x"}}`))
	f.Add([]byte(`{"type":"register_worker","time":"2026-01-01T00:00:00Z","register_worker":{"id":"w","arena_id":"a","line":"301"}}`))
	f.Add([]byte(`{"type":"heartbeat","time":"2026-01-01T00:00:00Z","key":"k","heartbeat":{"holder":"w","item_id":"tiny-1.0","token":3,"ttl":5}}`))
	f.Add([]byte(`{"type":"set_node","time":"2026-01-01T00:00:00Z","set_node":{"id":"n","raft_addr":"a","http_addr":"b"}}`))
	f.Add([]byte(`{"type":"batch","time":"2026-01-01T00:00:00Z","batch":[{"type":"tick","time":"2026-01-01T00:00:01Z"},{"type":"lease","time":"2026-01-01T00:00:01Z","key":"k","lease":{"holder":"w","type":"episode","ttl":5}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		// Apply it to a state with work in progress: it must never panic, and a command that
		// decodes must re-encode to one that decodes the same.
		h := newFSMHarness(t)
		h.submit(tinySpec)
		h.worker("w", "301")
		h.lease("w", plan.TypeEpisode)
		h.index++
		switch r := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: data}).(type) {
		case *api.Response:
			if r == nil {
				t.Fatal("apply returned a nil response")
			}
		case []*api.Response:
			if err == nil && len(r) != len(c.Batch) {
				t.Fatalf("batch of %d returned %d responses", len(c.Batch), len(r))
			}
		default:
			t.Fatalf("apply returned %T", r)
		}
		if err != nil {
			return
		}
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("decoded command does not encode: %v", err)
		}
		if _, err := DecodeCommand(b); err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
	})
}

func TestFSMHeartbeatRenewsAndRegistration(t *testing.T) {
	h := newFSMHarness(t)
	h.submit(tinySpec)
	if r := h.apply(Command{Type: CmdLease, Lease: &LeaseCmd{Holder: "ghost", Type: plan.TypeEpisode, TTL: time.Minute}}); !errors.Is(r.Err(), api.ErrNotRegistered) {
		t.Fatalf("lease by an unregistered worker: %v", r.Err())
	}
	if r := h.apply(Command{Type: CmdLease, Lease: &LeaseCmd{Holder: "ghost", Type: plan.TypeTrain, TTL: time.Minute}}); !errors.Is(r.Err(), api.ErrNotRegistered) {
		t.Fatalf("lease by an unregistered learner: %v", r.Err())
	}
	h.worker("w", "301")
	h.worker("other", "73")
	if it := h.lease("other", plan.TypeEpisode); it != nil {
		t.Fatalf("a worker of line 73 got %s of line %s", it.ID, it.Line)
	}
	it := h.lease("w", plan.TypeEpisode) // TTL 1 min
	cases := []struct {
		after     time.Duration
		heartbeat bool
		want      api.ItemState
	}{
		{50 * time.Second, true, api.StateLeased}, // renewed until 110 s
		{100 * time.Second, false, api.StateLeased},
		{109 * time.Second, false, api.StateLeased},
		{111 * time.Second, false, api.StatePending},
	}
	start := h.now
	for _, c := range cases {
		h.now = start.Add(c.after)
		if c.heartbeat {
			r := h.ok(Command{Type: CmdHeartbeat, Heartbeat: &HeartbeatCmd{Holder: "w", ItemID: it.ID, Token: it.Token, TTL: time.Minute}})
			if !r.Item.Deadline.Equal(h.now.Add(time.Minute)) {
				t.Fatalf("deadline %v, want %v", r.Item.Deadline, h.now.Add(time.Minute))
			}
		} else {
			h.ok(Command{Type: CmdTick})
		}
		if got, _ := h.f.Item(it.ID); got.State != c.want {
			t.Fatalf("at +%v: %s, want %s", c.after, got.State, c.want)
		}
	}
	ws := h.f.Workers()
	if len(ws) != 2 || ws[1].ID != "w" || !ws[1].LastSeen.Equal(start.Add(50*time.Second)) {
		t.Fatalf("workers %+v: w last seen at its heartbeat", ws)
	}
	// Time never goes backwards: a command stamped earlier (a new leader with a slow clock)
	// does not revive the lease.
	h.now = start
	h.ok(Command{Type: CmdTick})
	if now := h.f.Now(); !now.Equal(start.Add(111 * time.Second)) {
		t.Fatalf("FSM time went back to %v", now)
	}
}

// scribble changes, in place, every exported number, string and bool reachable from v through
// pointers, structs, slices and maps.
func scribble(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			scribble(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				scribble(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			scribble(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			scribble(e)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString(v.String() + "!")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	}
}

// TestFSMReadsAreCopies changes everything the read methods return, mid-evaluation (every map
// of the plan filled, items with results, outcomes and failures), and checks that the state
// did not change.
func TestFSMReadsAreCopies(t *testing.T) {
	h := newFSMHarness(t)
	id := h.submit(tinySpec)
	h.worker("w301", "301")
	h.worker("w446", "446")
	h.ok(Command{Type: CmdRegisterLearner, RegisterLearner: &api.RegisterLearnerCmd{ID: "l1"}})
	h.drain("w301", plan.TypeEpisode, nil, 0)
	h.drain("w446", plan.TypeEpisode, nil, 0)
	h.drain("l1", plan.TypeTrain, nil, 7)
	reached := 0.4
	h.drain("w301", plan.TypeEpisode, &episode.Outcome{Seconds: 30, ClosestCM: 0.3, TimeTo05cmS: &reached, LightFraction: 0.3, Frames: 9}, 0)
	expiring := h.lease("w446", plan.TypeEpisode)
	h.now = h.now.Add(2 * time.Minute)
	h.ok(Command{Type: CmdTick})
	exp, items, ok := h.f.Experiment(id)
	if !ok || exp.Phase != plan.PhaseEvaluate || len(exp.RandomRates) != 1 || len(exp.RandomFirst) != 2 || len(exp.AgentLight) != 1 {
		t.Fatalf("setup: experiment %+v", exp)
	}
	if got, _ := h.f.Item(expiring.ID); len(got.Failures) != 1 {
		t.Fatalf("setup: expired item %+v", got)
	}
	before, err := h.f.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	scribble(reflect.ValueOf(&exp))
	scribble(reflect.ValueOf(items))
	view, _ := h.f.ExperimentView(id)
	scribble(reflect.ValueOf(&view))
	list := h.f.Experiments()
	scribble(reflect.ValueOf(list))
	for _, it := range items {
		one, _ := h.f.Item(strings.TrimSuffix(it.ID, "!"))
		scribble(reflect.ValueOf(&one))
	}
	after, err := h.f.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(withoutStats(t, before), withoutStats(t, after)) {
		t.Fatalf("changing what the reads returned changed the state:\nbefore %s\nafter  %s", before, after)
	}
}

// TestFSMReregistrationEndsTheHeldLease checks that a worker that registers again (its process
// restarted) loses the episode it held: the old attempt ends with a reason, its token is stale,
// and the next lease is a new attempt under a new token, so two runs' frames can never be
// accepted as one episode.
func TestFSMReregistrationEndsTheHeldLease(t *testing.T) {
	h := newFSMHarness(t)
	h.submit(tinySpec)
	h.worker("w", "301")
	first := h.lease("w", plan.TypeEpisode)
	if again := h.lease("w", plan.TypeEpisode); again == nil || again.ID != first.ID || again.Token != first.Token {
		t.Fatalf("a repeated lease of a live worker returned %+v, want its held %s", again, first.ID)
	}
	h.worker("w", "301") // the worker's process restarted
	got, _ := h.f.Item(first.ID)
	if got.State != api.StatePending || len(got.Failures) != 1 || !strings.Contains(got.Failures[0], "registered again") {
		t.Fatalf("held item after re-registration: %s, failures %q", got.State, got.Failures)
	}
	r := h.apply(Command{Type: CmdReport, Report: &api.ReportCmd{Holder: "w", ItemID: first.ID, Token: first.Token, Outcome: &episode.Outcome{}}})
	if !errors.Is(r.Err(), api.ErrStaleLease) {
		t.Fatalf("report under the old token: %v, want a stale lease", r.Err())
	}
	next := h.lease("w", plan.TypeEpisode)
	if next == nil || next.Token == first.Token {
		t.Fatalf("lease after re-registration %+v: want a new attempt under a new token", next)
	}
}

func TestFSMDeregister(t *testing.T) {
	h := newFSMHarness(t)
	h.submit(tinySpec)
	h.worker("w", "301")
	h.worker("idle", "301")
	it := h.lease("w", plan.TypeEpisode)
	if it == nil {
		t.Fatal("no episode")
	}
	h.ok(Command{Type: CmdDeregister, Deregister: &api.DeregisterRequest{Holder: "w", Reason: "SIGTERM: grace period over"}})
	if _, ok := h.f.st.Workers["w"]; ok {
		t.Error("a deregistered worker is still registered")
	}
	got := h.f.st.Items[it.ID]
	if got.State != api.StatePending || len(got.Failures) != 1 || !strings.Contains(got.Failures[0], "SIGTERM: grace period over") {
		t.Errorf("held episode after deregister: %s, failures %q; want pending with the reason", got.State, got.Failures)
	}
	// The freed episode goes to another arena at once (behind the line's other pending
	// episodes), under a new token.
	var again *api.Item
	for _, d := range h.drain("idle", plan.TypeEpisode, lightOutcome(0.1), 0) {
		if d.ID == it.ID {
			again = d
		}
	}
	if again == nil || again.Token == it.Token {
		t.Fatalf("re-lease after deregister: %+v", again)
	}
	// The old lease cannot report; the leaver cannot lease; a second deregister is refused.
	if r := h.report("w", it, lightOutcome(0.1), 0); r.Code != api.CodeStaleLease {
		t.Errorf("report under the leaver's lease: %v", r.Err())
	}
	if r := h.apply(Command{Type: CmdLease, Lease: &LeaseCmd{Holder: "w", Type: plan.TypeEpisode, TTL: time.Minute}}); r.Code != api.CodeNotRegistered {
		t.Errorf("lease by a deregistered worker: %v", r.Err())
	}
	if r := h.apply(Command{Type: CmdDeregister, Deregister: &api.DeregisterRequest{Holder: "w"}}); r.Code != api.CodeNotFound {
		t.Errorf("second deregister: %v", r.Err())
	}
	// A learner's training task is freed the same way.
	h.ok(Command{Type: CmdRegisterLearner, RegisterLearner: &api.RegisterLearnerCmd{ID: "l"}})
	h.ok(Command{Type: CmdDeregister, Deregister: &api.DeregisterRequest{Holder: "l"}})
	if _, ok := h.f.st.Learners["l"]; ok {
		t.Error("a deregistered learner is still registered")
	}
}

func TestFSMHeartbeatProgress(t *testing.T) {
	h := newFSMHarness(t)
	h.submit(tinySpec)
	h.worker("w", "301")
	it := h.lease("w", plan.TypeEpisode)
	hb := func(p *api.Progress) *api.Response {
		return h.apply(Command{Type: CmdHeartbeat, Heartbeat: &HeartbeatCmd{Holder: "w", ItemID: it.ID, Token: it.Token, TTL: time.Minute, Progress: p}})
	}
	if r := hb(&api.Progress{Done: 3, Total: 20}); r.Err() != nil || r.Item.Progress == nil || *r.Item.Progress != (api.Progress{Done: 3, Total: 20}) {
		t.Fatalf("heartbeat with progress: %+v, %v", r.Item, r.Err())
	}
	if r := hb(nil); r.Err() != nil || r.Item.Progress == nil || r.Item.Progress.Done != 3 {
		t.Fatalf("a heartbeat without progress keeps the last: %+v", r.Item)
	}
	for _, bad := range []api.Progress{{Done: -1, Total: 2}, {Done: 3, Total: 2}} {
		if _, err := EncodeCommand(Command{Type: CmdHeartbeat, Time: t0, Heartbeat: &HeartbeatCmd{Holder: "w", ItemID: it.ID, Token: it.Token, TTL: time.Minute, Progress: &bad}}); !errors.Is(err, ErrBadCommand) {
			t.Errorf("progress %+v accepted: %v", bad, err)
		}
	}
	// A new lease starts with no progress.
	h.ok(Command{Type: CmdFail, Fail: &api.FailCmd{Holder: "w", ItemID: it.ID, Token: it.Token, Reason: "x"}})
	for {
		again := h.lease("w", plan.TypeEpisode)
		if again == nil {
			t.Fatal("the failed item was not leased again")
		}
		if again.ID == it.ID {
			if again.Progress != nil {
				t.Errorf("re-leased item keeps the old lease's progress: %+v", again.Progress)
			}
			break
		}
		if err := h.report("w", again, lightOutcome(0.1), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFSMCancel cancels a running experiment: its pending and leased items fail with the
// reason, the holder's heartbeat and report are refused as stale, and nothing is leased after.
func TestFSMCancel(t *testing.T) {
	h := newFSMHarness(t)
	id := h.submit(tinySpec)
	h.worker("w", "301")
	held := h.lease("w", plan.TypeEpisode)
	if held == nil {
		t.Fatal("no episode")
	}
	if r := h.apply(Command{Type: CmdCancel, Cancel: &CancelCmd{Experiment: "nope", Reason: "x"}}); r.Code != api.CodeNotFound {
		t.Errorf("cancel of an unknown experiment: %v", r.Err())
	}
	h.ok(Command{Type: CmdCancel, Cancel: &CancelCmd{Experiment: id, Reason: "wrong line"}})
	exp := h.f.st.Experiments[id]
	if exp.Status != plan.StatusFailed || exp.Reason != "cancelled: wrong line" {
		t.Errorf("experiment after cancel: %s %q", exp.Status, exp.Reason)
	}
	for _, iid := range exp.Items {
		it := h.f.st.Items[iid]
		if it.State != api.StateFailed || !strings.Contains(it.Failures[len(it.Failures)-1], "cancelled: wrong line") {
			t.Fatalf("item %s after cancel: %s %q", it.ID, it.State, it.Failures)
		}
	}
	if r := h.apply(Command{Type: CmdHeartbeat, Heartbeat: &HeartbeatCmd{Holder: "w", ItemID: held.ID, Token: held.Token, TTL: time.Minute}}); r.Code != api.CodeStaleLease {
		t.Errorf("heartbeat of a cancelled lease: %v", r.Err())
	}
	if r := h.report("w", held, lightOutcome(0.1), 0); r.Code != api.CodeStaleLease {
		t.Errorf("report of a cancelled lease: %v", r.Err())
	}
	if it := h.lease("w", plan.TypeEpisode); it != nil {
		t.Errorf("leased %s after the cancel", it.ID)
	}
	if r := h.apply(Command{Type: CmdCancel, Cancel: &CancelCmd{Experiment: id}}); r.Code != api.CodeBadRequest {
		t.Errorf("second cancel: %v", r.Err())
	}
}

// TestFSMDrain drains a worker: it keeps the episode it holds, is leased nothing new, and
// leases again once resumed; another worker of the line is not affected.
func TestFSMDrain(t *testing.T) {
	h := newFSMHarness(t)
	h.submit(strings.Replace(tinySpec, "hours_per_line: 0.1", "hours_per_line: 0.5", 1))
	h.worker("w", "301")
	h.worker("v", "301")
	held := h.lease("w", plan.TypeEpisode)
	h.ok(Command{Type: CmdDrain, Drain: &DrainCmd{Worker: "w", Drain: true}})
	if !h.f.st.Workers["w"].Draining {
		t.Fatal("worker not draining")
	}
	if again := h.lease("w", plan.TypeEpisode); again == nil || again.ID != held.ID {
		t.Fatalf("a draining worker's repeated lease: %+v, want its held %s", again, held.ID)
	}
	if err := h.report("w", held, lightOutcome(0.1), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if it := h.lease("w", plan.TypeEpisode); it != nil {
		t.Errorf("a draining worker was leased %s", it.ID)
	}
	if it := h.lease("v", plan.TypeEpisode); it == nil {
		t.Error("the other worker got nothing")
	}
	if hw := h.f.WorkersHolding(); hw[0].ID != "v" || hw[0].Holding == "" || hw[1].Holding != "" || !hw[1].Draining {
		t.Errorf("workers: %+v", hw)
	}
	h.ok(Command{Type: CmdDrain, Drain: &DrainCmd{Worker: "w", Drain: false}})
	if it := h.lease("w", plan.TypeEpisode); it == nil {
		t.Error("a resumed worker got nothing")
	}
	if r := h.apply(Command{Type: CmdDrain, Drain: &DrainCmd{Worker: "nope", Drain: true}}); r.Code != api.CodeNotFound {
		t.Errorf("drain of an unknown worker: %v", r.Err())
	}
}

// TestFSMProgress follows an experiment's progress through collection, training and
// evaluation: item counts per phase, training updates from heartbeats, failures newest first,
// the evaluation table.
func TestFSMProgress(t *testing.T) {
	h := newFSMHarness(t)
	id := h.submit(tinySpec)
	h.worker("a", "301")
	h.worker("b", "446")
	h.ok(Command{Type: CmdRegisterLearner, RegisterLearner: &api.RegisterLearnerCmd{ID: "l"}})
	p, ok := h.f.Progress(id)
	if !ok || len(p.Phases) != 1 || p.Phases[0].Phase != plan.PhaseCollect || p.Phases[0].Episodes == 0 || p.Phases[0].EpisodesDone != 0 {
		t.Fatalf("progress at submit: %+v", p)
	}
	collect := p.Phases[0].Episodes
	// One failed attempt, then everything done.
	it := h.lease("a", plan.TypeEpisode)
	h.ok(Command{Type: CmdFail, Fail: &api.FailCmd{Holder: "a", ItemID: it.ID, Token: it.Token, Reason: "camera stopped"}})
	h.drain("a", plan.TypeEpisode, lightOutcome(0.2), 0)
	h.drain("b", plan.TypeEpisode, lightOutcome(0.2), 0)
	p, _ = h.f.Progress(id)
	if p.Phase != plan.PhaseTrain || p.Phases[0].EpisodesDone != collect || len(p.Failures) != 1 || !strings.Contains(p.Failures[0].Reason, "camera stopped") || p.Failures[0].Final {
		t.Fatalf("progress after collection: %+v", p)
	}
	task := h.lease("l", plan.TypeTrain)
	h.ok(Command{Type: CmdHeartbeat, Heartbeat: &HeartbeatCmd{Holder: "l", ItemID: task.ID, Token: task.Token, TTL: time.Minute, Progress: &api.Progress{Done: 7, Total: 20}}})
	p, _ = h.f.Progress(id)
	tr := p.Phases[1]
	if tr.Phase != plan.PhaseTrain || tr.Tasks != 2 || tr.Updates != 2*10*2 || tr.UpdatesDone != 7 {
		t.Fatalf("train phase: %+v", tr)
	}
	h.ok(Command{Type: CmdReport, Report: &api.ReportCmd{Holder: "l", ItemID: task.ID, Token: task.Token, PolicyVersion: 2}})
	h.drain("l", plan.TypeTrain, nil, 2)
	p, _ = h.f.Progress(id)
	if tr := p.Phases[1]; tr.TasksDone != 2 || tr.UpdatesDone != tr.Updates {
		t.Fatalf("train phase done: %+v", tr)
	}
	near := &episode.Outcome{Seconds: 60, ClosestCM: 0.4, FinalDistanceCM: 1, LightFraction: 0.3, Frames: 20}
	h.drain("a", plan.TypeEpisode, near, 0)
	p, _ = h.f.Progress(id)
	var agent *api.LineProgress
	for i, r := range p.Lines {
		if r.Line == "301" && r.Kind == episode.KindAgent {
			agent = &p.Lines[i]
		}
	}
	if agent == nil || agent.Episodes != 2 || agent.Planned != 2 || agent.Reached != 2 || math.Abs(agent.MeanClosestCM-0.4) > 1e-12 {
		t.Fatalf("line table: %+v", p.Lines)
	}
	if p.Lines[0].Line != "301" || p.Lines[0].Kind != episode.KindAgent {
		t.Errorf("line table order: %+v", p.Lines)
	}
}

// TestFSMRetriedOnlineEpisodeKeepsItsPlace: an online episode whose attempt failed is leased
// again before the line's later online episodes, which act with versions trained on its data
// (after a restore too); another retried item goes to the back of its queue
// (TestLocalLeaseExpiryByAdvance).
func TestFSMRetriedOnlineEpisodeKeepsItsPlace(t *testing.T) {
	h := newFSMHarness(t)
	spec := "name: on\nlines: [\"301\"]\ncollect: {hours_per_line: 0.2, episode_seconds: 180}\n" +
		"train: {mode: online, warmup_hours: 0.05, updates: 10, checkpoint_every: 2, critic_target: collection}\n" +
		"evaluate: {checkpoint_hours: 0}\npolicy: {max_staleness: 0}\n"
	h.submit(spec)
	h.worker("a", "301")
	h.worker("b", "301")
	warm := h.lease("a", plan.TypeEpisode)
	if warm.Kind != episode.KindCollect {
		t.Fatalf("first lease %+v, want the warm-up's collect episode", warm)
	}
	h.report("a", warm, lightOutcome(0.1), 0)
	first, second := h.lease("a", plan.TypeEpisode), h.lease("b", plan.TypeEpisode)
	if first.Kind != episode.KindOnline || first.PolicyVersion != 1 || second.Kind != episode.KindOnline || second.PolicyVersion != 2 {
		t.Fatalf("leased %+v and %+v, want online episodes naming versions 1 and 2", first, second)
	}
	h.ok(Command{Type: CmdFail, Fail: &api.FailCmd{Holder: "a", ItemID: first.ID, Token: first.Token, Reason: "arena restarted"}})
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := &fsmHarness{t: t, f: NewFSM(), index: h.index, now: h.now}
	if err := g.f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*fsmHarness{h, g} {
		again := x.lease("a", plan.TypeEpisode)
		if again == nil || again.ID != first.ID || again.Attempts != 2 {
			t.Fatalf("after its failure the next lease is %+v, want %s's second attempt", again, first.ID)
		}
		x.report("a", again, lightOutcome(0.1), 0)
		if next := x.lease("a", plan.TypeEpisode); next == nil || next.Kind != episode.KindOnline || next.PolicyVersion != 3 {
			t.Fatalf("then %+v, want the online episode naming version 3", next)
		}
	}
}
