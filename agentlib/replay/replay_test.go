package replay

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/optoloop/optoloop/agentlib/internal/cputime"
	"github.com/optoloop/optoloop/agentlib/obs"
)

// track returns n records of episode ep; frame i is at x = base+i (so positions identify
// frames), lost where lost[i].
func mkTrack(ep string, base float64, n int, lost map[int]bool) []Record {
	var out []Record
	for i := range n {
		out = append(out, Record{T: float64(i) / 3, X: base + float64(i), Y: 2 * base, Body: 0.1, Head: 0.2,
			OK: !lost[i], Light: i%4 == 0, Episode: ep})
	}
	return out
}

func TestWindowsNeverCrossEpisodesOrLostFrames(t *testing.T) {
	m, err := NewMemory(Config{})
	if err != nil {
		t.Fatal(err)
	}
	a := mkTrack("a", 1000, 40, map[int]bool{20: true}) // windows: starts 0..4 (frames 0-19) and 21..24 (21-39)
	b := mkTrack("b", 5000, 17, nil)                    // windows: starts 0, 1
	// Interleave the two episodes in chunks, as workers' streams would.
	chunks := [][]Record{a[:10], b[:5], a[10:30], b[5:], a[30:]}
	for _, c := range chunks {
		if err := m.Append(c...); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := m.Windows(), 5+4+2; got != want {
		t.Fatalf("windows %d, want %d", got, want)
	}
	if m.Len() != 57 || m.Episodes() != 2 {
		t.Fatalf("len %d episodes %d", m.Len(), m.Episodes())
	}
	valid := map[string]bool{}
	for s := 0; s <= 4; s++ {
		valid[fmt.Sprint(1000+s)] = true
	}
	for s := 21; s <= 24; s++ {
		valid[fmt.Sprint(1000+s)] = true
	}
	valid["5000"], valid["5001"] = true, true
	rng := rand.New(rand.NewPCG(1, 2))
	batch := NewBatch(64)
	seen := map[int]bool{}
	for range 20 {
		if err := m.Sample(rng, batch); err != nil {
			t.Fatal(err)
		}
		for k := range batch.N {
			s := batch.S[k*obs.Size : (k+1)*obs.Size]
			s2 := batch.S2[k*obs.Size : (k+1)*obs.Size]
			// Without augmentation the target is the recorded one, (0, 0): the first frame's
			// relative x is its absolute x, which names the track and the window start.
			first := int(math.Round(float64(s[4*obs.Frames]) * obs.PosScale))
			if !valid[fmt.Sprint(first)] {
				t.Fatalf("sampled window starting at x %v is not valid", first)
			}
			seen[first] = true
			base := 1000
			if first >= 5000 {
				base = 5000
			}
			for i := 0; i+1 < obs.Frames; i++ {
				if s2[4*obs.Frames+i] != s[4*obs.Frames+i+1] {
					t.Fatal("s' is not s shifted by one frame")
				}
			}
			xt := float64(first + obs.Frames - 1)
			want := obs.Reward(xt, float64(2*base), xt+1, float64(2*base), 0, 0)
			if math.Abs(float64(batch.R[k])-want) > 1e-6 {
				t.Fatalf("reward %v, want %v (1 px farther)", batch.R[k], want)
			}
			// a_t is the light of frame t = start + 14.
			start := first - base
			if want := (start+obs.Frames-1)%4 == 0; (batch.A[k] == 1) != want {
				t.Fatalf("action %d for window start %d", batch.A[k], start)
			}
		}
	}
	if len(seen) < 5 {
		t.Fatalf("only %d distinct windows sampled", len(seen))
	}
}

func TestEmptyAndBadInput(t *testing.T) {
	m, _ := NewMemory(DefaultConfig())
	rng := rand.New(rand.NewPCG(1, 1))
	if err := m.Sample(rng, NewBatch(4)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty replay: %v, want ErrEmpty", err)
	}
	// 15 frames are not enough for a window with its next frame.
	if err := m.Append(mkTrack("x", 0, 15, nil)...); err != nil {
		t.Fatal(err)
	}
	if err := m.Sample(rng, NewBatch(4)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("15 frames: %v, want ErrEmpty", err)
	}
	bad := []struct {
		name string
		recs []Record
	}{
		{"no episode", []Record{{T: 100, OK: true}}},
		{"time goes back", []Record{{T: 100, OK: true, Episode: "y"}, {T: 99, OK: true, Episode: "y"}}},
		{"time repeats across calls", []Record{{T: 0, OK: true, Episode: "x"}}},
		{"NaN position", []Record{{T: 1, OK: true, Episode: "z", X: math.NaN()}}},
	}
	for _, c := range bad {
		if err := m.Append(c.recs...); err == nil {
			t.Errorf("%s: no error", c.name)
		}
		if m.Len() != 15 || m.Episodes() != 1 {
			t.Fatalf("%s: a failed append changed the replay (len %d)", c.name, m.Len())
		}
	}
	if _, err := NewMemory(Config{Augment: true, MaxShift: -1}); err == nil {
		t.Fatal("negative shift accepted")
	}
}

func TestAugmentationRecomputesRewardAndRotates(t *testing.T) {
	m, _ := NewMemory(DefaultConfig())
	// A worm moving right at 10 px per frame with body angle 0.
	var recs []Record
	for i := range 100 {
		recs = append(recs, Record{T: float64(i), X: 10 * float64(i), Y: 0, OK: true, Episode: "e", TargetX: 1e5})
	}
	if err := m.Append(recs...); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	b := NewBatch(2000)
	if err := m.Sample(rng, b); err != nil {
		t.Fatal(err)
	}
	var maxD, sumSin, sumCos, sumAbsSin float64
	for k := range b.N {
		s := b.S[k*obs.Size:]
		s2 := b.S2[k*obs.Size:]
		dx0, dy0 := lastOffset(s)
		dx1, dy1 := lastOffset(s2)
		want := obs.Reward(dx0, dy0, dx1, dy1, 0, 0)
		if math.Abs(float64(b.R[k])-want) > 1e-4 {
			t.Fatalf("sample %d: reward %v, recomputed from the observation %v", k, b.R[k], want)
		}
		maxD = max(maxD, math.Hypot(dx0, dy0))
		// As the reference: the shift is applied after the rotation, so the worm's offset from
		// the target at frame t is the shift itself, inside the axis-aligned square.
		if math.Abs(dx0) > 900+1e-3 || math.Abs(dy0) > 900+1e-3 {
			t.Fatalf("sample %d: offset (%v, %v) outside the +-900 px square", k, dx0, dy0)
		}
		// The body angle is rotated like the positions: the step direction (s' minus s of the
		// last frame) must still point along the body angle.
		last := obs.Frames - 1
		body := math.Atan2(float64(s[last]), float64(s[obs.Frames+last]))
		step := math.Atan2(dy1-dy0, dx1-dx0)
		if d := math.Remainder(body-step, 2*math.Pi); math.Abs(d) > 1e-3 {
			t.Fatalf("sample %d: body angle %v but the worm moves along %v", k, body, step)
		}
		sumSin += float64(s[last])
		sumCos += float64(s[obs.Frames+last])
		sumAbsSin += math.Abs(float64(s[last]))
	}
	if maxD > 900*math.Sqrt2+1e-3 || maxD < 900 {
		t.Fatalf("largest target distance %v, want shifts up to 900 px per axis", maxD)
	}
	if n := float64(b.N); math.Abs(sumSin/n) > 0.1 || math.Abs(sumCos/n) > 0.1 || sumAbsSin/n < 0.5 {
		t.Fatalf("rotations not uniform: mean sin %v, mean cos %v", sumSin/n, sumCos/n)
	}
}

// TestMirrorReflectsHalfTheSamples: with Mirror, a worm always turning left (counter-clockwise
// in the image) is seen turning right in about half the samples, each sample with the reward
// of its own observation; without it, never.
func TestMirrorReflectsHalfTheSamples(t *testing.T) {
	// A worm on a circle of radius 1000 px, 1/100 rad per frame, heading along the tangent.
	var recs []Record
	for i := range 200 {
		a := float64(i) / 100
		recs = append(recs, Record{T: float64(i) / 3, X: 1000 * math.Cos(a), Y: 1000 * math.Sin(a),
			Body: a + math.Pi/2, Head: a + math.Pi/2, OK: true, Episode: "e"})
	}
	for _, mirror := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.Mirror = mirror
		m, _ := NewMemory(cfg)
		if err := m.Append(recs...); err != nil {
			t.Fatal(err)
		}
		b := NewBatch(4000)
		if err := m.Sample(rand.New(rand.NewPCG(5, 6)), b); err != nil {
			t.Fatal(err)
		}
		right := 0
		for k := range b.N {
			s, s2 := b.S[k*obs.Size:], b.S2[k*obs.Size:]
			last := obs.Frames - 1
			// The turn is the sign of the body angle's change from s's last frame to s2's.
			b0 := math.Atan2(float64(s[last]), float64(s[obs.Frames+last]))
			b1 := math.Atan2(float64(s2[last]), float64(s2[obs.Frames+last]))
			if math.Remainder(b1-b0, 2*math.Pi) < 0 {
				right++
			}
			dx0, dy0 := lastOffset(s)
			dx1, dy1 := lastOffset(s2)
			if want := obs.Reward(dx0, dy0, dx1, dy1, 0, 0); math.Abs(float64(b.R[k])-want) > 1e-4 {
				t.Fatalf("mirror %v, sample %d: reward %v, recomputed from the observation %v", mirror, k, b.R[k], want)
			}
		}
		share := float64(right) / float64(b.N)
		if !mirror && right != 0 {
			t.Fatalf("without mirror %d of %d samples turn right", right, b.N)
		}
		if mirror && math.Abs(share-0.5) > 0.05 {
			t.Fatalf("with mirror %.3f of the samples turn right, want about half", share)
		}
	}
}

// lastOffset is the worm's offset from the target, in reference pixels, at the newest frame of
// the observation s (as obs.EncodeTrig writes it).
func lastOffset(s []float32) (dx, dy float64) {
	last := obs.Frames - 1
	return float64(s[4*obs.Frames+last]) * obs.PosScale, float64(s[5*obs.Frames+last]) * obs.PosScale
}

func BenchmarkSample64(b *testing.B) {
	m, _ := NewMemory(DefaultConfig())
	for e := range 20 {
		if err := m.Append(mkTrack(fmt.Sprint(e), 0, 3600, nil)...); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	batch := NewBatch(64)
	b.ReportAllocs()
	stop := cputime.Start(b)
	for b.Loop() {
		if err := m.Sample(rng, batch); err != nil {
			b.Fatal(err)
		}
	}
	stop()
	b.ReportMetric(float64(b.N)*64/b.Elapsed().Seconds(), "transitions/s")
}

// TestConcurrentAppendAndSample runs a writer and samplers at once (for the race detector) and
// checks that every sample stays within one episode.
func TestConcurrentAppendAndSample(t *testing.T) {
	m, _ := NewMemory(Config{})
	if err := m.Append(mkTrack("seed", 0, 40, nil)...); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	errs := make(chan error, 4)
	go func() {
		defer close(done)
		for e := range 30 {
			recs := mkTrack(fmt.Sprint("w", e), float64(1000*(e+1)), 50, nil)
			for i := 0; i < len(recs); i += 10 {
				if err := m.Append(recs[i : i+10]...); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	for g := range 3 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			b := NewBatch(16)
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				if err := m.Sample(rng, b); err != nil {
					errs <- err
					return
				}
				for k := range b.N {
					// Positions x = base + i within an episode: s spans exactly 14 px.
					first, last := b.S[4*obs.Frames+k*obs.Size], b.S[4*obs.Frames+obs.Frames-1+k*obs.Size]
					if d := float64(last-first) * obs.PosScale; math.Abs(d-14) > 0.01 {
						errs <- fmt.Errorf("window spans %v px, not one episode", d)
						return
					}
				}
			}
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if m.Episodes() != 31 || m.Len() != 40+30*50 {
		t.Fatalf("episodes %d, records %d", m.Episodes(), m.Len())
	}
}

// TestReachReward checks that a step ending within obs.ReachRadius of the target earns the
// configured reach reward (the reference's 4 by default) and other steps the progress reward.
func TestReachReward(t *testing.T) {
	for _, reach := range []float64{obs.ReachReward, 0} {
		cfg := DefaultConfig()
		cfg.Augment = false
		cfg.ReachReward = reach
		m, err := NewMemory(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// A worm moving right at 1 px per frame toward a target at x = 1000, 10 px short of
		// it after the last frame: every step is within the reach radius.
		var recs []Record
		for i := range 16 {
			recs = append(recs, Record{T: float64(i), X: 975 + float64(i), OK: true, Episode: "e", TargetX: 1000})
		}
		// And one far away, earning the progress reward only.
		for i := range 16 {
			recs = append(recs, Record{T: float64(i), X: float64(i), OK: true, Episode: "far", TargetX: 1000})
		}
		if err := m.Append(recs...); err != nil {
			t.Fatal(err)
		}
		b := NewBatch(200)
		if err := m.Sample(rand.New(rand.NewPCG(1, 2)), b); err != nil {
			t.Fatal(err)
		}
		var near, far int
		for k := range b.N {
			// x - target x of the next frame (feature 4, last frame of s').
			dx := float64(b.S2[k*obs.Size+5*obs.Frames-1]) * obs.PosScale
			want := obs.ProgressGain * 1 / obs.PosScale
			if math.Abs(dx) <= obs.ReachRadius {
				want = reach
				near++
			} else {
				far++
			}
			if math.Abs(float64(b.R[k])-want) > 1e-6 {
				t.Fatalf("reach %v: sample %d at %v px from the target: reward %v, want %v", reach, k, dx, b.R[k], want)
			}
		}
		if near == 0 || far == 0 {
			t.Fatalf("reach %v: %d near and %d far samples; want both", reach, near, far)
		}
	}
}

// TestNextActionIsTheLightRecordedAtTheNextFrame checks Batch.A2: the light chosen after frame
// t+1 of the sampled window, beside A, the light chosen after frame t.
// patternLight is the irregular light pattern of patternBatch's episode.
func patternLight(i int) bool { return i%7 == 2 || i%5 == 0 }

// patternBatch samples 500 transitions without augmentation from one episode of 200 tracked
// frames in which the worm is at x = 10 i on frame i and the light follows patternLight; frame
// returns the frame t of sample k (from its observation's last x).
func patternBatch(t *testing.T, cfg Config, seed uint64) (b *Batch, frame func(k int) int) {
	t.Helper()
	cfg.Augment = false
	m, err := NewMemory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for i := range 200 {
		recs = append(recs, Record{T: float64(i), X: 10 * float64(i), OK: true, Light: patternLight(i), Episode: "e"})
	}
	if err := m.Append(recs...); err != nil {
		t.Fatal(err)
	}
	b = NewBatch(500)
	if err := m.Sample(rand.New(rand.NewPCG(seed, seed)), b); err != nil {
		t.Fatal(err)
	}
	return b, func(k int) int { return int(math.Round(float64(b.S[k*obs.Size+4*obs.Frames+obs.Frames-1]) * 900 / 10)) }
}

func TestNextActionIsTheLightRecordedAtTheNextFrame(t *testing.T) {
	b, frame := patternBatch(t, DefaultConfig(), 1)
	light := patternLight
	for k := range b.N {
		i := frame(k)
		if b.A[k] != map[bool]int{false: 0, true: 1}[light(i)] || b.A2[k] != map[bool]int{false: 0, true: 1}[light(i+1)] {
			t.Fatalf("sample %d at frame %d: actions %d, %d, want the lights of frames %d and %d (%v, %v)", k, i, b.A[k], b.A2[k], i, i+1, light(i), light(i+1))
		}
	}
}

// TestCollectionNextLightProbability: P2 is the collection schedule's P at a 3-frame block's
// first frame (t+1 a multiple of 3, frames counted from the episode's first record) and the
// light of frame t inside a block, whatever lit the frames.
func TestCollectionNextLightProbability(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CollectionP = 0.3
	b, frame := patternBatch(t, cfg, 2)
	light := patternLight
	starts := 0
	for k := range b.N {
		i := frame(k)
		want := float32(0)
		switch {
		case (i+1)%BlockFrames == 0:
			want = 0.3
			starts++
		case light(i):
			want = 1
		}
		if b.P2[k] != want {
			t.Fatalf("sample %d at frame %d: P2 %v, want %v", k, i, b.P2[k], want)
		}
	}
	if starts == 0 || starts == b.N {
		t.Fatalf("%d of %d samples at a block start: the test samples too few of each", starts, b.N)
	}
}

// TestLightCost: Config.LightCost is taken from the reward of every step whose action (the
// light chosen after frame t) is on, and from no other.
func TestLightCost(t *testing.T) {
	const cost = 0.25
	cfg := DefaultConfig()
	cfg.LightCost = cost
	b, frame := patternBatch(t, cfg, 3)
	lit := 0
	for k := range b.N {
		// The worm moves 10 px per frame, the target at x = 0 behind it: progress -10 px.
		want := -obs.ProgressGain * 10 / obs.PosScale
		if patternLight(frame(k)) {
			want -= cost
			lit++
		}
		if math.Abs(float64(b.R[k])-want) > 1e-6 {
			t.Fatalf("sample %d at frame %d (light %v): reward %v, want %v", k, frame(k), patternLight(frame(k)), b.R[k], want)
		}
	}
	if lit == 0 || lit == b.N {
		t.Fatalf("%d of %d samples lit: the test samples too few of each", lit, b.N)
	}
	cfg.LightCost = -1
	if _, err := NewMemory(cfg); err == nil {
		t.Fatal("a negative light cost was accepted")
	}
}
