package sac

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/optoloop/optoloop/agentlib/internal/cputime"
	"github.com/optoloop/optoloop/agentlib/nn"
	"github.com/optoloop/optoloop/agentlib/replay"
)

func randomBatch(seed uint64, n, size int) *replay.Batch {
	rng := rand.New(rand.NewPCG(seed, 99))
	b := replay.NewBatch(n)
	for i := range b.S {
		b.S[i] = float32(rng.NormFloat64())
		b.S2[i] = float32(rng.NormFloat64())
	}
	for i := range b.A {
		b.A[i] = rng.IntN(2)
		b.R[i] = float32(rng.NormFloat64() * 0.5)
	}
	return b
}

func newAgent(t testing.TB, cfg Config, seed uint64) *Agent {
	a, err := New(cfg, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func pattern(m *nn.MLP, ws *nn.Workspace) string {
	var b []byte
	for l := 0; l+1 < m.Layers(); l++ {
		for _, v := range ws.Hidden(l) {
			b = append(b, map[bool]byte{true: '1', false: '0'}[v > 0])
		}
	}
	return string(b)
}

// fdCheck compares grads[i] with central finite differences of loss() over a random subset of
// the parameters, skipping steps that cross a ReLU kink (kink() changes).
func fdCheck(t *testing.T, name string, params, grads []float32, loss func() float64, kink func() string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	const eps = 1e-3
	base := kink()
	checked, nonzero := 0, 0
	for k := 0; k < 300; k++ {
		i := rng.IntN(len(params))
		old := params[i]
		params[i] = old + eps
		lp := loss()
		kp := kink()
		params[i] = old - eps
		lm := loss()
		km := kink()
		params[i] = old
		if kp != base || km != base {
			continue
		}
		checked++
		num := (lp - lm) / (2 * eps)
		an := float64(grads[i])
		if an != 0 {
			nonzero++
		}
		if math.Abs(num-an) > 1e-4+2e-2*math.Abs(num) {
			t.Errorf("%s: parameter %d: analytic %.6g, finite differences %.6g", name, i, an, num)
		}
	}
	if checked < 200 || nonzero < 50 {
		t.Fatalf("%s: only %d entries checked (%d non-zero)", name, checked, nonzero)
	}
}

func TestGradientsMatchFiniteDifferences(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BatchSize = 16
	a := newAgent(t, cfg, 1)
	b := randomBatch(2, cfg.BatchSize, cfg.ObsSize)
	// Move away from the initial point so that the targets, Q values and policy are not trivial.
	for range 30 {
		a.Update(b)
	}
	b = randomBatch(3, cfg.BatchSize, cfg.ObsSize)
	a.gradients(b)
	alpha := a.Alpha()

	fdCheck(t, "critic 1", a.Q1.Params, a.Q1.Grads, func() float64 { l1, _, _ := a.criticLoss(b); return l1 },
		func() string { return pattern(a.Q1, a.wsQ1) })
	a.gradients(b)
	fdCheck(t, "critic 2", a.Q2.Params, a.Q2.Grads, func() float64 { _, l2, _ := a.criticLoss(b); return l2 },
		func() string { return pattern(a.Q2, a.wsQ2) })
	a.gradients(b) // restores minQ at the unperturbed critics
	fdCheck(t, "actor", a.Actor.Params, a.Actor.Grads, func() float64 { l, _ := a.actorLoss(b, alpha); return l },
		func() string { return pattern(a.Actor, a.wsA) })

	// Temperature: the loss is linear in log alpha with the entropy held fixed.
	a.gradients(b)
	la := float64(a.logAlpha[0])
	_, ent := a.actorLoss(b, alpha)
	const eps = 1e-3
	lp, _ := a.alphaLoss(la+eps, ent)
	lm, _ := a.alphaLoss(la-eps, ent)
	if num, an := (lp-lm)/(2*eps), float64(a.gLogAlpha[0]); math.Abs(num-an) > 1e-6 || an == 0 {
		t.Fatalf("temperature: analytic %v, finite differences %v", an, num)
	}
	if want := ent - cfg.TargetEntropy(); math.Abs(float64(a.gLogAlpha[0])-want) > 1e-6 {
		t.Fatalf("temperature gradient %v, want entropy - target = %v", a.gLogAlpha[0], want)
	}
}

func TestDeterministicForASeed(t *testing.T) {
	cfg := DefaultConfig()
	x, y, z := newAgent(t, cfg, 7), newAgent(t, cfg, 7), newAgent(t, cfg, 8)
	for i := range 40 {
		b := randomBatch(uint64(i), cfg.BatchSize, cfg.ObsSize)
		x.Update(b)
		y.Update(b)
		z.Update(b)
	}
	for i := range x.Actor.Params {
		if x.Actor.Params[i] != y.Actor.Params[i] || x.Q2.Params[i] != y.Q2.Params[i] {
			t.Fatal("same seed and batches gave different parameters")
		}
	}
	if x.Actor.Params[0] == z.Actor.Params[0] {
		t.Fatal("different seeds gave the same parameters")
	}
}

func TestTargetCriticsMoveEveryTargetEveryUpdates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TargetEvery = 3
	cfg.IndependentTargetInit = false
	a := newAgent(t, cfg, 3)
	init := append([]float32(nil), a.Q1T.Params...)
	for i := range a.Q1.Params {
		if a.Q1.Params[i] != init[i] {
			t.Fatal("target critic does not start as a copy of the critic")
		}
	}
	b := randomBatch(1, cfg.BatchSize, cfg.ObsSize)
	a.Update(b)
	a.Update(b)
	for i := range init {
		if a.Q1T.Params[i] != init[i] {
			t.Fatal("target moved before TargetEvery updates")
		}
	}
	a.Update(b)
	for i := range init {
		want := init[i]*(1-0.005) + a.Q1.Params[i]*0.005
		if math.Abs(float64(a.Q1T.Params[i]-want)) > 1e-6 {
			t.Fatalf("target param %d: %v, want %v", i, a.Q1T.Params[i], want)
		}
	}
	cfg.IndependentTargetInit = true
	ind := newAgent(t, cfg, 3)
	if ind.Q1T.Params[0] == ind.Q1.Params[0] {
		t.Fatal("IndependentTargetInit copied the critic")
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	a := newAgent(t, cfg, 1)
	for i := range 10 {
		a.Update(randomBatch(uint64(i), cfg.BatchSize, cfg.ObsSize))
	}
	data, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := newAgent(t, cfg, 2)
	if err := b.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 20; i++ {
		batch := randomBatch(uint64(i), cfg.BatchSize, cfg.ObsSize)
		sa, sb := a.Update(batch), b.Update(batch)
		if sa != sb {
			t.Fatalf("update %d: stats differ after restore: %+v vs %+v", i, sa, sb)
		}
	}
	for i := range a.Actor.Params {
		if a.Actor.Params[i] != b.Actor.Params[i] || a.Q1T.Params[i] != b.Q1T.Params[i] {
			t.Fatal("restored agent diverged")
		}
	}
	if b.Updates() != 20 {
		t.Fatalf("updates %d, want 20", b.Updates())
	}

	before := append([]float32(nil), b.Actor.Params...)
	corrupt := append([]byte(nil), data...)
	corrupt[100] ^= 1
	other := DefaultConfig()
	other.Hidden = []int{32, 32}
	small := newAgent(t, other, 1)
	smallData, _ := small.MarshalBinary()
	for name, d := range map[string][]byte{
		"corrupted": corrupt, "truncated": data[:len(data)/2], "empty": nil, "other sizes": smallData,
	} {
		if err := b.UnmarshalBinary(d); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("%s: %v, want ErrCheckpoint", name, err)
		}
	}
	for i := range before {
		if before[i] != b.Actor.Params[i] {
			t.Fatal("a failed restore changed the agent")
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*Config){
		"gamma 1":          func(c *Config) { c.Gamma = 1 },
		"tau 0":            func(c *Config) { c.Tau = 0 },
		"no hidden":        func(c *Config) { c.Hidden = nil },
		"one action":       func(c *Config) { c.Actions = 1 },
		"lr NaN":           func(c *Config) { c.ActorLR = math.NaN() },
		"batch 0":          func(c *Config) { c.BatchSize = 0 },
		"unknown backup":   func(c *Config) { c.Backup = "sarsa" },
		"target every 0":   func(c *Config) { c.TargetEvery = 0 },
		"entropy ratio 2":  func(c *Config) { c.TargetEntropyRatio = 2 },
		"negative decay":   func(c *Config) { c.WeightDecay = -1 },
		"zero width layer": func(c *Config) { c.Hidden = []int{64, 0} },
	}
	for name, f := range bad {
		c := DefaultConfig()
		f(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := New(c, rand.New(rand.NewPCG(1, 1))); err == nil {
			t.Errorf("%s: New accepted", name)
		}
	}
	d := DefaultConfig()
	if d.Gamma != 0.99 || d.Tau != 0.005 || d.TargetEvery != 500 || d.BatchSize != 64 || d.ActorLR != 1e-3 ||
		d.CriticLR != 1e-3 || d.AlphaLR != 1e-3 || math.Abs(d.TargetEntropy()-0.98*math.Log(2)) > 1e-12 ||
		len(d.Hidden) != 2 || d.Hidden[0] != 64 || d.Hidden[1] != 64 || d.ObsSize != 90 || d.Actions != 2 ||
		d.WeightDecay != 0 || !d.IndependentTargetInit {
		t.Fatalf("defaults differ from the reference: %+v", d)
	}
}

func TestUpdateAllocatesNothing(t *testing.T) {
	cfg := DefaultConfig()
	a := newAgent(t, cfg, 1)
	b := randomBatch(1, cfg.BatchSize, cfg.ObsSize)
	if allocs := testing.AllocsPerRun(20, func() { a.Update(b) }); allocs != 0 {
		t.Fatalf("Update allocates %v times", allocs)
	}
}

func BenchmarkUpdate(b *testing.B) {
	cfg := DefaultConfig()
	a := newAgent(b, cfg, 1)
	batch := randomBatch(1, cfg.BatchSize, cfg.ObsSize)
	b.ReportAllocs()
	stop := cputime.Start(b)
	for b.Loop() {
		a.Update(batch)
	}
	stop()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// TestRewardScaleMultipliesRewards checks that an agent with RewardScale k trained on rewards r
// follows exactly an agent with scale 1 trained on rewards k r, and not one trained on r.
func TestRewardScaleMultipliesRewards(t *testing.T) {
	scaled := DefaultConfig()
	scaled.RewardScale = 4
	x, y, z := newAgent(t, scaled, 7), newAgent(t, DefaultConfig(), 7), newAgent(t, DefaultConfig(), 7)
	for i := range 20 {
		b := randomBatch(uint64(i), scaled.BatchSize, scaled.ObsSize)
		x.Update(b)
		z.Update(b)
		for k := range b.R {
			b.R[k] *= 4
		}
		y.Update(b)
	}
	differs := false
	for i := range x.Q1.Params {
		if math.Abs(float64(x.Q1.Params[i]-y.Q1.Params[i])) > 1e-5 {
			t.Fatalf("Q1 parameter %d: scale 4 gave %v, rewards x 4 gave %v", i, x.Q1.Params[i], y.Q1.Params[i])
		}
		differs = differs || x.Q1.Params[i] != z.Q1.Params[i]
	}
	if !differs {
		t.Fatal("reward scale 4 trained the critics as scale 1 did")
	}
}

// TestBehaviourBackupBootstrapsWithTheRecordedNextAction checks the critics' target under
// BehaviourBackup: y = scale r + gamma min(Q1t, Q2t)(s', a'_data), whatever the actor says.
func TestBehaviourBackupBootstrapsWithTheRecordedNextAction(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Backup = BehaviourBackup
	cfg.RewardScale = 3
	a := newAgent(t, cfg, 11)
	b := randomBatch(4, cfg.BatchSize, cfg.ObsSize)
	rng := rand.New(rand.NewPCG(8, 8))
	for i := range b.A2 {
		b.A2[i] = rng.IntN(2)
	}
	q1 := append([]float32(nil), a.Q1T.Forward(a.Q1T.NewWorkspace(b.N), b.S2)...)
	q2 := append([]float32(nil), a.Q2T.Forward(a.Q2T.NewWorkspace(b.N), b.S2)...)
	a.targets(b, a.Alpha())
	for r := range b.N {
		j := b.A2[r]
		want := 3*float64(b.R[r]) + cfg.Gamma*float64(min(q1[r*2+j], q2[r*2+j]))
		if d := math.Abs(float64(a.y[r]) - want); d > 1e-4 {
			t.Fatalf("row %d: target %v, want %v", r, a.y[r], want)
		}
	}
	// The actor does not enter the target: another actor gives the same targets.
	y := append([]float32(nil), a.y...)
	a.Actor.InitXavier(rand.New(rand.NewPCG(99, 99)))
	a.targets(b, a.Alpha())
	for r := range y {
		if a.y[r] != y[r] {
			t.Fatalf("row %d: the actor changed the behaviour target from %v to %v", r, y[r], a.y[r])
		}
	}
	// The policy backup does depend on the actor and not on A2.
	p := newAgent(t, DefaultConfig(), 11)
	p.targets(b, p.Alpha())
	yp := append([]float32(nil), p.y...)
	for i := range b.A2 {
		b.A2[i] = 1 - b.A2[i]
	}
	p.targets(b, p.Alpha())
	for r := range yp {
		if p.y[r] != yp[r] {
			t.Fatalf("row %d: the recorded next action changed the policy target", r)
		}
	}
	// A behaviour agent trains (and stays deterministic) through Update.
	x, z := newAgent(t, cfg, 5), newAgent(t, cfg, 5)
	for i := range 5 {
		bb := randomBatch(uint64(i), cfg.BatchSize, cfg.ObsSize)
		copy(bb.A2, bb.A)
		x.Update(bb)
		z.Update(bb)
	}
	for i := range x.Q1.Params {
		if x.Q1.Params[i] != z.Q1.Params[i] {
			t.Fatal("two behaviour-backup agents with one seed and one data diverged")
		}
	}
}

// TestCollectionBackupAveragesTheNextLight checks the critics' target under CollectionBackup:
// y = scale r + gamma ((1 - P2) min(Q1t, Q2t)(s', off) + P2 min(Q1t, Q2t)(s', on)), whatever the
// actor or the recorded next action say.
func TestCollectionBackupAveragesTheNextLight(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Backup = CollectionBackup
	cfg.RewardScale = 3
	a := newAgent(t, cfg, 12)
	b := randomBatch(5, cfg.BatchSize, cfg.ObsSize)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range b.P2 {
		b.P2[i] = []float32{0, 1, 0.1, 0.5}[rng.IntN(4)]
		b.A2[i] = rng.IntN(2)
	}
	q1 := append([]float32(nil), a.Q1T.Forward(a.Q1T.NewWorkspace(b.N), b.S2)...)
	q2 := append([]float32(nil), a.Q2T.Forward(a.Q2T.NewWorkspace(b.N), b.S2)...)
	a.targets(b, a.Alpha())
	for r := range b.N {
		p := float64(b.P2[r])
		want := 3*float64(b.R[r]) + cfg.Gamma*((1-p)*float64(min(q1[r*2], q2[r*2]))+p*float64(min(q1[r*2+1], q2[r*2+1])))
		if d := math.Abs(float64(a.y[r]) - want); d > 1e-4 {
			t.Fatalf("row %d: target %v, want %v", r, a.y[r], want)
		}
	}
	y := append([]float32(nil), a.y...)
	a.Actor.InitXavier(rand.New(rand.NewPCG(98, 98)))
	for i := range b.A2 {
		b.A2[i] = 1 - b.A2[i]
	}
	a.targets(b, a.Alpha())
	for r := range y {
		if a.y[r] != y[r] {
			t.Fatalf("row %d: the actor or the recorded next action changed the collection target from %v to %v", r, y[r], a.y[r])
		}
	}
	cfg.Actions = 3
	if err := cfg.Validate(); err == nil {
		t.Fatal("the collection backup accepted 3 actions")
	}
}

// TestGreedyBackupBootstrapsWithTheActorsLikeliestLight checks the critics' target under
// GreedyBackup: y = scale r + gamma min(Q1t, Q2t)(s', argmax_a pi(a|s')), the action the actor
// prefers whatever the recorded next action, and no entropy term.
func TestGreedyBackupBootstrapsWithTheActorsLikeliestLight(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Backup = GreedyBackup
	cfg.RewardScale = 3
	a := newAgent(t, cfg, 13)
	b := randomBatch(6, cfg.BatchSize, cfg.ObsSize)
	q1 := append([]float32(nil), a.Q1T.Forward(a.Q1T.NewWorkspace(b.N), b.S2)...)
	q2 := append([]float32(nil), a.Q2T.Forward(a.Q2T.NewWorkspace(b.N), b.S2)...)
	logits := append([]float32(nil), a.Actor.Forward(a.Actor.NewWorkspace(b.N), b.S2)...)
	a.targets(b, a.Alpha())
	on := 0
	for r := range b.N {
		j := 0
		if logits[r*2+1] > logits[r*2] {
			j, on = 1, on+1
		}
		want := 3*float64(b.R[r]) + cfg.Gamma*float64(min(q1[r*2+j], q2[r*2+j]))
		if d := math.Abs(float64(a.y[r]) - want); d > 1e-4 {
			t.Fatalf("row %d: target %v, want %v", r, a.y[r], want)
		}
	}
	if on == 0 || on == b.N {
		t.Fatalf("the actor preferred light in %d of %d rows: the check needs both", on, b.N)
	}
	// The recorded next action does not enter; another actor changes the target.
	y := append([]float32(nil), a.y...)
	for i := range b.A2 {
		b.A2[i] = 1 - b.A2[i]
	}
	a.targets(b, a.Alpha())
	for r := range y {
		if a.y[r] != y[r] {
			t.Fatalf("row %d: the recorded next action changed the greedy target", r)
		}
	}
	a.Actor.InitXavier(rand.New(rand.NewPCG(97, 97)))
	a.targets(b, a.Alpha())
	changed := false
	for r := range y {
		changed = changed || a.y[r] != y[r]
	}
	if !changed {
		t.Fatal("another actor left every greedy target unchanged")
	}
}
