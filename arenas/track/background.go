package track

import (
	"errors"
	"fmt"
	"image"
	"math"
	"time"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
)

// ErrNoBackground is returned by CommitBackground when no frame was added.
var ErrNoBackground = errors.New("track: no background frames")

// background is the per-pixel running mean of the empty plate, kept in float and, rounded,
// in an OpenCV matrix (pix8 is that matrix's memory) for the whole-frame search.
type background struct {
	w, h   int
	mean   []float32
	mat    gocv.Mat
	pix8   []uint8
	stripe int
}

// close releases the matrix.
func (bg *background) close() error { return bg.mat.Close() }

// builder accumulates the background before an episode: a running mean per pixel that leaves
// out the passing worm. For a dark worm, a value much darker than the brightest value seen so
// far at that pixel is worm and is skipped; a value much brighter than every earlier one means
// the earlier ones were worm, and the mean restarts from it. For a bright worm it is the
// mirror: much brighter than the darkest value so far is worm.
type builder struct {
	w, h int
	// brightWorm is the polarity the builder leaves the worm out by.
	brightWorm bool
	// ref is the value furthest from the worm's direction seen so far at each pixel: the
	// brightest for a dark worm, the darkest for a bright one.
	ref    []uint8
	sum    []float32
	count  []uint16
	frames int
	last   []byte // the last frame added
}

// builderTolerance is how much a pixel may differ from the builder's reference value in the
// worm's direction and still count as background (grey levels). The worm changes the agar by
// far more; noise by far less.
const builderTolerance = 14

// StartBackground begins building a new background; the tracker keeps using the previous one
// (or none) until CommitBackground.
func (t *Tracker) StartBackground() {
	t.build = nil
}

// AddBackground adds a frame (taken with the light off) to the background being built. With
// AutoPolarity still undecided, the first background frame decides it.
func (t *Tracker) AddBackground(f arenas.Frame) error {
	if f.Width <= 0 || f.Height <= 0 || len(f.Pix) < f.Width*f.Height || f.Width > 1<<15 || f.Height > 1<<15 {
		return fmt.Errorf("track: background frame %dx%d with %d bytes", f.Width, f.Height, len(f.Pix))
	}
	if t.cfg.Polarity == AutoPolarity {
		t.resolvePolarity(f, "background")
	}
	b := t.build
	if b == nil {
		n := f.Width * f.Height
		b = &builder{w: f.Width, h: f.Height, brightWorm: t.bright, ref: make([]uint8, n), sum: make([]float32, n), count: make([]uint16, n)}
		t.build = b
	}
	if f.Width != b.w || f.Height != b.h {
		return fmt.Errorf("track: background frame %dx%d after frames of %dx%d", f.Width, f.Height, b.w, b.h)
	}
	if b.frames >= math.MaxUint16 {
		return fmt.Errorf("track: more than %d background frames", math.MaxUint16)
	}
	b.add(f.Pix[:b.w*b.h])
	b.frames++
	if b.last == nil {
		b.last = make([]byte, b.w*b.h)
	}
	copy(b.last, f.Pix[:b.w*b.h])
	return nil
}

// add adds a frame: a value much further towards the worm's side (darker for a dark worm,
// brighter for a bright one) than the most plate-like value so far is the worm passing and is
// left out; a value much further to the plate's side means the earlier ones were worm, and the
// mean restarts from it.
func (b *builder) add(pix []byte) {
	sign := 1 // a dark worm lies below the plate
	if b.brightWorm {
		sign = -1
	}
	for i, v := range pix {
		ref := b.ref[i]
		d := sign * (int(ref) - int(v)) // how far v lies towards the worm's side of ref
		switch {
		case b.count[i] == 0 || d < -builderTolerance:
			b.ref[i], b.sum[i], b.count[i] = v, float32(v), 1
		case d > builderTolerance:
			// the worm (or a shadow, a reflection) passing
		default:
			b.sum[i] += float32(v)
			b.count[i]++
			if d < 0 {
				b.ref[i] = v
			}
		}
	}
}

// CommitBackground makes the background built since StartBackground the tracker's background.
func (t *Tracker) CommitBackground() error {
	b := t.build
	if b == nil || b.frames == 0 {
		return ErrNoBackground
	}
	bg := &background{w: b.w, h: b.h, mean: make([]float32, b.w*b.h), mat: gocv.NewMatWithSize(b.h, b.w, gocv.MatTypeCV8U)}
	pix8, err := bg.mat.DataPtrUint8()
	if err != nil {
		bg.close()
		return fmt.Errorf("track: background matrix: %w", err)
	}
	bg.pix8 = pix8
	for i := range bg.mean {
		bg.mean[i] = b.sum[i] / float32(b.count[i])
		bg.pix8[i] = uint8(bg.mean[i] + 0.5)
	}
	if t.bg != nil {
		t.bg.close()
	}
	t.bg = bg
	t.build = nil
	t.repairBackground(arenas.Frame{Width: b.w, Height: b.h, Pix: b.last})
	return nil
}

// repairBackground removes the part of a slow worm that lay under its own body during the
// whole build: it finds the worm in the last frame added against the new background, and
// around it replaces thin dark structures of the background by the local agar level (a grey
// closing; for a bright worm thin bright structures, by a grey opening). A worm that did not
// move at all is wholly in the background and cannot be told from debris; that is logged.
func (t *Tracker) repairBackground(last arenas.Frame) {
	bg := t.bg
	t.Reset()
	defer t.Reset()
	_, where := t.search(last, time.Time{})
	if where.Empty() {
		t.log.Warn("no worm against the new background: the plate is empty or the worm did not move while it was built")
		return
	}
	m := int(math.Ceil(0.6 * t.refLen))
	r := image.Rect(where.Min.X-m, where.Min.Y-m, where.Max.X+m, where.Max.Y+m).Intersect(image.Rect(0, 0, bg.w, bg.h))
	w, h := r.Dx(), r.Dy()
	ensure(&t.mats.src, h, w, gocv.MatTypeCV8U)
	src, err := t.mats.src.DataPtrUint8()
	if err != nil {
		return
	}
	for y := range h {
		off := (r.Min.Y+y)*bg.w + r.Min.X
		copy(src[y*w:(y+1)*w], bg.pix8[off:off+w])
	}
	op, sign := gocv.MorphClose, 1.0
	if t.bright {
		op, sign = gocv.MorphOpen, -1
	}
	gocv.MorphologyExWithParams(t.mats.src, &t.mats.closed, op, t.mats.kernel, 1, gocv.BorderReplicate)
	closed, err := t.mats.closed.DataPtrUint8()
	if err != nil {
		return
	}
	floor := t.cfg.MinContrast
	for y := range h {
		off := (r.Min.Y+y)*bg.w + r.Min.X
		for x := range w {
			c := closed[y*w+x]
			if sign*(float64(c)-float64(bg.pix8[off+x])) > floor {
				bg.pix8[off+x] = c
				bg.mean[off+x] = float32(c)
			}
		}
	}
}

// SetBackground sets the background directly from an image of the empty plate.
func (t *Tracker) SetBackground(f arenas.Frame) error {
	t.StartBackground()
	if err := t.AddBackground(f); err != nil {
		return err
	}
	return t.CommitBackground()
}

// HasBackground reports whether the tracker subtracts a background.
func (t *Tracker) HasBackground() bool { return t.bg != nil }

// diff writes max(0, background - frame) over roi into out (stride roi.Dx()); for a bright
// worm max(0, frame - background).
func (bg *background) diff(out []uint8, f arenas.Frame, roi image.Rectangle, brightWorm bool) {
	w := roi.Dx()
	for y := range roi.Dy() {
		off := (roi.Min.Y+y)*f.Width + roi.Min.X
		src, mean, dst := f.Pix[off:off+w], bg.pix8[off:off+w], out[y*w:(y+1)*w]
		if brightWorm {
			subClip(dst, src, mean)
		} else {
			subClip(dst, mean, src)
		}
	}
}

// subClip writes max(0, a - b) into dst.
func subClip(dst, a, b []uint8) {
	for x, v := range a {
		if u := b[x]; v > u {
			dst[x] = v - u
		} else {
			dst[x] = 0
		}
	}
}

// refresh blends one stripe of rows of a light-off frame into the background, leaving out the
// worm's rectangle (grown by a margin) and any pixel that differs from the background by more
// than the builder's tolerance.
func (bg *background) refresh(f arenas.Frame, worm image.Rectangle, cfg Config) {
	if cfg.RefreshRate == 0 {
		return
	}
	rows := (bg.h + cfg.RefreshStripes - 1) / cfg.RefreshStripes
	y0 := bg.stripe * rows
	y1 := min(bg.h, y0+rows)
	bg.stripe = (bg.stripe + 1) % cfg.RefreshStripes
	m := int(math.Ceil(cfg.BodyLength / 4))
	if !worm.Empty() {
		worm = image.Rect(worm.Min.X-m, worm.Min.Y-m, worm.Max.X+m, worm.Max.Y+m)
	}
	a := float32(cfg.RefreshRate)
	for y := y0; y < y1; y++ {
		row := f.Pix[y*bg.w : (y+1)*bg.w]
		mean := bg.mean[y*bg.w : (y+1)*bg.w]
		pix8 := bg.pix8[y*bg.w : (y+1)*bg.w]
		for x, v := range row {
			if y >= worm.Min.Y && y < worm.Max.Y && x >= worm.Min.X && x < worm.Max.X {
				continue
			}
			d := float32(v) - mean[x]
			if d > builderTolerance || d < -builderTolerance {
				continue
			}
			mean[x] += a * d
			pix8[x] = uint8(mean[x] + 0.5)
		}
	}
}
