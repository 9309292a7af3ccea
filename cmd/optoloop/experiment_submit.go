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
	var again bool
	cmd := &cobra.Command{
		Use:   "submit FILE",
		Short: "Submit an experiment file to the coordinator and print its id",
		Long: "submit checks the experiment file (experiments/README.md) and sends it to the coordinator, which\n" +
			"checks it again (including its lines against the catalogue) and schedules its phases. A malformed\n" +
			"file is refused with the field named and nothing is submitted. A file byte for byte the same as\n" +
			"one already submitted (and not archived) is refused with that experiment's id, unless --again.",
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
			submit := cl.Submit
			if again {
				submit = cl.SubmitAgain
			}
			id, err := submit(ctx, data)
			if err != nil {
				return fmt.Errorf("submit %s: %w", args[0], err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), id)
			return err
		},
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&again, "again", false, "submit the file even though the same file is already submitted and not archived")
	return cmd
}
