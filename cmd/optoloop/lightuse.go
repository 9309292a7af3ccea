package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/results"
)

func newLightUseCmd() *cobra.Command {
	cfg := results.DefaultLightUseConfig()
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "light-use RUN_DIR",
		Short: "How the light was used in a run's tracked episodes, by the state the worm was in",
		Long: `light-use reads the episode tracks of an experiment's run folder and prints, for each line
and condition (agent, cross-evaluation, none, random), the share of frames with the light on,
split by whether the worm was moving or still (its centre moved less than --still-mm over the
last --window frames) and by which way it faced: cos(body angle - direction to the target) in
[-1, -0.5), [-0.5, 0), [0, 0.5), [0.5, 1], from facing away to facing the target. Columns: P(ON)
over all counted frames, STILL the share of still frames, then P(light on) for moving (M:) and
still (S:) worms in each facing bin; a cell with no frames prints "-". Where a policy map shows an ensemble on made-up observations, this shows
what it did on the animals. --json prints the counts instead.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			run, err := results.Load(args[0])
			if err != nil {
				return fmt.Errorf("light-use: %w", err)
			}
			use, err := results.LightUseOf(run.Episodes, cfg)
			if err != nil {
				return fmt.Errorf("light-use: %w", err)
			}
			if len(use) == 0 {
				return fmt.Errorf("light-use: no episode in %s has a track of at least %d frames", args[0], cfg.Window)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(use)
			}
			return writeLightUse(cmd.OutOrStdout(), use)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Window, "window", cfg.Window, "frames over which movement is measured (15 = the observation)")
	f.Float64Var(&cfg.StillMM, "still-mm", cfg.StillMM, "most the worm's centre may move over the window for the frame to count as still (mm)")
	f.BoolVar(&asJSON, "json", false, "print the frame counts as JSON")
	return cmd
}

func writeLightUse(w io.Writer, use []results.LightUse) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tAGENT\tCONDITION\tEPISODES\tP(ON)\tSTILL\tM:AWAY\tM:-0.5..0\tM:0..0.5\tM:TOWARD\tS:AWAY\tS:-0.5..0\tS:0..0.5\tS:TOWARD")
	p := func(c results.LightUseCell) string {
		if c.Frames == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", c.P())
	}
	for _, u := range use {
		agent := u.AgentLine
		if agent == "" {
			agent = "-"
		}
		stillShare := "-"
		if v := u.StillShare(); !math.IsNaN(v) {
			stillShare = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s", u.Line, agent, u.Condition, u.Episodes, p(u.All()), stillShare)
		for _, c := range u.Moving {
			fmt.Fprintf(tw, "\t%s", p(c))
		}
		for _, c := range u.Still {
			fmt.Fprintf(tw, "\t%s", p(c))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return errors.Join(errors.New("light-use: writing the table"), err)
	}
	return nil
}
