package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/station"
)

// awayReplay is a replay whose store can be taken away: while down, every call fails with
// fleet.ErrUnavailable, as a Redis that is restarting does.
type awayReplay struct {
	fleet.Replay
	down     atomic.Bool
	refusals atomic.Int64
	// refused is closed at the first refusal.
	refused     chan struct{}
	refusedOnce sync.Once
	// slow, when set, is how long every append takes (a store that answers, behind).
	slow time.Duration
}

func (r *awayReplay) Append(ctx context.Context, c fleet.Chunk) error {
	if r.slow > 0 {
		t := time.NewTimer(r.slow)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if r.down.Load() {
		r.refusals.Add(1)
		r.refusedOnce.Do(func() { close(r.refused) })
		return fmt.Errorf("replay: connection refused: %w", fleet.ErrUnavailable)
	}
	return r.Replay.Append(ctx, c)
}

// runOne runs one collect episode of line 446 on a plate the test holds, with the replay taken
// away by hook; it returns the episode's item after the attempt, the worker's config and the
// plate's light at the end.
func runOne(t *testing.T, r *awayReplay, buffer int, hook func(s station.Step)) (api.Item, bool) {
	t.Helper()
	w := newWorld(t, collectYAML(`"446"`, 2))
	r.Replay = w.replay
	st, plate := plateStation(t, "446")
	cfg := fleet.DefaultWorkerConfig()
	cfg.ID, cfg.ArenaID = "w", "arena-w"
	cfg.Station = hooked{st, func(_ context.Context, _ station.Episode, s station.Step) error { hook(s); return nil }}
	cfg.Broker = w.local
	cfg.Replay, cfg.Params, cfg.Tracks = r, w.params, w.tracks
	cfg.LeaseTTL, cfg.ReportBackoff = testTTL, time.Millisecond
	cfg.ReplayBuffer = buffer
	cfg.StoreRetry = 5 * time.Second
	wk, err := fleet.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.local.RegisterWorker(context.Background(), api.RegisterWorkerCmd{ID: "w", ArenaID: "arena-w", Line: "446"}); err != nil {
		t.Fatal(err)
	}
	step(t, wk)
	it := w.item(t, 0)
	if it.State == api.StateDone {
		// Every frame reached the replay, in order, under the accepted lease.
		got := 0
		for i, c := range w.chunksOf(t, "446", it.ID, it.Result.Token) {
			if c.Seq != i {
				t.Fatalf("chunk %d has seq %d", i, c.Seq)
			}
			got += len(c.Records)
		}
		if got != it.Result.Outcome.Frames {
			t.Fatalf("replay holds %d frames of the episode, its report says %d", got, it.Result.Outcome.Frames)
		}
	}
	return it, plate.LightState().On
}

func TestWorkerRidesOutAnUnavailableReplay(t *testing.T) {
	// The replay goes away for a third of the episode and comes back: the closed loop never
	// waits for it, the chunks queue, and the episode is reported once all of them are stored.
	r := &awayReplay{refused: make(chan struct{})}
	it, lit := runOne(t, r, 1800, func(s station.Step) {
		switch s.Index {
		case 10:
			r.down.Store(true)
		case 30:
			// Back only once the writer has been refused at least once (it runs beside the
			// loop, at its own pace).
			select {
			case <-r.refused:
			case <-time.After(10 * time.Second):
			}
			r.down.Store(false)
		}
	})
	if it.State != api.StateDone || len(it.Failures) != 0 {
		t.Fatalf("episode %s, failures %q; want done at the first attempt", it.State, it.Failures)
	}
	if r.refusals.Load() == 0 {
		t.Error("the replay was never refused: the test did not take it away")
	}
	if lit {
		t.Error("light on after the episode")
	}
}

func TestWorkerWaitsForASlowReplay(t *testing.T) {
	// A replay that answers, but slowly, with a buffer of 20 frames (chunks of 16): the loop
	// waits for room instead of failing the episode; only an unavailable store fails it.
	r := &awayReplay{slow: 5 * time.Millisecond, refused: make(chan struct{})}
	it, lit := runOne(t, r, 20, func(station.Step) {})
	if it.State != api.StateDone || len(it.Failures) != 0 {
		t.Fatalf("episode %s, failures %q; want done at the first attempt", it.State, it.Failures)
	}
	if lit {
		t.Error("light on after the episode")
	}
}

func TestWorkerFailsAnEpisodeWhoseRecordsOutgrowTheBuffer(t *testing.T) {
	// The replay is away from the start and the buffer holds 20 frames (the station sends
	// chunks of 16): the second chunk passes the bound, the episode ends with the light off and
	// the attempt is failed, naming the full buffer, rather than losing frames.
	r := &awayReplay{refused: make(chan struct{})}
	r.down.Store(true)
	it, lit := runOne(t, r, 20, func(station.Step) {})
	if it.State != api.StatePending || len(it.Failures) != 1 || !strings.Contains(it.Failures[0], fleet.ErrBufferFull.Error()) {
		t.Fatalf("episode %s, failures %q; want pending again after a buffer-full failure", it.State, it.Failures)
	}
	if lit {
		t.Error("light on after the failed episode")
	}
}

// recordingBroker records the progress carried by heartbeats.
type recordingBroker struct {
	fleet.Broker
	mu       sync.Mutex
	progress []api.Progress
	// beat is signalled (without blocking) at every heartbeat that carried progress.
	beat chan struct{}
}

func (b *recordingBroker) Heartbeat(ctx context.Context, req api.HeartbeatRequest) (*api.Item, error) {
	if req.Progress != nil {
		b.mu.Lock()
		b.progress = append(b.progress, *req.Progress)
		b.mu.Unlock()
		select {
		case b.beat <- struct{}{}:
		default:
		}
	}
	return b.Broker.Heartbeat(ctx, req)
}

func TestWorkerDrainFinishesItsEpisodeAndLeasesNoMore(t *testing.T) {
	w := newWorld(t, collectYAML(`"446"`, 3))
	drain := make(chan struct{})
	var once sync.Once
	st := hooked{simStation(t, "446"), func(_ context.Context, _ station.Episode, s station.Step) error {
		if s.Index == 5 {
			once.Do(func() { close(drain) })
		}
		return nil
	}}
	wk := newWorker(t, w, w.local, "w", st)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := wk.Serve(ctx, drain); err != nil {
		t.Fatal(err)
	}
	done := 0
	for _, it := range w.view(t).Items {
		switch it.State {
		case api.StateDone:
			done++
		case api.StateLeased:
			t.Errorf("item %s still leased after the drain", it.ID)
		}
	}
	if done != 1 {
		t.Fatalf("%d episodes done after a drain during the first; want exactly that one", done)
	}
	if err := wk.Deregister(ctx, "drained"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.local.Lease(ctx, api.LeaseRequest{Holder: "w", Type: "episode"}); !errors.Is(err, api.ErrNotRegistered) {
		t.Errorf("lease after deregister: %v", err)
	}
	if err := wk.Deregister(ctx, "again"); err != nil {
		t.Errorf("a second deregister: %v", err)
	}
}

// slowCheckpoints holds every round's checkpoint until two more heartbeats carried progress:
// the learner stores a round's progress before it saves, so the second one carries it.
type slowCheckpoints struct {
	fleet.Checkpoints
	rb *recordingBroker
}

func (c slowCheckpoints) Save(ctx context.Context, experiment, task string, files map[string][]byte) error {
	for range 2 {
		select {
		case <-c.rb.beat:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return c.Checkpoints.Save(ctx, experiment, task, files)
}

func TestLearnerHeartbeatsCarryItsUpdates(t *testing.T) {
	base := collected(t, trainYAML)
	rb := &recordingBroker{Broker: base.local, beat: make(chan struct{})}
	cfg := fleet.DefaultLearnerConfig()
	cfg.ID, cfg.Broker = "l", rb
	cfg.Replay, cfg.Params, cfg.Checkpoints = base.replay, base.params, slowCheckpoints{base.ckpts, rb}
	cfg.WorkDir, cfg.LeaseTTL, cfg.ReportBackoff = t.TempDir(), testTTL, time.Millisecond
	l, err := fleet.NewLearner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := base.local.RegisterLearner(context.Background(), api.RegisterLearnerCmd{ID: "l"}); err != nil {
		t.Fatal(err)
	}
	step(t, l)
	rb.mu.Lock()
	defer rb.mu.Unlock()
	// trainYAML: 2 members x 30 updates in rounds of 10.
	const total = 60
	if len(rb.progress) == 0 {
		t.Fatal("no heartbeat carried progress")
	}
	last := int64(-1)
	for _, p := range rb.progress {
		if p.Total != total || p.Done < last || p.Done%20 != 0 {
			t.Fatalf("progress %v; want totals of %d and done growing by rounds of 20", rb.progress, total)
		}
		last = p.Done
	}
	if last < 20 {
		t.Errorf("progress never passed the first round: %v", rb.progress)
	}
	if got := base.task(t); got.State != api.StateDone {
		t.Errorf("task %s after the learner's step; want done", got.State)
	}
}

func TestWorkerStopsWhenItsArenaFailsEpisodeAfterEpisode(t *testing.T) {
	// A station that fails every episode (a camera unplugged) fails MaxArenaFailures attempts,
	// then the worker stops with ErrArenaFailing instead of failing every episode of its line;
	// a success in between resets the count.
	w := newWorld(t, collectYAML(`"446"`, 6))
	var n atomic.Int32
	broken := hooked{simStation(t, "446"), func(_ context.Context, _ station.Episode, s station.Step) error {
		if s.Index != 3 {
			return nil
		}
		if k := n.Add(1); k == 2 {
			return nil // the second episode succeeds
		}
		return errors.New("camera delivered no frame")
	}}
	wk := newWorker(t, w, w.local, "w", broken)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := wk.Run(ctx)
	if !errors.Is(err, fleet.ErrArenaFailing) || !strings.Contains(err.Error(), "camera delivered no frame") {
		t.Fatalf("Run: %v; want ErrArenaFailing with the station's reason", err)
	}
	// Episodes: fail, succeed, fail, fail, fail: then stop.
	if got := n.Load(); got != 5 {
		t.Errorf("%d episodes started; want 5 (one failure, one success, three failures)", got)
	}
	failed := 0
	for _, it := range w.view(t).Items {
		failed += len(it.Failures)
		if it.State == api.StateFailed {
			t.Errorf("item %s failed for good: the broken arena used up its attempts", it.ID)
		}
	}
	if failed != 4 {
		t.Errorf("%d failed attempts recorded, want 4", failed)
	}
}

// counting is a station that counts the episodes it runs at once into running (the most into
// most).
type counting struct {
	fleet.Station
	running, most *atomic.Int32
}

func (c counting) Run(ctx context.Context, e station.Episode) (station.Result, error) {
	n := c.running.Add(1)
	defer c.running.Add(-1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	return c.Station.Run(ctx, e)
}

func TestWorkersSharingAGateRunOneEpisodeAtATime(t *testing.T) {
	// Two workers share a gate of one slot: they run their line's episodes one at a time, and
	// the waiting worker holds no lease it cannot run yet.
	w := newWorld(t, collectYAML(`"446"`, 4))
	gate := make(chan struct{}, 1)
	var running, most atomic.Int32
	var leasedTwice atomic.Bool
	hook := func(_ context.Context, _ station.Episode, s station.Step) error {
		if s.Index == 10 && w.view(t).Counts.Episodes[api.StateLeased] > 1 {
			leasedTwice.Store(true)
		}
		return nil
	}
	var workers []*fleet.Worker
	for _, id := range []string{"a", "b"} {
		cfg := fleet.DefaultWorkerConfig()
		cfg.ID, cfg.ArenaID = id, "arena-"+id
		cfg.Station = counting{hooked{simStation(t, "446"), hook}, &running, &most}
		cfg.Broker = w.local
		cfg.Replay, cfg.Params, cfg.Tracks = w.replay, w.params, w.tracks
		cfg.LeaseTTL, cfg.ReportBackoff, cfg.Gate = testTTL, time.Millisecond, gate
		wk, err := fleet.NewWorker(cfg)
		if err != nil {
			t.Fatal(err)
		}
		workers = append(workers, wk)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, id := range []string{"a", "b"} {
		if err := w.local.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: id, ArenaID: "arena-" + id, Line: "446"}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				worked, err := wk.Step(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if !worked {
					return // collection is done
				}
			}
		}()
	}
	wg.Wait()
	if got := w.view(t).Counts.Episodes[api.StateDone]; got != 4 {
		t.Fatalf("%d episodes done, want 4", got)
	}
	if most.Load() != 1 || leasedTwice.Load() {
		t.Errorf("at most %d episodes ran at once (want 1); two leases held at once: %v", most.Load(), leasedTwice.Load())
	}
}
