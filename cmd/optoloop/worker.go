package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/arenas/rig"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/station"
	"github.com/optoloop/optoloop/telemetry"
)

type workerOptions struct {
	client    clientOptions
	redis     redisOptions
	sim       string
	arenas    int
	noRender  bool
	pace      float64
	linesFile string
	rigFile   string
	line      string
	id        string
	leaseTTL  time.Duration
	grace     time.Duration
	buffer    int
	verWait   time.Duration
	parallel  int
	logLevel  string
	tel       telemetryOptions
	tileEvery time.Duration
	tileTTL   time.Duration
	tileWidth int
	noTiles   bool
}

func newWorkerCmd() *cobra.Command {
	var o workerOptions
	d := fleet.DefaultWorkerConfig()
	cmd := &cobra.Command{
		Use:   "worker (--sim LINE [--arenas N] | --rig rig.yaml --line LINE)",
		Short: "Serve arenas to a coordinator cluster: lease episodes, run them, send records to Redis",
		Long: "worker serves one real arena (--rig rig.yaml, its animals of --line) or N simulated arenas of a\n" +
			"line (--sim LINE --arenas N, each its own worker id PREFIX-i) to the coordinator cluster: it\n" +
			"registers, leases episodes of its line, runs them, appends their records to the Redis replay in\n" +
			"chunks while they run, stores each track and reports the outcome. SIGINT/SIGTERM: it leases no\n" +
			"more, lets the running episodes finish within --grace (or fails them), switches the light off,\n" +
			"deregisters and exits 0; a second signal stops at once. The worker's coordinator credential\n" +
			"(optoloop cluster credential --role worker --holder PREFIX) comes from --token-file or\n" +
			"$OPTOLOOP_TOKEN, the Redis password from --redis-password-file or $OPTOLOOP_REDIS_PASSWORD:\n" +
			"never from a flag value.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runWorker(cmd, o) },
	}
	o.client.register(cmd)
	o.redis.register(cmd)
	f := cmd.Flags()
	f.StringVar(&o.sim, "sim", "", "serve simulated arenas of this catalogue line")
	f.IntVar(&o.arenas, "arenas", 1, "number of simulated arenas (with --sim)")
	f.BoolVar(&o.noRender, "no-render", false, "simulated arenas act on the simulator's pose instead of rendering and tracking")
	f.Float64Var(&o.pace, "pace", 0, "simulated frames at this many times real time (0: as fast as the CPU allows)")
	f.StringVar(&o.linesFile, "lines-file", "", "lines catalogue merged over the embedded one (with --sim)")
	f.StringVar(&o.rigFile, "rig", "", "serve the real arena of this rig file (optoloop rig config)")
	f.StringVar(&o.line, "line", "", "the line of the animals on the rig's plates (with --rig)")
	f.StringVar(&o.id, "id", "", "worker id (simulated arenas: PREFIX-0, PREFIX-1, ...; default: the holder its credential names, else host-line)")
	f.DurationVar(&o.leaseTTL, "lease-ttl", d.LeaseTTL, "lease length asked for; heartbeats every third of it")
	f.DurationVar(&o.grace, "grace", time.Minute, "on SIGTERM, how long running episodes may take to finish before they are failed")
	f.IntVar(&o.parallel, "parallel", 0, "simulated arenas running an episode at once in this process (default: the number of CPUs); an arena leases only when it can run")
	f.IntVar(&o.buffer, "replay-buffer", d.ReplayBuffer, "frames of a running episode that may wait for an unavailable Redis before the episode fails")
	f.DurationVar(&o.verWait, "version-wait", d.VersionWait, "how long an online or checkpoint episode waits for the parameter version it needs before its attempt fails")
	f.DurationVar(&o.tileEvery, "tile-every", d.TileEvery, "how often each arena publishes its dashboard tile (thumbnail and numbers) to Redis")
	f.DurationVar(&o.tileTTL, "tile-ttl", d.TileTTL, "how long a tile lives in Redis unless refreshed (a dashboard shows an arena without one as stale)")
	f.IntVar(&o.tileWidth, "tile-width", d.TileWidth, "thumbnail width in pixels (64-1024)")
	f.BoolVar(&o.noTiles, "no-tiles", false, "publish no dashboard tiles")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	o.tel.register(cmd, true)
	return cmd
}

// arena is one arena the worker process serves.
type arena struct {
	id string
	st *station.Station
}

func (o workerOptions) check() error {
	switch {
	case (o.sim == "") == (o.rigFile == ""):
		return errors.New("give exactly one of --sim LINE and --rig FILE")
	case o.sim != "" && (o.arenas < 1 || o.arenas > 1024):
		return fmt.Errorf("--arenas %d must be within 1-1024", o.arenas)
	case o.rigFile != "" && o.line == "":
		return errors.New("--rig needs --line: the line of the animals on its plates")
	case o.rigFile != "" && (o.noRender || o.pace != 0 || o.arenas != 1):
		return errors.New("--no-render, --pace and --arenas are for simulated arenas (--sim)")
	case o.pace < 0 || o.pace > 1e6:
		return fmt.Errorf("--pace %v must be within 0-1e6", o.pace)
	case o.grace <= 0:
		return fmt.Errorf("--grace %v must be positive", o.grace)
	case o.buffer < 1:
		return fmt.Errorf("--replay-buffer %d must be positive", o.buffer)
	case o.verWait <= 0:
		return fmt.Errorf("--version-wait %v must be positive", o.verWait)
	case o.parallel < 0 || o.parallel > 1024:
		return fmt.Errorf("--parallel %d must be within 0-1024", o.parallel)
	}
	return nil
}

func runWorker(cmd *cobra.Command, o workerOptions) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	log, err := newLogger(cmd, o.logLevel)
	if err != nil {
		return err
	}
	line := o.sim
	var cat *sim.Catalogue
	if o.sim != "" {
		if cat, err = sim.LoadCatalogue(o.linesFile); err != nil {
			return err
		}
		if _, err := cat.Line(o.sim); err != nil {
			return err
		}
	} else {
		line = o.line
	}
	prefix := o.id
	if prefix == "" {
		prefix = o.client.holder()
	}
	if prefix == "" {
		prefix = defaultID(line)
	}
	// Everything the workers need is checked before any of them registers.
	ctx := cmd.Context()
	tel, shutdown, err := o.tel.open(ctx, "worker", prefix, log)
	if err != nil {
		return err
	}
	defer shutdown()
	cl, store, stores, err := connect(ctx, o.client, o.redis, tel, log)
	if err != nil {
		return err
	}
	defer store.Close()
	arenas, err := openArenas(ctx, o, prefix, line, cat, log, tel)
	if err != nil {
		return err
	}
	stopMetrics, err := o.tel.serveMetrics(tel, cmd.OutOrStdout(), log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	defer func() {
		for _, a := range arenas {
			if cerr := a.st.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("arena %s: %w", a.id, cerr))
			}
		}
	}()
	parallel := o.parallel
	if parallel == 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	gate := make(chan struct{}, parallel)
	workers := make([]*fleet.Worker, len(arenas))
	for i, a := range arenas {
		cfg := fleet.DefaultWorkerConfig()
		cfg.ID, cfg.ArenaID = a.id, a.id
		cfg.Station = a.st
		cfg.Broker = cl
		cfg.Replay, cfg.Params, cfg.Tracks = stores.Replay, stores.Params, stores.Tracks
		cfg.LeaseTTL, cfg.ReplayBuffer, cfg.Gate, cfg.VersionWait = o.leaseTTL, o.buffer, gate, o.verWait
		if !o.noTiles {
			cfg.Live, cfg.Process = store, prefix
			cfg.TileEvery, cfg.TileTTL, cfg.TileWidth = o.tileEvery, o.tileTTL, o.tileWidth
		}
		cfg.Logger = log
		cfg.MeterProvider = tel.MeterProvider()
		if tel.Tracing() {
			cfg.TracerProvider = tel.TracerProvider()
		}
		if workers[i], err = fleet.NewWorker(cfg); err != nil {
			return err
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "worker %s: %d arena(s) of line %s\n", prefix, len(arenas), line)
	return serveRoles(ctx, log, o.grace, len(workers),
		func(ctx context.Context, drain <-chan struct{}, i int) error { return workers[i].Serve(ctx, drain) },
		func(ctx context.Context, i int, reason string) error { return workers[i].Deregister(ctx, reason) })
}

// openArenas opens the simulated arenas or the rig; on error none is left open.
func openArenas(ctx context.Context, o workerOptions, prefix, line string, cat *sim.Catalogue, log *slog.Logger, tel *telemetry.Telemetry) ([]arena, error) {
	withTel := func(cfg *station.Config) {
		cfg.MeterProvider = tel.MeterProvider()
		if tel.Tracing() {
			cfg.TracerProvider = tel.TracerProvider()
		}
	}
	if o.rigFile != "" {
		rc, err := rig.LoadConfig(o.rigFile)
		if err != nil {
			return nil, err
		}
		rc.Logger = log
		a, err := rig.Open(ctx, rc)
		if err != nil {
			return nil, err
		}
		cfg := station.DefaultConfig()
		cfg.ArenaID, cfg.Line, cfg.Arena, cfg.Logger = prefix, line, a, log
		withTel(&cfg)
		st, err := station.New(cfg)
		if err != nil {
			return nil, errors.Join(err, a.Close())
		}
		return []arena{{prefix, st}}, nil
	}
	var out []arena
	for i := range o.arenas {
		cfg := station.DefaultConfig()
		cfg.ArenaID = fmt.Sprintf("%s-%d", prefix, i)
		cfg.Catalogue, cfg.Line, cfg.NoRender, cfg.Logger = cat, line, o.noRender, log
		cfg.Realtime, cfg.Speed = o.pace > 0, o.pace
		withTel(&cfg)
		st, err := station.New(cfg)
		if err != nil {
			for _, a := range out {
				err = errors.Join(err, a.st.Close())
			}
			return nil, err
		}
		out = append(out, arena{cfg.ArenaID, st})
	}
	return out, nil
}

// reachable checks that a coordinator answers within timeout.
func reachable(ctx context.Context, cl *api.Client, timeout time.Duration) error {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cl.Status(sctx); err != nil {
		return fmt.Errorf("coordinator unreachable: %w", err)
	}
	return nil
}

// serveRoles runs n roles until ctx ends (SIGINT or SIGTERM: the drain) or one of them is
// refused; it then waits up to grace for the running work to finish (a second signal ends the
// wait), deregisters every role and returns the first refusal.
func serveRoles(ctx context.Context, log *slog.Logger, grace time.Duration, n int,
	serve func(ctx context.Context, drain <-chan struct{}, i int) error,
	leave func(ctx context.Context, i int, reason string) error) error {
	// hard ends the running work: grace after the drain, at a second signal, or when a role
	// is refused.
	hard, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stop(nil)
	drain := make(chan struct{})
	var drainOnce sync.Once
	startDrain := func() { drainOnce.Do(func() { close(drain) }) }
	go func() {
		select {
		case <-ctx.Done():
		case <-hard.Done():
			return
		}
		startDrain()
		log.Info("stopping: no new work; running work may finish", "grace", grace)
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(again)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			stop(fmt.Errorf("grace period of %v over", grace))
		case s := <-again:
			stop(fmt.Errorf("second signal (%v)", s))
		case <-hard.Done():
		}
	}()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error // the first refusal: the others are usually the same
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(hard, drain, i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				startDrain()
				stop(err)
			}
		}()
	}
	wg.Wait()
	reason := "stopped"
	if cause := context.Cause(hard); cause != nil && !errors.Is(cause, context.Canceled) {
		reason = "stopped: " + cause.Error()
	} else if ctx.Err() != nil {
		reason = "stopped by a signal"
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var leaveErr error
	for i := range n {
		if err := leave(lctx, i, reason); err != nil {
			leaveErr = errors.Join(leaveErr, err)
		}
	}
	if errors.Is(first, api.ErrUnauthorized) {
		return errors.New("the coordinator refused the token of --token-file or $OPTOLOOP_TOKEN (unauthorized)")
	}
	if errors.Is(first, api.ErrForbidden) {
		return fmt.Errorf("the coordinator refused the credential of --token-file or $OPTOLOOP_TOKEN: %w (a worker or learner credential acts only as the holder it names and NAME-N: pass --id NAME)", first)
	}
	if first != nil {
		return first
	}
	if leaveErr != nil {
		log.Warn("deregistration failed; the coordinator expires the leases", "err", leaveErr)
	}
	return nil
}
