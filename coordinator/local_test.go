package coordinator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
)

// localSpec: 2 collect episodes per line (0.01 h / 18 s).
const localSpec = `name: local
lines: ["301", "446"]
collect: {hours_per_line: 0.01, episode_seconds: 18}
train: {ensemble_size: 2, updates: 10, checkpoint_every: 5}
evaluate: {episodes_per_condition: 1, episode_seconds: 30}
`

func newLocal(t *testing.T, tune func(*coordinator.LocalConfig)) *coordinator.Local {
	t.Helper()
	cfg := coordinator.DefaultLocalConfig()
	if tune != nil {
		tune(&cfg)
	}
	l, err := coordinator.NewLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// localWithWork is a Local holding localSpec with workers w and v of line 301.
func localWithWork(t *testing.T, ctx context.Context, tune func(*coordinator.LocalConfig)) (*coordinator.Local, string) {
	t.Helper()
	l := newLocal(t, tune)
	id, err := l.Submit(ctx, []byte(localSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"w", "v"} {
		if err := l.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: w, ArenaID: "arena-" + w, Line: "301"}); err != nil {
			t.Fatal(err)
		}
	}
	return l, id
}

func digest(t *testing.T, l *coordinator.Local) []byte {
	t.Helper()
	d, err := l.FSM().StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	return withoutStats(t, d)
}

func mustLease(t *testing.T, ctx context.Context, l *coordinator.Local, holder string) *api.Item {
	t.Helper()
	it, err := l.Lease(ctx, api.LeaseRequest{Holder: holder, Type: plan.TypeEpisode})
	if err != nil || it == nil {
		t.Fatalf("lease for %s: %v %v", holder, it, err)
	}
	return it
}

func TestLocalLeaseProtocol(t *testing.T) {
	ctx := context.Background()
	l, id := localWithWork(t, ctx, nil)
	if _, err := l.Lease(ctx, api.LeaseRequest{Holder: "ghost", Type: plan.TypeEpisode}); !errors.Is(err, api.ErrNotRegistered) {
		t.Fatalf("lease by an unregistered worker: %v", err)
	}
	it := mustLease(t, ctx, l, "w")
	if it.ID != id+".0" || it.Kind != episode.KindCollect || it.Line != "301" || it.Attempts != 1 || it.State != api.StateLeased || it.Holder != "w" {
		t.Fatalf("leased %+v", it)
	}
	if want := l.Now().Add(30 * time.Second); !it.Deadline.Equal(want) {
		t.Fatalf("deadline %v, want the default TTL: %v", it.Deadline, want)
	}
	hb, err := l.Heartbeat(ctx, api.HeartbeatRequest{Holder: "w", ItemID: it.ID, Token: it.Token, TTLSeconds: 90})
	if err != nil || !hb.Deadline.Equal(l.Now().Add(90*time.Second)) {
		t.Fatalf("heartbeat: %v, deadline %v", err, hb)
	}

	// Refused calls change nothing.
	before := digest(t, l)
	good := &episode.Outcome{Seconds: 18, ClosestCM: 0.7, FinalDistanceCM: 1.2, MeanSpeedMMs: 0.1, LightFraction: 0.1, Frames: 60}
	refused := []struct {
		name string
		call func() error
		want error
	}{
		{"heartbeat with a stale token", func() error {
			_, err := l.Heartbeat(ctx, api.HeartbeatRequest{Holder: "w", ItemID: it.ID, Token: it.Token + 1})
			return err
		}, api.ErrStaleLease},
		{"report with a stale token", func() error {
			_, err := l.Report(ctx, api.ReportCmd{Holder: "w", ItemID: it.ID, Token: it.Token + 1, Outcome: good})
			return err
		}, api.ErrStaleLease},
		{"report by another holder", func() error {
			_, err := l.Report(ctx, api.ReportCmd{Holder: "v", ItemID: it.ID, Token: it.Token, Outcome: good})
			return err
		}, api.ErrStaleLease},
		{"report of an unknown item", func() error {
			_, err := l.Report(ctx, api.ReportCmd{Holder: "w", ItemID: id + ".999", Token: it.Token, Outcome: good})
			return err
		}, api.ErrNotFound},
		{"report with an unusable outcome", func() error {
			_, err := l.Report(ctx, api.ReportCmd{Holder: "w", ItemID: it.ID, Token: it.Token, Outcome: &episode.Outcome{Seconds: 18, LightFraction: 2}})
			return err
		}, api.ErrBadRequest},
		{"heartbeat with a negative ttl", func() error {
			_, err := l.Heartbeat(ctx, api.HeartbeatRequest{Holder: "w", ItemID: it.ID, Token: it.Token, TTLSeconds: -1})
			return err
		}, api.ErrBadRequest},
		{"experiment that does not exist", func() error {
			_, err := l.Experiment(ctx, "nope-1")
			return err
		}, api.ErrNotFound},
	}
	for _, r := range refused {
		if err := r.call(); !errors.Is(err, r.want) {
			t.Errorf("%s: %v, want %v", r.name, err, r.want)
		}
	}
	if !bytes.Equal(before, digest(t, l)) {
		t.Fatal("refused calls changed the state")
	}

	done, err := l.Report(ctx, api.ReportCmd{Holder: "w", ItemID: it.ID, Token: it.Token, Outcome: good})
	if err != nil {
		t.Fatal(err)
	}
	if done.State != api.StateDone || done.Result == nil || done.Result.By != "w" || *done.Result.Outcome != *good {
		t.Fatalf("reported item %+v", done)
	}
	// The caller owns what it got: changing it does not change the coordinator's state.
	done.Result.Outcome.ClosestCM = 99
	if got, _ := l.FSM().Item(it.ID); got.Result.Outcome.ClosestCM != good.ClosestCM {
		t.Fatalf("a caller's change reached the state: %+v", got.Result.Outcome)
	}
	before = digest(t, l)
	if _, err := l.Report(ctx, api.ReportCmd{Holder: "w", ItemID: it.ID, Token: it.Token, Outcome: good}); !errors.Is(err, api.ErrDuplicate) {
		t.Fatalf("second report of the lease: %v", err)
	}
	if _, err := l.Fail(ctx, api.FailCmd{Holder: "w", ItemID: it.ID, Token: it.Token, Reason: "late"}); !errors.Is(err, api.ErrStaleLease) {
		t.Fatalf("fail after done: %v", err)
	}
	if !bytes.Equal(before, digest(t, l)) {
		t.Fatal("the duplicate report changed the state")
	}
	// The worker no longer holds an episode: its next lease is a new one.
	if next := mustLease(t, ctx, l, "w"); next.ID == it.ID || next.Token == it.Token {
		t.Fatalf("lease after the report: %s/%d", next.ID, next.Token)
	}
	if st := l.FSM().Stats(); st.ReportsAccepted != 1 || st.LeasesGranted != 2 {
		t.Fatalf("stats %+v: want 1 report accepted and 2 leases", st)
	}
	v, err := l.Experiment(ctx, id)
	if err != nil || v.Counts.Episodes[api.StateDone] != 1 || v.Counts.Episodes[api.StateLeased] != 1 || v.Experiment.Phase != plan.PhaseCollect {
		t.Fatalf("experiment view: %v %+v", err, v.Counts)
	}
}

func TestLocalFailedAttemptsRetriedThenFailed(t *testing.T) {
	ctx := context.Background()
	// One collect episode (0.005 h / 18 s).
	const spec = "name: retry\nlines: [\"301\"]\ncollect: {hours_per_line: 0.005, episode_seconds: 18}\n"
	for _, attempts := range []int{1, 3} {
		t.Run(fmt.Sprintf("max_attempts=%d", attempts), func(t *testing.T) {
			l := newLocal(t, func(c *coordinator.LocalConfig) { c.MaxAttempts = attempts })
			id, err := l.Submit(ctx, []byte(spec))
			if err != nil {
				t.Fatal(err)
			}
			if err := l.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}); err != nil {
				t.Fatal(err)
			}
			first := mustLease(t, ctx, l, "w")
			it := first
			for i := range attempts {
				if it.ID != first.ID || it.Attempts != i+1 {
					t.Fatalf("attempt %d: leased %s attempt %d", i+1, it.ID, it.Attempts)
				}
				got, err := l.Fail(ctx, api.FailCmd{Holder: "w", ItemID: it.ID, Token: it.Token, Reason: fmt.Sprintf("arena lost the worm %d", i)})
				if err != nil {
					t.Fatal(err)
				}
				want := api.StatePending
				if i == attempts-1 {
					want = api.StateFailed
				}
				if got.State != want {
					t.Fatalf("after failure %d: %s, want %s", i+1, got.State, want)
				}
				if want == api.StatePending {
					it = mustLease(t, ctx, l, "w")
				}
			}
			got, _ := l.FSM().Item(first.ID)
			if len(got.Failures) != attempts {
				t.Fatalf("failures %q, want %d", got.Failures, attempts)
			}
			for i, f := range got.Failures {
				if !strings.Contains(f, fmt.Sprintf("attempt %d (w, lease", i+1)) || !strings.Contains(f, fmt.Sprintf("arena lost the worm %d", i)) {
					t.Fatalf("failure %d: %q", i, f)
				}
			}
			// Failed for good, it ends the collect phase like a done episode would.
			if next, err := l.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode}); err != nil || next != nil {
				t.Fatalf("lease after the episode failed: %v %v", next, err)
			}
			if v, err := l.Experiment(ctx, id); err != nil || v.Experiment.Phase != plan.PhaseTrain || v.Counts.Episodes[api.StateFailed] != 1 {
				t.Fatalf("experiment after the failure: %v %s %+v", err, v.Experiment.Phase, v.Counts)
			}
		})
	}
}

func TestLocalLeaseExpiryByAdvance(t *testing.T) {
	ctx := context.Background()
	l, _ := localWithWork(t, ctx, nil) // lease TTL 30 s of the logical clock
	it := mustLease(t, ctx, l, "w")
	steps := []struct {
		advance   time.Duration
		heartbeat bool
		want      api.ItemState
	}{
		{29 * time.Second, false, api.StateLeased},
		{0, true, api.StateLeased}, // renewed: deadline now + 30 s
		{29 * time.Second, false, api.StateLeased},
		{time.Second, false, api.StatePending}, // the deadline itself: expired
	}
	for i, s := range steps {
		if err := l.Advance(s.advance); err != nil {
			t.Fatal(err)
		}
		if s.heartbeat {
			if _, err := l.Heartbeat(ctx, api.HeartbeatRequest{Holder: "w", ItemID: it.ID, Token: it.Token}); err != nil {
				t.Fatalf("step %d: heartbeat: %v", i, err)
			}
		}
		if got, _ := l.FSM().Item(it.ID); got.State != s.want {
			t.Fatalf("step %d (+%v): %s, want %s", i, s.advance, got.State, s.want)
		}
	}
	got, _ := l.FSM().Item(it.ID)
	if len(got.Failures) != 1 || !strings.Contains(got.Failures[0], "lease expired") || l.FSM().Stats().LeasesExpired != 1 {
		t.Fatalf("after expiry: %+v", got)
	}
	if _, err := l.Heartbeat(ctx, api.HeartbeatRequest{Holder: "w", ItemID: it.ID, Token: it.Token}); !errors.Is(err, api.ErrStaleLease) {
		t.Fatalf("heartbeat of the expired lease: %v", err)
	}
	// The expired item went to the back of its line's queue: the other pending episode first.
	other := mustLease(t, ctx, l, "v")
	if other.ID == it.ID {
		t.Fatalf("the expired item was leased before the pending one")
	}
	if _, err := l.Report(ctx, api.ReportCmd{Holder: "v", ItemID: other.ID, Token: other.Token}); err != nil {
		t.Fatal(err)
	}
	again := mustLease(t, ctx, l, "v")
	if again.ID != it.ID || again.Attempts != 2 || again.Token == it.Token {
		t.Fatalf("re-lease: %+v", again)
	}
	if _, err := l.Report(ctx, api.ReportCmd{Holder: "w", ItemID: it.ID, Token: it.Token}); !errors.Is(err, api.ErrStaleLease) {
		t.Fatalf("late report of the expired lease: %v", err)
	}
	if _, err := l.Report(ctx, api.ReportCmd{Holder: "v", ItemID: again.ID, Token: again.Token}); err != nil {
		t.Fatal(err)
	}
	if err := l.Advance(-time.Second); err == nil {
		t.Fatal("the clock moved back")
	}
}

func TestLocalIdempotencyKey(t *testing.T) {
	ctx := context.Background()
	l, _ := localWithWork(t, ctx, nil)
	lctx := api.WithIdempotencyKey(ctx, "lease-1")
	it := func() *api.Item {
		it, err := l.Lease(lctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode})
		if err != nil || it == nil {
			t.Fatalf("lease: %v %v", it, err)
		}
		return it
	}
	first, second := it(), it()
	if first.ID != second.ID || first.Token != second.Token || first.Attempts != 1 || second.Attempts != 1 {
		t.Fatalf("repeated keyed lease: %+v then %+v", first, second)
	}
	rep := api.ReportCmd{Holder: "w", ItemID: first.ID, Token: first.Token, Outcome: &episode.Outcome{Seconds: 18, LightFraction: 0.1}}
	rctx := api.WithIdempotencyKey(ctx, "report-1")
	a, err := l.Report(rctx, rep)
	if err != nil {
		t.Fatal(err)
	}
	// The retry of a report whose answer was lost: the same key returns the first answer.
	b, err := l.Report(rctx, rep)
	if err != nil || b.State != api.StateDone || b.Result.Token != a.Result.Token || !b.Result.At.Equal(a.Result.At) {
		t.Fatalf("retried report: %v %+v", err, b)
	}
	// A new key is a new report of a lease that already completed.
	if _, err := l.Report(api.WithIdempotencyKey(ctx, "report-2"), rep); !errors.Is(err, api.ErrDuplicate) {
		t.Fatalf("report under a new key: %v", err)
	}
	if st := l.FSM().Stats(); st.LeasesGranted != 1 || st.ReportsAccepted != 1 || st.Replayed != 2 {
		t.Fatalf("stats %+v: want 1 lease, 1 report, 2 replays", st)
	}
	// Keys are remembered for IdempotencyWindow of the logical clock, then forgotten.
	if err := l.Advance(coordinator.IdempotencyWindow + time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Report(rctx, rep); !errors.Is(err, api.ErrDuplicate) {
		t.Fatalf("report under a key older than the window: %v", err)
	}
}

// TestLocalChanged checks that Changed closes after every command that can make work or end an
// experiment, and not after a lease or a heartbeat: idle callers that lease on every change
// would otherwise wake each other for ever.
func TestLocalChanged(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t, nil)
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	var leased *api.Item
	steps := []struct {
		name  string
		call  func() error
		wakes bool
	}{
		{"submit", func() error { _, err := l.Submit(ctx, []byte(localSpec)); return err }, true},
		{"register", func() error { return l.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}) }, true},
		{"refused lease", func() error {
			_, err := l.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeTrain})
			if !errors.Is(err, api.ErrNotRegistered) {
				return fmt.Errorf("train lease by a worker: %w", err)
			}
			return nil
		}, false},
		{"register learner", func() error { return l.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l"}) }, true},
		{"lease with no work", func() error {
			it, err := l.Lease(ctx, api.LeaseRequest{Holder: "l", Type: plan.TypeTrain})
			if it != nil {
				return fmt.Errorf("a training task during collect: %s", it.ID)
			}
			return err
		}, false},
		{"lease", func() error {
			var err error
			if leased, err = l.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode}); err == nil && leased == nil {
				err = errors.New("no episode")
			}
			return err
		}, false},
		{"heartbeat", func() error {
			_, err := l.Heartbeat(ctx, api.HeartbeatRequest{Holder: "w", ItemID: leased.ID, Token: leased.Token})
			return err
		}, false},
		{"fail", func() error {
			_, err := l.Fail(ctx, api.FailCmd{Holder: "w", ItemID: leased.ID, Token: leased.Token, Reason: "test"})
			return err
		}, true},
		{"advance", func() error { return l.Advance(time.Second) }, true},
	}
	for _, s := range steps {
		ch := l.Changed()
		if closed(ch) {
			t.Fatalf("%s: Changed closed before anything was applied", s.name)
		}
		if err := s.call(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if closed(ch) != s.wakes {
			t.Fatalf("%s: Changed closed %v, want %v", s.name, closed(ch), s.wakes)
		}
	}
	// A call refused before it reaches the state machine applies nothing and says nothing.
	ch := l.Changed()
	if _, err := l.Submit(ctx, []byte("name: x\n")); !errors.Is(err, api.ErrBadRequest) {
		t.Fatal(err)
	}
	if closed(ch) {
		t.Fatal("Changed closed by a refused submission")
	}
}

func TestLocalSubmitRefusesBadFiles(t *testing.T) {
	ctx := context.Background()
	known := map[string]bool{"301": true, "446": true}
	l := newLocal(t, func(c *coordinator.LocalConfig) { c.KnownLine = func(code string) bool { return known[code] } })
	cases := []struct{ name, spec, field string }{
		{"not yaml", "name: [x\n", "yaml"},
		{"no lines", "name: x\n", "lines"},
		{"bad line code", "name: x\nlines: [\"3 01\"]\n", "lines[0]"},
		{"unknown line", "name: x\nlines: [\"99999\"]\n", "lines[0]"},
		{"negative hours", "name: x\nlines: [\"301\"]\ncollect: {hours_per_line: -1}\n", "collect.hours_per_line"},
		{"unknown field", "name: x\nlines: [\"301\"]\ntrain: {ensemble: 3}\n", "train.ensemble"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := l.Submit(ctx, []byte(c.spec))
			if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), c.field) || id != "" {
				t.Fatalf("submit %q: %q, %v; want a bad request naming %s", c.spec, id, err, c.field)
			}
		})
	}
	if list, err := l.Experiments(ctx); err != nil || len(list) != 0 {
		t.Fatalf("experiments after refused submissions: %v %v", list, err)
	}
	if n := l.FSM().AppliedIndex(); n != 0 {
		t.Fatalf("refused submissions applied %d commands", n)
	}
	if id, err := l.Submit(ctx, []byte(localSpec)); err != nil || id != "local-1" {
		t.Fatalf("good submission after the refused ones: %q %v", id, err)
	}
}

func TestLocalConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		tune func(*coordinator.LocalConfig)
	}{
		{"zero ttl", func(c *coordinator.LocalConfig) { c.LeaseTTL = 0 }},
		{"ttl over a day", func(c *coordinator.LocalConfig) { c.LeaseTTL = 25 * time.Hour }},
		{"zero attempts", func(c *coordinator.LocalConfig) { c.MaxAttempts = 0 }},
		{"too many attempts", func(c *coordinator.LocalConfig) { c.MaxAttempts = 1001 }},
		{"no clock start", func(c *coordinator.LocalConfig) { c.Start = time.Time{} }},
	}
	for _, c := range cases {
		cfg := coordinator.DefaultLocalConfig()
		c.tune(&cfg)
		if _, err := coordinator.NewLocal(cfg); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if err := coordinator.DefaultLocalConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
}
