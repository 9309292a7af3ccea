// Package track is the tracker: it turns 8-bit grey camera frames of one worm on a plate
// into poses (arenas.Pose), with OpenCV (gocv) for the image work. Simulated arenas, real rigs
// and other labs' recordings go through the same code.
//
// # Pipeline, per frame
//
//  1. Difference image: how far each pixel lies from the empty plate in the worm's direction
//     (Polarity: darker for a bright-field worm, brighter for a dark-field one; AutoPolarity
//     decides it once, from the background or the first frame). With a background (built
//     before the episode from light-off frames: a running mean per pixel that leaves out the
//     passing worm, then refreshed slowly, one stripe of rows per light-off frame) it is the
//     difference to the background; without one (still images, videos of other labs) it is the
//     difference to a grey closing (an opening for bright worms) of the frame, taken after
//     structures on the other side of the local median (bright old tracks in the agar) are
//     flattened, so that they leave no dark halo. Pixels outside the plate circle, and the
//     black surround of masked recordings, are cleared.
//  2. Region: the search runs in a square of ROIScale body lengths around the last centre and
//     widens to twice that; a worm still not found there (or lost) is searched coarse to fine
//     (findLost, coarse.go): the difference image shrunk by a power of two that keeps the
//     shortest accepted worm visible, its blobs, then the segmentation at full resolution
//     around the best of them (frames under 512x512 are searched whole at full resolution).
//  3. Segmentation: Gaussian blur, threshold at max(MinContrast, median + NoiseK robust
//     deviations), connected components. Blobs outside the area bounds are ignored: bounds
//     derived from the accepted lengths (MinBodyLength to MaxBodyLength, 0.4 to 1.5 mm by
//     default) until the worm has been measured (the median of its first confident frames),
//     then from its measured length. A worm seen within ReacquireAfter is the blob nearest its
//     last centre of about its area; another blob of comparable area, extent and contrast is
//     another worm, flagged (OtherWorm) without taking the identity. At an acquisition the
//     largest blob is the worm, and a second worm-like one makes the frame TwoWorms.
//  4. Shape: the chosen blob is re-thresholded at a share of its own median darkening (its edge
//     where the body covers part of a pixel); parts much thinner than the body that reach
//     further than it is wide (a track's edge, a fibre touching the worm) are trimmed; small
//     holes are filled, and the Zhang-Suen skeleton's longest geodesic path (which passes
//     small loops and spurs by) is smoothed, prolonged to the body's tips, resampled to
//     MidlinePoints points and moved across the body to the darkness-weighted centre of each
//     cross-section (sub-pixel midline). Widths come from the distance transform; a midline
//     end that runs on along something thin is cut back to the body.
//  5. Coils: an enclosed hole, a midline much shorter than the worm's length (or, before it is
//     measured, squatter than any uncurled worm) or a blob much wider than the midline
//     explains mean the worm lies on itself: status Coiled, centre only, OK false. A blob far
//     thinner than any worm (a track) is no worm.
//  6. Body checks (body.go): the pose is confident only for one free, worm-shaped body: a
//     width profile without a stretch much wider (the body lying on itself) or much thinner
//     (the midline off the worm) than the body, the midline on the segmented body from end to
//     end, and both ends free (no other part of the body touching a tip). What
//     fails is named in Result.Flags.
//  7. Head and tail (identity): see the identity type. Continuity between consecutive frames
//     (across a gap, such as a coil, it is only a guess that motion must confirm); at the
//     first acquisition of a whole, free worm the shape and shading choose (headCue: the head
//     is blunter and paler than the tail), then the end the worm moves towards becomes the
//     head; moving tail first for SwapAfter (10 s, the reference's rule) swaps them. Poses
//     stay below Confident until the identity has settled (Config.RequireSettled).
//  8. Pose: centre (mean of the evenly spaced midline points, i.e. the length-weighted
//     centroid), head and tail, body angle (principal axis of the midline points, pointing from
//     the tail half to the head half), head angle (from the point at 10 % of the length to the
//     tip), speed, optional rounding of the angles (QuantizeDeg). Conventions are those of
//     package arenas: pixels, x right, y down, angles atan2(dy, dx).
//
// # Scale
//
// At a given scale worms from MinBodyLength to MaxBodyLength are accepted. EstimateScale
// (`optoloop track --px-per-cm auto`) finds the scale of a recording: a ladder of nominal
// lengths tried on frames spread over it, the rung that finds the most worm giving its
// length, taken as a 1 mm adult (or, when the worm is never wholly in view, its width).
//
// # Confidence
//
// A pose is to be trusted for control when OK and Confidence >= Confident. Frames without a
// worm, blank or saturated frames, two worms at an acquisition, coils and frames of the
// wrong size give OK false; doubtful shapes (too long, branched skeleton, weak contrast,
// touching, off-body midline, cut by the frame's edge) and unsettled head/tail identity give
// a confidence below Confident. Track never panics on a bad frame (FuzzTrack).
//
// # Use
//
// The worker uses an Observer (Prepare before each episode, NextPose per step). Recorded files
// go through TrackFiles (`optoloop track`). A Tracker holds reusable OpenCV matrices: Close it.
//
// # Cost
//
// BenchmarkTrack2160x1920 (steady tracking of a simulated 2160x1920 frame),
// BenchmarkTrackLost2160x1920 (re-finding a lost worm, coarse to fine) and
// BenchmarkReferencePipeline2160x1920 (the reference study's detector, which scans the whole
// frame every frame) report the median and 99th percentile of the per-frame wall-clock and
// CPU time.
package track
