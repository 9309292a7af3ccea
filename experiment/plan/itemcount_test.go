package plan_test

import (
	"testing"

	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

// TestItemCountIsWhatThePlanMakes runs experiments of several shapes to the end (every item
// done) and checks that plan.ItemCount, computed from the spec alone, is the number of items
// the plan made, and the number it reserved.
func TestItemCountIsWhatThePlanMakes(t *testing.T) {
	for name, mut := range map[string]func(*experiment.Spec){
		"default":     nil,
		"one line":    func(s *experiment.Spec) { s.Lines = []string{"73"} },
		"three lines": func(s *experiment.Spec) { s.Lines = []string{"301", "446", "73"}; s.Collect.HoursPerLine = 1.1 },
		"cross":       withCross([]string{"301", "446"}, 2),
		"online":      online(0.25, 0.1),
		"online, no checkpoints": func(s *experiment.Spec) {
			online(0.25, 0.1)(s)
			s.Evaluate.CheckpointHours = 0
		},
		"online with cross": func(s *experiment.Spec) { online(0.5, 0.2)(s); withCross([]string{"301", "446"}, 2)(s) },
		"transfer":          withTransfer([]string{"301"}, 3, 12, 0, 0.5),
		"cross and transfer of two": func(s *experiment.Spec) {
			withCross([]string{"301", "446"}, 2)(s)
			withTransfer([]string{"446", "301"}, 2, 0, 1, 0)(s)
		},
		"cross of three": func(s *experiment.Spec) {
			s.Lines = []string{"301", "446", "73"}
			s.Evaluate.EpisodesPerCondition = 5
			s.CrossEvaluate = &experiment.CrossEvaluate{Lines: []string{"73", "301", "446"}, Episodes: 3}
		},
	} {
		s := newSpec(t, mut)
		p, open := plan.Start(s)
		made := 0
		for len(open) > 0 {
			it := open[0]
			open = open[1:]
			made++
			r := plan.Result{PolicyVersion: 3}
			if it.Type == plan.TypeEpisode {
				r.Outcome = &episode.Outcome{Seconds: 30, LightFraction: 0.2, Frames: 90}
			}
			open = append(open, p.Done(it, r)...)
		}
		if p.Status != plan.StatusDone {
			t.Fatalf("%s: plan ended %s", name, p.Status)
		}
		if got := plan.ItemCount(s); got != int64(made) || got != int64(p.NextItem) {
			t.Errorf("%s: ItemCount %d, the plan made %d items and numbered %d", name, got, made, p.NextItem)
		}
	}
}
