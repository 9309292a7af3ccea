package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/progress"
)

// Bounds of experiment status --interval.
const (
	minStatusInterval = 100 * time.Millisecond
	maxStatusInterval = time.Hour
)

func newExperimentStatusCmd() *cobra.Command {
	var o clientOptions
	var watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show an experiment's progress per phase: episodes, training updates, arenas busy, rate, ETA",
		Long: "status asks the coordinator for an experiment and shows, per phase, the episodes done out of the\n" +
			"phase's total, the training updates done out of theirs, the arenas busy, a rate and the estimated\n" +
			"time left in the phase, and the items that failed for good. A phase not open yet shows as pending:\n" +
			"its items do not exist yet. With --watch it asks again every --interval until the experiment is\n" +
			"done (exit 0) or failed (non-zero, with the reason), or Ctrl-C; on a terminal the display is\n" +
			"redrawn in place, otherwise it writes a line when something changes.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return experimentStatus(cmd, o, args[0], watch, interval)
		},
	}
	o.register(cmd)
	f := cmd.Flags()
	f.BoolVar(&watch, "watch", false, "keep showing the progress until the experiment ends")
	f.DurationVar(&interval, "interval", 2*time.Second, "with --watch, how often to ask the coordinator")
	return cmd
}

func experimentStatus(cmd *cobra.Command, o clientOptions, id string, watch bool, interval time.Duration) error {
	if interval < minStatusInterval || interval > maxStatusInterval {
		return fmt.Errorf("--interval %v must be within 100ms-1h", interval)
	}
	cl, err := o.client(true)
	if err != nil {
		return err
	}
	fetch := func(ctx context.Context) (api.ExperimentView, error) {
		ctx, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		v, err := cl.Experiment(ctx, id)
		if err != nil {
			return v, fmt.Errorf("experiment %s: %w", id, err)
		}
		return v, nil
	}
	ctx := cmd.Context()
	v, err := fetch(ctx)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if !watch {
		return progress.Print(out, v)
	}
	f, isFile := out.(*os.File)
	disp := progress.New(out, isFile && progress.IsTerminal(f))
	defer disp.Close()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		disp.Update(v, time.Now())
		switch e := v.Experiment; e.Status {
		case plan.StatusDone:
			return nil
		case plan.StatusFailed:
			return fmt.Errorf("experiment %s failed: %s", id, e.Reason)
		}
		select {
		case <-ctx.Done(): // Ctrl-C: the person stopped watching
			return nil
		case <-tick.C:
		}
		if v, err = fetch(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}
