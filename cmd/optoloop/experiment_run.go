package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/progress"
	"github.com/optoloop/optoloop/report"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/runner"
	"github.com/spf13/cobra"
)

func newExperimentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "experiment",
		Short: "Run an experiment in this process, or submit and read experiments on a coordinator",
		Long: "experiment run runs a whole experiment in this process (the cluster's engine with in-memory\n" +
			"stores); submit, list and get talk to a coordinator cluster.",
	}
	cmd.AddCommand(newExperimentRunCmd(), newExperimentSubmitCmd(), newExperimentListCmd(), newExperimentGetCmd(), newExperimentExportCmd(), newExperimentStatusCmd(), newExperimentCancelCmd(),
		newExperimentArchiveCmd())
	return cmd
}

type experimentRunOptions struct {
	out       string
	linesFile string
	noRender  bool
	parallel  int
	verbose   bool
	tel       telemetryOptions
}

func newExperimentRunCmd() *cobra.Command {
	var o experimentRunOptions
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Collect, train, evaluate and cross-evaluate an experiment on simulated arenas, with no servers",
		Long: "run reads an experiment file (see experiments/README.md), runs its phases on simulated arenas in\n" +
			"this process (collect random-light data, train each line's ensemble, evaluate the agent against no\n" +
			"light and random light at the agent's measured on-rate, cross-evaluate) and writes a run folder\n" +
			"with report.json, the ensembles, learning curves, policy maps and per-episode tracks. It prints a\n" +
			"table of the results.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExperiment(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "run folder (default runs/<name>-<time>)")
	f.StringVar(&o.linesFile, "lines-file", "", "YAML or JSON catalogue merged over the embedded one")
	f.BoolVar(&o.noRender, "no-render", false, "act on the simulator's own pose instead of rendering and tracking frames (fast)")
	f.IntVar(&o.parallel, "parallel", 0, "episodes run at once over all arenas (default: number of CPUs); changes the speed, never the results")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log every episode")
	o.tel.register(cmd, false)
	return cmd
}

// loadExperiment reads the line catalogue (the embedded one with linesFile merged over it) and
// the experiment file at path, whose lines must be in the catalogue.
func loadExperiment(path, linesFile string) (*sim.Catalogue, experiment.Spec, []byte, error) {
	cat, err := sim.LoadCatalogue(linesFile)
	if err != nil {
		return nil, experiment.Spec{}, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, experiment.Spec{}, nil, fmt.Errorf("experiment file: %w", err)
	}
	known := func(code string) bool { _, err := cat.Line(code); return err == nil }
	spec, err := experiment.ParseWith(data, experiment.Options{KnownLine: known})
	if err != nil {
		return nil, experiment.Spec{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return cat, spec, data, nil
}

func runExperiment(cmd *cobra.Command, path string, o experimentRunOptions) error {
	cat, spec, data, err := loadExperiment(path, o.linesFile)
	if err != nil {
		return err
	}
	dir := o.out
	if dir == "" {
		dir = filepath.Join("runs", fmt.Sprintf("%s-%s", spec.Name, time.Now().UTC().Format("20060102-150405")))
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	// Progress on stderr: redrawn in place on a terminal (the log lines go above it), plain
	// lines otherwise.
	stderr := cmd.ErrOrStderr()
	f, isFile := stderr.(*os.File)
	disp := progress.New(stderr, isFile && progress.IsTerminal(f))
	log := slog.New(slog.NewTextHandler(disp, &slog.HandlerOptions{Level: level}))
	tel, shutdown, err := o.tel.open(cmd.Context(), "run", spec.Name, log)
	if err != nil {
		return err
	}
	defer shutdown()
	rcfg := runner.Config{
		Spec: spec, SpecYAML: data, Dir: dir, Catalogue: cat,
		NoRender: o.noRender, Parallel: o.parallel, Logger: log,
		Progress: func(v api.ExperimentView) { disp.Update(v, time.Now()) },
	}
	if tel.Tracing() {
		rcfg.TracerProvider, rcfg.MeterProvider = tel.TracerProvider(), tel.MeterProvider()
	}
	r, err := runner.New(rcfg)
	if err != nil {
		return err
	}
	log.Info("run folder", "dir", dir)
	rep, runErr := r.Run(cmd.Context())
	disp.Close()
	if rep == nil {
		return fmt.Errorf("experiment %s: %w", spec.Name, runErr)
	}
	if runErr != nil {
		// The report of what was accepted names the failed items and says it is not a finished
		// result; write it, then fail.
		html, err := report.Write(context.WithoutCancel(cmd.Context()), dir)
		if err != nil {
			return fmt.Errorf("experiment %s failed (partial results in %s): %w", spec.Name, dir, errors.Join(runErr, err))
		}
		return fmt.Errorf("experiment %s failed (partial results in %s, report %s): %w", spec.Name, dir, html, runErr)
	}
	if err := printReportTable(cmd.OutOrStdout(), rep); err != nil {
		return err
	}
	html, err := report.Write(cmd.Context(), dir)
	if err != nil {
		return fmt.Errorf("report of %s: %w", dir, err)
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "\nrun folder: %s\nreport: %s\n", dir, html)
	return err
}

// printReportTable prints the per-line comparison and the cross-evaluation.
func printReportTable(w io.Writer, rep *results.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tAGENT cm\tNO LIGHT cm\tRANDOM cm\tRANDOM RATE\tp(agent<>none)\tp(agent<>random)\tN\tANIMAL h")
	curves := false
	for _, l := range rep.Lines {
		a, n, r := l.Conditions[results.Agent], l.Conditions[results.None], l.Conditions[results.Random]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3f\t%s\t%s\t%d\t%.2f\n", l.Line, meanSD(a), meanSD(n), meanSD(r),
			l.RandomRate, pval(l.PAgentVsNone), pval(l.PAgentVsRandom), a.N, l.AnimalHours)
		curves = curves || len(l.Curve) > 1
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if curves {
		fmt.Fprintln(w, "\nlearning curve: mean closest approach (cm) against animal hours (version, episodes)")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, l := range rep.Lines {
			cells := make([]string, len(l.Curve))
			for i, p := range l.Curve {
				cells[i] = fmt.Sprintf("%.2f h: %.2f (v%d, %d)", p.AnimalHours, p.MeanClosest, p.Version, p.N)
			}
			fmt.Fprintf(tw, "%s\t%s\n", l.Line, strings.Join(cells, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rep.Failed) > 0 {
		fmt.Fprintf(w, "\n%d items failed for good (left out of the results):\n", len(rep.Failed))
		for _, f := range rep.Failed {
			last := ""
			if n := len(f.Reasons); n > 0 {
				last = f.Reasons[n-1]
			}
			fmt.Fprintf(w, "  %s (%s, line %s, %d attempts): %s\n", f.ID, f.Kind, f.Line, f.Attempts, last)
		}
	}
	if err := printTransfer(w, rep.Transfer); err != nil {
		return err
	}
	if rep.Cross == nil {
		return nil
	}
	fmt.Fprintln(w, "\ncross-evaluation: mean closest approach (cm), rows: animal line, columns: agent line")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ANIMAL\\AGENT\t%s\n", strings.Join(rep.Cross.Agents, "\t"))
	for i, animal := range rep.Cross.Animals {
		cells := make([]string, len(rep.Cross.ClosestCM[i]))
		for j, v := range rep.Cross.ClosestCM[i] {
			cells[j] = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(tw, "%s\t%s\n", animal, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Cross.Columns) == 0 {
		return nil
	}
	cols := make([]string, len(rep.Cross.Columns))
	for i, c := range rep.Cross.Columns {
		verdict := map[bool]string{true: "own best", false: "not own best"}[c.OwnBest]
		cols[i] = fmt.Sprintf("%s %s (against %s's animals, p %s)", c.Agent, verdict, c.Rival, pval(c.P))
	}
	_, err := fmt.Fprintf(w, "own line best in %d of %d columns, two-sided Mann-Whitney of the own line against the closest other: %s\n",
		rep.Cross.OwnBest(), len(rep.Cross.Columns), strings.Join(cols, "; "))
	return err
}

// printTransfer prints the transfer phase: per line and environment, the successes of the
// agent and of no light, Fisher's exact p, and the median time to food.
func printTransfer(w io.Writer, ts []results.TransferResult) error {
	if len(ts) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\ntransfer: successes (obstacles: within 0.5 cm of the target; food: on the lawn), two-sided Fisher p;")
	fmt.Fprintln(w, "median time to food (s), an episode that never reached it counted as its length")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tENVIRONMENT\tAGENT\tNO LIGHT\tp(Fisher)\tAGENT FOOD s\tNO LIGHT FOOD s\tp(time)")
	for _, r := range ts {
		frac := func(c results.TransferCondition) string { return fmt.Sprintf("%d/%d", c.Successes, c.N) }
		sec := func(v float64) string {
			if math.IsNaN(v) {
				return "-"
			}
			return fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Line, r.Environment, frac(r.Agent), frac(r.None), pval(r.PSuccess),
			sec(r.Agent.MedianTimeToFoodS), sec(r.None.MedianTimeToFoodS), pval(r.PTimeToFood))
	}
	return tw.Flush()
}

func meanSD(c results.Condition) string {
	if c.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f ± %.2f", c.MeanClosest, c.SDClosest)
}

func pval(p float64) string {
	if math.IsNaN(p) {
		return "-"
	}
	if p < 0.001 {
		return fmt.Sprintf("%.1e", p)
	}
	return fmt.Sprintf("%.3f", p)
}
