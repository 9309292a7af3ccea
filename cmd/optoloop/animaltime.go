package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/charts"
	"github.com/optoloop/optoloop/experiment"
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
			type offline struct{ pts []charts.AnimalPoint }
			off := map[string]*offline{}
			var series []charts.AnimalSeries
			for _, dir := range args {
				rep, spec, err := readRun(dir)
				if err != nil {
					return err
				}
				for _, l := range rep.Lines {
					if len(lines) > 0 && !slices.Contains(lines, l.Line) {
						continue
					}
					if spec.Online() {
						series = append(series, report.AnimalSeries(&results.Report{Lines: []results.LineResult{l}}, "online "+spec.Name)...)
						continue
					}
					o := off[l.Line]
					if o == nil {
						o = &offline{}
						off[l.Line] = o
					}
					for _, p := range l.Curve {
						o.pts = append(o.pts, charts.AnimalPoint{Hours: p.AnimalHours, Mean: p.MeanClosest, SD: p.SDClosest, N: p.N})
					}
				}
			}
			for _, l := range slices.Sorted(maps.Keys(off)) {
				pts := off[l].pts
				slices.SortFunc(pts, func(a, b charts.AnimalPoint) int { return cmp.Compare(a.Hours, b.Hours) })
				series = append(series, charts.AnimalSeries{Name: l + " offline", Points: pts, Dashed: true})
			}
			f, err := charts.BuildAnimalTime("closest approach against animal time", series)
			if err != nil {
				return err
			}
			tmp := out + ".tmp"
			w, err := os.Create(tmp)
			if err != nil {
				return err
			}
			if err := f.Render(w, format); err != nil {
				w.Close()
				os.Remove(tmp)
				return err
			}
			if err := w.Close(); err != nil {
				os.Remove(tmp)
				return err
			}
			if err := os.Rename(tmp, out); err != nil {
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

// readRun reads a run folder's report.json and experiment.yaml.
func readRun(dir string) (*results.Report, experiment.Spec, error) {
	b, err := os.ReadFile(filepath.Join(dir, results.ReportFile))
	if err != nil {
		return nil, experiment.Spec{}, fmt.Errorf("run folder %s: %w", dir, err)
	}
	var rep results.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, experiment.Spec{}, fmt.Errorf("%s: %w", filepath.Join(dir, results.ReportFile), err)
	}
	spec, err := experiment.ParseFile(filepath.Join(dir, results.ExperimentFile), experiment.Options{})
	if err != nil {
		return nil, experiment.Spec{}, fmt.Errorf("run folder %s: %w", dir, err)
	}
	return &rep, spec, nil
}
