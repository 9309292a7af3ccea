package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/arenas/track"
)

func newTrackCmd() *cobra.Command {
	c := track.DefaultFileConfig()
	var verbose bool
	cmd := &cobra.Command{
		Use:   "track (--video FILE | --images DIR)",
		Short: "Track a worm in a recorded video or in still images; one JSON object per frame",
		Long: `Track a worm in a recorded video (any container OpenCV reads, frames tracked in order with
continuity between them) or in a directory of still images (sorted by name, each tracked on its
own, head/tail order arbitrary). Prints one JSON object per frame: frame, ok, status, confidence,
x_px, y_px, head_px, tail_px, body_angle_deg, head_angle_deg, coiled, and midline with --midline.
--overlay writes the frames with the midline and head drawn (OUT.avi, or a directory of PNGs).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.DiscardHandler)
			if verbose {
				log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			sum, err := track.TrackFiles(cmd.Context(), c, cmd.OutOrStdout(), log)
			if err != nil {
				return err
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
	f.Float64Var(&c.PxPerCM, "px-per-cm", c.PxPerCM, "scale of the recording in pixels per cm: a worm is taken to be ~1 mm long, which bounds what counts as a worm")
	f.Float64Var(&c.QuantizeDeg, "quantize", 0, "round the angles to this many degrees, as the reference did with 30 (0: full precision)")
	f.BoolVar(&c.Midline, "midline", false, "include the midline points (head first) in each record")
	f.BoolVar(&c.FollowsWorm, "follows-worm", false, "the field of view follows the worm (tracking stage): keep head and tail by continuity only")
	f.BoolVarP(&verbose, "verbose", "v", false, "log to stderr")
	cmd.MarkFlagsMutuallyExclusive("video", "images")
	return cmd
}
