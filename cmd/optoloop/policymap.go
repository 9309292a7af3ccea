package main

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/charts"
	"github.com/optoloop/optoloop/report"
	"github.com/optoloop/optoloop/results"
)

func newPolicyMapCmd() *cobra.Command {
	var ensemble, out, title, jsonOut string
	cmd := &cobra.Command{
		Use:   "policy-map --ensemble DIR --out FILE.png|FILE.svg",
		Short: "Draw the policy map of a saved ensemble",
		Long: `policy-map loads an ensemble (a folder written by the learner, e.g.
RUN_DIR/lines/<line>/ensemble), computes its mean P(light on) on the reference grid (9 x 9
positions within 900 px of the target, 36 body angles relative to the target direction x 36 head
angles relative to the body, one frame repeated 15 times) and draws it as PNG or SVG, chosen by
the extension of --out. --json also writes the map's numbers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ensemble == "" || out == "" {
				return errors.New("policy-map: --ensemble and --out are required")
			}
			format, err := charts.FormatOf(out)
			if err != nil {
				return fmt.Errorf("policy-map: --out: %w", err)
			}
			m, err := report.EnsemblePolicyMap(ensemble)
			if err != nil {
				return fmt.Errorf("policy-map: %w", err)
			}
			if title == "" {
				title = fmt.Sprintf("P(light on), %s (%d members)", ensembleName(ensemble), m.Members)
			}
			var buf bytes.Buffer
			if err := charts.WritePolicyMap(&buf, format, report.PolicyMapChart(m, title)); err != nil {
				return fmt.Errorf("policy-map: %w", err)
			}
			if err := results.WriteFileAtomic(out, buf.Bytes()); err != nil {
				return fmt.Errorf("policy-map: %w", err)
			}
			if jsonOut != "" {
				buf.Reset()
				if err := m.WriteJSON(&buf); err != nil {
					return fmt.Errorf("policy-map: %w", err)
				}
				if err := results.WriteFileAtomic(jsonOut, buf.Bytes()); err != nil {
					return fmt.Errorf("policy-map: %w", err)
				}
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&ensemble, "ensemble", "", "folder of a saved ensemble (required)")
	f.StringVar(&out, "out", "", "output image, .png or .svg (required)")
	f.StringVar(&title, "title", "", "figure title (default: the ensemble's folder and size)")
	f.StringVar(&jsonOut, "json", "", "also write the map as JSON to this file")
	return cmd
}

// ensembleName names an ensemble folder: "line L" for a run folder's lines/L/ensemble, else the
// folder's name.
func ensembleName(dir string) string {
	dir = filepath.Clean(dir)
	line := filepath.Dir(dir)
	if filepath.Base(dir) == results.EnsembleDir && filepath.Base(filepath.Dir(line)) == results.LinesDir {
		return "line " + filepath.Base(line)
	}
	return "ensemble " + filepath.Base(dir)
}
