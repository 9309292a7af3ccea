package plan_test

import (
	"strings"
	"testing"

	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

// online turns newSpec's experiment into an online one: 1 h per line in 300 s episodes (12),
// warmup hours of random light, checkpoints every checkpoint hours, 2 episodes each.
func online(warmup, checkpoint float64) func(*experiment.Spec) {
	return func(s *experiment.Spec) {
		s.Collect.HoursPerLine, s.Collect.EpisodeSeconds = 1, 300
		s.Train.Mode, s.Train.WarmupHours, s.Train.Explore = experiment.ModeOnline, warmup, 0.1
		s.Train.CriticTarget = experiment.CriticTargetCollection
		s.Train.Updates, s.Train.CheckpointEvery = 200, 10
		s.Evaluate.CheckpointHours, s.Evaluate.CheckpointEpisodes = checkpoint, 2
	}
}

// TestOnlinePlan: collect holds only the warm-up; train opens the training tasks, then every
// line's online episodes (episode-major, online episode i naming version i+1, exploring at the
// file's rate, the targets in turn), then the checkpoint episodes acting with exactly the first
// version trained on each 0.25 h mark of online data; evaluate opens once all are terminal.
func TestOnlinePlan(t *testing.T) {
	s := newSpec(t, online(0.25, 0.25))
	p, open := plan.Start(s)
	if len(open) != 2*3 {
		t.Fatalf("collect opened %d episodes, want 6 (3 warm-up episodes of 300 s per line)", len(open))
	}
	for _, it := range open {
		if it.Kind != episode.KindCollect || it.Seconds != 300 || it.LightProbability != 0.15 {
			t.Fatalf("warm-up item %+v", it)
		}
	}
	var train []plan.Item
	for _, it := range open {
		train = append(train, p.Done(it, plan.Result{Outcome: &episode.Outcome{Seconds: 300, Frames: 900}})...)
	}
	if p.Phase != plan.PhaseTrain {
		t.Fatalf("phase %s after the warm-up", p.Phase)
	}
	var tasks, onl, cps []plan.Item
	for _, it := range train {
		switch {
		case it.Type == plan.TypeTrain:
			tasks = append(tasks, it)
		case it.Kind == episode.KindOnline:
			onl = append(onl, it)
		case it.Kind == episode.KindCheckpoint:
			cps = append(cps, it)
		default:
			t.Fatalf("train opened %+v", it)
		}
	}
	if len(tasks) != 2 || tasks[0].MaxStaleness != 1 || tasks[0].LightProbability != 0.15 || tasks[0].Train.Mode != experiment.ModeOnline {
		t.Fatalf("training tasks %+v", tasks)
	}
	if len(onl) != 2*9 {
		t.Fatalf("%d online episodes, want 18 (9 per line)", len(onl))
	}
	for k, it := range onl {
		i := k / 2
		name, _, _ := s.Target(i)
		if it.Line != s.Lines[k%2] || it.AgentLine != it.Line || it.PolicyVersion != uint64(i+1) || it.MaxStaleness != 1 ||
			it.Explore != 0.1 || it.LightProbability != 0.15 || it.Seconds != 300 || it.Target == nil || it.Target.Name != name {
			t.Fatalf("online episode %d: %+v", k, it)
		}
		if err := it.Spec.Validate(); err != nil {
			t.Fatalf("online episode %d: %v", k, err)
		}
	}
	// Marks at 0, 0.25 and 0.5 h of online data (0, 3 and 6 episodes): versions 2, 5 and 8
	// with max staleness 1; 2 episodes per line each.
	want := []uint64{2, 2, 2, 2, 5, 5, 5, 5, 8, 8, 8, 8}
	if len(cps) != len(want) {
		t.Fatalf("%d checkpoint episodes, want %d", len(cps), len(want))
	}
	for k, it := range cps {
		if it.PolicyVersion != want[k] || it.MaxStaleness != 0 || it.Explore != 0 || it.Seconds != s.Evaluate.EpisodeSeconds {
			t.Fatalf("checkpoint episode %d: %+v, want version %d", k, it, want[k])
		}
		if got := float64(s.WarmupEpisodesPerLine()+s.OnlineData(it.PolicyVersion)) * s.Collect.EpisodeSeconds / 3600; got != 0.25+0.25*float64(k/4) {
			t.Errorf("checkpoint %d: version %d trains on %v h, want %v", k, it.PolicyVersion, got, 0.25+0.25*float64(k/4))
		}
	}
	rest := append(append(tasks, onl...), cps...)
	for i, it := range rest {
		var r plan.Result
		if it.Type == plan.TypeTrain {
			r.PolicyVersion = 20
		} else {
			r.Outcome = &episode.Outcome{Seconds: it.Seconds, Frames: 900, LightFraction: 0.4}
		}
		next := p.Done(it, r)
		if i < len(rest)-1 && len(next) > 0 {
			t.Fatalf("item %d of train opened %d items before train closed", i, len(next))
		}
		if i == len(rest)-1 {
			if p.Phase != plan.PhaseEvaluate || len(next) == 0 || next[0].Kind != episode.KindAgent || next[0].PolicyVersion != 20 {
				t.Fatalf("after train: phase %s, %d items, first %+v", p.Phase, len(next), next[0])
			}
		}
	}
}

// TestOnlineSpecChecks: what online mode needs beyond each field's range.
func TestOnlineSpecChecks(t *testing.T) {
	for name, tc := range map[string]struct {
		mut  func(*experiment.Spec)
		want string
	}{
		"behaviour target":   {func(s *experiment.Spec) { s.Train.CriticTarget = experiment.CriticTargetBehaviour }, "train.critic_target"},
		"warm-up is all":     {func(s *experiment.Spec) { s.Train.WarmupHours = 1 }, "train.warmup_hours"},
		"too few versions":   {func(s *experiment.Spec) { s.Train.Updates = 100 }, "train.updates"},
		"no mode":            {func(s *experiment.Spec) { s.Train.Mode = "batch" }, "train.mode"},
		"explore above 1":    {func(s *experiment.Spec) { s.Train.Explore = 1.5 }, "train.explore"},
		"no checkpoint runs": {func(s *experiment.Spec) { s.Evaluate.CheckpointEpisodes = 0 }, "evaluate.checkpoint_episodes"},
	} {
		s := experiment.Default()
		s.Name, s.Lines = "t", []string{"301"}
		online(0.25, 0.25)(&s)
		s.Policy.MaxStaleness = 2
		if err := s.Validate(); err != nil {
			t.Fatalf("%s: base spec: %v", name, err)
		}
		tc.mut(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", name, err, tc.want)
		}
	}
}
