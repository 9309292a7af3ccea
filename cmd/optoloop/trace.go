package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/telemetry"
	"github.com/optoloop/optoloop/traceview"
)

type traceOptions struct {
	traceDir, jaeger, html string
	links                  bool
	timeout                time.Duration
	barWidth               int
}

func newTraceCmd() *cobra.Command {
	var o traceOptions
	cmd := &cobra.Command{
		Use:   "trace ID (--trace-dir DIR | --jaeger URL)",
		Short: "Print an episode's trace as a waterfall, with the training spans it links to",
		Long: "trace prints the trace of one episode (or training task) as a waterfall: every span of the\n" +
			"coordinator, the worker, the replay writes and the report, indented by parent, with its start,\n" +
			"duration, a bar on the trace's timeline, key attributes, failed attempts and counted events; the\n" +
			"spans it links to are listed under their span. ID is an item id (demo-1.37), whose trace id every\n" +
			"process computes from it, or a trace id of 32 hex digits. The spans come from the OTLP JSON\n" +
			"files of --trace-dir (what `cluster up --trace-dir DIR` writes) or from a Jaeger query service\n" +
			"(--jaeger http://127.0.0.1:16686). --links follows the links: from an evaluation episode to the\n" +
			"training task of its policy version and every episode that task learnt from.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrace(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.traceDir, "trace-dir", "", "read the spans from this folder of OTLP JSON files (--trace-dir of the processes)")
	f.StringVar(&o.jaeger, "jaeger", "", "read the spans from this Jaeger query service (its UI's URL)")
	f.StringVar(&o.html, "html", "", "also write the waterfall as a self-contained HTML page to this file")
	f.BoolVar(&o.links, "links", false, "follow the links: the training span of each linked span and the spans it links to")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up on the Jaeger query service after this long")
	f.IntVar(&o.barWidth, "width", 40, "width of the timeline in characters")
	return cmd
}

// hexTraceID is a trace id given in place of an item id.
var hexTraceID = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

func runTrace(cmd *cobra.Command, id string, o traceOptions) error {
	var src traceview.Source
	switch {
	case o.traceDir != "" && o.jaeger != "":
		return errors.New("give one of --trace-dir and --jaeger, not both")
	case o.traceDir != "":
		d, err := traceview.OpenDir(o.traceDir)
		if err != nil {
			return err
		}
		if n := len(d.Skipped); n > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: skipped %d unreadable lines in %s (first: %s)\n", n, o.traceDir, d.Skipped[0])
		}
		src = d
	case o.jaeger != "":
		src = &traceview.Jaeger{URL: o.jaeger, Client: &http.Client{Timeout: o.timeout}}
	default:
		return errors.New("give --trace-dir DIR or --jaeger URL: where to read the spans from")
	}
	if o.barWidth < 10 {
		return fmt.Errorf("--width %d: at least 10", o.barWidth)
	}
	traceID := id
	if !hexTraceID.MatchString(id) {
		traceID = telemetry.EpisodeTraceID(id).String()
	}
	ctx := cmd.Context()
	spans, err := src.Trace(ctx, traceID)
	if errors.Is(err, traceview.ErrNotFound) {
		return fmt.Errorf("no trace of %s (trace id %s) in %s", id, traceID, sourceName(o))
	}
	if err != nil {
		return err
	}
	tree := traceview.Waterfall(spans, traceID)
	if err := traceview.Resolve(ctx, src, tree, o.links); err != nil {
		return err
	}
	if err := tree.WriteText(cmd.OutOrStdout(), traceview.TextOptions{BarWidth: o.barWidth, Follow: o.links}); err != nil {
		return err
	}
	if o.html != "" {
		f, err := os.Create(o.html)
		if err != nil {
			return fmt.Errorf("--html: %w", err)
		}
		if err := tree.WriteHTML(f, o.links); err != nil {
			f.Close()
			return fmt.Errorf("--html: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("--html: %w", err)
		}
	}
	return nil
}

func sourceName(o traceOptions) string {
	if o.traceDir != "" {
		return o.traceDir
	}
	return o.jaeger
}
