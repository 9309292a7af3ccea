package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/fleet"
)

type learnerOptions struct {
	client   clientOptions
	redis    redisOptions
	id       string
	workDir  string
	leaseTTL time.Duration
	grace    time.Duration
	logLevel string
	tel      telemetryOptions
}

func newLearnerCmd() *cobra.Command {
	var o learnerOptions
	d := fleet.DefaultLearnerConfig()
	cmd := &cobra.Command{
		Use:   "learner",
		Short: "Train for a coordinator cluster: lease training tasks, train on the Redis replay, publish parameters",
		Long: "learner leases training tasks from the coordinator cluster, trains each line's ensemble (members in\n" +
			"parallel goroutines) on a snapshot of the line's accepted replay in Redis, publishes every\n" +
			"parameter version to Redis and checkpoints there after every round, so that another learner (or\n" +
			"this one restarted) resumes a re-leased task exactly. SIGINT/SIGTERM: it leases no more, gives\n" +
			"the running task --grace to finish, then hands it back (it resumes from its last checkpoint\n" +
			"elsewhere) and exits 0.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runLearner(cmd, o) },
	}
	o.client.register(cmd)
	o.redis.register(cmd)
	f := cmd.Flags()
	f.StringVar(&o.id, "id", "", "learner id (default: the holder its credential names, else host-learner)")
	f.StringVar(&o.workDir, "work-dir", "", "folder for the tasks' working files (default: a new temporary folder, removed at exit)")
	f.DurationVar(&o.leaseTTL, "lease-ttl", d.LeaseTTL, "lease length asked for; heartbeats every third of it")
	f.DurationVar(&o.grace, "grace", 10*time.Second, "on SIGTERM, how long the running task may take to finish before it is handed back")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	o.tel.register(cmd, true)
	return cmd
}

func runLearner(cmd *cobra.Command, o learnerOptions) error {
	if o.grace <= 0 {
		return fmt.Errorf("--grace %v must be positive", o.grace)
	}
	log, err := newLogger(cmd, o.logLevel)
	if err != nil {
		return err
	}
	id := o.id
	if id == "" {
		id = o.client.holder()
	}
	if id == "" {
		id = defaultID("learner")
	}
	ctx := cmd.Context()
	tel, shutdown, err := o.tel.open(ctx, "learner", id, log)
	if err != nil {
		return err
	}
	defer shutdown()
	cl, store, stores, err := connect(ctx, o.client, o.redis, tel, log)
	if err != nil {
		return err
	}
	defer store.Close()
	dir := o.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "optoloop-learner-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--work-dir: %w", err)
	}
	cfg := fleet.DefaultLearnerConfig()
	cfg.ID, cfg.Broker = id, cl
	cfg.Replay, cfg.Params, cfg.Checkpoints = stores.Replay, stores.Params, stores.Checkpoints
	cfg.Live = store
	cfg.WorkDir, cfg.LeaseTTL, cfg.Logger = dir, o.leaseTTL, log
	cfg.MeterProvider = tel.MeterProvider()
	if tel.Tracing() {
		cfg.TracerProvider = tel.TracerProvider()
	}
	l, err := fleet.NewLearner(cfg)
	if err != nil {
		return err
	}
	stopMetrics, err := o.tel.serveMetrics(tel, cmd.OutOrStdout(), log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	fmt.Fprintf(cmd.OutOrStdout(), "learner %s\n", id)
	return serveRoles(ctx, log, o.grace, 1,
		func(ctx context.Context, drain <-chan struct{}, _ int) error { return l.Serve(ctx, drain) },
		func(ctx context.Context, _ int, reason string) error { return l.Deregister(ctx, reason) })
}
