package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/experiment"
)

func newExperimentSubmitCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "submit FILE",
		Short: "Submit an experiment file to the coordinator and print its id",
		Long: "submit checks the experiment file (experiments/README.md) and sends it to the coordinator, which\n" +
			"checks it again (including its lines against the catalogue) and schedules its phases. A malformed\n" +
			"file is refused with the field named and nothing is submitted.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("experiment file: %w", err)
			}
			if _, err := experiment.Parse(data); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			cl, err := o.client(true)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			id, err := cl.Submit(ctx, data)
			if err != nil {
				return fmt.Errorf("submit %s: %w", args[0], err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), id)
			return err
		},
	}
	o.register(cmd)
	return cmd
}
