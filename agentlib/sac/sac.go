// Package sac implements discrete soft actor-critic (Haarnoja et al. 2018; Christodoulou 2019)
// exactly as the reference study trained its agents (Li, Kreiman and Ramanathan 2024, code
// RLWorms: Tutorials/SAC.py and train_agents_main.py): an actor and twin critics, each
// obs -> 64 -> 64 -> 2 with ReLU and Xavier-uniform initialisation, target critics updated softly
// with tau 0.005 every 500 updates, Adam with learning rate 1e-3 and no weight decay, automatic
// temperature with target entropy 0.98 log(actions), batch 64, gamma 0.99. As in the reference
// code, the target critics are initialised independently (never hard-copied from the critics).
//
// One update on a minibatch (s, a, r, s'), all means over the batch:
//
//	y       = RewardScale r + gamma * sum_a' pi(a'|s') (min(Q1t, Q2t)(s', a') - alpha log pi(a'|s'))
//	L_Qi    = mean (Qi(s, a) - y)^2                                  for i = 1, 2
//	L_pi    = mean sum_a pi(a|s) (alpha log pi(a|s) - min(Q1, Q2)(s, a))   (Q held fixed)
//	L_alpha = -log alpha * mean (sum_a pi(a|s) log pi(a|s) + H_target)     (pi held fixed)
//
// With Backup BehaviourBackup the critics' target is instead
//
//	y       = RewardScale r + gamma * min(Q1t, Q2t)(s', a'_data)
//
// with a'_data the action recorded at s' (replay.Batch.A2): as in SARSA (Rummery and Niranjan
// 1994) the critics estimate the values of the policy that collected the data, and the actor,
// unchanged, takes one soft policy-improvement step over them ("one-step" offline RL,
// Brandfonbrener et al. 2021, NeurIPS). If the replay mixes data of several policies, the
// critics estimate that mixture. The default, PolicyBackup, is the reference's.
//
// With Backup CollectionBackup it is
//
//	y       = RewardScale r + gamma * sum_a' beta(a'|s', a) min(Q1t, Q2t)(s', a')
//
// with beta the random-light collection schedule (replay.Batch.P2 = beta(on|s', a)): expected
// SARSA (van Seijen et al. 2009) on a known behaviour, the same target in expectation as
// BehaviourBackup on data the schedule collected, and still the schedule's values on data that
// agents collected (online mode), because the next action is averaged under beta instead of
// read from the data.
//
// With Backup GreedyBackup it is
//
//	y       = RewardScale r + gamma * min(Q1t, Q2t)(s', argmax_a' pi(a'|s'))
//
// the value of the actor's greedy policy, the rule an ensemble acts by (Q-learning through the
// actor, without the entropy term): in online mode, where that policy collects the data, the
// critics value the agents' own continuation.
//
// All three gradients are taken at the parameters before the update, then the actor, critics and
// temperature each take one Adam step; every TargetEvery updates the target critics move toward
// the critics by Tau. There are no terminal states (the reference's mask is always 1).
//
// An Agent is deterministic: the same Config, seed and minibatches give the same parameters.
package sac

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/optoloop/optoloop/agentlib/nn"
	"github.com/optoloop/optoloop/agentlib/obs"
	"github.com/optoloop/optoloop/agentlib/replay"
)

// MaxActions is the largest number of discrete actions an Agent supports.
const MaxActions = 16

// Backup says which policy's values the critics estimate.
type Backup string

const (
	// PolicyBackup bootstraps with the actor's expected soft value at s' (the reference's
	// discrete SAC): the critics estimate the current actor, which the temperature keeps near
	// uniform at the reference's target entropy.
	PolicyBackup Backup = "policy"
	// BehaviourBackup bootstraps with the action the data recorded at s': the critics estimate
	// the policy that collected the data (random light), and the actor is one improvement step
	// over it.
	BehaviourBackup Backup = "behaviour"
	// CollectionBackup bootstraps with the random-light collection schedule's expected value
	// at s' (replay.Batch.P2: the block's light while a 3-frame block lasts, its probability
	// at a block start): the critics estimate the collection's values from data recorded by
	// any policy, which BehaviourBackup does only on the collection's own data.
	CollectionBackup Backup = "collection"
	// GreedyBackup bootstraps with the actor's most likely action at s' (ties to the lower
	// action), the rule an ensemble acts by (policy.Ensemble.Act): the critics estimate the
	// greedy policy the agents act with, so in online mode, where that policy collects the
	// data, the actor improves on its own continuation instead of the collection's.
	GreedyBackup Backup = "greedy"
)

// Config holds every hyperparameter of the agent. The defaults are the reference study's.
type Config struct {
	// ObsSize is the observation length. Default obs.Size (90).
	ObsSize int
	// Hidden lists the hidden layer widths of the actor and of each critic. Default [64, 64].
	Hidden []int
	// Actions is the number of discrete actions (light off, on). Default 2.
	Actions int
	// Gamma is the discount factor. Default 0.99.
	Gamma float64
	// Tau is the soft target update coefficient. Default 0.005.
	Tau float64
	// TargetEvery is the number of updates between soft target updates. Default 500.
	TargetEvery int
	// ActorLR, CriticLR and AlphaLR are the Adam learning rates. Default 1e-3 each.
	ActorLR, CriticLR, AlphaLR float64
	// WeightDecay is the L2 weight decay of the actor's and critics' Adam (torch style, added
	// to the gradient). Default 0, as the reference trained (its DSAC class defaults to 1e-5,
	// but the training script passes 0).
	WeightDecay float64
	// TargetEntropyRatio sets the target entropy to TargetEntropyRatio * log(Actions).
	// Default 0.98.
	TargetEntropyRatio float64
	// InitLogAlpha is the initial log temperature. Default 0 (alpha = 1).
	InitLogAlpha float64
	// BatchSize is the minibatch size. Default 64.
	BatchSize int
	// IndependentTargetInit draws the target critics' initial weights independently, as the
	// reference code did (its target critics were never hard-copied). Default true; false starts
	// them as copies of the critics, as in standard SAC.
	IndependentTargetInit bool
	// RewardScale multiplies every reward before it enters the critics' targets (Haarnoja et
	// al. 2018, where it is SAC's one sensitive hyperparameter). Default 1, as the reference.
	// Adam moves parameters by steps of about the learning rate whatever the loss's scale, so
	// the critics' outputs jitter by a roughly fixed amount per update; on simulated worms at
	// scale 1 that jitter is larger than the light's effect on Q(on) - Q(off) (~0.01)
	// (runner/SCIENCE.md).
	RewardScale float64
	// Backup is the critics' bootstrap target. Default PolicyBackup, as the reference. On line
	// 446 of the simulator the value of light depends on what the light does afterwards
	// (arenas/sim TestLightAdvantageDependsOnTheContinuation, runner/SCIENCE.md).
	Backup Backup
}

// DefaultConfig returns the reference hyperparameters.
func DefaultConfig() Config {
	return Config{
		ObsSize: obs.Size, Hidden: []int{64, 64}, Actions: 2,
		Gamma: 0.99, Tau: 0.005, TargetEvery: 500,
		ActorLR: 1e-3, CriticLR: 1e-3, AlphaLR: 1e-3, WeightDecay: 0,
		TargetEntropyRatio: 0.98, InitLogAlpha: 0, BatchSize: 64, IndependentTargetInit: true,
		RewardScale: 1, Backup: PolicyBackup,
	}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	pos := func(v float64) bool { return v > 0 && !math.IsInf(v, 0) }
	switch {
	case c.ObsSize < 1:
		return fmt.Errorf("sac: obs size %d must be positive", c.ObsSize)
	case len(c.Hidden) == 0:
		return errors.New("sac: at least one hidden layer is needed")
	case c.Actions < 2 || c.Actions > MaxActions:
		return fmt.Errorf("sac: actions %d must be in [2, %d]", c.Actions, MaxActions)
	case !(c.Gamma >= 0 && c.Gamma < 1):
		return fmt.Errorf("sac: gamma %v must be in [0, 1)", c.Gamma)
	case !(c.Tau > 0 && c.Tau <= 1):
		return fmt.Errorf("sac: tau %v must be in (0, 1]", c.Tau)
	case c.TargetEvery < 1:
		return fmt.Errorf("sac: target update interval %d must be positive", c.TargetEvery)
	case !pos(c.ActorLR) || !pos(c.CriticLR) || !pos(c.AlphaLR):
		return fmt.Errorf("sac: learning rates %v, %v, %v must be positive", c.ActorLR, c.CriticLR, c.AlphaLR)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return fmt.Errorf("sac: weight decay %v must be non-negative", c.WeightDecay)
	case !(c.TargetEntropyRatio >= 0 && c.TargetEntropyRatio <= 1):
		return fmt.Errorf("sac: target entropy ratio %v must be in [0, 1]", c.TargetEntropyRatio)
	case math.IsNaN(c.InitLogAlpha) || math.Abs(c.InitLogAlpha) > 20:
		return fmt.Errorf("sac: initial log alpha %v out of range", c.InitLogAlpha)
	case !pos(c.RewardScale):
		return fmt.Errorf("sac: reward scale %v must be positive", c.RewardScale)
	case c.Backup != PolicyBackup && c.Backup != BehaviourBackup && c.Backup != CollectionBackup && c.Backup != GreedyBackup:
		return fmt.Errorf("sac: backup %q must be %q, %q, %q or %q", c.Backup, PolicyBackup, BehaviourBackup, CollectionBackup, GreedyBackup)
	case c.Backup == CollectionBackup && c.Actions != 2:
		return fmt.Errorf("sac: backup %q needs 2 actions (light off, on), got %d", c.Backup, c.Actions)
	case c.BatchSize < 1:
		return fmt.Errorf("sac: batch size %d must be positive", c.BatchSize)
	}
	for _, h := range c.Hidden {
		if h < 1 {
			return fmt.Errorf("sac: hidden width %d must be positive", h)
		}
	}
	return nil
}

// Sizes returns the layer sizes of the actor and of each critic: ObsSize, Hidden..., Actions.
func (c Config) Sizes() []int {
	s := append([]int{c.ObsSize}, c.Hidden...)
	return append(s, c.Actions)
}

// TargetEntropy returns TargetEntropyRatio * log(Actions).
func (c Config) TargetEntropy() float64 { return c.TargetEntropyRatio * math.Log(float64(c.Actions)) }

// Stats describes one update; losses are those before the update's steps.
type Stats struct {
	Q1Loss, Q2Loss float64 // critic losses
	ActorLoss      float64
	AlphaLoss      float64
	Entropy        float64 // mean policy entropy on s (nats)
	Alpha          float64 // temperature used in this update
	MeanQ          float64 // mean over the batch and both critics of Q(s, a)
}

// Agent is one discrete SAC agent. It is not safe for concurrent use.
type Agent struct {
	cfg Config
	// Actor maps an observation to action logits; Q1, Q2 map it to action values; Q1T, Q2T are
	// the target critics.
	Actor, Q1, Q2, Q1T, Q2T *nn.MLP

	logAlpha, gLogAlpha []float32 // length 1
	actorOpt, q1Opt     *nn.Adam
	q2Opt, alphaOpt     *nn.Adam
	updates             int64

	wsA, wsA2, wsQ1, wsQ2, wsQ1T, wsQ2T *nn.Workspace

	y, dq1, dq2, dlogits []float32 // batch buffers
	logp, p              []float64 // actor on s, batch x actions
	minQ                 []float32 // min(Q1, Q2)(s, .), batch x actions
}

// New returns an agent with freshly initialised networks drawn from rng.
func New(cfg Config, rng *rand.Rand) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Hidden = append([]int(nil), cfg.Hidden...)
	sizes := cfg.Sizes()
	n, na := cfg.BatchSize, cfg.Actions
	a := &Agent{cfg: cfg,
		Actor: nn.New(sizes...), Q1: nn.New(sizes...), Q2: nn.New(sizes...),
		Q1T: nn.New(sizes...), Q2T: nn.New(sizes...),
		logAlpha: []float32{float32(cfg.InitLogAlpha)}, gLogAlpha: make([]float32, 1),
		y: make([]float32, n), dq1: make([]float32, n*na), dq2: make([]float32, n*na),
		dlogits: make([]float32, n*na), logp: make([]float64, n*na), p: make([]float64, n*na),
		minQ: make([]float32, n*na),
	}
	// Initialisation order (reference): critics (Q1 then Q2 layers), critic targets, actor.
	a.Q1.InitXavier(rng)
	a.Q2.InitXavier(rng)
	if cfg.IndependentTargetInit {
		a.Q1T.InitXavier(rng)
		a.Q2T.InitXavier(rng)
	} else {
		a.Q1T.CopyFrom(a.Q1)
		a.Q2T.CopyFrom(a.Q2)
	}
	a.Actor.InitXavier(rng)
	np := len(a.Actor.Params)
	a.actorOpt = nn.NewAdam(np, cfg.ActorLR, cfg.WeightDecay)
	a.q1Opt = nn.NewAdam(np, cfg.CriticLR, cfg.WeightDecay)
	a.q2Opt = nn.NewAdam(np, cfg.CriticLR, cfg.WeightDecay)
	a.alphaOpt = nn.NewAdam(1, cfg.AlphaLR, 0)
	a.wsA, a.wsA2 = a.Actor.NewWorkspace(n), a.Actor.NewWorkspace(n)
	a.wsQ1, a.wsQ2 = a.Q1.NewWorkspace(n), a.Q2.NewWorkspace(n)
	a.wsQ1T, a.wsQ2T = a.Q1T.NewWorkspace(n), a.Q2T.NewWorkspace(n)
	return a, nil
}

// Config returns the agent's configuration.
func (a *Agent) Config() Config {
	c := a.cfg
	c.Hidden = append([]int(nil), c.Hidden...)
	return c
}

// Updates returns the number of updates done.
func (a *Agent) Updates() int64 { return a.updates }

// Alpha returns the current temperature.
func (a *Agent) Alpha() float64 { return math.Exp(float64(a.logAlpha[0])) }

// Update does one training step on b and returns its statistics. It panics if b.N differs from
// the configured batch size or the observation size does not match.
func (a *Agent) Update(b *replay.Batch) Stats {
	st := a.gradients(b)
	a.actorOpt.Step(a.Actor.Params, a.Actor.Grads)
	a.q1Opt.Step(a.Q1.Params, a.Q1.Grads)
	a.q2Opt.Step(a.Q2.Params, a.Q2.Grads)
	a.alphaOpt.Step(a.logAlpha, a.gLogAlpha)
	a.updates++
	if a.updates%int64(a.cfg.TargetEvery) == 0 {
		tau := float32(a.cfg.Tau)
		a.Q1T.SoftUpdate(a.Q1, tau)
		a.Q2T.SoftUpdate(a.Q2, tau)
	}
	return st
}

func (a *Agent) checkBatch(b *replay.Batch) {
	n := a.cfg.BatchSize
	if b.N != n || len(b.S) != n*a.cfg.ObsSize || len(b.S2) != n*a.cfg.ObsSize || len(b.A) != n || len(b.R) != n ||
		(a.cfg.Backup == BehaviourBackup && len(b.A2) != n) || (a.cfg.Backup == CollectionBackup && len(b.P2) != n) {
		panic(fmt.Sprintf("sac: batch of %d transitions does not match batch size %d and obs size %d", b.N, n, a.cfg.ObsSize))
	}
}

// logSoftmax writes log pi and pi for each row of logits (n x na) in float64.
func logSoftmax(logits []float32, na int, logp, p []float64) {
	for r := 0; r < len(logits)/na; r++ {
		row := logits[r*na : (r+1)*na]
		m := float64(row[0])
		for _, z := range row[1:] {
			m = max(m, float64(z))
		}
		s := 0.0
		for _, z := range row {
			s += math.Exp(float64(z) - m)
		}
		lse := m + math.Log(s)
		for j, z := range row {
			lp := float64(z) - lse
			logp[r*na+j] = lp
			p[r*na+j] = math.Exp(lp)
		}
	}
}

// targets computes y from s' with the target critics and, for PolicyBackup, the actor at the
// current parameters.
func (a *Agent) targets(b *replay.Batch, alpha float64) {
	na := a.cfg.Actions
	qt1 := a.Q1T.Forward(a.wsQ1T, b.S2)
	qt2 := a.Q2T.Forward(a.wsQ2T, b.S2)
	if a.cfg.Backup == BehaviourBackup {
		for r := 0; r < b.N; r++ {
			j := b.A2[r]
			if j < 0 || j >= na {
				panic(fmt.Sprintf("sac: next action %d out of range", j))
			}
			v := float64(min(qt1[r*na+j], qt2[r*na+j]))
			a.y[r] = float32(a.cfg.RewardScale*float64(b.R[r]) + a.cfg.Gamma*v)
		}
		return
	}
	if a.cfg.Backup == CollectionBackup {
		for r := 0; r < b.N; r++ {
			p := float64(b.P2[r])
			if !(p >= 0 && p <= 1) {
				panic(fmt.Sprintf("sac: next light probability %v out of range", p))
			}
			v := (1-p)*float64(min(qt1[r*na], qt2[r*na])) + p*float64(min(qt1[r*na+1], qt2[r*na+1]))
			a.y[r] = float32(a.cfg.RewardScale*float64(b.R[r]) + a.cfg.Gamma*v)
		}
		return
	}
	logits2 := a.Actor.Forward(a.wsA2, b.S2)
	if a.cfg.Backup == GreedyBackup {
		for r := 0; r < b.N; r++ {
			row := logits2[r*na : (r+1)*na]
			j := 0
			for k, z := range row {
				if z > row[j] {
					j = k
				}
			}
			v := float64(min(qt1[r*na+j], qt2[r*na+j]))
			a.y[r] = float32(a.cfg.RewardScale*float64(b.R[r]) + a.cfg.Gamma*v)
		}
		return
	}
	var lp, pp [MaxActions]float64
	for r := 0; r < b.N; r++ {
		logSoftmax(logits2[r*na:(r+1)*na], na, lp[:na], pp[:na])
		v := 0.0
		for j := 0; j < na; j++ {
			q := float64(min(qt1[r*na+j], qt2[r*na+j]))
			v += pp[j] * (q - alpha*lp[j])
		}
		a.y[r] = float32(a.cfg.RewardScale*float64(b.R[r]) + a.cfg.Gamma*v)
	}
}

// criticLoss runs both critics on s and returns their losses against a.y; with grads it also
// writes dLoss/dQ into dq1, dq2 and the min of the two critics into minQ.
func (a *Agent) criticLoss(b *replay.Batch) (l1, l2, meanQ float64) {
	na, n := a.cfg.Actions, b.N
	q1 := a.Q1.Forward(a.wsQ1, b.S)
	q2 := a.Q2.Forward(a.wsQ2, b.S)
	clear(a.dq1)
	clear(a.dq2)
	inv := 1 / float64(n)
	for r := 0; r < n; r++ {
		act := b.A[r]
		if act < 0 || act >= na {
			panic(fmt.Sprintf("sac: action %d out of range", act))
		}
		e1 := float64(q1[r*na+act]) - float64(a.y[r])
		e2 := float64(q2[r*na+act]) - float64(a.y[r])
		l1 += e1 * e1 * inv
		l2 += e2 * e2 * inv
		meanQ += (float64(q1[r*na+act]) + float64(q2[r*na+act])) * inv / 2
		a.dq1[r*na+act] = float32(2 * e1 * inv)
		a.dq2[r*na+act] = float32(2 * e2 * inv)
		for j := 0; j < na; j++ {
			a.minQ[r*na+j] = min(q1[r*na+j], q2[r*na+j])
		}
	}
	return l1, l2, meanQ
}

// actorLoss runs the actor on s and returns the actor loss against a.minQ at temperature alpha
// and the mean entropy; it writes dLoss/dlogits into a.dlogits.
func (a *Agent) actorLoss(b *replay.Batch, alpha float64) (loss, entropy float64) {
	na, n := a.cfg.Actions, b.N
	logits := a.Actor.Forward(a.wsA, b.S)
	logSoftmax(logits, na, a.logp, a.p)
	inv := 1 / float64(n)
	var c [MaxActions]float64
	for r := 0; r < n; r++ {
		p, lp := a.p[r*na:(r+1)*na], a.logp[r*na:(r+1)*na]
		mean := 0.0
		for j := 0; j < na; j++ {
			// d/dp_j of sum_a p_a (alpha log p_a - Q_a) = alpha log p_j + alpha - Q_j
			c[j] = alpha*lp[j] + alpha - float64(a.minQ[r*na+j])
			loss += p[j] * (alpha*lp[j] - float64(a.minQ[r*na+j])) * inv
			entropy -= p[j] * lp[j] * inv
			mean += p[j] * c[j]
		}
		for j := 0; j < na; j++ {
			a.dlogits[r*na+j] = float32(p[j] * (c[j] - mean) * inv)
		}
	}
	return loss, entropy
}

// alphaLoss returns the temperature loss at logAlpha given the mean entropy of the actor on s,
// and its derivative with respect to logAlpha.
func (a *Agent) alphaLoss(logAlpha, entropy float64) (loss, grad float64) {
	g := -(-entropy + a.cfg.TargetEntropy())
	return g * logAlpha, g
}

// gradients computes every loss and leaves the gradients in the networks' Grads and gLogAlpha,
// without changing any parameter.
func (a *Agent) gradients(b *replay.Batch) Stats {
	a.checkBatch(b)
	alpha := math.Exp(float64(a.logAlpha[0]))
	a.targets(b, alpha)
	l1, l2, meanQ := a.criticLoss(b)
	la, ent := a.actorLoss(b, alpha)
	lt, gt := a.alphaLoss(float64(a.logAlpha[0]), ent)

	a.Actor.ZeroGrads()
	a.Actor.Backward(a.wsA, a.dlogits, nil)
	a.Q1.ZeroGrads()
	a.Q1.Backward(a.wsQ1, a.dq1, nil)
	a.Q2.ZeroGrads()
	a.Q2.Backward(a.wsQ2, a.dq2, nil)
	a.gLogAlpha[0] = float32(gt)
	return Stats{Q1Loss: l1, Q2Loss: l2, ActorLoss: la, AlphaLoss: lt, Entropy: ent, Alpha: alpha, MeanQ: meanQ}
}
