package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/report"
	"github.com/optoloop/optoloop/results"
)

type experimentExportOptions struct {
	client   clientOptions
	redis    redisOptions
	out      string
	logLevel string
}

func newExperimentExportCmd() *cobra.Command {
	var o experimentExportOptions
	cmd := &cobra.Command{
		Use:   "export ID --out DIR",
		Short: "Write the run folder and report.html of a cluster experiment (the layout of a local run's)",
		Long: "export reads an experiment's accepted outcomes from the coordinator and its tracks, ensembles\n" +
			"and checkpoints from Redis, and writes the run folder (report.json, episodes, ensembles, learning\n" +
			"curves, policy maps) and report.html into --out, as `experiment run` does for a local run. An\n" +
			"experiment still running gives a partial folder whose report says so.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runExperimentExport(cmd, args[0], o) },
	}
	o.client.register(cmd)
	o.redis.register(cmd)
	cmd.Flags().StringVar(&o.out, "out", "", "run folder to write (required; must not hold a report of another experiment)")
	cmd.Flags().StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

func runExperimentExport(cmd *cobra.Command, id string, o experimentExportOptions) error {
	if o.out == "" {
		return errors.New("--out DIR is required")
	}
	log, err := newLogger(cmd, o.logLevel)
	if err != nil {
		return err
	}
	cl, err := o.client.client(true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.client.timeout)
	defer cancel()
	// The experiment must exist before anything is written; every read after Sync sees what
	// the leader had acknowledged.
	if err := cl.Sync(ctx); err != nil {
		return err
	}
	if _, err := cl.Experiment(ctx, id); err != nil {
		return err
	}
	// Exporting again refreshes a folder of the same experiment; another's is left alone.
	if b, err := os.ReadFile(filepath.Join(o.out, results.ReportFile)); err == nil {
		var old results.Report
		if err := json.Unmarshal(b, &old); err != nil || old.ID != id {
			return fmt.Errorf("--out %s holds the report of another run (%q); choose a new folder", o.out, old.ID)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--out %s: %w", o.out, err)
	}
	store, stores, err := o.redis.open(ctx, log)
	if err != nil {
		return err
	}
	defer store.Close()
	rep, err := fleet.Export(ctx, o.out, cl, id, nil, stores)
	if err != nil {
		return err
	}
	html, err := report.Write(ctx, o.out)
	if err != nil {
		return fmt.Errorf("report of %s: %w", o.out, err)
	}
	if err := printReportTable(cmd.OutOrStdout(), rep); err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "\nexperiment %s (%s, phase %s)\nrun folder: %s\nreport: %s\n", id, rep.Status, rep.Phase, filepath.Clean(o.out), html)
	return err
}
