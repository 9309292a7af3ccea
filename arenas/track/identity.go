package track

import (
	"math"
	"slices"
	"time"
)

// identity keeps track of which end of the worm is the head.
//
// Between consecutive frames the orientation that moves the end points least is kept
// (continuity). After an acquisition (the first frame, or a loss longer than ReacquireAfter)
// the identity is not settled: the worm must first move SettleDistance body lengths along its
// body, and the end it moved towards becomes the head (worms crawl forwards most of the
// time). Once settled, if the worm keeps moving towards its tail faster than SpeedFloor for
// SwapAfter (the reference's 10 s rule), head and tail are swapped.
type identity struct {
	have       bool
	head, tail [2]float64
	centre     [2]float64
	at         time.Time
	lastGood   time.Time
	consec     bool // the previous frame was tracked
	settled    bool
	settleAcc  float64
	backFor    time.Duration
	speed      float64
	swaps      int
	guessed    bool // the unsettled orientation continues a settled one across a short gap
}

// headCueMin is the strength of headCue from which shape and shading pick the head: any,
// since at an acquisition there is nothing better (motion may overturn it later). On the
// wormpose still images the cue is right in 90 % of the confident frames.
const headCueMin = 0

// flipFactor is how much more backward motion than SettleDistance it takes to flip an
// unsettled orientation: 2.5 when it continues a settled one, else 1.
func (id *identity) flipFactor() float64 {
	if id.guessed {
		return 2.5
	}
	return 1
}

// lostAt records a frame at now without a midline.
func (id *identity) lostAt(now time.Time) {
	id.consec = false
	id.speed = 0
}

// orient returns mid (and its widths) head first, updating the identity state.
//
// blob is the centroid of the worm's pixels, which measures the motion: it hardly moves when
// the thin tail tip shows in one frame and not in the next, unlike the midline's ends.
//
// shapeCue allows the body's shape and shading (headCue of widths and dark, the darkening
// along the midline) to choose the head at an acquisition (the body is whole
// and free): the blunter end is the head. Motion, when used, may still overturn it.
func (id *identity) orient(mid [][2]float64, widths, dark []float64, blob [2]float64, now time.Time, cfg Config, refLen float64, shapeCue bool) ([][2]float64, []float64) {
	n := len(mid)
	flip := func() {
		slices.Reverse(mid)
		slices.Reverse(widths)
		slices.Reverse(dark)
	}
	dist := func(a, b [2]float64) float64 { return math.Hypot(a[0]-b[0], a[1]-b[1]) }
	gap := now.Sub(id.lastGood)
	// Continuity holds over consecutive frames; across a gap (a coil, a frame without the
	// worm) shorter than ReacquireAfter it only guesses: the ends may have swept round
	// during an omega turn, so motion must confirm it again.
	continuous := id.have && gap <= cfg.ReacquireAfter && (id.consec || !cfg.MotionIdentity)
	if id.have {
		same := dist(mid[0], id.head) + dist(mid[n-1], id.tail)
		swapped := dist(mid[0], id.tail) + dist(mid[n-1], id.head)
		if swapped < same {
			flip()
		}
		if math.Min(same, swapped) > 0.5*refLen || math.Abs(same-swapped) < 0.1*refLen {
			// The ends moved too far, or both assignments fit as well: continuity says nothing.
			continuous = false
		}
	}
	if !continuous {
		// After a short gap the ends are still guessed by continuity: confirming that guess
		// takes SettleDistance, overturning it takes more.
		id.guessed = id.have && gap <= cfg.ReacquireAfter && id.settled
		if !id.have && shapeCue && headCue(widths, dark) < -headCueMin {
			flip()
		}
		id.settled = false
		id.settleAcc = 0
		id.backFor = 0
	}
	cx, cy := blob[0], blob[1]
	id.speed = 0
	if id.have && id.consec && continuous {
		if dt := now.Sub(id.at); dt > 0 {
			id.speed = math.Hypot(cx-id.centre[0], cy-id.centre[1]) / dt.Seconds()
		}
	}
	if id.have && id.consec && continuous && cfg.MotionIdentity {
		dt := now.Sub(id.at)
		dx, dy := cx-id.centre[0], cy-id.centre[1]
		// Axial motion along the body's middle, tail -> head.
		a, b := mid[max(0, n/2-n/8)], mid[min(n-1, n/2+n/8)]
		tx, ty := a[0]-b[0], a[1]-b[1]
		if l := math.Hypot(tx, ty); l > 0 {
			axial := (dx*tx + dy*ty) / l
			if !id.settled {
				id.settleAcc += axial
				switch {
				case id.settleAcc >= cfg.SettleDistance*refLen:
					id.settled = true
				case id.settleAcc <= -cfg.SettleDistance*refLen*id.flipFactor():
					flip()
					id.settled = true
				}
				if id.settled {
					id.backFor = 0
				}
			} else if dt > 0 {
				v := axial / dt.Seconds()
				switch {
				case v < -cfg.SpeedFloor:
					id.backFor += dt
					if id.backFor >= cfg.SwapAfter {
						flip()
						id.swaps++
						id.backFor = 0
					}
				case v > cfg.SpeedFloor:
					id.backFor = 0
				}
			}
		}
	}
	id.have = true
	id.head, id.tail = mid[0], mid[n-1]
	id.centre = [2]float64{cx, cy}
	id.at = now
	id.lastGood = now
	id.consec = true
	return mid, widths
}
