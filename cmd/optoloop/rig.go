package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/rig"
)

func newRigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rig",
		Short: "Check a real rig (camera and light) and write its config file",
	}
	cmd.AddCommand(newRigConfigCmd(), newRigCheckCmd())
	return cmd
}

func newRigConfigCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the default rig config file (YAML, or JSON with --json) to start from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := rig.DefaultConfig().File()
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(f)
			}
			enc := yaml.NewEncoder(out)
			enc.SetIndent(2)
			if err := enc.Encode(f); err != nil {
				return err
			}
			return enc.Close()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of YAML")
	return cmd
}

// rigCheck is what `optoloop rig check` prints.
type rigCheck struct {
	Source      string             `json:"source"`
	Light       string             `json:"light_driver"`
	Calibration arenas.Calibration `json:"calibration"`
	Frames      int                `json:"frames"`
	Seconds     float64            `json:"seconds"`
	FPS         float64            `json:"fps"`
	MeanGrey    float64            `json:"mean_grey"`
	MinGrey     int                `json:"min_grey"`
	MaxGrey     int                `json:"max_grey"`
	// With --light: mean grey of a frame with the light on, then off again.
	LightOnGrey  *float64 `json:"light_on_mean_grey,omitempty"`
	LightOffGrey *float64 `json:"light_off_mean_grey,omitempty"`
	// Stats counts frames read, delivered and dropped (superseded by newer ones, or exposed
	// before a light command).
	Stats rig.Stats `json:"stats"`
}

func newRigCheckCmd() *cobra.Command {
	var (
		configPath string
		frames     int
		light      bool
		pngPath    string
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Open a rig, read frames, optionally blink the light, and print a JSON summary",
		Long: "check opens the rig described by --config (see `optoloop rig config`), reads --frames frames,\n" +
			"and with --light switches the light on for one frame and off again. The light is off when it ends,\n" +
			"whatever happens. --png writes the first frame.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if frames < 1 || frames > 1_000_000 {
				return fmt.Errorf("--frames %d must be between 1 and 1000000", frames)
			}
			cfg, err := rig.LoadConfig(configPath)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			a, err := rig.Open(ctx, cfg)
			if err != nil {
				return err
			}
			res, runErr := checkRig(cmd, a, cfg, frames, light, pngPath)
			if err := a.Close(); err != nil && runErr == nil {
				runErr = err
			}
			if runErr != nil {
				return runErr
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			return enc.Encode(res)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "rig.yaml", "rig config file (YAML, or JSON by extension)")
	cmd.Flags().IntVar(&frames, "frames", 10, "frames to read")
	cmd.Flags().BoolVar(&light, "light", false, "switch the light on for one frame, then off")
	cmd.Flags().StringVar(&pngPath, "png", "", "write the first frame to this PNG file")
	return cmd
}

func checkRig(cmd *cobra.Command, a *rig.Arena, cfg rig.Config, n int, light bool, pngPath string) (rigCheck, error) {
	ctx := cmd.Context()
	res := rigCheck{Source: cfg.Camera.Source, Light: cfg.LED.Driver, Calibration: a.Calibration(), MinGrey: 255}
	start := time.Now()
	var sum float64
	var px int
	for i := 0; i < n; i++ {
		f, err := a.NextFrame(ctx)
		if err != nil {
			return res, fmt.Errorf("frame %d: %w", i, err)
		}
		for _, v := range f.Pix {
			sum += float64(v)
			res.MinGrey = min(res.MinGrey, int(v))
			res.MaxGrey = max(res.MaxGrey, int(v))
		}
		px += len(f.Pix)
		if i == 0 && pngPath != "" {
			if err := writeGreyPNG(pngPath, f); err != nil {
				return res, err
			}
		}
		res.Frames++
	}
	res.Seconds = time.Since(start).Seconds()
	if res.Seconds > 0 {
		res.FPS = float64(res.Frames) / res.Seconds
	}
	res.MeanGrey = sum / float64(px)
	if light {
		for _, on := range []bool{true, false} {
			if err := a.SetLight(ctx, arenas.Light{On: on}); err != nil {
				return res, err
			}
			f, err := a.NextFrame(ctx)
			if err != nil {
				return res, err
			}
			var s float64
			for _, v := range f.Pix {
				s += float64(v)
			}
			m := s / float64(len(f.Pix))
			if on {
				res.LightOnGrey = &m
			} else {
				res.LightOffGrey = &m
			}
		}
	}
	res.Stats = a.Stats()
	return res, nil
}

func writeGreyPNG(path string, f arenas.Frame) error {
	img := &image.Gray{Pix: f.Pix, Stride: f.Width, Rect: image.Rect(0, 0, f.Width, f.Height)}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(out, img); err != nil {
		out.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return out.Close()
}
