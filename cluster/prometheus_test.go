package cluster_test

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/optoloop/optoloop/cluster"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/promserver"
)

// observedYAML is the experiment Prometheus watches: one line of one arena, 2 collect
// episodes of 20 s (5 s each at --pace 4), a short training task and the evaluation episodes.
const observedYAML = `
name: observed
seed: 3
lines: ["73"]
arenas_per_line: 1
collect: { hours_per_line: 0.0111, episode_seconds: 20, light_probability: 0.3 }
train: { ensemble_size: 1, updates: 200, checkpoint_every: 100, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
`

// TestPrometheusScrapesTheCluster runs a real Prometheus scraping every process of a small
// cluster started with Metrics and reads, through Prometheus's HTTP query API, a worker's
// frame-to-light histogram while it runs episodes and, once the experiment is done, every
// coordinator's item counts.
func TestPrometheusScrapesTheCluster(t *testing.T) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Skip("prometheus is not on PATH (install it: scripts/deps.sh, Debian package prometheus): " + err.Error())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cfg := smallCluster("")
	cfg.Pace, cfg.Metrics = 4, true
	c := up(t, ctx, cfg)

	// The coordinators' HTTP addresses, a worker's and a learner's metrics addresses (those
	// two known once the processes print them).
	var targets []string
	poll(t, ctx, "the metrics targets", func() error {
		targets = c.MetricsTargets()
		if want := cluster.Coordinators + 2; len(targets) != want {
			return fmt.Errorf("metrics targets %v: want %d, %d coordinators, a worker and a learner", targets, want, cluster.Coordinators)
		}
		return nil
	})
	t0 := time.Now()
	p, err := promserver.Start(ctx, promserver.Config{Dir: filepath.Join(t.TempDir(), "prometheus"), Targets: targets, CAFile: c.CAFile(), ScrapeInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("prometheus %s ready in %v", p.URL(), time.Since(t0).Round(time.Millisecond))
	poll(t, ctx, "every target up", func() error {
		ts, err := p.Targets(ctx)
		if err != nil {
			return err
		}
		up := 0
		for _, x := range ts {
			if x.Health == "up" {
				up++
			} else if x.LastError != "" {
				err = fmt.Errorf("%s: %s", x.ScrapeURL, x.LastError)
			}
		}
		if up != len(targets) {
			return fmt.Errorf("%d of %d targets up (%v)", up, len(targets), err)
		}
		return nil
	})

	id, err := c.Submit(ctx, []byte(observedYAML))
	if err != nil {
		t.Fatal(err)
	}
	submitted := time.Now()
	poll(t, ctx, "frame-to-light observations", func() error {
		n, err := value(ctx, p, `sum(optoloop_worker_frame_to_light_seconds_count{job="optoloop"})`)
		if err == nil && !(n > 0) {
			err = fmt.Errorf("count %v", n)
		}
		return err
	})
	// The p99 over the last 30 s: a finite, positive number of seconds once two scrapes have
	// seen frames.
	poll(t, ctx, "frame-to-light p99", func() error {
		q, err := value(ctx, p, `histogram_quantile(0.99, sum by (le) (rate(optoloop_worker_frame_to_light_seconds_bucket[30s])))`)
		if err == nil && (math.IsNaN(q) || math.IsInf(q, 0) || q <= 0) {
			err = fmt.Errorf("p99 %v", q)
		}
		if err == nil {
			t.Logf("frame-to-light p99 %.3g s, %v after submitting", q, time.Since(submitted).Round(time.Millisecond))
		}
		return err
	})

	view, err := c.Wait(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range view.Counts.Episodes {
		total += n
	}
	done := view.Counts.Episodes[api.StateDone]
	if total == 0 || done != total {
		t.Fatalf("experiment %s ended with episodes %v", id, view.Counts.Episodes)
	}
	t.Logf("experiment done %v after submitting: %d episode items", time.Since(submitted).Round(time.Millisecond), total)
	// Every coordinator's FSM counts every episode item of the experiment, all of them done.
	poll(t, ctx, "the coordinators' episode items", func() error {
		for q, want := range map[string]int{
			`sum by (instance) (optoloop_coordinator_items{type="episode"})`:              total,
			`sum by (instance) (optoloop_coordinator_items{type="episode",state="done"})`: done,
		} {
			r, err := p.Query(ctx, q)
			if err != nil {
				return err
			}
			if len(r.Vector) != cluster.Coordinators {
				return fmt.Errorf("%s: %d coordinators answer, want %d", q, len(r.Vector), cluster.Coordinators)
			}
			for _, s := range r.Vector {
				if s.Value != float64(want) {
					return fmt.Errorf("%s: %s has %v, want %d", q, s.Metric["instance"], s.Value, want)
				}
			}
		}
		return nil
	})
}

// poll calls cond every 200 ms until it returns nil; the test fails with cond's last error
// when ctx ends or two minutes have passed.
func poll(t *testing.T, ctx context.Context, what string, cond func() error) {
	t.Helper()
	t0 := time.Now()
	deadline := time.After(2 * time.Minute)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			t.Logf("%s: after %v", what, time.Since(t0).Round(time.Millisecond))
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		case <-deadline:
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// value queries one number through Prometheus.
func value(ctx context.Context, p *promserver.Server, q string) (float64, error) {
	r, err := p.Query(ctx, q)
	if err != nil {
		return 0, err
	}
	return r.Value()
}
