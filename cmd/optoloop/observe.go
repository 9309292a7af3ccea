package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/optoloop/optoloop/cluster"
	"github.com/optoloop/optoloop/promserver"
)

// observeRefresh is how often observe brings Prometheus's targets up to date (a restarted
// worker or learner listens on a new port).
const observeRefresh = 2 * time.Second

// observe starts a Prometheus (package promserver) in the cluster's folder, prometheus/,
// scraping every process's /metrics (the cluster's MetricsTargets: the coordinators' HTTP
// addresses and, with Config.Metrics, the workers' and learners' metrics addresses). It prints
// "prometheus: URL" on out, logs to logs/prometheus.log beside the processes' logs, keeps the
// targets current while the cluster runs and returns the function that stops it (call it
// before closing the cluster).
func observe(ctx context.Context, c *cluster.Cluster, out io.Writer, log *slog.Logger) (stop func() error, err error) {
	logPath := filepath.Join(c.Dir(), "logs", "prometheus.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--observe: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p, err := promserver.Start(sctx, promserver.Config{Dir: filepath.Join(c.Dir(), "prometheus"), Targets: c.MetricsTargets(), CAFile: c.CAFile(), Stderr: logFile})
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("--observe: %w (its log: %s)", err, logPath)
	}
	if _, err := fmt.Fprintf(out, "prometheus: %s\n", p.URL()); err != nil {
		return nil, errors.Join(err, p.Stop(), logFile.Close())
	}
	log.Info("prometheus scrapes the cluster", "url", p.URL(), "targets", len(p.CurrentTargets()), "dir", p.Dir())
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(observeRefresh)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if err := p.SetTargets(c.MetricsTargets()); err != nil {
					log.Warn("prometheus targets", "err", err)
				}
			}
		}
	}()
	return func() error {
		close(done)
		<-finished
		return errors.Join(p.Stop(), logFile.Close())
	}, nil
}
