package runner

import (
	"bytes"
	"context"
	"testing"

	"github.com/optoloop/optoloop/agentlib/learner"
	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/agentlib/sac"
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
				c.SAC.Backup == ref.SAC.Backup && c.SAC.Backup == sac.PolicyBackup && c.SAC.Gamma == 0.99
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
			c := learnerConfig(spec.Train, t.TempDir())
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := replayConfig(spec.Train).Validate(); err != nil {
				t.Fatal(err)
			}
			if !tt.want(c, replayConfig(spec.Train)) {
				t.Errorf("learner config %+v does not follow %q", c, tt.yaml)
			}
		})
	}
}

// TestTrainingIsReproducible runs one experiment twice with parallel arenas and checks that the
// trained ensembles are byte for byte the same: the replay must not depend on the order in
// which parallel collection episodes finish.
func TestTrainingIsReproducible(t *testing.T) {
	const yaml = `
name: twice
seed: 5
lines: ["301"]
collect: { hours_per_line: 0.5, episode_seconds: 150, light_probability: 0.1 }
train: { ensemble_size: 2, updates: 200, checkpoint_every: 100, target_every: 1 }
evaluate: { episodes_per_condition: 1, episode_seconds: 30 }
`
	var blobs [2][]byte
	for i := range blobs {
		cfg := tinyConfig(t, yaml)
		cfg.Parallel = 4
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		b, err := r.ens["301"].MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		blobs[i] = b
	}
	if !bytes.Equal(blobs[0], blobs[1]) {
		t.Fatal("two runs of the same experiment trained different ensembles")
	}
}
