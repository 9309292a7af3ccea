package track

import (
	"image"
	"math"
	"time"

	"github.com/optoloop/optoloop/arenas"
)

// search runs the segmentation in the region around the last known centre, widening to the
// whole frame when the worm is not found there. It returns the result and the rectangle the
// worm occupies (empty when not found), which the background refresh leaves out.
func (t *Tracker) search(f arenas.Frame, now time.Time) (Result, image.Rectangle) {
	full := image.Rect(0, 0, f.Width, f.Height)
	var rois []image.Rectangle
	recent := t.haveLast && now.Sub(t.lastSeen) <= 10*t.cfg.SwapAfter
	if recent {
		h := int(math.Ceil(t.cfg.ROIScale * t.refLen))
		cx, cy := int(t.lastC[0]), int(t.lastC[1])
		roi := image.Rect(cx-h, cy-h, cx+h+1, cy+h+1).Intersect(full)
		if !roi.Empty() && roi != full {
			rois = append(rois, roi)
			big := image.Rect(cx-2*h, cy-2*h, cx+2*h+1, cy+2*h+1).Intersect(full)
			if big != roi && big != full {
				rois = append(rois, big)
			}
		}
	}
	rois = append(rois, full)
	var res Result
	var where image.Rectangle
	for i, roi := range rois {
		var edge bool
		res, where, edge = t.segment(f, roi, now)
		last := i == len(rois)-1
		if last || (res.Status != NoWorm && !edge) {
			break
		}
	}
	return res, where
}
