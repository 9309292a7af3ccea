package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
)

// BenchmarkLeaseReport measures lease + report round trips per second through a 3-node
// cluster on loopback: simulated workers of one line, each with its own client, lease an
// episode and report it, as fast as the cluster answers. Every round trip is two replicated
// writes; the leader groups concurrent writes into one log entry (group commit). The three
// nodes share one disk here, so each entry costs three bbolt commits (two fdatasyncs each) on
// the same device: throughput grows with the number of concurrent callers.
//
// tls=on runs Raft over mutual TLS and the API over HTTPS (what a node with --tls-dir does);
// tls=off in plaintext (--insecure).
func BenchmarkLeaseReport(b *testing.B) {
	for _, workers := range []int{32, 256} {
		for _, tlsOn := range []bool{true, false} {
			b.Run(fmt.Sprintf("workers=%d/tls=%s", workers, onOff(tlsOn)), func(b *testing.B) { benchLeaseReport(b, workers, tlsOn) })
		}
	}
}

func onOff(v bool) string {
	if v {
		return "on"
	}
	return "off"
}

func benchLeaseReport(b *testing.B, workers int, tlsOn bool) {
	// The three nodes and every client share one process (and, with -cpu 1, one P): with the
	// 500 ms LAN timeouts a starved heartbeat goroutine can cost an election mid-run, so this
	// benchmark uses hashicorp/raft's own 1 s timeouts. raft-term reports elections (the first
	// leader has term 2).
	c := coordinatortest.New(b, 3, func(cfg *coordinator.Config) {
		d := coordinator.DefaultConfig()
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
		cfg.TickInterval = d.TickInterval
		cfg.SnapshotInterval = d.SnapshotInterval
		// Every worker here dials from 127.0.0.1, as no real fleet does: lift the per-client
		// connection cap so that it measures the round trips, not the cap.
		cfg.MaxConnsPerClient = cfg.MaxConns
		if !tlsOn {
			coordinatortest.Plaintext(cfg)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := c.Client(b)
	hours := math.Ceil(float64(b.N+2*workers)/3600*1000) / 1000
	if _, err := cl.Submit(ctx, fmt.Appendf(nil, "name: bench\nlines: [\"301\"]\ncollect: {hours_per_line: %g, episode_seconds: 1}\n", hours)); err != nil {
		b.Fatal(err)
	}
	clients := make([]*api.Client, workers)
	for i := range clients {
		// Each worker with its own credential, as a real one (not the harness's fleet transport).
		wcfg := c.DirectClientConfig()
		wcfg.Token = coordinatortest.WorkerToken(fmt.Sprintf("w%d", i))
		var err error
		if clients[i], err = api.NewClient(wcfg); err != nil {
			b.Fatal(err)
		}
		if err := clients[i].RegisterWorker(ctx, api.RegisterWorkerCmd{ID: fmt.Sprintf("w%d", i), ArenaID: "a", Line: "301"}); err != nil {
			b.Fatal(err)
		}
	}
	roundTrip := func(i int) error {
		holder := fmt.Sprintf("w%d", i)
		it, err := clients[i].Lease(ctx, api.LeaseRequest{Holder: holder, Type: plan.TypeEpisode})
		if err != nil || it == nil {
			return fmt.Errorf("lease: %v %v", it, err)
		}
		_, err = clients[i].Report(ctx, api.ReportCmd{Holder: holder, ItemID: it.ID, Token: it.Token, Outcome: &episode.Outcome{Seconds: 1, ClosestCM: 1}})
		return err
	}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	// Warm up: every worker opens its connection with one round trip, outside the timing.
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := roundTrip(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	var left atomic.Int64
	left.Store(int64(b.N))
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := roundTrip(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpu0
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
	// CPU time of the whole process (3 nodes and the clients) per round trip: less sensitive
	// than the rate to other load on a shared machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/roundtrip")
	var fwd uint64
	for _, n := range c.Nodes() {
		fwd += n.ForwardedWrites()
	}
	b.ReportMetric(float64(c.Leader().Raft().CurrentTerm()), "raft-term")
	b.ReportMetric(float64(fwd)/float64(b.N), "forwards/roundtrip")
	if got := c.Leader().FSM().Stats().ReportsAccepted; got != uint64(b.N+workers) {
		b.Fatalf("%d reports accepted, want %d", got, b.N+workers)
	}
}

// BenchmarkFailover kills the leader of a 3-node cluster (heartbeat and election timeouts 1 s,
// leader lease 500 ms: the conservative defaults) and times how long until the next write
// succeeds, over 20 trials per iteration; the killed node is restarted from its data directory
// and caught up before the next trial. It reports the median and the worst time, with TLS
// (tls=on: Raft over mutual TLS, HTTPS) and without.
func BenchmarkFailover(b *testing.B) {
	for _, tlsOn := range []bool{true, false} {
		b.Run("tls="+onOff(tlsOn), func(b *testing.B) { benchFailover(b, tlsOn) })
	}
}

func benchFailover(b *testing.B, tlsOn bool) {
	const trials = 20
	c := coordinatortest.New(b, 3, func(cfg *coordinator.Config) {
		d := coordinator.DefaultConfig()
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
		cfg.TickInterval = d.TickInterval
		if !tlsOn {
			coordinatortest.Plaintext(cfg)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var times []time.Duration
	b.ResetTimer()
	for range b.N {
		for trial := range trials {
			old := c.Leader()
			cfg := c.ClientConfig()
			cfg.MaxAttempts, cfg.BaseBackoff, cfg.MaxBackoff = 100000, 2*time.Millisecond, 10*time.Millisecond
			cl, err := api.NewClient(cfg)
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			c.Kill(old.ID())
			for {
				err := cl.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: fmt.Sprintf("l%d", trial)})
				if err == nil {
					break
				}
				if !errors.Is(err, api.ErrUnavailable) {
					b.Fatal(err)
				}
			}
			times = append(times, time.Since(t0))
			b.StopTimer()
			c.Restart(old.ID())
			c.WaitConverged()
			b.StartTimer()
		}
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(times[len(times)/2].Seconds(), "median_s")
	b.ReportMetric(times[len(times)-1].Seconds(), "worst_s")
	b.ReportMetric(times[0].Seconds(), "best_s")
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
