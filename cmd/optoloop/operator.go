package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/coordinator/api"
)

// The operator's actions on a running cluster: cancel an experiment, drain or resume a worker.
// Each needs an operator (or the cluster) credential in --token-file.

func newExperimentCancelCmd() *cobra.Command {
	var o clientOptions
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a running experiment: it fails with --reason and its open episodes and tasks end",
		Long: "cancel fails a running experiment with --reason. Its pending items end at once; an arena or a\n" +
			"learner holding one of its leases learns it at its next heartbeat and stops (the light goes off).\n" +
			"Results reported so far are kept. Needs an operator or the cluster credential.",
		Args: cobra.ExactArgs(1),
		RunE: actOn(&o, "experiment", "cancelled", func(ctx context.Context, cl *api.Client, id string) error {
			return cl.Cancel(ctx, id, reason)
		}),
	}
	o.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (kept in the experiment's failure reason)")
	return cmd
}

func newClusterDrainCmd() *cobra.Command {
	var o clientOptions
	var resume bool
	cmd := &cobra.Command{
		Use:   "drain WORKER",
		Short: "Stop leasing episodes to a worker (arena); its running episode finishes. --resume undoes it",
		Long: "drain tells the coordinator to lease no new episode to the worker (one arena); the episode it\n" +
			"runs finishes and is reported as usual, then the arena stays idle, e.g. to change its plate.\n" +
			"--resume makes it lease again. Needs an operator or the cluster credential.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			done := "draining: no new episodes"
			if resume {
				done = "resumed"
			}
			return actOn(&o, "worker", done, func(ctx context.Context, cl *api.Client, id string) error {
				return cl.Drain(ctx, id, !resume)
			})(cmd, args)
		},
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&resume, "resume", false, "lease episodes to the worker again")
	return cmd
}

func newExperimentArchiveCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "archive ID",
		Short: "Drop a finished experiment's episodes and tasks from the coordinator's live state",
		Long: "archive drops a done, failed or cancelled experiment's items (episodes, tasks, results) from the\n" +
			"coordinator's memory and snapshots, keeping a tombstone: its id, name, how it ended and its\n" +
			"counts; reads then say it is archived. Export its results first (experiment export). A running\n" +
			"experiment is refused. Its items no longer count against --max-live-items. Needs an operator or\n" +
			"the cluster credential.",
		Args: cobra.ExactArgs(1),
		RunE: actOn(&o, "experiment", "archived", func(ctx context.Context, cl *api.Client, id string) error {
			return cl.Archive(ctx, id)
		}),
	}
	o.register(cmd)
	return cmd
}

// actOn is the RunE of an operator's command that makes one call about args[0], then says
// "<what> ID <done>"; a refusal is "<command> ID: <why>".
func actOn(o *clientOptions, what, done string, call func(ctx context.Context, cl *api.Client, id string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if args[0] == "" {
			return fmt.Errorf("%s id is empty", what)
		}
		cl, err := o.client(true)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
		defer cancel()
		if err := call(ctx, cl, args[0]); err != nil {
			return fmt.Errorf("%s %s: %w", cmd.Name(), args[0], err)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", what, args[0], done)
		return err
	}
}
