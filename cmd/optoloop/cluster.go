package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/cluster"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/progress"
	"github.com/optoloop/optoloop/report"
	"github.com/optoloop/optoloop/results"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run a whole cluster on this machine as separate processes (to try it before spreading it over machines)",
	}
	cmd.AddCommand(newClusterUpCmd(), newClusterDrainCmd(), newClusterRemoveCmd(), newClusterCredentialCmd(), newClusterCertsCmd())
	return cmd
}

type clusterUpOptions struct {
	workers, learners int
	noRender          bool
	pace              float64
	out, linesFile    string
	dir               string
	leaseTTL          time.Duration
	logLevel          string
	verbose           bool
	observe           bool
	dashboard         string
	traceURL          string
	hold              bool
	binary            string
	tel               telemetryOptions
	insecure          bool
}

func newClusterUpCmd() *cobra.Command {
	var o clusterUpOptions
	cmd := &cobra.Command{
		Use:   "up EXPERIMENT.yaml",
		Short: "Start redis-server, 3 coordinators, workers and learners on loopback, run an experiment, export its run folder, stop everything",
		Long: "up starts a cluster on this machine as separate OS processes talking over loopback: redis-server\n" +
			"(a generated password, the append-only file with appendfsync always, in a fresh folder), three\n" +
			"coordinator nodes (Raft), --workers worker processes serving the experiment's lines (arenas_per_line\n" +
			"simulated arenas per line, split over the line's processes) and --learners learner processes. It\n" +
			"submits the experiment, shows its progress, exports the run folder (as `experiment export` does:\n" +
			"report.json, report.html, episodes, ensembles), prints the results table, and stops every process\n" +
			"on exit, on error and on Ctrl-C. The token and the password are in 0600 files under --dir, never on\n" +
			"a command line; each process logs to --dir/logs/NAME.log. The coordinators speak TLS (Raft mutual\n" +
			"TLS, HTTPS) with a CA and certificates made in --dir/tls (as `cluster certs` makes them); --insecure\n" +
			"runs them in plaintext.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runClusterUp(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.workers, "workers", 0, "worker processes; the lines are assigned round robin (default: one per line)")
	f.IntVar(&o.learners, "learners", 1, "learner processes")
	f.BoolVar(&o.noRender, "no-render", false, "act on the simulator's own pose instead of rendering and tracking frames (fast)")
	f.Float64Var(&o.pace, "pace", 0, "simulated frames at this many times real time (0: as fast as the CPU allows)")
	f.StringVar(&o.out, "out", "", "run folder (default runs/<name>-<time>)")
	f.StringVar(&o.linesFile, "lines-file", "", "YAML or JSON catalogue merged over the embedded one")
	f.StringVar(&o.dir, "dir", "", "the cluster's folder: secrets, Redis, Raft data, logs (default: a new temporary folder, removed after a successful run)")
	f.DurationVar(&o.leaseTTL, "lease-ttl", 10*time.Second, "lease length the workers and learners ask for")
	f.StringVar(&o.logLevel, "log-level", "info", "the processes' log level: debug, info, warn or error")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "also show every process's log on stderr")
	f.BoolVar(&o.observe, "observe", false, "serve /metrics on every process and run a Prometheus scraping them (printed: prometheus: URL; data in --dir/prometheus; stopped with the cluster)")
	f.StringVar(&o.dashboard, "dashboard", "", "serve the live dashboard on this host:port (printed: dashboard: URL, and the files of the operator's and viewer's sign-in tokens)")
	f.StringVar(&o.traceURL, "trace-url", "", "the dashboard's link to a trace viewer, {trace_id} replaced (e.g. http://127.0.0.1:16686/trace/{trace_id})")
	f.BoolVar(&o.hold, "hold", false, "after the run, keep the cluster (and its dashboard) up until Ctrl-C")
	f.BoolVar(&o.insecure, "insecure", false, "run the coordinators without TLS (default: a CA and certificates in --dir/tls, Raft over mutual TLS, HTTPS)")
	f.StringVar(&o.binary, "binary", "", "optoloop executable the processes run (default: this one)")
	_ = f.MarkHidden("binary")
	o.tel.register(cmd, false)
	return cmd
}

func runClusterUp(cmd *cobra.Command, path string, o clusterUpOptions) error {
	// Every input is checked before anything is started or written.
	if o.traceURL != "" && o.dashboard == "" {
		return errors.New("--trace-url needs --dashboard")
	}
	if o.traceURL != "" && !strings.Contains(o.traceURL, "{trace_id}") {
		return errors.New("--trace-url must hold {trace_id}")
	}
	_, spec, data, err := loadExperiment(path, o.linesFile)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	workers, lines := o.workers, len(spec.Lines)
	if workers == 0 {
		workers = lines
	}
	switch {
	case workers < lines:
		return fmt.Errorf("--workers %d: at least one worker process per line (%d lines)", workers, lines)
	case workers > lines*spec.ArenasPerLine:
		return fmt.Errorf("--workers %d: at most one worker process per arena (%d lines x arenas_per_line %d)", workers, lines, spec.ArenasPerLine)
	case o.learners < 1:
		return fmt.Errorf("--learners %d: at least one learner", o.learners)
	case o.pace < 0:
		return fmt.Errorf("--pace %v must be >= 0", o.pace)
	case o.leaseTTL < time.Second:
		return fmt.Errorf("--lease-ttl %v must be at least 1s", o.leaseTTL)
	}
	out := o.out
	if out == "" {
		out = filepath.Join("runs", fmt.Sprintf("%s-%s", spec.Name, time.Now().UTC().Format("20060102-150405")))
	}
	if _, err := os.Stat(filepath.Join(out, results.ReportFile)); err == nil {
		return fmt.Errorf("--out %s already holds a report; choose a new run folder", out)
	}
	dir, temporary := o.dir, o.dir == ""
	if !temporary {
		if _, err := os.Stat(filepath.Join(dir, "coordinators")); err == nil {
			return fmt.Errorf("--dir %s holds a cluster already; choose a new folder", dir)
		}
	} else if dir, err = os.MkdirTemp("", "optoloop-cluster-"); err != nil {
		return fmt.Errorf("cluster folder: %w", err)
	}

	stderr := cmd.ErrOrStderr()
	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = progress.IsTerminal(f)
	}
	disp := progress.New(stderr, tty)
	defer disp.Close()
	logLevel := slog.LevelInfo
	if o.verbose {
		logLevel = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(disp, &slog.HandlerOptions{Level: logLevel}))
	cfg := cluster.Config{Binary: o.binary, Dir: dir, Lines: spec.Lines, ArenasPerLine: spec.ArenasPerLine, Workers: workers,
		Learners: o.learners, NoRender: o.noRender, Pace: o.pace, LinesFile: o.linesFile, LeaseTTL: o.leaseTTL,
		LogLevel: level.String(), Logger: log, Insecure: o.insecure,
		TraceDir: o.tel.traceDir, OTLPEndpoint: o.tel.otlpEndpoint, TraceSample: o.tel.sample}
	tel, shutdown, err := o.tel.open(cmd.Context(), "cluster", "up", log)
	if err != nil {
		return err
	}
	defer shutdown()
	if tel.Tracing() {
		cfg.TracerProvider = tel.TracerProvider()
	}
	if o.verbose {
		cfg.Stderr = disp
	}
	cfg.Metrics = o.observe
	cfg.Dashboard, cfg.TraceURL = o.dashboard, o.traceURL
	err = clusterRun(cmd, cfg, spec, data, out, disp, log, o.observe, o.hold)
	if err != nil {
		return fmt.Errorf("%w (cluster logs in %s)", err, filepath.Join(dir, "logs"))
	}
	if temporary {
		_ = os.RemoveAll(dir)
	}
	return nil
}

// clusterRun starts the cluster, runs the experiment on it, exports the run folder and stops
// every process, whatever happens.
func clusterRun(cmd *cobra.Command, cfg cluster.Config, spec experiment.Spec, data []byte, out string, disp *progress.Display, log *slog.Logger, observeCluster, hold bool) (err error) {
	ctx := cmd.Context()
	log.Info("starting the cluster", "dir", cfg.Dir, "lines", spec.Lines, "worker_processes", cfg.Workers, "learners", cfg.Learners)
	c, err := cluster.Up(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the cluster: %w", cerr))
		}
	}()
	if u := c.DashboardURL(); u != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "dashboard: %s/ui/ (sign in with the token in %s to act, or %s to watch)\n", u, c.OperatorTokenFile(), c.ViewerTokenFile())
	}
	if observeCluster {
		stop, oerr := observe(ctx, c, cmd.OutOrStdout(), log)
		if oerr != nil {
			return oerr
		}
		defer func() { err = errors.Join(err, stop()) }()
	}
	var span trace.Span
	sctx := ctx
	if cfg.TracerProvider != nil {
		sctx, span = cfg.TracerProvider.Tracer("github.com/optoloop/optoloop/cmd/optoloop").Start(ctx, "cluster.submit")
	}
	id, err := c.Submit(sctx, data)
	if span != nil {
		span.End()
	}
	if err != nil {
		return err
	}
	log.Info("submitted", "experiment", id, "run_folder", out)
	view, err := c.Wait(ctx, id, func(v api.ExperimentView) { disp.Update(v, time.Now()) })
	disp.Close()
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: experiment %s stopped with the cluster", id)
	}
	failed := err != nil && view.Experiment.Status == plan.StatusFailed
	if err != nil && !failed {
		return err
	}
	// Export what was accepted, also for a failed experiment (a report that names the failed
	// items and is not a finished result).
	if xerr := c.Export(ctx, id, out); xerr != nil {
		return errors.Join(err, xerr)
	}
	html := filepath.Join(out, report.FileName)
	if failed {
		return fmt.Errorf("experiment %s failed (partial results in %s, report %s): %s", spec.Name, out, html, view.Experiment.Reason)
	}
	run, err := results.Load(out)
	if err != nil {
		return err
	}
	if err := printReportTable(cmd.OutOrStdout(), run.Report); err != nil {
		return err
	}
	if _, err = fmt.Fprintf(cmd.OutOrStdout(), "\nrun folder: %s\nreport: %s\n", out, html); err != nil || !hold {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), "holding the cluster up (--hold): Ctrl-C stops it")
	<-ctx.Done()
	return nil
}
