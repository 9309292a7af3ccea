package sim

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas"
)

// fakeClock is a wall clock that stands still; After hands its waits to the test.
type fakeClock struct {
	now   time.Time
	waits chan time.Duration
	fire  chan time.Time
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits <- d
	return c.fire
}

func TestRealtimePacing(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0), waits: make(chan time.Duration, 1), fire: make(chan time.Time, 1)}
	cfg := DefaultConfig(mustLine(t, "446"))
	cfg.NoRender = true
	cfg.Realtime = true
	cfg.Now, cfg.After = clk.Now, clk.After
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if f, err := a.NextFrame(ctx); err != nil || f.Seq != 0 {
		t.Fatalf("first frame: %v %v", f.Seq, err)
	}
	type res struct {
		f   arenas.Frame
		err error
	}
	next := func(ctx context.Context) chan res {
		ch := make(chan res, 1)
		go func() {
			f, err := a.NextFrame(ctx)
			ch <- res{f, err}
		}()
		return ch
	}
	// The second frame waits one frame period on the wall clock.
	got := next(ctx)
	if d := <-clk.waits; d != cfg.Calibration.FramePeriod {
		t.Fatalf("waited %v, want %v", d, cfg.Calibration.FramePeriod)
	}
	select {
	case r := <-got:
		t.Fatalf("frame delivered before its time: %+v", r)
	default:
	}
	clk.fire <- clk.now
	if r := <-got; r.err != nil || r.f.Seq != 1 {
		t.Fatalf("second frame: %v %v", r.f.Seq, r.err)
	}
	// A cancelled wait returns the context's error.
	cctx, cancel := context.WithCancel(ctx)
	got = next(cctx)
	<-clk.waits
	cancel()
	if r := <-got; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", r.err)
	}
	// Close unblocks a pending frame.
	got = next(ctx)
	<-clk.waits
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-got; !errors.Is(r.err, arenas.ErrClosed) {
		t.Fatalf("pending frame after Close: %v", r.err)
	}
}

// Responses fade under long exposure (habituation) and animals tire over repeated episodes.
func TestHabituationAndTiring(t *testing.T) {
	line := mustLine(t, "301")
	var early, late float64
	for seed := uint64(1); seed <= 20; seed++ {
		m, err := NewModel(DefaultBehaviour(), line, 17.9, seed, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3*1800; i++ { // 30 min of light
			m.Advance(1.0/3, true)
			switch {
			case i == 30:
				early += m.Effect()
			case i == 3*1800-1:
				late += m.Effect()
			}
		}
	}
	if late > 0.8*early {
		t.Errorf("no habituation: response %.2f after 10 s, %.2f after 30 min of light", early/20, late/20)
	}
	// The same animal over four 20-minute episodes slows down.
	var first, last float64
	for seed := uint64(1); seed <= 10; seed++ {
		m, err := NewModel(DefaultBehaviour(), mustLine(t, "73"), 17.9, seed, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for ep := 0; ep < 4; ep++ {
			if ep > 0 {
				m.NextEpisode(0, 0, 0)
			}
			for i := 0; i < 3*1200; i++ {
				m.Advance(1.0/3, false)
			}
			switch ep {
			case 0:
				first += m.Odometer()
			case 3:
				last += m.Odometer()
			}
		}
	}
	if last > 0.9*first {
		t.Errorf("no tiring: path %.1f mm in the first episode, %.1f mm in the fourth", first/10, last/10)
	}
}

// Some animals respond weakly: responsiveness is bimodal as the catalogue says.
func TestWeakResponders(t *testing.T) {
	line := mustLine(t, "446")
	weak := 0
	const n = 400
	for seed := uint64(1); seed <= n; seed++ {
		m, err := NewModel(DefaultBehaviour(), line, 17.9, seed, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if m.Responsiveness() < 0.35 {
			weak++
		}
	}
	f := float64(weak) / n
	if want := line.Response.WeakFraction; f < want-0.05 || f > want+0.05 {
		t.Fatalf("weak responders %.3f, want about %v", f, want)
	}
}

// A dimmer light evokes a weaker response.
func TestIntensity(t *testing.T) {
	line := mustLine(t, "446")
	eff := func(intensity float64) float64 {
		cfg := DefaultConfig(line)
		cfg.NoRender = true
		cfg.Seed = 4
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		ctx := context.Background()
		if err := a.SetLight(ctx, arenas.Light{On: true, Intensity: intensity}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			if _, err := a.NextFrame(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return a.Model().Effect()
	}
	full, half, def := eff(1), eff(0.5), eff(0)
	if full <= 0 || def != full || math.Abs(half-full/2) > 0.05*full {
		t.Fatalf("effect at full %v, half %v, default %v", full, half, def)
	}
	cfg := DefaultConfig(line)
	cfg.NoRender = true
	a, _ := New(cfg)
	if err := a.SetLight(context.Background(), arenas.Light{On: true, Intensity: 1.5}); err == nil {
		t.Fatal("intensity 1.5 accepted")
	}
}

func TestRealtimeSpeed(t *testing.T) {
	// At Speed 10 the second frame is due a tenth of a frame period after the first.
	clk := &fakeClock{now: time.Unix(1000, 0), waits: make(chan time.Duration, 1), fire: make(chan time.Time, 1)}
	cfg := DefaultConfig(mustLine(t, "446"))
	cfg.NoRender, cfg.Realtime, cfg.Speed = true, true, 10
	cfg.Now, cfg.After = clk.Now, clk.After
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.NextFrame(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := a.NextFrame(ctx); done <- err }()
	if d := <-clk.waits; d != cfg.Calibration.FramePeriod/10 {
		t.Fatalf("waited %v, want %v", d, cfg.Calibration.FramePeriod/10)
	}
	clk.fire <- clk.now
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cfg.Speed = -1
	if _, err := New(cfg); err == nil {
		t.Error("a negative speed was accepted")
	}
}
