package track

import (
	"errors"
	"fmt"
	"image"
	"math"
	"slices"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
)

// AdultLengthCM is the length a worm is taken to have when a scale is estimated from a
// recording: 1 mm, a young adult (an L4 is ~0.7 mm, a gravid adult ~1.3 mm).
const AdultLengthCM = 0.1

// lengthPerWidth is a crawling adult's length over its mean width as the tracker measures it
// (blob area over midline length, blur included): ~8.5 on the wormpose sample, ~12 on sharp
// images. It estimates the length of a worm that is never wholly in view.
const lengthPerWidth = 10

// ScaleEstimate is what EstimateScale found, and why.
type ScaleEstimate struct {
	// PxPerCM is the estimated scale.
	PxPerCM float64
	// LengthPx and WidthPx are the worm's median midline length and mean width in pixels over
	// the frames the estimate rests on.
	LengthPx, WidthPx float64
	// Frames is the number of frames with a whole, confidently measured worm (or, when
	// FromWidth, with a worm cut by the frame's edge) out of Sampled.
	Frames, Sampled int
	// FromWidth: the worm was never wholly in view (a field of view smaller than the worm),
	// so its length is estimated from its width.
	FromWidth bool
}

// String says what the scale is and what it rests on, for people.
func (e ScaleEstimate) String() string {
	if e.FromWidth {
		return fmt.Sprintf("%.0f px/cm: the worm is never wholly in view; its width is %.1f px in %d of %d sampled frames, and a %.0f mm adult is about %d widths long",
			e.PxPerCM, e.WidthPx, e.Frames, e.Sampled, AdultLengthCM*10, lengthPerWidth)
	}
	return fmt.Sprintf("%.0f px/cm: the worm is %.1f px long (median of %d confident frames of %d sampled), taken as a %.0f mm adult",
		e.PxPerCM, e.LengthPx, e.Frames, e.Sampled, AdultLengthCM*10)
}

// ErrNoScale is returned by EstimateScale when no sampled frame shows a worm at any scale.
var ErrNoScale = errors.New("track: no worm found at any scale in the sampled frames; give --px-per-cm")

// EstimateScale estimates a recording's scale from sample frames (a few dozen spread over it):
// each frame is tracked on its own at a ladder of nominal worm lengths, from 12 px to the
// frame's size in steps of 1.5x (each rung accepting 1/1.5 to 1.5 times its length, on frames
// shrunk so that its worm is rungPx long), and the
// rung that finds a whole worm confidently in the most frames gives the worm's length, taken
// as an adult's (AdultLengthCM). base gives the other settings (polarity, thresholds); its
// scale and lengths are ignored. Frames may differ in size (crops), unless fixedView.
//
// fixedView says the frames come from one camera over time (not a tracking stage, not crops):
// each rung is then also tried against a background built from the frames themselves, which
// takes out the static plate (debris, old tracks) around a worm that moves; the better of the
// two counts.
func EstimateScale(frames []arenas.Frame, base Config, fixedView bool) (ScaleEstimate, error) {
	if len(frames) == 0 {
		return ScaleEstimate{}, errors.New("track: no frames to estimate the scale from")
	}
	// Frames of one size are tracked together (crops of a worm differ in size).
	type group struct {
		w, h   int
		frames []arenas.Frame
	}
	var groups []*group
	diag := 0.0
	for _, f := range frames {
		if f.Width <= 0 || f.Height <= 0 || len(f.Pix) < f.Width*f.Height || f.Width > 1<<15 || f.Height > 1<<15 {
			return ScaleEstimate{}, fmt.Errorf("track: scale estimate: a frame of %dx%d with %d bytes", f.Width, f.Height, len(f.Pix))
		}
		i := slices.IndexFunc(groups, func(g *group) bool { return g.w == f.Width && g.h == f.Height })
		if i < 0 {
			if fixedView && len(groups) > 0 {
				return ScaleEstimate{}, errors.New("track: scale estimate: frames of one camera differ in size")
			}
			groups = append(groups, &group{w: f.Width, h: f.Height})
			i = len(groups) - 1
		}
		groups[i].frames = append(groups[i].frames, f)
		diag = math.Max(diag, math.Hypot(float64(f.Width), float64(f.Height)))
	}
	top := math.Min(4000, 1.5*diag)
	// The rung that finds the most worm: in the most frames times the median area found. At
	// rungs below the worm's, debris and the dark edges of old tracks look like worms; they are
	// smaller than the worm, or found in fewer frames. Of rungs that find the same worm, the
	// one whose nominal length is nearest its length. Whole worms count first; only when no
	// rung finds one whole (a field of view smaller than the worm) do worms cut by the frame's
	// edge.
	var best, bestCut rung
	score := func(n int, areas []float64) float64 {
		if n == 0 {
			return 0
		}
		return float64(n) * median(slices.Clone(areas))
	}
	centred := func(r rung) float64 {
		if len(r.lengths) == 0 {
			return math.Inf(1)
		}
		return math.Abs(math.Log(median(slices.Clone(r.lengths)) / r.nominal))
	}
	var scaled []arenas.Frame
	dst := gocv.NewMat()
	defer dst.Close()
	for l := 12.0; l <= top; l *= 1.5 {
		// Rungs above rungPx track frames shrunk so that their worm is rungPx long: the same
		// work at every rung, and the closing's kernel stays small.
		k := math.Max(1, l/rungPx)
		for _, bg := range []bool{false, fixedView} {
			r := rung{nominal: l}
			for _, g := range groups {
				if bg && len(g.frames) < 2 {
					continue
				}
				sw, sh := max(1, int(math.Round(float64(g.w)/k))), max(1, int(math.Round(float64(g.h)/k)))
				if k > 1 && (sw < 16 || sh < 16) {
					continue
				}
				scaled = scaled[:0]
				for _, f := range g.frames {
					if k == 1 {
						scaled = append(scaled, f)
						continue
					}
					sf, err := shrink(f, sw, sh, &dst)
					if err != nil {
						return ScaleEstimate{}, err
					}
					scaled = append(scaled, sf)
				}
				kg := float64(g.w) / float64(sw)
				lk := l / kg
				cfg := base
				cfg.Calibration = stillCalibration(sw, sh, lk/AdultLengthCM)
				cfg.Calibration.FramePeriod = base.Calibration.FramePeriod
				cfg.BodyLength = lk
				cfg.MinBodyLength = math.Max(8, lk/1.5)
				cfg.MaxBodyLength = math.Min(4000, lk*1.5)
				cfg.SpeedFloor = 0.05 * lk
				cfg.PlateMask = false
				cfg.RefineLength = true
				cfg.RequireSettled = false
				cfg.MotionIdentity = false
				if err := measureRung(&r, cfg, scaled, kg, bg); err != nil {
					return ScaleEstimate{}, err
				}
			}
			if sr, sb := score(len(r.lengths), r.areas), score(len(best.lengths), best.areas); sr > 1.2*sb || (sr > sb/1.2 && centred(r) < centred(best)) {
				best = r
			}
			if score(len(r.cutWidths), r.cutAreas) > score(len(bestCut.cutWidths), bestCut.cutAreas) {
				bestCut = r
			}
		}
	}
	est := ScaleEstimate{Sampled: len(frames)}
	switch {
	case len(best.lengths) >= 3 || (len(best.lengths) > 0 && len(bestCut.cutWidths) == 0):
		est.LengthPx = median(best.lengths)
		est.WidthPx = median(best.widths)
		est.Frames = len(best.lengths)
		est.PxPerCM = est.LengthPx / AdultLengthCM
	case len(bestCut.cutWidths) > 0:
		est.WidthPx = median(bestCut.cutWidths)
		est.LengthPx = lengthPerWidth * est.WidthPx
		est.Frames = len(bestCut.cutWidths)
		est.FromWidth = true
		est.PxPerCM = est.LengthPx / AdultLengthCM
	default:
		return est, ErrNoScale
	}
	return est, nil
}

// rung is what one rung of EstimateScale measured, in pixels of the original frames.
type rung struct {
	nominal                                     float64
	lengths, widths, areas, cutWidths, cutAreas []float64
}

// measureRung tracks each frame on its own with cfg (the frames shrunk by k), against a
// background built from all of them when bg is set, and adds what it measured to r.
func measureRung(r *rung, cfg Config, frames []arenas.Frame, k float64, bg bool) error {
	tr, err := New(cfg, nil)
	if err != nil {
		return err
	}
	defer tr.Close()
	if bg {
		tr.StartBackground()
		for _, f := range frames {
			if err := tr.AddBackground(f); err != nil {
				return err
			}
		}
		if err := tr.CommitBackground(); err != nil {
			return err
		}
	}
	for i, f := range frames {
		f.Seq = uint64(i)
		tr.Reset()
		res := tr.Track(f)
		if !res.OK || res.Length <= 0 {
			continue
		}
		width := k * float64(res.Area) / res.Length
		switch {
		case res.Confidence >= Confident:
			r.lengths = append(r.lengths, k*res.Length)
			r.widths = append(r.widths, width)
			r.areas = append(r.areas, k*k*float64(res.Area))
		case res.CutByEdge && slices.Equal(res.Flags, []string{"cut by edge"}):
			r.cutWidths = append(r.cutWidths, width)
			r.cutAreas = append(r.cutAreas, k*k*float64(res.Area))
		}
	}
	return nil
}

// rungPx is the worm length, in pixels of the shrunk frames, of the larger rungs of
// EstimateScale.
const rungPx = 60

// shrink returns f resized to w x h (area averaging), through the buffer dst.
func shrink(f arenas.Frame, w, h int, dst *gocv.Mat) (arenas.Frame, error) {
	m, err := gocv.NewMatFromBytes(f.Height, f.Width, gocv.MatTypeCV8U, f.Pix[:f.Width*f.Height])
	if err != nil {
		return arenas.Frame{}, fmt.Errorf("track: scale estimate: %w", err)
	}
	defer m.Close()
	gocv.Resize(m, dst, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	b, err := dst.DataPtrUint8()
	if err != nil {
		return arenas.Frame{}, fmt.Errorf("track: scale estimate: %w", err)
	}
	out := f
	out.Width, out.Height, out.Pix = w, h, append([]byte(nil), b...)
	return out, nil
}

// stillCalibration is a calibration for frames of w x h at pxPerCM, the plate covering them.
func stillCalibration(w, h int, pxPerCM float64) arenas.Calibration {
	c := arenas.DefaultCalibration()
	c.PxPerCM = pxPerCM
	c.Width, c.Height = w, h
	c.CenterX, c.CenterY = float64(w)/2, float64(h)/2
	c.PlateRadius = math.Hypot(float64(w), float64(h))
	return c
}
