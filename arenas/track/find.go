package track

import (
	"image"
	"math"
	"time"

	"github.com/optoloop/optoloop/arenas"
)

// search runs the segmentation in the region around the last known centre, then in one twice
// as big, and when the worm is not found there (or there is no recent centre) searches the
// whole frame for it (findLost: coarse to fine on large frames). It returns the result and the
// rectangle the worm occupies (empty when not found), which the background refresh leaves out.
func (t *Tracker) search(f arenas.Frame, now time.Time) (Result, image.Rectangle) {
	full := image.Rect(0, 0, f.Width, f.Height)
	var hint image.Rectangle
	recent := t.haveLast && now.Sub(t.lastSeen) <= 10*t.cfg.SwapAfter
	if recent {
		h := int(math.Ceil(t.cfg.ROIScale * t.refLen))
		cx, cy := int(t.lastC[0]), int(t.lastC[1])
		roi := image.Rect(cx-h, cy-h, cx+h+1, cy+h+1).Intersect(full)
		if !roi.Empty() && roi != full {
			rois := [2]image.Rectangle{roi}
			n := 1
			big := image.Rect(cx-2*h, cy-2*h, cx+2*h+1, cy+2*h+1).Intersect(full)
			if big != roi && big != full {
				rois[1] = big
				n = 2
			}
			for _, r := range rois[:n] {
				res, where, edge := t.segment(f, r, now)
				if res.Status != NoWorm && !edge {
					return res, where
				}
				if res.Status != NoWorm {
					hint = where
				}
			}
		}
	}
	return t.findLost(f, now, hint)
}
