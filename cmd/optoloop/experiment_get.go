package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newExperimentGetCmd() *cobra.Command {
	var o clientOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one experiment: phase, items by state and every item",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := o.client(true)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			v, err := cl.Experiment(ctx, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			e := v.Experiment
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "experiment\t%s (%s)\n", e.ID, e.Spec.Name)
			fmt.Fprintf(tw, "state\t%s\nphase\t%s\n", e.Status, e.Phase)
			if e.Reason != "" {
				fmt.Fprintf(tw, "reason\t%s\n", e.Reason)
			}
			if !e.ArchivedAt.IsZero() {
				fmt.Fprintf(tw, "archived\t%s (items dropped; episodes %v, tasks %v)\n", e.ArchivedAt.Format("2006-01-02 15:04:05"), v.Counts.Episodes, v.Counts.Tasks)
			}
			fmt.Fprintf(tw, "lines\t%v\n", e.Spec.Lines)
			for _, line := range e.Spec.Lines {
				if r, ok := e.RandomRates[line]; ok {
					fmt.Fprintf(tw, "random rate %s\t%.3f\n", line, r)
				}
			}
			fmt.Fprintln(tw, "\nITEM\tKIND\tLINE\tAGENT\tSTATE\tATTEMPTS\tHOLDER")
			for _, it := range v.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", it.ID, it.Kind, it.Line, it.AgentLine, it.State, it.Attempts, it.Holder)
			}
			return tw.Flush()
		},
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the experiment and its items as JSON")
	return cmd
}

func newExperimentListCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the experiments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := o.client(true)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			list, err := cl.Experiments(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EXPERIMENT\tSTATE\tPHASE\tOPEN\tSUBMITTED")
			for _, e := range list {
				state := string(e.Status)
				if !e.ArchivedAt.IsZero() {
					state += " (archived)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.ID, state, e.Phase, e.Open, e.SubmittedAt.Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	o.register(cmd)
	return cmd
}
