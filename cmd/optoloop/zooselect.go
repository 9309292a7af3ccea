package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/zoo"
)

// zooSelectFile is what zoo select writes into its folder.
const zooSelectFile = "select.json"

type zooSelectOptions struct {
	n     int
	seed  uint64
	split string
	out   string
	zooProtocol
}

func newZooSelectCmd() *cobra.Command {
	var o zooSelectOptions
	cmd := &cobra.Command{
		Use:   "select --lines N --seed S [--split heldout|train|all] RUN... [--out DIR]",
		Short: "Choose each line's agents among zoo runs of different settings, on episodes of their own",
		Long: "select takes folders written by `zoo run` on the same zoo, split and evaluation protocol, each\n" +
			"trained with other settings, and for every line of the split lets each run's agents act on the\n" +
			"same selection episodes, chooses the run whose agents came closest on average, and measures the\n" +
			"chosen agents, no light and random light at their on-rate on fresh episodes (as zoo bounds does\n" +
			"for hand policies). It prints the zoo table of the chosen agents against the runs' hand-policy\n" +
			"bounds and writes DIR/select.json. Selection costs animal time: runs x episodes_per_condition\n" +
			"episodes per line.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runZooSelect(cmd, args, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.n, "lines", 24, "number of lines in the zoo the runs were made on")
	f.Uint64Var(&o.seed, "seed", 1, "zoo seed")
	f.StringVar(&o.split, "split", string(zoo.SplitHeldout), "which lines the runs ran: heldout, train or all")
	f.StringVar(&o.out, "out", "", "folder for select.json (default runs/zoo-select-<seed>-<split>-<time>)")
	o.register(cmd)
	return cmd
}

// zooRun is what zoo select reads of one zoo run folder.
type zooRun struct {
	dir    string
	spec   experiment.Spec
	bounds boundsFile
}

func readZooRun(dir string, z *zoo.Zoo) (zooRun, error) {
	r := zooRun{dir: dir}
	want, err := z.YAML()
	if err != nil {
		return r, err
	}
	got, err := os.ReadFile(filepath.Join(dir, zooLinesFile))
	if err != nil {
		return r, fmt.Errorf("run %s: %w", dir, err)
	}
	if !bytes.Equal(got, want) {
		return r, fmt.Errorf("run %s was made on another zoo than --lines %d --seed %d", dir, len(z.Entries), z.Seed)
	}
	data, err := os.ReadFile(filepath.Join(dir, zooRunDir, "experiment.yaml"))
	if err != nil {
		return r, fmt.Errorf("run %s: %w", dir, err)
	}
	if r.spec, err = experiment.ParseWith(data, experiment.Options{KnownLine: func(string) bool { return true }}); err != nil {
		return r, fmt.Errorf("run %s: experiment.yaml: %w", dir, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, zooBoundsFile))
	if err != nil {
		return r, fmt.Errorf("run %s: %w (the run did not finish)", dir, err)
	}
	if err := json.Unmarshal(b, &r.bounds); err != nil {
		return r, fmt.Errorf("run %s: %s: %w", dir, zooBoundsFile, err)
	}
	return r, nil
}

func runZooSelect(cmd *cobra.Command, runs []string, o zooSelectOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	z, split, codes, err := zooSplit(o.n, o.seed, o.split)
	if err != nil {
		return err
	}
	var zr []zooRun
	names := map[string]bool{}
	for _, dir := range runs {
		r, err := readZooRun(dir, z)
		if err != nil {
			return err
		}
		if fmt.Sprint(r.spec.Lines) != fmt.Sprint(codes) {
			return fmt.Errorf("run %s ran lines %v, not the %s split's %v", dir, r.spec.Lines, split, codes)
		}
		if len(zr) > 0 && (r.spec.Seed != zr[0].spec.Seed || fmt.Sprint(r.spec.Evaluate) != fmt.Sprint(zr[0].spec.Evaluate)) {
			return fmt.Errorf("run %s has another seed or evaluation protocol than %s: their bounds and episodes differ", dir, zr[0].dir)
		}
		name := filepath.Base(filepath.Clean(dir))
		if names[name] {
			return fmt.Errorf("two runs are named %s: give folders of different names", name)
		}
		names[name] = true
		zr = append(zr, r)
	}
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		return err
	}
	cat.Merge(z.Catalogue())
	cands := map[string][]zoo.Candidate{}
	for _, l := range codes {
		for _, r := range zr {
			e, err := results.LoadEnsemble(filepath.Join(results.LineDir(filepath.Join(r.dir, zooRunDir), l), results.EnsembleDir))
			if err != nil {
				return fmt.Errorf("run %s line %s: %w", r.dir, l, err)
			}
			cands[l] = append(cands[l], zoo.Candidate{Name: filepath.Base(filepath.Clean(r.dir)), Ensemble: e, DecisionFrames: r.spec.Train.DecisionFrames})
		}
	}
	dir := o.out
	if dir == "" {
		dir = filepath.Join("runs", fmt.Sprintf("zoo-select-%d-%s-%s", o.seed, split, time.Now().UTC().Format("20060102-150405")))
	}
	if err := refuseExisting(dir, zooSelectFile); err != nil {
		return err
	}
	spec := zr[0].spec
	cfg := zoo.SelectConfig{
		BoundsConfig: zoo.BoundsConfig{Catalogue: cat, Lines: codes, Evaluate: spec.Evaluate, Seed: spec.Seed, NoRender: !o.render, Parallel: o.parallel, Logger: o.logger(cmd)},
		Candidates:   cands,
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	t0 := time.Now()
	sel, err := zoo.Select(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	rep, err := zoo.SelectionReport(sel)
	if err != nil {
		return err
	}
	tab, err := zoo.Compare(rep, zr[0].bounds.Bounds, z)
	if err != nil {
		return err
	}
	if err := results.WriteJSON(filepath.Join(dir, zooSelectFile), struct {
		Seed      uint64         `json:"seed"`
		Lines     int            `json:"lines"`
		Split     zoo.Split      `json:"split"`
		Runs      []string       `json:"runs"`
		Selected  []zoo.Selected `json:"selected"`
		SelectS   float64        `json:"select_wall_seconds"`
		zoo.Table `json:"table"`
	}{o.seed, o.n, split, runs, sel, wall.Seconds(), tab}); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if err := printSelection(w, sel); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := printZooTable(w, tab); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "\nselection and evaluation %v; wrote %s\n", wall.Round(time.Second), filepath.Join(dir, zooSelectFile))
	return err
}

// printSelection prints each line's candidates' selection scores and the chosen run.
func printSelection(w io.Writer, sel []zoo.Selected) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "LINE\tCHOSEN")
	if len(sel) > 0 {
		for _, s := range sel[0].Selection {
			fmt.Fprintf(tw, "\t%s cm (selection)", s.Policy)
		}
	}
	fmt.Fprintln(tw)
	for _, s := range sel {
		fmt.Fprintf(tw, "%s\t%s", s.Line, s.Chosen)
		for _, c := range s.Selection {
			fmt.Fprintf(tw, "\t%.2f", c.MeanCM)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
