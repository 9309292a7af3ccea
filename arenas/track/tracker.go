package track

import (
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"sort"
	"time"
	"unsafe"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
)

// Status says what a Tracker made of a frame.
type Status int

const (
	// Found: a worm was found and its midline measured.
	Found Status = iota
	// NoWorm: nothing worm-like in the frame (blank, saturated, empty plate).
	NoWorm
	// TwoWorms: more than one worm-like blob; the pose is not trusted.
	TwoWorms
	// Coiled: the worm touches or crosses itself; the centre is known, the midline is not.
	Coiled
	// BadFrame: the frame cannot be tracked (no pixels, wrong size for the background).
	BadFrame
)

func (s Status) String() string {
	switch s {
	case Found:
		return "found"
	case NoWorm:
		return "no worm"
	case TwoWorms:
		return "two worms"
	case Coiled:
		return "coiled"
	case BadFrame:
		return "bad frame"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Result is one frame's tracking result: the pose plus what the tracker measured on the way.
type Result struct {
	arenas.Pose
	Status Status
	// Widths is the body width in pixels at each midline point, head first (nil when the
	// midline is unknown).
	Widths []float64
	// Length is the midline's length in pixels and Area the blob's area in pixels.
	Length float64
	Area   int
	// Settled reports whether the head/tail identity has been confirmed by the worm's motion.
	Settled bool
	// CutByEdge reports that the blob touches the frame's edge (the worm may be partly
	// outside); such poses stay below Confident.
	CutByEdge bool
}

// Tracker turns frames of one arena into poses. It keeps per-arena state: the background,
// the last pose (continuity of head and tail, search region) and reusable OpenCV buffers.
// A Tracker is not safe for concurrent use; Close releases its buffers.
type Tracker struct {
	cfg Config
	log *slog.Logger

	bg       *background
	build    *builder
	geo      geometry
	mats     mats
	refLen   float64
	id       identity
	closed   bool
	diffBuf  []uint8
	blob     bitmap
	scratch  [4][][2]float64
	histo    [256]int
	spans    [][2]int
	lastSeen time.Time
	haveLast bool
	lastC    [2]float64
}

// mats are the OpenCV buffers a Tracker reuses from frame to frame.
type mats struct {
	src, closed, diff, blur, bin, labels, stats, cents, kernel, blob, dist, distLabels, plate gocv.Mat
}

func (m *mats) all() []*gocv.Mat {
	return []*gocv.Mat{&m.src, &m.closed, &m.diff, &m.blur, &m.bin, &m.labels, &m.stats, &m.cents, &m.kernel, &m.blob, &m.dist, &m.distLabels, &m.plate}
}

// New returns a Tracker without a background: it segments each frame against a local
// background estimate (a grey closing that erases thin dark things), as for still images.
// SetBackground or BuildBackground switch it to background subtraction.
func New(cfg Config, log *slog.Logger) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{cfg: cfg, log: log, refLen: cfg.BodyLength}
	for _, m := range t.mats.all() {
		*m = gocv.NewMat()
	}
	k := 2*int(math.Ceil(1.5*cfg.expectedWidth())) + 1
	k = max(k, 5)
	t.mats.kernel.Close()
	t.mats.kernel = gocv.GetStructuringElement(gocv.MorphEllipse, image.Pt(k, k))
	return t, nil
}

// Config returns the tracker's configuration.
func (t *Tracker) Config() Config { return t.cfg }

// Close releases the tracker's OpenCV buffers. Close is idempotent.
func (t *Tracker) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	for _, m := range t.mats.all() {
		if err := m.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if t.bg != nil {
		errs = append(errs, t.bg.close())
		t.bg = nil
	}
	return errors.Join(errs...)
}

// Reset forgets the worm: the next frame is searched in full and head/tail identity starts
// afresh. The background is kept.
func (t *Tracker) Reset() {
	t.id = identity{}
	t.haveLast = false
}

// ensure makes m a rows x cols matrix of type typ, reallocating only when it differs.
func ensure(m *gocv.Mat, rows, cols int, typ gocv.MatType) {
	if m.Rows() == rows && m.Cols() == cols && m.Type() == typ {
		return
	}
	m.Close()
	*m = gocv.NewMatWithSize(rows, cols, typ)
}

// timestamp is the frame's time, or its sequence number times the frame period when the
// frame carries no time.
func (t *Tracker) timestamp(f arenas.Frame) time.Time {
	if !f.Time.IsZero() {
		return f.Time
	}
	return time.Unix(0, 0).Add(time.Duration(f.Seq) * t.cfg.Calibration.FramePeriod)
}

// Track finds the worm in f and returns its pose. It never panics on bad frames: they yield a
// result with OK false and a Status saying why.
func (t *Tracker) Track(f arenas.Frame) Result {
	if t.closed {
		return Result{Status: BadFrame}
	}
	now := t.timestamp(f)
	if f.Width <= 0 || f.Height <= 0 || len(f.Pix) < f.Width*f.Height || f.Width > 1<<15 || f.Height > 1<<15 {
		return t.lost(now, BadFrame)
	}
	if t.bg != nil && (f.Width != t.bg.w || f.Height != t.bg.h) {
		return t.lost(now, BadFrame)
	}
	res, where := t.search(f, now)
	if t.bg != nil && !f.Light.On {
		t.bg.refresh(f, where, t.cfg)
	}
	return res
}

// lost records a frame without a usable worm.
func (t *Tracker) lost(now time.Time, s Status) Result {
	t.id.lostAt(now)
	return Result{Status: s}
}

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

// usePlate reports whether the plate mask applies to f (the frame has the calibrated size).
func (t *Tracker) usePlate(f arenas.Frame) bool {
	c := t.cfg.Calibration
	return t.cfg.PlateMask && f.Width == c.Width && f.Height == c.Height
}

// candidate is a connected dark blob of the detection mask.
type candidate struct {
	label      int
	area       int
	x, y, w, h int
}

// segment looks for the worm in roi. edge reports that the chosen blob touches the region's
// border (the worm may extend beyond it).
func (t *Tracker) segment(f arenas.Frame, roi image.Rectangle, now time.Time) (Result, image.Rectangle, bool) {
	w, h := roi.Dx(), roi.Dy()
	if w < 3 || h < 3 {
		return t.lost(now, NoWorm), image.Rectangle{}, false
	}
	if !t.diffImage(f, roi) {
		return t.lost(now, NoWorm), image.Rectangle{}, false
	}
	m := &t.mats
	gocv.GaussianBlur(m.diff, &m.blur, image.Pt(3, 3), 0, 0, gocv.BorderReplicate)
	blur, err := m.blur.DataPtrUint8()
	if err != nil {
		return t.lost(now, BadFrame), image.Rectangle{}, false
	}
	thr := t.detectionThreshold(blur)
	gocv.Threshold(m.blur, &m.bin, float32(thr)-0.5, 255, gocv.ThresholdBinary)
	// 32-bit labels: an adversarial frame can hold more than 65535 blobs.
	n := gocv.ConnectedComponentsWithStatsWithParams(m.bin, &m.labels, &m.stats, &m.cents, 8, gocv.MatTypeCV32S, gocv.CCL_DEFAULT)
	stats, err := int32s(&m.stats)
	if err != nil || len(stats) < 5*n {
		return t.lost(now, BadFrame), image.Rectangle{}, false
	}
	expA := t.cfg.expectedArea()
	minA := t.cfg.MinAreaRatio * expA
	maxA := t.cfg.MaxAreaRatio * expA * 1.5
	maxSide := 1.6 * t.cfg.BodyLength * t.cfg.MaxLengthRatio
	var cands []candidate
	for l := 1; l < n; l++ {
		st := stats[5*l : 5*l+5]
		c := candidate{
			label: l,
			x:     int(st[gocv.CC_STAT_LEFT]),
			y:     int(st[gocv.CC_STAT_TOP]),
			w:     int(st[gocv.CC_STAT_WIDTH]),
			h:     int(st[gocv.CC_STAT_HEIGHT]),
			area:  int(st[gocv.CC_STAT_AREA]),
		}
		if float64(c.area) < minA || float64(c.area) > maxA || float64(max(c.w, c.h)) > maxSide {
			continue
		}
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		return t.lost(now, NoWorm), image.Rectangle{}, false
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].area > cands[j].area })
	best := cands[0]
	edge := best.x == 0 || best.y == 0 || best.x+best.w == w || best.y+best.h == h
	where := image.Rect(roi.Min.X+best.x, roi.Min.Y+best.y, roi.Min.X+best.x+best.w, roi.Min.Y+best.y+best.h)
	if len(cands) > 1 && t.wormLike(cands[1], best) {
		r := t.lost(now, TwoWorms)
		return r, where, edge
	}
	labels, err := int32s(&m.labels)
	if err != nil || len(labels) != w*h {
		return t.lost(now, BadFrame), image.Rectangle{}, false
	}
	res := t.shape(best, labels, blur, w, roi, thr, now)
	if where.Min.X <= 0 || where.Min.Y <= 0 || where.Max.X >= f.Width || where.Max.Y >= f.Height {
		// Cut by the frame's edge: the worm's length and ends are unknown.
		res.Confidence = math.Min(res.Confidence, 0.4)
		res.CutByEdge = true
	}
	return res, where, edge
}

// wormLike reports whether the second blob c could be another worm next to the best one:
// comparable area and an elongated extent.
func (t *Tracker) wormLike(c, best candidate) bool {
	return float64(c.area) >= 0.5*float64(best.area) &&
		float64(c.area) >= 2*t.cfg.MinAreaRatio*t.cfg.expectedArea() &&
		float64(max(c.w, c.h)) >= 0.45*t.refLen
}

// diffImage fills t.mats.diff with how much darker than the background each pixel of roi is
// (0 outside the plate mask). Without a background the local background is a grey closing
// of the region.
func (t *Tracker) diffImage(f arenas.Frame, roi image.Rectangle) bool {
	m := &t.mats
	w, h := roi.Dx(), roi.Dy()
	ensure(&m.diff, h, w, gocv.MatTypeCV8U)
	diff, err := m.diff.DataPtrUint8()
	if err != nil {
		return false
	}
	whole := roi == image.Rect(0, 0, f.Width, f.Height)
	if t.bg != nil && whole {
		// Whole-frame search: OpenCV's saturating subtraction and the plate mask.
		ensure(&m.src, h, w, gocv.MatTypeCV8U)
		src, err := m.src.DataPtrUint8()
		if err != nil {
			return false
		}
		copy(src, f.Pix[:w*h])
		gocv.Subtract(t.bg.mat, m.src, &m.diff)
		if t.usePlate(f) {
			t.ensurePlate()
			gocv.BitwiseAnd(m.diff, m.plate, &m.diff)
		}
		return true
	}
	if t.bg != nil {
		t.bg.diff(diff, f, roi)
	} else {
		ensure(&m.src, h, w, gocv.MatTypeCV8U)
		src, err := m.src.DataPtrUint8()
		if err != nil {
			return false
		}
		for y := range h {
			off := (roi.Min.Y+y)*f.Width + roi.Min.X
			copy(src[y*w:(y+1)*w], f.Pix[off:off+w])
		}
		dark := 0
		for _, v := range src {
			if v <= maskedLevel {
				dark++
			}
		}
		// Recordings that blank everything but the worm and a margin around it (tierpsy's
		// masked videos) have a large near-black area: those pixels are filled with the bright
		// background level of the rest so that the closing sees no dark surround, and are
		// kept out of the worm afterwards.
		masked := dark > len(src)/5
		if masked {
			clear(t.histo[:])
			valid := 0
			for _, v := range src {
				if v > maskedLevel {
					t.histo[v]++
					valid++
				}
			}
			if valid == 0 {
				return false
			}
			fill := uint8(histQuantile(&t.histo, valid, 0.9))
			for i, v := range src {
				if v <= maskedLevel {
					src[i] = fill
				}
			}
		}
		gocv.MorphologyExWithParams(m.src, &m.closed, gocv.MorphClose, m.kernel, 1, gocv.BorderReplicate)
		gocv.Subtract(m.closed, m.src, &m.diff)
		diff, err = m.diff.DataPtrUint8()
		if err != nil {
			return false
		}
		if masked {
			t.maskDark(f, roi, diff)
		}
	}
	if t.usePlate(f) {
		t.ensurePlate()
		for y := range h {
			span := t.spans[roi.Min.Y+y]
			row := diff[y*w : (y+1)*w]
			x0 := min(w, max(0, span[0]-roi.Min.X))
			x1 := min(w, max(x0, span[1]-roi.Min.X))
			clear(row[:x0])
			clear(row[x1:])
		}
	}
	return true
}

// ensurePlate computes the plate mask: per row, the columns [x0, x1) inside the plate circle,
// and the same as a 0/255 matrix.
func (t *Tracker) ensurePlate() {
	c := t.cfg.Calibration
	if len(t.spans) == c.Height {
		return
	}
	t.spans = make([][2]int, c.Height)
	ensure(&t.mats.plate, c.Height, c.Width, gocv.MatTypeCV8U)
	px, err := t.mats.plate.DataPtrUint8()
	for y := range c.Height {
		dy := float64(y) - c.CenterY
		r2 := c.PlateRadius*c.PlateRadius - dy*dy
		if r2 < 0 {
			continue
		}
		r := math.Sqrt(r2)
		x0 := min(c.Width, max(0, int(math.Ceil(c.CenterX-r))))
		x1 := min(c.Width, max(x0, int(math.Floor(c.CenterX+r))+1))
		t.spans[y] = [2]int{x0, x1}
		if err == nil {
			row := px[y*c.Width : (y+1)*c.Width]
			clear(row)
			for x := x0; x < x1; x++ {
				row[x] = 255
			}
		}
	}
}

// maskedLevel is the grey level up to which a pixel of a masked recording counts as masked.
const maskedLevel = 12

// maskDark clears diff where the frame is masked (near black).
func (t *Tracker) maskDark(f arenas.Frame, roi image.Rectangle, diff []uint8) {
	w := roi.Dx()
	for y := range roi.Dy() {
		row := f.Pix[(roi.Min.Y+y)*f.Width+roi.Min.X : (roi.Min.Y+y)*f.Width+roi.Max.X]
		for x, v := range row {
			if v <= maskedLevel {
				diff[y*w+x] = 0
			}
		}
	}
}

// histQuantile returns the grey level at quantile q of a histogram holding n values.
func histQuantile(h *[256]int, n int, q float64) int {
	target := int(q * float64(n))
	acc := 0
	for v, c := range h {
		acc += c
		if acc > target {
			return v
		}
	}
	return 255
}

// detectionThreshold is the darkening above which a pixel may be worm: MinContrast or NoiseK
// robust deviations of the difference image above its median, whichever is larger.
func (t *Tracker) detectionThreshold(diff []uint8) float64 {
	clear(t.histo[:])
	step := 1
	if len(diff) > 1<<16 {
		step = 7
	}
	n := 0
	for i := 0; i < len(diff); i += step {
		t.histo[diff[i]]++
		n++
	}
	med := histQuantile(&t.histo, n, 0.5)
	// Deviation from the lower half: the worm may cover a good part of a cropped image and
	// sits in the upper tail.
	lo := histQuantile(&t.histo, n, 0.2)
	sigma := math.Max(0.5, float64(med-lo)/0.8416)
	return math.Max(t.cfg.MinContrast, float64(med)+t.cfg.NoiseK*sigma)
}

// int32s returns the data of a continuous CV_32S matrix as int32 values (OpenCV's memory,
// valid until the matrix changes).
func int32s(m *gocv.Mat) ([]int32, error) {
	if m.Type() != gocv.MatTypeCV32S {
		return nil, fmt.Errorf("track: matrix type %v, want CV_32S", m.Type())
	}
	b, err := m.DataPtrUint8()
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), len(b)/4), nil
}
