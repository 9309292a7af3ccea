package track

import (
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
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
	// OtherWorm reports another worm-like blob near the tracked worm (a second worm entering
	// the field): the tracked worm keeps its identity by continuity, and the frame is flagged.
	OtherWorm bool
	// Flags says what kept a found worm's pose below Confident (empty when confident or not
	// found): e.g. "touching", "looped", "off-body midline", "short", "long", "unsettled".
	Flags []string
}

// sizeRange is the range of nominal worm lengths, in pixels, that the area, extent and length
// bounds (the Config's ratios) apply to: the configured life-stage bounds until the worm has
// been measured, then its reference length.
func (t *Tracker) sizeRange() (lo, hi float64) {
	if t.lenKnown {
		return t.refLen, t.refLen
	}
	return t.cfg.MinBodyLength, t.cfg.MaxBodyLength
}

// Tracker turns frames of one arena into poses. It keeps per-arena state: the background,
// the last pose (continuity of head and tail, search region) and reusable OpenCV buffers.
// A Tracker is not safe for concurrent use; Close releases its buffers.
type Tracker struct {
	cfg Config
	log *slog.Logger

	bg     *background
	build  *builder
	geo    geometry
	mats   mats
	refLen float64
	// lenKnown: refLen is the worm's measured (or configured) length; until then any length in
	// [MinBodyLength, MaxBodyLength] is accepted. lenSeen collects the first confident lengths.
	lenKnown bool
	lenSeen  []float64
	// refW is the worm's measured mean width (0 until measured); widSeen, sizeSeen collect the
	// first confident frames' widths.
	refW     float64
	widSeen  []float64
	sizeSeen int
	id       identity
	closed   bool
	diffBuf  []uint8
	blob     bitmap
	// thinK is trimThin's disc (diameter d).
	thinK struct {
		m gocv.Mat
		d int
	}
	dark     []float64
	scratch  [4][][2]float64
	histo    [256]int
	spans    [][2]int
	lastSeen time.Time
	haveLast bool
	lastC    [2]float64
	// anchorC and lastArea are the centre and blob area of the last whole, free pose.
	anchorC  [2]float64
	lastArea float64
	// bright is the polarity in use: the worm brighter than the background (dark-field).
	// It is cfg.Polarity resolved (AutoPolarity decides it from the background).
	bright bool
	coarse coarse // the lost-worm search's buffers (coarse.go)
}

// mats are the OpenCV buffers a Tracker reuses from frame to frame.
type mats struct {
	src, closed, diff, blur, bin, labels, stats, cents, kernel, blob, dist, distLabels, plate gocv.Mat
	med, clip, tube                                                                           gocv.Mat
}

func (m *mats) all() []*gocv.Mat {
	return []*gocv.Mat{&m.src, &m.closed, &m.diff, &m.blur, &m.bin, &m.labels, &m.stats, &m.cents, &m.kernel, &m.blob, &m.dist, &m.distLabels, &m.plate, &m.med, &m.clip, &m.tube}
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
	t := &Tracker{cfg: cfg, log: log, refLen: cfg.BodyLength, lenKnown: !cfg.RefineLength, bright: cfg.Polarity == BrightWorm}
	for _, m := range t.mats.all() {
		*m = gocv.NewMat()
	}
	t.thinK.m = gocv.NewMat()
	// The closing erases dark things up to three nominal widths wide: the widest worm accepted
	// (MaxBodyLength, 1.5 mm by default) too.
	k := 2*int(math.Ceil(1.5*widthOf(max(cfg.BodyLength, cfg.MaxBodyLength/2)))) + 1
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
	errs = append(errs, t.coarse.close())
	errs = append(errs, t.thinK.m.Close())
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
