package runner

import (
	"testing"

	"github.com/optoloop/optoloop/agentlib/learner"
	"github.com/optoloop/optoloop/experiment"
)

// TestLearnerConfigFollowsTheTrainSection checks that every field of the experiment's train
// section reaches the learner, and that an omitted field keeps the reference value.
func TestLearnerConfigFollowsTheTrainSection(t *testing.T) {
	ref := learner.DefaultConfig()
	tests := []struct {
		name string
		yaml string
		want func(c learner.Config) bool
	}{
		{"defaults are the reference", "", func(c learner.Config) bool {
			return c.Members == ref.Members && c.Updates == ref.Updates && c.Round == ref.Round &&
				c.SAC.BatchSize == ref.SAC.BatchSize && c.SAC.TargetEvery == ref.SAC.TargetEvery &&
				c.SAC.TargetEvery == 500 && c.SAC.Gamma == ref.SAC.Gamma
		}},
		{"explicit fields", "train: {ensemble_size: 3, updates: 4000, batch_size: 32, checkpoint_every: 1000, target_every: 1}\n",
			func(c learner.Config) bool {
				return c.Members == 3 && c.Updates == 4000 && c.Round == 1000 && c.SAC.BatchSize == 32 && c.SAC.TargetEvery == 1
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
			if !tt.want(c) {
				t.Errorf("learner config %+v does not follow %q", c, tt.yaml)
			}
		})
	}
}
