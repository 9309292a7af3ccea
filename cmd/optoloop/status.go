package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/coordinator/api"
)

func newStatusCmd() *cobra.Command {
	var o clientOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the coordinator cluster: leader, nodes, items by state, experiments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := o.client(true)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			st, err := cl.Status(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		},
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func printStatus(w io.Writer, st api.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "leader\t%s\t%s\n", st.Leader.ID, st.Leader.HTTPAddr)
	fmt.Fprintf(tw, "answered by\t%s\tapplied index %d\n\n", st.AnsweredBy, st.AppliedIndex)
	fmt.Fprintln(tw, "NODE\tSTATE\tAPPLIED\tCOMMIT\tLAST CONTACT\tHTTP\tERROR")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%dms\t%s\t%s\n", n.ID, n.State, n.AppliedIndex, n.CommitIndex, n.LastContactMs, n.HTTPAddr, n.Error)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "ITEMS\tPENDING\tLEASED\tDONE\tFAILED")
	for _, r := range []struct {
		name string
		by   map[api.ItemState]int
	}{{"episodes", st.Episodes}, {"training tasks", st.Tasks}} {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", r.name, r.by[api.StatePending], r.by[api.StateLeased], r.by[api.StateDone], r.by[api.StateFailed])
	}
	fmt.Fprintf(tw, "\nworkers %d, learners %d\n", st.Workers, st.Learners)
	if len(st.Experiments) > 0 {
		fmt.Fprintln(tw, "\nEXPERIMENT\tSTATE\tPHASE\tOPEN")
		for _, e := range st.Experiments {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", e.ID, e.State, e.Phase, e.Open)
		}
	}
	return tw.Flush()
}
