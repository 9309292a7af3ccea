package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"

	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/arenas/rig"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/station"
	"github.com/spf13/cobra"
)

type episodeOptions struct {
	rigConfig string
	line      string
	linesFile string
	seed      uint64
	policy    string
	ensemble  string
	agentLine string
	decision  int
	seconds   float64
	target    string
	out       string
	id        string
	noRender  bool
}

func newEpisodeCmd() *cobra.Command {
	var o episodeOptions
	cmd := &cobra.Command{
		Use:   "episode (--rig FILE | --line CODE) (--policy P | --ensemble DIR)",
		Short: "Run one closed-loop episode on a real rig or a simulated arena and print its metrics",
		Long: "episode runs one episode on a station, as a cluster worker does: camera frame ->\n" +
			"tracker -> 15-frame observation -> light, on a real rig (--rig, see `optoloop rig config`)\n" +
			"or a rendered simulated arena (--line). The light follows a fixed policy (--policy\n" +
			"none|always|random:P; random as the reference's data collection; always is random light\n" +
			"at P = 1) or a trained ensemble (--ensemble RUN_DIR/lines/<line>/ensemble, most likely\n" +
			"action of the members' mean). It prints the episode's metrics as JSON and, with --out,\n" +
			"writes the episode with its per-frame track. The light is off when the command ends,\n" +
			"whatever happens.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runEpisodeCmd(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.rigConfig, "rig", "", "rig config file (camera and light)")
	f.StringVar(&o.line, "line", "", "simulate an animal of this line instead of a rig")
	f.StringVar(&o.linesFile, "lines-file", "", "YAML or JSON catalogue merged over the embedded one (with --line)")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the episode: the simulated animal (with --line) and the random light schedule")
	f.StringVar(&o.policy, "policy", "", "fixed light policy: none|always|random:P")
	f.StringVar(&o.ensemble, "ensemble", "", "folder of a trained ensemble that decides the light")
	f.IntVar(&o.decision, "decision-frames", 0, "with --ensemble: decide at every N-th frame, the light holding between (the train.decision_frames it was trained with; 0: every frame)")
	f.StringVar(&o.agentLine, "agent-line", "", "the line the --ensemble was trained on (default: the animals' line; another line makes a cross episode)")
	f.Float64Var(&o.seconds, "seconds", 600, "episode length in seconds")
	f.StringVar(&o.target, "target", "up", "target: up|down|left|right (1.5 cm from the plate centre) or x,y in cm from the plate centre (image axes)")
	f.StringVar(&o.out, "out", "", "write the episode (metrics and track) as JSON to this file")
	f.StringVar(&o.id, "id", "episode", "episode id recorded with the data")
	f.BoolVar(&o.noRender, "no-render", false, "with --line: act on the simulator's own pose instead of rendering and tracking frames (fast)")
	return cmd
}

func runEpisodeCmd(cmd *cobra.Command, o episodeOptions) (err error) {
	if (o.rigConfig == "") == (o.line == "") {
		return errors.New("episode: give exactly one of --rig and --line")
	}
	if (o.policy == "") == (o.ensemble == "") {
		return errors.New("episode: give exactly one of --policy and --ensemble")
	}
	if o.agentLine != "" && o.ensemble == "" {
		return errors.New("episode: --agent-line names the line of an --ensemble")
	}
	if o.decision != 0 && o.ensemble == "" {
		return errors.New("episode: --decision-frames is how often an --ensemble decides")
	}
	if o.decision < 0 || o.decision > episode.MaxDecisionFrames {
		return fmt.Errorf("episode: --decision-frames %d must be within 0-%d", o.decision, episode.MaxDecisionFrames)
	}
	if !(o.seconds > 0) || o.seconds > 86400 {
		return fmt.Errorf("episode: --seconds %v must be in (0, 86400]", o.seconds)
	}
	if o.noRender && o.rigConfig != "" {
		return errors.New("episode: --no-render simulates; a rig's camera is real")
	}
	tgt, err := episode.ParseTarget(o.target)
	if err != nil {
		return fmt.Errorf("episode: --target: %w", err)
	}
	line := o.line
	if o.rigConfig != "" {
		line = "rig"
	}
	x, y := tgt.ForEpisode(0)
	ep := station.Episode{
		ID:         o.id,
		Spec:       episode.Spec{Line: line, Seed: o.seed, Seconds: o.seconds, Target: &episode.Place{XCM: x, YCM: y}},
		KeepFrames: o.out != "",
	}
	if o.ensemble != "" {
		ens, err := results.LoadEnsemble(o.ensemble)
		if err != nil {
			return fmt.Errorf("episode: --ensemble: %w", err)
		}
		if got := ens.Arch(); !slices.ContainsFunc(policy.KnownArchs(), got.Equal) {
			return fmt.Errorf("episode: --ensemble %s observes %+v; the worker builds %+v or %+v", o.ensemble, got.Spec, policy.ReferenceSpec(), policy.LightSpec())
		}
		ep.Policy = ens
		ep.Spec.Kind, ep.Spec.AgentLine, ep.Spec.DecisionFrames = episode.KindAgent, line, o.decision
		if o.agentLine != "" && o.agentLine != line {
			ep.Spec.Kind, ep.Spec.AgentLine = episode.KindCross, o.agentLine
		}
	} else {
		pol, perr := episode.ParsePolicy(o.policy)
		if perr != nil {
			return fmt.Errorf("episode: --policy: %w", perr)
		}
		ep.Spec.Kind, ep.Spec.LightProbability = station.FixedLight(pol)
	}

	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	cfg := station.DefaultConfig()
	cfg.Line, cfg.Logger, cfg.NoRender = line, log, o.noRender
	if o.rigConfig != "" {
		rc, err := rig.LoadConfig(o.rigConfig)
		if err != nil {
			return err
		}
		rc.Logger = log
		a, err := rig.Open(cmd.Context(), rc)
		if err != nil {
			return err
		}
		cfg.Arena = a
		// The station closes the rig; this closes it when the station could not be made.
		defer func() { err = errors.Join(err, a.Close()) }()
	} else {
		if cfg.Catalogue, err = sim.LoadCatalogue(o.linesFile); err != nil {
			return err
		}
		if _, err := cfg.Catalogue.Line(line); err != nil {
			return err
		}
	}
	st, err := station.New(cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	res, err := st.Run(cmd.Context(), ep)
	if err != nil {
		return err
	}
	if o.out != "" {
		if err := results.WriteJSON(filepath.Clean(o.out), &res.Track); err != nil {
			return err
		}
	}
	summary := res.Track
	summary.Frames = nil
	enc := json.NewEncoder(cmd.OutOrStdout())
	return enc.Encode(&summary)
}
