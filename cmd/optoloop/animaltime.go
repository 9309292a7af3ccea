package main

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/charts"
	"github.com/optoloop/optoloop/report"
	"github.com/optoloop/optoloop/results"
)

func newAnimalTimeCmd() *cobra.Command {
	var out string
	var lines []string
	cmd := &cobra.Command{
		Use:   "animal-time RUN_DIR... --out FILE",
		Short: "Plot closest approach against animal hours for several run folders (online against offline)",
		Long: `animal-time reads the report.json of each run folder and draws, on one figure, each line's
mean closest approach against the animal hours of the data its agents were trained on: an online
run's evaluation checkpoints and final evaluation as a solid curve, an offline run's final
evaluation as one point (dashed when several offline runs of different hours_per_line are given,
joined in order of hours). FILE ends in .png or .svg. --lines keeps only those lines.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("animal-time: --out FILE is required")
			}
			format, err := charts.FormatOf(out)
			if err != nil {
				return err
			}
			series, err := report.AnimalTimeSeries(args, lines)
			if err != nil {
				return err
			}
			f, err := charts.BuildAnimalTime("closest approach against animal time", series)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := f.Render(&buf, format); err != nil {
				return err
			}
			if err := results.WriteFileAtomic(out, buf.Bytes()); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), out)
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the figure to write (.png or .svg)")
	cmd.Flags().StringSliceVar(&lines, "lines", nil, "only these lines (comma separated)")
	return cmd
}
