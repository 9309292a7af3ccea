// Package track is the tracker: it turns 8-bit grey camera frames of one worm on a plate
// into poses (arenas.Pose), with OpenCV (gocv) for the image work. Simulated arenas, real rigs
// and other labs' recordings go through the same code.
//
// # Pipeline, per frame
//
//  1. Difference image: how much darker than the empty plate each pixel is. With a background
//     (built before the episode from light-off frames: a running mean per pixel that leaves out
//     the passing worm, then refreshed slowly, one stripe of rows per light-off frame) it is
//     background minus frame; without one (still images, videos of other labs) it is a grey
//     closing of the frame (which erases thin dark things) minus the frame. Pixels outside the
//     plate circle, and the black surround of masked recordings, are cleared.
//  2. Region: the search runs in a square of ROIScale body lengths around the last centre; it
//     widens to twice that and then to the whole frame only when the worm is not found there
//     or touches the square's border (a lost worm).
//  3. Segmentation: Gaussian blur, threshold at max(MinContrast, median + NoiseK robust
//     deviations), connected components. Blobs outside the area bounds derived from the body
//     length (specks, the plate wall, a dark frame) are ignored; the worm is the largest
//     plausible blob; a second blob of comparable area and length is a second worm (TwoWorms).
//  4. Shape: the chosen blob is re-thresholded at a share of its own median darkening (its edge
//     where the body covers part of a pixel), small holes are filled, and the Zhang-Suen
//     skeleton's longest geodesic path (which passes small loops and spurs by) is smoothed,
//     prolonged to the body's tips, resampled to MidlinePoints points and moved across the
//     body to the darkness-weighted centre of each cross-section (sub-pixel midline). Widths
//     come from the distance transform.
//  5. Coils: an enclosed hole, a midline much shorter than the reference length (which follows
//     the confident frames) or a blob much wider than the midline explains mean the worm lies
//     on itself: status Coiled, centre only, OK false.
//  6. Head and tail (identity): see the identity type. Continuity between frames; after an
//     acquisition the end the worm moves towards becomes the head; moving tail first for
//     SwapAfter (10 s, the reference's rule) swaps them. Poses stay below Confident until the
//     identity has settled (Config.RequireSettled).
//  7. Pose: centre (mean of the evenly spaced midline points, i.e. the length-weighted
//     centroid), head and tail, body angle (principal axis of the midline points, pointing from
//     the tail half to the head half), head angle (from the point at 10 % of the length to the
//     tip), speed, optional rounding of the angles (QuantizeDeg). Conventions are those of
//     package arenas: pixels, x right, y down, angles atan2(dy, dx).
//
// # Confidence
//
// A pose is to be trusted for control when OK and Confidence >= Confident. Frames without a
// worm, blank or saturated frames, two worms, coils and frames of the wrong size give OK
// false; doubtful shapes (too long, branched skeleton, weak contrast) and unsettled head/tail
// identity give a confidence below Confident. Track never panics on a bad frame (FuzzTrack).
//
// # Use
//
// The worker uses an Observer (Prepare before each episode, NextPose per step). Recorded files
// go through TrackFiles (`optoloop track`). A Tracker holds reusable OpenCV matrices: Close it.
//
// # Cost
//
// BenchmarkTrack2160x1920 (steady tracking of a simulated 2160x1920 frame) and
// BenchmarkTrackLost2160x1920 (whole-frame search) report the median and 99th percentile of
// the per-frame wall-clock and CPU time.
package track
