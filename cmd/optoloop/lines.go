package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/spf13/cobra"
)

func newLinesCmd() *cobra.Command {
	var (
		asJSON    bool
		linesFile string
	)
	cmd := &cobra.Command{
		Use:   "lines",
		Short: "List the line catalogue (neurons, opsin, light response, sources)",
		Long: "lines lists the transgenic lines the simulator knows: the embedded catalogue of the reference\n" +
			"lines, merged with --lines-file (its lines replace embedded ones with the same code and add new ones).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cat, err := sim.LoadCatalogue(linesFile)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(cat.Lines)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LINE\tNAME\tOPSIN\tSIGN\tNM\tNEURONS")
			for _, l := range cat.Lines {
				nm := "-"
				if l.WavelengthNM > 0 {
					nm = fmt.Sprint(l.WavelengthNM)
				}
				neurons := strings.Join(l.Neurons, ", ")
				if neurons == "" {
					neurons = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.Code, l.Name, l.Opsin, l.Sign, nm, neurons)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the catalogue as JSON, with response parameters and sources")
	cmd.Flags().StringVar(&linesFile, "lines-file", "", "YAML or JSON catalogue merged over the embedded one")
	return cmd
}
