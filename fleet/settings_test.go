package fleet

import (
	"math"
	"testing"

	"github.com/optoloop/optoloop/agentlib/learner"
	"github.com/optoloop/optoloop/agentlib/obs"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/agentlib/sac"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
)

// TestLearnerConfigFollowsTheTrainSection checks that every field of the experiment's train
// section reaches the learner, and that an omitted field keeps the reference value.
func TestLearnerConfigFollowsTheTrainSection(t *testing.T) {
	ref := learner.DefaultConfig()
	tests := []struct {
		name string
		yaml string
		want func(c learner.Config, r replay.Config) bool
	}{
		{"defaults are the reference", "", func(c learner.Config, r replay.Config) bool {
			return c.Members == ref.Members && c.Updates == ref.Updates && c.Round == ref.Round &&
				c.SAC.BatchSize == ref.SAC.BatchSize && c.SAC.TargetEvery == ref.SAC.TargetEvery &&
				c.SAC.TargetEvery == 500 && c.SAC.Gamma == ref.SAC.Gamma &&
				c.SAC.TargetEntropyRatio == ref.SAC.TargetEntropyRatio && c.SAC.TargetEntropyRatio == 0.98 &&
				c.SAC.RewardScale == 1 && r.ReachReward == replay.DefaultConfig().ReachReward && r.ReachReward == 4 &&
				c.SAC.Backup == ref.SAC.Backup && c.SAC.Backup == sac.PolicyBackup && c.SAC.Gamma == 0.99 &&
				c.Spec == policy.ReferenceSpec() && c.SAC.ObsSize == obs.Size && r.LightCost == 0
		}},
		{"a light cost is the reward of that much approach", "train: {light_cost_cm: 0.5}\n", func(c learner.Config, r replay.Config) bool {
			// Half a cm of approach, 270 reference pixels: the reward of that step.
			return math.Abs(r.LightCost-obs.Reward(270, 0, 0, 0, -1000, 0)) < 1e-12
		}},
		{"the light observation", "train: {observation: light}\n", func(c learner.Config, r replay.Config) bool {
			return c.Spec == policy.LightSpec() && c.SAC.ObsSize == obs.LightSize
		}},
		{"the reference observation named", "train: {observation: reference}\n", func(c learner.Config, r replay.Config) bool {
			return c.Spec == policy.ReferenceSpec() && c.SAC.ObsSize == obs.Size
		}},
		{"explicit fields", "train: {ensemble_size: 3, updates: 4000, batch_size: 32, checkpoint_every: 1000, target_every: 1, target_entropy_ratio: 0.3, reward_scale: 100, reach_reward: 0, critic_target: behaviour, gamma: 0.95}\n",
			func(c learner.Config, r replay.Config) bool {
				return c.Members == 3 && c.Updates == 4000 && c.Round == 1000 && c.SAC.BatchSize == 32 && c.SAC.TargetEvery == 1 &&
					c.SAC.TargetEntropyRatio == 0.3 && c.SAC.RewardScale == 100 && r.ReachReward == 0 &&
					c.SAC.Backup == sac.BehaviourBackup && c.SAC.Gamma == 0.95
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := experiment.Parse([]byte("name: t\nlines: [\"446\"]\n" + tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			c := LearnerSettings(spec.Train, t.TempDir())
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := ReplaySettings(spec.Train, spec.Collect.LightProbability).Validate(); err != nil {
				t.Fatal(err)
			}
			if !tt.want(c, ReplaySettings(spec.Train, spec.Collect.LightProbability)) {
				t.Errorf("learner config %+v does not follow %q", c, tt.yaml)
			}
		})
	}
}

// TestCollectionSettings: the collection critic target gets the collection's light probability
// in its replay (and nothing else does), train.mirror reaches the replay, and the replay's block
// is the schedule's.
func TestCollectionSettings(t *testing.T) {
	tr := experiment.Default().Train
	if c := ReplaySettings(tr, 0.1); c.CollectionP != 0 {
		t.Fatalf("critic target %q: collection P %v, want 0", tr.CriticTarget, c.CollectionP)
	}
	tr.CriticTarget = experiment.CriticTargetCollection
	if c := ReplaySettings(tr, 0.1); c.CollectionP != 0.1 {
		t.Fatalf("critic target %q: collection P %v, want 0.1", tr.CriticTarget, c.CollectionP)
	}
	if lc := LearnerSettings(tr, t.TempDir()); lc.SAC.Backup != sac.CollectionBackup {
		t.Fatalf("critic target %q: backup %q", tr.CriticTarget, lc.SAC.Backup)
	}
	if c := ReplaySettings(tr, 0.1); c.Mirror {
		t.Fatal("train.mirror unset, but the replay mirrors")
	}
	tr.Mirror = true
	if c := ReplaySettings(tr, 0.1); !c.Mirror || !c.Augment {
		t.Fatalf("train.mirror set: replay mirror %v, augment %v", c.Mirror, c.Augment)
	}
	if replay.BlockFrames != episode.BlockFrames {
		t.Fatalf("replay's block of %d frames is not the schedule's %d", replay.BlockFrames, episode.BlockFrames)
	}
}

// TestLearnerSettingsTrainAtTheSpecsLearningRate: the actors and critics train at
// train.learning_rate (0, as in a spec recorded before the field, at the reference's 1e-3);
// the temperature keeps the reference's rate; train.weight_decay reaches the actors' and critics'
// Adam. Every critic target maps to a backup sac accepts.
func TestLearnerSettingsTrainAtTheSpecsLearningRate(t *testing.T) {
	tr := experiment.Default().Train
	for _, c := range []struct{ set, want float64 }{{0, 1e-3}, {3e-4, 3e-4}} {
		tr.LearningRate = c.set
		lc := LearnerSettings(tr, t.TempDir())
		if lc.SAC.ActorLR != c.want || lc.SAC.CriticLR != c.want || lc.SAC.AlphaLR != sac.DefaultConfig().AlphaLR {
			t.Fatalf("learning_rate %v: actor %v, critics %v, temperature %v; want %v, %v, %v",
				c.set, lc.SAC.ActorLR, lc.SAC.CriticLR, lc.SAC.AlphaLR, c.want, c.want, sac.DefaultConfig().AlphaLR)
		}
	}
	tr.WeightDecay = 1e-4
	if lc := LearnerSettings(tr, t.TempDir()); lc.SAC.WeightDecay != 1e-4 {
		t.Fatalf("weight_decay 1e-4: sac trains with %v", lc.SAC.WeightDecay)
	}
	for _, target := range []string{experiment.CriticTargetPolicy, experiment.CriticTargetBehaviour, experiment.CriticTargetCollection, experiment.CriticTargetGreedy} {
		tr.CriticTarget = target
		if err := LearnerSettings(tr, t.TempDir()).SAC.Validate(); err != nil {
			t.Fatalf("critic target %q: %v", target, err)
		}
	}
}
