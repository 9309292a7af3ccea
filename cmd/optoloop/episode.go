package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/rig"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/arenas/track"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/worker"
	"github.com/spf13/cobra"
)

type episodeOptions struct {
	rigConfig string
	line      string
	linesFile string
	seed      uint64
	policy    string
	ensemble  string
	seconds   float64
	target    string
	out       string
	id        string
}

func newEpisodeCmd() *cobra.Command {
	var o episodeOptions
	cmd := &cobra.Command{
		Use:   "episode (--rig FILE | --line CODE) (--policy P | --ensemble DIR)",
		Short: "Run one closed-loop episode on a real rig or a simulated arena and print its metrics",
		Long: "episode runs one episode through the worker loop a cluster worker uses: camera frame ->\n" +
			"tracker -> 15-frame observation -> light, on a real rig (--rig, see `optoloop rig config`)\n" +
			"or a rendered simulated arena (--line). The light follows a fixed policy (--policy\n" +
			"none|always|random:P; random as the reference's data collection) or a trained ensemble\n" +
			"(--ensemble RUN_DIR/lines/<line>/ensemble, most likely action of the members' mean).\n" +
			"It prints the episode's metrics as JSON and, with --out, writes the episode with its\n" +
			"per-frame track. The light is off when the command ends, whatever happens.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runEpisodeCmd(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.rigConfig, "rig", "", "rig config file (camera and light)")
	f.StringVar(&o.line, "line", "", "simulate an animal of this line instead of a rig")
	f.StringVar(&o.linesFile, "lines-file", "", "YAML or JSON catalogue merged over the embedded one (with --line)")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the simulated animal (with --line)")
	f.StringVar(&o.policy, "policy", "", "fixed light policy: none|always|random:P")
	f.StringVar(&o.ensemble, "ensemble", "", "folder of a trained ensemble that decides the light")
	f.Float64Var(&o.seconds, "seconds", 600, "episode length in seconds")
	f.StringVar(&o.target, "target", "up", "target: up|down|left|right (1.5 cm from the plate centre) or x,y in cm from the plate centre (image axes)")
	f.StringVar(&o.out, "out", "", "write the episode (metrics and track) as JSON to this file")
	f.StringVar(&o.id, "id", "episode", "episode id recorded with the data")
	return cmd
}

func runEpisodeCmd(cmd *cobra.Command, o episodeOptions) error {
	if (o.rigConfig == "") == (o.line == "") {
		return errors.New("episode: give exactly one of --rig and --line")
	}
	if (o.policy == "") == (o.ensemble == "") {
		return errors.New("episode: give exactly one of --policy and --ensemble")
	}
	if !(o.seconds > 0) || o.seconds > 86400 {
		return fmt.Errorf("episode: --seconds %v must be in (0, 86400]", o.seconds)
	}
	tgt, err := episode.ParseTarget(o.target)
	if err != nil {
		return fmt.Errorf("episode: --target: %w", err)
	}
	ep := worker.Episode{ID: o.id, Seconds: o.seconds}
	ep.TargetCM[0], ep.TargetCM[1] = tgt.ForEpisode(0)
	condition := results.Agent
	var pol episode.Policy
	if o.ensemble != "" {
		ens, err := policy.LoadDir(o.ensemble, policy.ReferenceArch())
		if err != nil {
			return fmt.Errorf("episode: --ensemble: %w", err)
		}
		ep.Policy = ens
	} else {
		if pol, err = episode.ParsePolicy(o.policy); err != nil {
			return fmt.Errorf("episode: --policy: %w", err)
		}
		ep.Schedule = pol.Schedule(o.seed)
		condition = string(pol.Kind)
	}

	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	var arena arenas.Arena
	line := o.line
	if o.rigConfig != "" {
		cfg, err := rig.LoadConfig(o.rigConfig)
		if err != nil {
			return err
		}
		a, err := rig.Open(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		arena, line = a, "rig"
	} else {
		cat, err := sim.LoadCatalogue(o.linesFile)
		if err != nil {
			return err
		}
		l, err := cat.Line(o.line)
		if err != nil {
			return err
		}
		scfg := sim.DefaultConfig(l)
		scfg.Seed = o.seed
		a, err := sim.New(scfg)
		if err != nil {
			return err
		}
		arena = a
	}
	defer arena.Close()
	cal := arena.Calibration()
	if err := tgt.Check(cal.PlateRadius / cal.PxPerCM); err != nil {
		return fmt.Errorf("episode: --target: %w", err)
	}
	obsv, err := track.NewObserver(arena, track.DefaultConfig(cal), log)
	if err != nil {
		return err
	}
	defer obsv.Close()
	w, err := worker.New(worker.DefaultConfig(), arena, obsv, nil)
	if err != nil {
		return err
	}
	res, err := w.RunEpisode(cmd.Context(), ep)
	if err != nil {
		return err
	}
	e := results.Episode{ID: o.id, Condition: condition, Line: line, Seed: o.seed}
	if pol.Kind == episode.Random {
		e.LightProbability = pol.P
	}
	res.Fill(&e, cal, o.out != "")
	if o.out != "" {
		if err := results.WriteJSON(filepath.Clean(o.out), &e); err != nil {
			return err
		}
	}
	summary := e
	summary.Frames = nil
	enc := json.NewEncoder(cmd.OutOrStdout())
	return enc.Encode(&summary)
}
