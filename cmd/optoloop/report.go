package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/report"
)

func newReportCmd() *cobra.Command {
	cfg := report.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "report RUN_DIR [--compare RUN_DIR,...]",
		Short: "Write RUN_DIR/report.html: settings, per-line results and every figure of an experiment's run folder",
		Long: `report reads an experiment's run folder (also one still running, or one that failed) and
writes RUN_DIR/report.html, one self-contained file with the images embedded: the experiment's
settings, the per-line table of agent against no light and random light, and the figures
(closest approach, time to 0.5 cm, trajectories, learning curves, policy maps, cross-evaluation,
effect sizes across lines). Missing parts of the folder are named in the report. It prints the
report's path.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			path, err := report.WriteWith(cmd.Context(), args[0], cfg)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), path)
			return err
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the bootstrap intervals and point jitter")
	f.IntVar(&cfg.Resamples, "resamples", cfg.Resamples, "bootstrap resamples of the effect-size intervals")
	f.IntVar(&cfg.MaxTrajectories, "max-trajectories", cfg.MaxTrajectories, "most episodes drawn as small multiples per line and condition")
	f.IntVar(&cfg.Workers, "workers", cfg.Workers, "figures rendered in parallel")
	f.StringSliceVar(&cfg.Compare, "compare", nil, "other run folders whose learning curves against animal time are drawn with this run's (comma separated)")
	return cmd
}
