package main

import (
	"fmt"
	"log/slog"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/arenas/track"
)

func newTrackCmd() *cobra.Command {
	c := track.DefaultFileConfig()
	var (
		verbose         bool
		scale, polarity string
	)
	cmd := &cobra.Command{
		Use:   "track (--video FILE | --images DIR)",
		Short: "Track a worm in a recorded video or in still images; one JSON object per frame",
		Long: `Track a worm in a recorded video (any container OpenCV reads, frames tracked in order with
continuity between them) or in a directory of still images (sorted by name, each tracked on its
own, head/tail order arbitrary). Prints one JSON object per frame: frame, ok, status, confidence,
x_px, y_px, head_px, tail_px, body_angle_deg, head_angle_deg, coiled, flags (what kept a found worm
below confident: touching, cut by edge, ...), other_worm, and midline with --midline.
--overlay writes the frames with the midline and head drawn (OUT.avi, or a directory of PNGs).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scale == "auto" {
				c.AutoScale = true
			} else {
				v, err := strconv.ParseFloat(scale, 64)
				if err != nil || !(v > 0) {
					return fmt.Errorf("--px-per-cm %q: want a positive number of pixels per cm, or auto", scale)
				}
				c.PxPerCM = v
			}
			p, err := track.ParsePolarity(polarity)
			if err != nil {
				return fmt.Errorf("--polarity: %w", err)
			}
			c.Polarity = p
			log := slog.New(slog.DiscardHandler)
			if verbose {
				log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			sum, err := track.TrackFiles(cmd.Context(), c, cmd.OutOrStdout(), log)
			if err != nil {
				return err
			}
			if sum.Scale != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "optoloop track: scale", sum.Scale)
			}
			if verbose {
				fmt.Fprintf(cmd.ErrOrStderr(), "tracked %d frames: worm found in %d, confidently in %d\n", sum.Frames, sum.Found, sum.Confident)
			}
			if hint := sum.ScaleHint(); hint != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "optoloop track:", hint)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Video, "video", "", "video file to track (frames in order, with continuity)")
	f.StringVar(&c.Images, "images", "", "directory of still images to track, each on its own")
	f.StringVar(&c.Overlay, "overlay", "", "write frames with the midline and head drawn: OUT.avi or a directory of PNGs")
	f.StringVar(&scale, "px-per-cm", "540", "scale of the recording in pixels per cm (worms 0.4-1.5 mm long are accepted at it), or auto: estimated from the recording, taking the worm for a 1 mm adult, and printed with why")
	f.StringVar(&polarity, "polarity", "auto", "the worm against the agar: dark (bright-field), bright (dark-field) or auto (decided from the recording)")
	f.Float64Var(&c.QuantizeDeg, "quantize", 0, "round the angles to this many degrees, as the reference did with 30 (0: full precision)")
	f.BoolVar(&c.Midline, "midline", false, "include the midline points (head first) in each record")
	f.BoolVar(&c.FollowsWorm, "follows-worm", false, "the field of view follows the worm (tracking stage): keep head and tail by continuity only")
	f.BoolVarP(&verbose, "verbose", "v", false, "log to stderr")
	cmd.MarkFlagsMutuallyExclusive("video", "images")
	return cmd
}
