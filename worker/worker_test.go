package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/optoloop/optoloop/agentlib/obs"
	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/arenas/track"
	"github.com/optoloop/optoloop/episode"
)

func openSim(t *testing.T, line string, seed uint64, render bool) (*sim.Arena, *track.Observer) {
	t.Helper()
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	l, err := cat.Line(line)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig(l)
	cfg.Seed = seed
	cfg.NoRender = !render
	a, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	o, err := track.NewObserver(a, track.DefaultConfig(a.Calibration()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return a, o
}

func schedule(t *testing.T, s string, seed uint64) *episode.Schedule {
	t.Helper()
	p, err := episode.ParsePolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	return p.Schedule(seed)
}

// policyFunc adapts a function to Policy.
type policyFunc func(o []float32) int

func (f policyFunc) Act(o []float32) int { return f(o) }

func TestRunEpisodeRecordsAndMetrics(t *testing.T) {
	for _, render := range []bool{false, true} {
		name := "no render"
		seconds := 120.0
		if render {
			name, seconds = "rendered and tracked", 20
		}
		t.Run(name, func(t *testing.T) {
			a, o := openSim(t, "446", 7, render)
			mem, err := replay.NewMemory(replay.DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.ChunkFrames = 7
			w, err := New(cfg, a, o, mem)
			if err != nil {
				t.Fatal(err)
			}
			res, err := w.RunEpisode(context.Background(), Episode{
				ID: "e1", Seconds: seconds, TargetCM: [2]float64{0, -1.5}, Schedule: schedule(t, "random:0.3", 1),
			})
			if err != nil {
				t.Fatal(err)
			}
			want := int(seconds * 3)
			if res.Frames != want || len(res.Records) != want {
				t.Fatalf("ran %d steps with %d records, want %d", res.Frames, len(res.Records), want)
			}
			if mem.Len() != want {
				t.Fatalf("replay holds %d records, want %d (chunks must all be flushed)", mem.Len(), want)
			}
			if a.LightState().On {
				t.Fatal("light on after the episode")
			}
			if res.LightOn == 0 || res.LightOn == res.Frames {
				t.Fatalf("random:0.3 lit %d of %d steps", res.LightOn, res.Frames)
			}
			// The tracker needs a few frames to settle head and tail before it is confident.
			if res.Lost > 8 {
				t.Fatalf("lost %d of %d frames", res.Lost, res.Frames)
			}
			cal := a.Calibration()
			if res.TargetPx != [2]float64{cal.CenterX, cal.CenterY - 1.5*cal.PxPerCM} {
				t.Fatalf("target %v px", res.TargetPx)
			}
			// The closest approach is what the records say.
			closest := 1e9
			for i, r := range res.Records {
				if r.Episode != "e1" || (i > 0 && r.T <= res.Records[i-1].T) {
					t.Fatalf("record %d: %+v", i, r)
				}
				if r.OK {
					d := dist(r.X, r.Y, r.TargetX, r.TargetY) / ReferencePxPerCM
					closest = min(closest, d)
				}
			}
			if diff := closest - res.Metrics.ClosestCM; diff > 1e-9 || diff < -1e-9 {
				t.Fatalf("closest approach %v cm, records say %v", res.Metrics.ClosestCM, closest)
			}
			if o := res.Outcome(); o.PolicyVersion != 0 || o.ClosestCM != res.Metrics.ClosestCM || o.LightFraction != float64(res.LightOn)/float64(res.Frames) {
				t.Fatalf("outcome %+v of a scheduled episode", o)
			}
		})
	}
}

func TestPolicySeesObservationAndVersionIsRecorded(t *testing.T) {
	a, o := openSim(t, "73", 3, false)
	w, err := New(DefaultConfig(), a, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	pol := policyFunc(func(ob []float32) int {
		calls++
		if len(ob) != obs.Size {
			t.Fatalf("observation of %d numbers", len(ob))
		}
		// Light on when the worm is left of the target: a state-dependent policy.
		if ob[4*obs.Frames+obs.Frames-1] < 0 {
			return 1
		}
		return 0
	})
	res, err := w.RunEpisode(context.Background(), Episode{ID: "p", Seconds: 30, TargetCM: [2]float64{1.5, 0}, Policy: pol, PolicyVersion: 42})
	if err != nil {
		t.Fatal(err)
	}
	// The policy acts from the first full observation on (obs.Frames tracked frames); before
	// that the light stays off.
	if want := res.Frames - res.Lost - (obs.Frames - 1); calls != want {
		t.Fatalf("policy called %d times for %d tracked steps, want %d", calls, res.Frames-res.Lost, want)
	}
	out := res.Outcome()
	if out.PolicyVersion != 42 || out.Frames != res.Frames || out.LightFraction != res.ChosenLightFraction() ||
		out.LostFraction != res.LostFraction() || out.ClosestCM != res.Metrics.ClosestCM || out.Seconds != res.Metrics.Seconds {
		t.Fatalf("outcome %+v of result %+v", out, res.Metrics)
	}
	if err := out.Validate(); err != nil {
		t.Fatal(err)
	}
	tracked := 0
	for i, r := range res.Records {
		if r.OK && r.PolicyVersion != 42 {
			t.Fatalf("record without the policy version: %+v", r)
		}
		if !r.OK {
			continue
		}
		tracked++
		if tracked < obs.Frames {
			if r.Light {
				t.Fatalf("light on at frame %d, before the first full observation", i)
			}
			continue
		}
		if r.Light != (r.X < r.TargetX) {
			t.Fatalf("light %v with worm at x=%v, target x=%v", r.Light, r.X, r.TargetX)
		}
	}
}

func TestLightOffOnEveryExitPath(t *testing.T) {
	tests := []struct {
		name    string
		policy  func(cancel context.CancelFunc, step *int) Policy
		wantErr func(error) bool
	}{
		{
			name: "policy panics",
			policy: func(_ context.CancelFunc, step *int) Policy {
				return policyFunc(func([]float32) int {
					*step++
					if *step == 20 {
						panic("boom")
					}
					return 1
				})
			},
			wantErr: func(err error) bool { return errors.Is(err, ErrPolicyPanic) },
		},
		{
			name: "context cancelled",
			policy: func(cancel context.CancelFunc, step *int) Policy {
				return policyFunc(func([]float32) int {
					*step++
					if *step == 20 {
						cancel()
					}
					return 1
				})
			},
			wantErr: func(err error) bool { return errors.Is(err, context.Canceled) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, o := openSim(t, "446", 5, false)
			w, err := New(DefaultConfig(), a, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			step := 0
			_, err = w.RunEpisode(ctx, Episode{ID: "x", Seconds: 60, Policy: tt.policy(cancel, &step)})
			if !tt.wantErr(err) {
				t.Fatalf("error %v", err)
			}
			if a.LightState().On {
				t.Fatal("light left on")
			}
		})
	}
}

// lossy wraps an observer and reports frames [from, to) as lost.
type lossy struct {
	Observer
	i, from, to int
}

func (l *lossy) NextPose(ctx context.Context) (arenas.Frame, arenas.Pose, error) {
	f, p, err := l.Observer.NextPose(ctx)
	if l.i >= l.from && l.i < l.to {
		p = arenas.Pose{}
	}
	l.i++
	return f, p, err
}

func TestLostFramesSwitchLightOffAndHoldObservation(t *testing.T) {
	a, o := openSim(t, "446", 9, false)
	lo := &lossy{Observer: o, from: 30, to: 40}
	w, err := New(DefaultConfig(), a, lo, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen [][]float32
	pol := policyFunc(func(ob []float32) int {
		seen = append(seen, append([]float32(nil), ob...))
		return 1
	})
	res, err := w.RunEpisode(context.Background(), Episode{ID: "l", Seconds: 20, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 10 {
		t.Fatalf("lost %d frames, want 10", res.Lost)
	}
	for i, r := range res.Records {
		lost := i >= 30 && i < 40
		if r.OK == lost {
			t.Fatalf("record %d ok=%v", i, r.OK)
		}
		if lost && r.Light {
			t.Fatalf("light on during lost frame %d", i)
		}
		// The first obs.Frames-1 frames fill the observation: light off.
		if warm := i < obs.Frames-1; !lost && r.Light == warm {
			t.Fatalf("light %v on tracked frame %d under an always-on policy", r.Light, i)
		}
	}
	if want := 50 - (obs.Frames - 1); len(seen) != want {
		t.Fatalf("policy consulted %d times, want %d (tracked steps after the first full observation)", len(seen), want)
	}
}

func TestRunEpisodeRejectsBadEpisodes(t *testing.T) {
	a, o := openSim(t, "446", 1, false)
	w, err := New(DefaultConfig(), a, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	always := schedule(t, "always", 1)
	pol := policyFunc(func([]float32) int { return 1 })
	tests := []struct {
		name string
		ep   Episode
	}{
		{"neither schedule nor policy", Episode{ID: "a", Seconds: 10}},
		{"both schedule and policy", Episode{ID: "b", Seconds: 10, Schedule: always, Policy: pol}},
		{"negative seconds", Episode{ID: "c", Seconds: -1, Schedule: always}},
		{"target outside the plate", Episode{ID: "d", Seconds: 10, Schedule: always, TargetCM: [2]float64{3, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := w.RunEpisode(context.Background(), tt.ep); err == nil {
				t.Fatal("accepted")
			}
			if a.LightState().On {
				t.Fatal("light switched on by a refused episode")
			}
		})
	}
}

func dist(x0, y0, x1, y1 float64) float64 {
	dx, dy := x1-x0, y1-y0
	return math.Hypot(dx, dy)
}

// TestWatchSeesEveryStep: Episode.Watch is called once per step, in order, after the light is
// set: the light it is told is the arena's light at that moment and the step's record, its
// latency is positive, and a rendered frame's pixels are there during the call.
func TestWatchSeesEveryStep(t *testing.T) {
	for _, render := range []bool{false, true} {
		t.Run(map[bool]string{false: "no render", true: "rendered"}[render], func(t *testing.T) {
			a, o := openSim(t, "446", 4, render)
			w, err := New(DefaultConfig(), a, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			var ticks []Tick
			ep := Episode{ID: "w", Seconds: 10, TargetCM: [2]float64{0.5, 0}, Schedule: schedule(t, "random:0.5", 3)}
			ep.Watch = func(tk Tick) {
				if tk.Light != a.LightState().On {
					t.Errorf("step %d: told light %v, the arena's is %v", tk.Index, tk.Light, a.LightState().On)
				}
				if (tk.Frame.Pix != nil) != render || (render && len(tk.Frame.Pix) != tk.Frame.Width*tk.Frame.Height) {
					t.Errorf("step %d: %d pixels of a %dx%d frame", tk.Index, len(tk.Frame.Pix), tk.Frame.Width, tk.Frame.Height)
				}
				tk.Frame.Pix, tk.Pose.Midline = nil, nil // not to be kept
				ticks = append(ticks, tk)
			}
			res, err := w.RunEpisode(context.Background(), ep)
			if err != nil {
				t.Fatal(err)
			}
			if len(ticks) != res.Frames || res.Frames != 30 {
				t.Fatalf("watch saw %d steps of %d", len(ticks), res.Frames)
			}
			lit := 0
			for i, tk := range ticks {
				r := res.Records[i]
				if tk.Index != i || tk.Steps != 30 || tk.Light != r.Light || tk.OK != r.OK || tk.TargetPx != res.TargetPx {
					t.Fatalf("tick %d: %+v, record %+v", i, tk, r)
				}
				if !(tk.Latency > 0) {
					t.Fatalf("tick %d: latency %v", i, tk.Latency)
				}
				if tk.OK && (tk.Pose.X*(ReferencePxPerCM/a.Calibration().PxPerCM) != r.X) {
					t.Fatalf("tick %d: pose x %v, record x %v (reference px)", i, tk.Pose.X, r.X)
				}
				if tk.Light {
					lit++
				}
			}
			if lit == 0 || lit == len(ticks) {
				t.Fatalf("random:0.5 lit %d of %d ticks", lit, len(ticks))
			}
		})
	}
}

// TestBehaviourProbabilityIsRecorded: every record carries the probability its light had. A
// random-light schedule: P at each block's first frame, then the block's light; an exploring
// policy: (1 - explore) * greedy + explore * P on the frames it decides, and the light is a
// random draw on about explore of them; frames before the first full observation: 0.
func TestBehaviourProbabilityIsRecorded(t *testing.T) {
	a, o := openSim(t, "73", 5, false)
	w, err := New(DefaultConfig(), a, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.RunEpisode(context.Background(), Episode{ID: "s", Seconds: 120, Schedule: schedule(t, "random:0.3", 5)})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res.Records {
		want := 0.0
		switch {
		case !r.OK:
		case i%episode.BlockFrames == 0:
			want = 0.3
		case r.Light:
			want = 1
		}
		if r.BehaviourP != want {
			t.Fatalf("schedule frame %d (light %v, ok %v): behaviour p %v, want %v", i, r.Light, r.OK, r.BehaviourP, want)
		}
	}

	a, o = openSim(t, "73", 6, false)
	w, err = New(DefaultConfig(), a, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	always := policyFunc(func([]float32) int { return 1 })
	ep := Episode{ID: "x", Seconds: 240, Policy: always, PolicyVersion: 3, Explore: 0.5, ExploreP: 0.2, ExploreRand: rand.New(rand.NewPCG(1, 2))}
	res, err = w.RunEpisode(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	decided, on := 0, 0
	tracked := 0
	for i, r := range res.Records {
		if r.OK {
			tracked++
		}
		if !r.OK || tracked < obs.Frames {
			if r.BehaviourP != 0 || r.Light {
				t.Fatalf("frame %d before a full observation or lost: light %v, behaviour p %v", i, r.Light, r.BehaviourP)
			}
			continue
		}
		decided++
		if r.Light {
			on++
		}
		if math.Abs(r.BehaviourP-0.6) > 1e-12 {
			t.Fatalf("frame %d: behaviour p %v, want 0.6", i, r.BehaviourP)
		}
	}
	// Light on with probability 0.6 per decided frame: 4 standard deviations.
	if f, sd := float64(on)/float64(decided), math.Sqrt(0.6*0.4/float64(decided)); math.Abs(f-0.6) > 4*sd {
		t.Fatalf("light on in %d of %d decided frames (%.3f), want about 0.6", on, decided, f)
	}
	ep.ExploreRand = nil
	if _, err := w.RunEpisode(context.Background(), ep); err == nil {
		t.Fatal("an exploring episode without a random source ran")
	}
}

// lightPolicy is a policy that acts on the light observation (obs.LightSize numbers).
type lightPolicy func(o []float32) int

func (f lightPolicy) Act(o []float32) int { return f(o) }
func (lightPolicy) ObservationSize() int  { return obs.LightSize }

// A policy that acts on the light observation sees, for each frame of its window, the light under
// which that frame was captured (the light chosen after the frame before), never the light it is
// choosing; and the window is the replay's for the same records.
func TestLightObservationShowsTheLightBeforeEachFrame(t *testing.T) {
	a, o := openSim(t, "301", 5, false)
	w, err := New(DefaultConfig(), a, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen [][]float32
	calls := 0
	pol := lightPolicy(func(ob []float32) int {
		if len(ob) != obs.LightSize {
			t.Fatalf("observation of %d numbers, want %d", len(ob), obs.LightSize)
		}
		seen = append(seen, append([]float32(nil), ob...))
		calls++
		// Pulses of two frames every five: the light's history is not a function of the pose.
		if calls%5 < 2 {
			return 1
		}
		return 0
	})
	res, err := w.RunEpisode(context.Background(), Episode{ID: "l", Seconds: 40, TargetCM: [2]float64{1, 0}, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 0 {
		t.Fatalf("%d lost frames on an unrendered arena", res.Lost)
	}
	recs := res.Records
	// The policy decides on frames obs.Frames-1 .. len-1; its k-th observation is of frames
	// t-14..t with t = obs.Frames-1+k.
	if len(seen) != len(recs)-(obs.Frames-1) {
		t.Fatalf("%d observations for %d frames", len(seen), len(recs))
	}
	lit := 0
	for k, ob := range seen {
		t0 := k // the window's oldest frame
		poses := make([]obs.Pose, obs.Frames)
		for i := range poses {
			r := recs[t0+i]
			poses[i] = obs.Pose{X: r.X, Y: r.Y, Body: r.Body, Head: r.Head, Light: t0+i > 0 && recs[t0+i-1].Light}
		}
		want := make([]float32, obs.LightSize)
		obs.Encode(want, poses, recs[0].TargetX, recs[0].TargetY, 0)
		for i, v := range want {
			if math.Abs(float64(v-ob[i])) > 1e-6 {
				t.Fatalf("observation %d number %d = %v, want %v (the light chosen after the frame before each frame)", k, i, ob[i], v)
			}
		}
		if ob[obs.Features*obs.Frames+obs.Frames-1] == 1 {
			lit++
		}
	}
	if lit == 0 || lit == len(seen) {
		t.Fatalf("newest frame lit in %d of %d observations: the pattern did not show", lit, len(seen))
	}
	// The replay encodes the same windows: sampled without augmentation, every transition's s
	// and s' are observations the policy saw (its windows start at frames 0..len-15, the
	// replay's s at 0..len-16 and s' one frame on).
	m, err := replay.NewMemory(replay.Config{ReachReward: obs.ReachReward})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Append(recs...); err != nil {
		t.Fatal(err)
	}
	b := replay.NewBatchOf(64, obs.LightSize)
	if err := m.Sample(rand.New(rand.NewPCG(1, 2)), b); err != nil {
		t.Fatal(err)
	}
	saw := func(x []float32) bool {
		return slices.ContainsFunc(seen, func(ob []float32) bool { return slicesAlmostEqual(ob, x) })
	}
	for k := range b.N {
		s := b.S[k*obs.LightSize : (k+1)*obs.LightSize]
		s2 := b.S2[k*obs.LightSize : (k+1)*obs.LightSize]
		if !saw(s) || !saw(s2) {
			t.Fatalf("replay transition %d: s (seen %v) or s' (seen %v) is not an observation the policy saw", k, saw(s), saw(s2))
		}
		// s' is s one frame on: its light row is s's shifted, ending with the action.
		light, light2 := s[obs.Features*obs.Frames:], s2[obs.Features*obs.Frames:]
		for i := 0; i+1 < obs.Frames; i++ {
			if light2[i] != light[i+1] {
				t.Fatalf("transition %d: light row of s' %v is not that of s %v shifted", k, light2, light)
			}
		}
		if light2[obs.Frames-1] != float32(b.A[k]) {
			t.Fatalf("transition %d: s' newest frame captured under light %v, the action was %d", k, light2[obs.Frames-1], b.A[k])
		}
	}
}

func slicesAlmostEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-5 {
			return false
		}
	}
	return true
}

// TestDecisionFramesHoldTheLight: with Episode.DecisionFrames 3 the policy is consulted only at
// every third step (counted from the episode's first) and the light holds its decision on the
// two steps after it, behaviour probability 1 or 0; a lost frame is dark whatever the decision,
// and a block whose first frame was lost (or came before the first full observation) stays dark.
func TestDecisionFramesHoldTheLight(t *testing.T) {
	a, o := openSim(t, "446", 9, false)
	lo := &lossy{Observer: o, from: 31, to: 40}
	w, err := New(DefaultConfig(), a, lo, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	pol := policyFunc(func([]float32) int {
		calls++
		return calls % 2 // on, off, on, ...
	})
	res, err := w.RunEpisode(context.Background(), Episode{ID: "d", Seconds: 40, Policy: pol, DecisionFrames: 3})
	if err != nil {
		t.Fatal(err)
	}
	tracked, decisions, lit := 0, 0, 0
	block := false // the light the block's first frame decided
	for i, r := range res.Records {
		if r.OK {
			tracked++
		}
		if i%3 == 0 {
			block = false
			if r.OK && tracked >= obs.Frames {
				decisions++
				block = decisions%2 == 1
			}
		}
		want := r.OK && block
		if r.Light != want {
			t.Fatalf("frame %d (ok %v, decision %d): light %v, want %v", i, r.OK, decisions, r.Light, want)
		}
		if wantP := map[bool]float64{true: 1, false: 0}[want]; r.BehaviourP != wantP {
			t.Fatalf("frame %d: behaviour p %v, want %v", i, r.BehaviourP, wantP)
		}
		if r.Light {
			lit++
		}
	}
	if calls != decisions || decisions < 20 {
		t.Fatalf("policy consulted %d times, want %d (the tracked block starts after the first full observation)", calls, decisions)
	}
	if lit < 20 {
		t.Fatalf("light on in %d frames: the test did not see the held light", lit)
	}
}
