package plan_test

import (
	"testing"

	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

// TestDecisionFramesReachEveryActingEpisode: train.decision_frames is carried by every episode
// an ensemble acts in (evaluation, cross-evaluation, transfer; online and checkpoint episodes in
// online mode) and by no other item, and every such item is a valid episode.
func TestDecisionFramesReachEveryActingEpisode(t *testing.T) {
	cases := map[string]func(*experiment.Spec){
		"offline": func(s *experiment.Spec) {
			withCross([]string{"301", "446"}, 1)(s)
			withTransfer([]string{"446"}, 2, 12, 0)(s)
		},
		"online": online(0.25, 0.25),
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSpec(t, func(s *experiment.Spec) {
				mut(s)
				s.Train.DecisionFrames = episode.BlockFrames
			})
			p, open := plan.Start(s)
			kinds := map[episode.Kind]int{}
			for len(open) > 0 {
				it := open[0]
				open = open[1:]
				want := 0
				if it.Type == plan.TypeEpisode && it.Kind.Acts() {
					want = episode.BlockFrames
					kinds[it.Kind]++
				}
				if it.DecisionFrames != want {
					t.Fatalf("item %d (%s %s): decision frames %d, want %d", it.N, it.Type, it.Kind, it.DecisionFrames, want)
				}
				r := plan.Result{PolicyVersion: 9}
				if it.Type == plan.TypeEpisode {
					if err := it.Spec.Validate(); err != nil {
						t.Fatalf("item %d: %v", it.N, err)
					}
					r.Outcome = &episode.Outcome{Seconds: it.Seconds, LightFraction: 0.2, Frames: 90}
				} else {
					r.PolicyVersion = 200
				}
				open = append(open, p.Done(it, r)...)
			}
			if p.Status != plan.StatusDone {
				t.Fatalf("plan %s (%s)", p.Status, p.Reason)
			}
			want := []episode.Kind{episode.KindAgent, episode.KindCross, episode.KindTransfer}
			if name == "online" {
				want = []episode.Kind{episode.KindAgent, episode.KindOnline, episode.KindCheckpoint}
			}
			for _, k := range want {
				if kinds[k] == 0 {
					t.Errorf("no %s episode seen", k)
				}
			}
		})
	}
}
