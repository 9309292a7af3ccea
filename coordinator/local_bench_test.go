package coordinator_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
)

// BenchmarkLocalLeaseReport measures one lease + report round trip of a collect episode through
// coordinator.Local: the coordinator's cost per episode in the local run (encode, check and
// apply two commands, copy the item). Each iteration's episode comes from a large experiment
// submitted before the timer starts.
func BenchmarkLocalLeaseReport(b *testing.B) {
	ctx := context.Background()
	l, err := coordinator.NewLocal(coordinator.DefaultLocalConfig())
	if err != nil {
		b.Fatal(err)
	}
	// 200 h of 60 s episodes: 12,000 collect episodes per submission.
	const spec = "name: bench\nlines: [\"301\"]\ncollect: {hours_per_line: 200, episode_seconds: 60}\n"
	if err := l.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}); err != nil {
		b.Fatal(err)
	}
	out := &episode.Outcome{Seconds: 60, ClosestCM: 1, LightFraction: 0.1, Frames: 180}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%12000 == 0 {
			b.StopTimer()
			if _, err := l.Submit(ctx, []byte(spec)); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		it, err := l.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode})
		if err != nil || it == nil {
			b.Fatal(fmt.Errorf("lease %d: %v %v", i, it, err))
		}
		if _, err := l.Report(ctx, api.ReportCmd{Holder: "w", ItemID: it.ID, Token: it.Token, Outcome: out}); err != nil {
			b.Fatal(err)
		}
	}
}
