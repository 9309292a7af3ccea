package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/runner"
	"github.com/optoloop/optoloop/zoo"
)

// The files a zoo command writes into its folder.
const (
	zooLinesFile  = "lines.yaml"
	zooBoundsFile = "bounds.json"
	zooTableFile  = "zoo.json"
	zooRunDir     = "experiment"
)

func newZooCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "zoo",
		Short: "Generate a zoo of uncharacterised lines, bound them with hand policies, run experiments on them",
		Long: "zoo lines writes a seeded zoo of generated catalogue lines (package zoo); zoo bounds measures the\n" +
			"best of a fixed family of simple hand policies on lines; zoo run runs an experiment on a zoo's split,\n" +
			"bounds its lines and prints the zoo table (agent, best hand policy, no light, random light).",
	}
	cmd.AddCommand(newZooLinesCmd(), newZooBoundsCmd(), newZooRunCmd(), newZooSelectCmd())
	return cmd
}

// zooSplit generates the zoo of n lines and seed and returns it with the split named and the
// codes of its lines (at least one).
func zooSplit(n int, seed uint64, name string) (*zoo.Zoo, zoo.Split, []string, error) {
	if err := checkZooSize(n); err != nil {
		return nil, "", nil, err
	}
	split, err := zoo.ParseSplit(name)
	if err != nil {
		return nil, "", nil, fmt.Errorf("--split: %w", err)
	}
	z, err := zoo.Generate(n, seed)
	if err != nil {
		return nil, "", nil, err
	}
	codes := z.Codes(split)
	if len(codes) == 0 {
		return nil, "", nil, fmt.Errorf("--split %s of a %d-line zoo holds no lines", split, n)
	}
	return z, split, codes, nil
}

func checkZooSize(n int) error {
	if n < 1 || n > zoo.MaxLines {
		return fmt.Errorf("--lines %d must be within 1-%d", n, zoo.MaxLines)
	}
	return nil
}

func newZooLinesCmd() *cobra.Command {
	var (
		n    int
		seed uint64
		out  string
	)
	cmd := &cobra.Command{
		Use:   "lines --lines N --seed S [--out FILE]",
		Short: "Write a seeded zoo of generated lines as a catalogue file (for --lines-file)",
		Long: "lines writes N generated lines in the catalogue format of arenas/sim/lines.yaml, codes Z<seed>-<k>:\n" +
			"single effects and combinations of the simulator's light responses, excitatory and inhibitory, and\n" +
			"no-effect controls. Even lines are the training split, odd lines the held-out split. The same seed\n" +
			"gives the same file.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkZooSize(n); err != nil {
				return err
			}
			z, err := zoo.Generate(n, seed)
			if err != nil {
				return err
			}
			b, err := z.YAML()
			if err != nil {
				return err
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			if err := results.WriteFileAtomic(out, b); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %d lines (%d training, %d held out) to %s\n", n, len(z.Codes(zoo.SplitTrain)), len(z.Codes(zoo.SplitHeldout)), out)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&n, "lines", 24, "number of lines")
	f.Uint64Var(&seed, "seed", 1, "zoo seed")
	f.StringVar(&out, "out", "", "file to write (default: standard output)")
	return cmd
}

// zooProtocol holds the evaluation flags shared by bounds and run.
type zooProtocol struct {
	parallel int
	render   bool
	verbose  bool
}

func (p *zooProtocol) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&p.parallel, "parallel", 0, "episodes run at once (default: number of CPUs); changes the speed, never the results")
	f.BoolVar(&p.render, "render", false, "render and track frames instead of acting on the simulator's own pose (much slower)")
	f.BoolVarP(&p.verbose, "verbose", "v", false, "log progress")
}

func (p *zooProtocol) check() error {
	if p.parallel < 0 {
		return fmt.Errorf("--parallel %d must be >= 0", p.parallel)
	}
	return nil
}

func (p *zooProtocol) logger(cmd *cobra.Command) *slog.Logger {
	level := slog.LevelWarn
	if p.verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
}

// boundsFile is what bounds.json holds.
type boundsFile struct {
	Seed     uint64              `json:"seed"`
	Evaluate experiment.Evaluate `json:"evaluate"`
	Render   bool                `json:"render"`
	Policies []zoo.HandPolicy    `json:"policies"`
	Bounds   []zoo.Bound         `json:"bounds"`
	Seconds  float64             `json:"wall_seconds"`
}

type zooBoundsOptions struct {
	linesFile  string
	lines      []string
	seed       uint64
	episodes   int
	seconds    float64
	experiment string
	out        string
	zooProtocol
}

func newZooBoundsCmd() *cobra.Command {
	var o zooBoundsOptions
	cmd := &cobra.Command{
		Use:   "bounds [--lines-file F] [--line CODE...] --seed S [--episodes N] [--out DIR]",
		Short: "Measure the best hand policy of a fixed family on lines, against no light and random light",
		Long: "bounds runs every policy of the hand family (zoo.HandFamily: light or pulses when facing away from or\n" +
			"toward the target, light or pulses timed to the head swing) on the same selection episodes of each\n" +
			"line, picks the best by mean closest approach, and measures it, no light and random light at its\n" +
			"on-rate on fresh episodes, with the evaluation protocol of an experiment file (--experiment; default\n" +
			"the reference protocol, 10 episodes of 600 s per condition, targets 1.5 cm up/down/left/right) and\n" +
			"the report's Mann-Whitney test. Lines: --line (repeatable), default every line of --lines-file. It\n" +
			"prints a table and writes DIR/bounds.json.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runZooBounds(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.linesFile, "lines-file", "", "YAML or JSON catalogue merged over the embedded one (a zoo from zoo lines)")
	f.StringSliceVar(&o.lines, "line", nil, "line code to bound (repeatable; default: every line of --lines-file)")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the animals and schedules")
	f.IntVar(&o.episodes, "episodes", 0, "episodes per condition and per policy (default: the protocol's episodes_per_condition)")
	f.Float64Var(&o.seconds, "seconds", 0, "episode length in seconds (default: the protocol's episode_seconds)")
	f.StringVar(&o.experiment, "experiment", "", "experiment file whose evaluate section is the protocol (default: the reference protocol)")
	f.StringVar(&o.out, "out", "", "folder for bounds.json (default runs/zoo-bounds-<time>)")
	o.register(cmd)
	return cmd
}

// zooEvaluate returns the evaluation protocol: an experiment file's evaluate section (path not
// empty) or the reference protocol's, with episodes and seconds overriding when not zero.
func zooEvaluate(path string, episodes int, seconds float64) (experiment.Evaluate, error) {
	ev := zoo.DefaultEvaluate()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return ev, fmt.Errorf("experiment file: %w", err)
		}
		// The file's lines may be unknown here (they are replaced): only the evaluate section
		// counts.
		spec, err := experiment.ParseWith(data, experiment.Options{KnownLine: func(string) bool { return true }})
		if err != nil {
			return ev, fmt.Errorf("%s: %w", path, err)
		}
		ev = spec.Evaluate
	}
	if episodes < 0 || episodes > 10000 {
		return ev, fmt.Errorf("--episodes %d must be within 1-10000", episodes)
	}
	if episodes > 0 {
		ev.EpisodesPerCondition = episodes
	}
	if seconds < 0 || math.IsNaN(seconds) || seconds > 86400 {
		return ev, fmt.Errorf("--seconds %v must be within 0-86400", seconds)
	}
	if seconds > 0 {
		ev.EpisodeSeconds = seconds
	}
	return ev, nil
}

// refuseExisting refuses a folder that already holds file.
func refuseExisting(dir, file string) error {
	if _, err := os.Stat(filepath.Join(dir, file)); err == nil {
		return fmt.Errorf("--out %s already holds %s; choose a new folder", dir, file)
	}
	return nil
}

func runZooBounds(cmd *cobra.Command, o zooBoundsOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	ev, err := zooEvaluate(o.experiment, o.episodes, o.seconds)
	if err != nil {
		return err
	}
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		return err
	}
	lines := o.lines
	if o.linesFile != "" {
		// As sim.LoadCatalogue merges it; its own lines are the default selection.
		data, err := os.ReadFile(o.linesFile)
		if err != nil {
			return fmt.Errorf("lines file: %w", err)
		}
		user, err := sim.ParseCatalogue(data)
		if err != nil {
			return fmt.Errorf("lines file %s: %w", o.linesFile, err)
		}
		cat.Merge(user)
		if len(lines) == 0 {
			for _, l := range user.Lines {
				lines = append(lines, l.Code)
			}
		}
	}
	if len(lines) == 0 {
		return errors.New("no lines: name them with --line or give --lines-file")
	}
	dir := o.out
	if dir == "" {
		dir = filepath.Join("runs", "zoo-bounds-"+time.Now().UTC().Format("20060102-150405"))
	}
	if err := refuseExisting(dir, zooBoundsFile); err != nil {
		return err
	}
	cfg := zoo.BoundsConfig{Catalogue: cat, Lines: lines, Evaluate: ev, Seed: o.seed, NoRender: !o.render, Parallel: o.parallel, Logger: o.logger(cmd)}
	if err := cfg.Validate(); err != nil {
		return err
	}
	t0 := time.Now()
	bs, err := zoo.Bounds(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	file := boundsFile{Seed: o.seed, Evaluate: ev, Render: o.render, Policies: zoo.HandFamily(), Bounds: bs, Seconds: wall.Seconds()}
	if err := results.WriteJSON(filepath.Join(dir, zooBoundsFile), file); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if err := printBounds(w, cat, bs); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "\n%d lines, %d episodes per condition of %g s, in %v; wrote %s\n", len(bs), ev.EpisodesPerCondition, ev.EpisodeSeconds, wall.Round(time.Second), filepath.Join(dir, zooBoundsFile))
	return err
}

// printBounds prints one row per line: the chosen policy and the three conditions.
func printBounds(w io.Writer, cat *sim.Catalogue, bs []zoo.Bound) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tFAMILY\tBEST HAND POLICY\tHAND cm\tNO LIGHT cm\tRANDOM cm\tRANDOM RATE\tp(hand<>none)\tp(hand<>random)\tN")
	for _, b := range bs {
		fam := "-"
		if l, err := cat.Line(b.Line); err == nil {
			if f, ok := zoo.FamilyOf(l); ok {
				fam = string(f)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f ± %.2f\t%.2f ± %.2f\t%.2f ± %.2f\t%.2f\t%s\t%s\t%d\n", b.Line, fam, b.Best.Name,
			b.Hand.Mean, b.Hand.SD, b.None.Mean, b.None.SD, b.Random.Mean, b.Random.SD, b.RandomRate, pval(b.PHandVsNone), pval(b.PHandVsRandom), b.Hand.N)
	}
	return tw.Flush()
}

type zooRunOptions struct {
	n     int
	seed  uint64
	split string
	out   string
	zooProtocol
}

func newZooRunCmd() *cobra.Command {
	var o zooRunOptions
	cmd := &cobra.Command{
		Use:   "run --lines N --seed S [--split heldout|train|all] [FILE] [--out DIR]",
		Short: "Run an experiment on a zoo's split, bound its lines with hand policies and print the zoo table",
		Long: "run generates the zoo of --lines and --seed, runs the experiment of FILE (default\n" +
			"experiments/science.yaml) on the lines of --split in place of the file's lines (no\n" +
			"cross-evaluation) on the experiment engine of `optoloop experiment run`, measures the hand-policy\n" +
			"bounds of the same lines with the file's evaluate section, and prints and writes (DIR/zoo.json) the\n" +
			"zoo table and the issue's criteria. DIR also holds lines.yaml, bounds.json and the run folder\n" +
			"(experiment/).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := filepath.Join("experiments", "science.yaml")
			if len(args) == 1 {
				file = args[0]
			}
			return runZoo(cmd, file, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.n, "lines", 24, "number of lines in the zoo (the split takes half of them, or all)")
	f.Uint64Var(&o.seed, "seed", 1, "zoo seed")
	f.StringVar(&o.split, "split", string(zoo.SplitHeldout), "which lines to run: heldout, train or all")
	f.StringVar(&o.out, "out", "", "folder for the results (default runs/zoo-<seed>-<split>-<time>)")
	o.register(cmd)
	return cmd
}

func runZoo(cmd *cobra.Command, file string, o zooRunOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	z, split, codes, err := zooSplit(o.n, o.seed, o.split)
	if err != nil {
		return err
	}
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		return err
	}
	cat.Merge(z.Catalogue())
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("experiment file: %w", err)
	}
	spec, err := experiment.ParseWith(data, experiment.Options{KnownLine: func(string) bool { return true }})
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	spec.Name = fmt.Sprintf("zoo-%d-%s", o.seed, split)
	spec.Lines, spec.CrossEvaluate = codes, nil
	known := func(code string) bool { _, err := cat.Line(code); return err == nil }
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("%s on the zoo's lines: %w", file, err)
	}
	if err := spec.ValidateLines(known); err != nil {
		return fmt.Errorf("%s on the zoo's lines: %w", file, err)
	}
	dir := o.out
	if dir == "" {
		dir = filepath.Join("runs", fmt.Sprintf("zoo-%d-%s-%s", o.seed, split, time.Now().UTC().Format("20060102-150405")))
	}
	for _, f := range []string{zooTableFile, zooBoundsFile, zooLinesFile, zooRunDir} {
		if err := refuseExisting(dir, f); err != nil {
			return err
		}
	}
	log := o.logger(cmd)
	rcfg := runner.Config{Spec: spec, Dir: filepath.Join(dir, zooRunDir), Catalogue: cat, NoRender: !o.render, Parallel: o.parallel, Logger: log}
	r, err := runner.New(rcfg)
	if err != nil {
		return err
	}
	bcfg := zoo.BoundsConfig{Catalogue: cat, Lines: codes, Evaluate: spec.Evaluate, Seed: spec.Seed, NoRender: !o.render, Parallel: o.parallel, Logger: log}
	if err := bcfg.Validate(); err != nil {
		return err
	}
	yaml, err := z.YAML()
	if err != nil {
		return err
	}
	if err := results.WriteFileAtomic(filepath.Join(dir, zooLinesFile), yaml); err != nil {
		return err
	}
	t0 := time.Now()
	rep, err := r.Run(cmd.Context())
	if err != nil {
		return fmt.Errorf("zoo experiment (partial results in %s): %w", rcfg.Dir, err)
	}
	runWall := time.Since(t0)
	t1 := time.Now()
	bs, err := zoo.Bounds(cmd.Context(), bcfg)
	if err != nil {
		return err
	}
	boundsWall := time.Since(t1)
	if err := results.WriteJSON(filepath.Join(dir, zooBoundsFile), boundsFile{Seed: spec.Seed, Evaluate: spec.Evaluate, Render: o.render, Policies: zoo.HandFamily(), Bounds: bs, Seconds: boundsWall.Seconds()}); err != nil {
		return err
	}
	tab, err := zoo.Compare(rep, bs, z)
	if err != nil {
		return err
	}
	if err := results.WriteJSON(filepath.Join(dir, zooTableFile), struct {
		Seed    uint64    `json:"seed"`
		Lines   int       `json:"lines"`
		Split   zoo.Split `json:"split"`
		RunS    float64   `json:"experiment_wall_seconds"`
		BoundsS float64   `json:"bounds_wall_seconds"`
		zoo.Table
	}{o.seed, o.n, split, runWall.Seconds(), boundsWall.Seconds(), tab}); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if err := printZooTable(w, tab); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "\nexperiment %v, bounds %v; wrote %s\n", runWall.Round(time.Second), boundsWall.Round(time.Second), dir)
	return err
}

// printZooTable prints the zoo table and the criteria.
func printZooTable(w io.Writer, t zoo.Table) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tFAMILY\tAGENT cm\tBEST HAND cm\tHAND POLICY\tNO LIGHT cm\tRANDOM cm\tp(agent<>none)\tp(agent<>random)\tp(hand<>none)\tAGENT/HAND GAIN")
	for _, r := range t.Rows {
		gain := "-" // shown where the hand policy drives the line: elsewhere its improvement is noise
		if r.HandDrives && !math.IsNaN(r.AgentGainShare) {
			gain = fmt.Sprintf("%.2f", r.AgentGainShare)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Line, r.Family, cm(r.AgentCM), r.HandCM, r.Hand, cm(r.NoneCM), cm(r.RandomCM),
			pval(r.PAgentVsNone), pval(r.PAgentVsRandom), pval(r.PHandVsNone), gain)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c := t.Criteria
	verdict := "not met"
	if c.Met {
		verdict = "met"
	}
	lines := []string{
		fmt.Sprintf("lines where the best hand policy beats no light (p < %.2g): %d of %d", zoo.Alpha, c.HandLines, len(t.Rows)),
		fmt.Sprintf("  of them, the agent beats no light and random light (p < %.2g): %d (%s; want >= %.0f %%)", zoo.Alpha, c.BeatBoth, share(c.BeatBoth, c.HandLines), 100*zoo.BeatBothShare),
		fmt.Sprintf("  of them, the agent reaches >= %.0f %% of the hand policy's improvement over no light: %d (%s; want >= %.0f %%)", 100*zoo.ReachFraction, c.Reach, share(c.Reach, c.HandLines), 100*zoo.ReachShare),
		fmt.Sprintf("no-effect lines where the agent beats no light (p < %.2g): %d of %d (want 0)", zoo.Alpha, c.ControlsDriven, c.Controls),
		"criteria: " + verdict,
	}
	_, err := fmt.Fprintf(w, "\n%s\n", strings.Join(lines, "\n"))
	return err
}

func cm(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

func share(k, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f %%", 100*float64(k)/float64(n))
}
