package track

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
)

// FileConfig configures the tracking of recorded files (the `optoloop track` command).
type FileConfig struct {
	// Video is a video file in any container OpenCV reads; its frames are tracked in order,
	// with continuity between them. Exactly one of Video and Images is set.
	Video string
	// Images is a directory of still images (png, jpg, jpeg, bmp, tif, tiff, pgm, ppm), tracked
	// in file-name order, each on its own (no continuity, head/tail order arbitrary).
	Images string
	// Overlay, when set, receives the frames with the midline and the head drawn: a video
	// file (written as MJPG; name it .avi) or, when it names a directory or has no extension,
	// one PNG per frame in that directory.
	Overlay string
	// PxPerCM is the recording's scale: worms from 0.4 mm (L1) to 1.5 mm (gravid adult) long
	// are accepted at it. Ignored with AutoScale.
	PxPerCM float64
	// AutoScale estimates the scale from the recording first (EstimateScale on frames spread
	// over it); Summary.Scale says what it found.
	AutoScale bool
	// Polarity is the worm's polarity (DarkWorm in bright-field, BrightWorm in dark-field) or
	// AutoPolarity to decide it from the recording (the default).
	Polarity Polarity
	// QuantizeDeg rounds the angles to this many degrees (0: full precision).
	QuantizeDeg float64
	// Midline adds the midline points to each record.
	Midline bool
	// FollowsWorm says the field of view follows the worm (a tracking stage): head and tail
	// are then kept by continuity only, never by the worm's motion in the frame.
	FollowsWorm bool
}

// DefaultFileConfig returns the reference scale (540 px/cm), polarity from the recording, full
// precision, no overlay.
func DefaultFileConfig() FileConfig { return FileConfig{PxPerCM: 540, Polarity: AutoPolarity} }

// Validate reports the first unusable field.
func (c FileConfig) Validate() error {
	switch {
	case (c.Video == "") == (c.Images == ""):
		return errors.New("track: give exactly one of a video file or an image directory")
	case !c.AutoScale && (!(c.PxPerCM > 0) || math.IsInf(c.PxPerCM, 0) || c.PxPerCM > 1e5):
		return fmt.Errorf("track: px per cm %v must be positive (or auto)", c.PxPerCM)
	case c.Polarity < DarkWorm || c.Polarity > AutoPolarity:
		return fmt.Errorf("track: polarity %d unknown", int(c.Polarity))
	case !(c.QuantizeDeg >= 0 && c.QuantizeDeg <= 180):
		return fmt.Errorf("track: quantize %v deg must be in [0, 180]", c.QuantizeDeg)
	}
	return nil
}

// Record is one frame's line of `optoloop track` output (JSON).
type Record struct {
	Frame        int        `json:"frame"`
	File         string     `json:"file,omitempty"`
	OK           bool       `json:"ok"`
	Status       string     `json:"status"`
	Confidence   float64    `json:"confidence"`
	X            float64    `json:"x_px"`
	Y            float64    `json:"y_px"`
	Head         [2]float64 `json:"head_px"`
	Tail         [2]float64 `json:"tail_px"`
	BodyAngleDeg float64    `json:"body_angle_deg"`
	HeadAngleDeg float64    `json:"head_angle_deg"`
	Coiled       bool       `json:"coiled"`
	// Flags say what kept a found worm below confident ("touching", "cut by edge", ...).
	Flags []string `json:"flags,omitempty"`
	// OtherWorm: another worm-like blob was near the tracked worm.
	OtherWorm bool         `json:"other_worm,omitempty"`
	Midline   [][2]float64 `json:"midline,omitempty"`
}

// NewRecord converts a result into a record; the midline is kept when midline is set.
func NewRecord(frame int, r Result, midline bool) Record {
	round := func(v float64) float64 { return math.Round(v*100) / 100 }
	rec := Record{
		Frame:        frame,
		OK:           r.OK,
		Status:       r.Status.String(),
		Confidence:   round(r.Confidence),
		X:            round(r.X),
		Y:            round(r.Y),
		Head:         [2]float64{round(r.Head[0]), round(r.Head[1])},
		Tail:         [2]float64{round(r.Tail[0]), round(r.Tail[1])},
		BodyAngleDeg: round(r.BodyAngle * 180 / math.Pi),
		HeadAngleDeg: round(r.HeadAngle * 180 / math.Pi),
		Coiled:       r.Coiled,
		Flags:        r.Flags,
		OtherWorm:    r.OtherWorm,
	}
	if midline && r.Midline != nil {
		rec.Midline = make([][2]float64, len(r.Midline))
		for i, p := range r.Midline {
			rec.Midline[i] = [2]float64{round(p[0]), round(p[1])}
		}
	}
	return rec
}

// imageExts are the still-image file extensions read from an image directory.
func imageExt(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm":
		return true
	}
	return false
}

// Summary counts what TrackFiles saw.
type Summary struct {
	// Frames tracked, Found with a worm (OK), Confident among them.
	Frames, Found, Confident int
	// MedianLength is the median midline length in pixels over the found frames, and
	// ExpectedLength the worm length the scale implies for a 1 mm adult.
	MedianLength, ExpectedLength float64
	// Scale is the estimate the scale came from (with AutoScale; nil otherwise).
	Scale *ScaleEstimate
}

// ScaleHint returns advice when the scale looks wrong: no worm found at all, or worms found but
// none confidently and their length far from the expected one (empty otherwise).
func (s Summary) ScaleHint() string {
	if s.Frames == 0 || s.Confident > 0 || s.ExpectedLength == 0 {
		return ""
	}
	if s.Found == 0 {
		return fmt.Sprintf("no worm found: at this scale a worm is %.0f-%.0f px long; is --px-per-cm right (or try auto)?", 0.4*s.ExpectedLength, 1.5*s.ExpectedLength)
	}
	r := s.MedianLength / s.ExpectedLength
	if r > 0.35 && r < 1.6 {
		return ""
	}
	return fmt.Sprintf("no confident frame: the worms are ~%.0f px long, the scale implies %.0f-%.0f px; set --px-per-cm to about %.0f (or auto)",
		s.MedianLength, 0.4*s.ExpectedLength, 1.5*s.ExpectedLength, s.MedianLength*10)
}

// TrackFiles tracks every frame of the video or image directory of c and writes one JSON
// record per line to out. An unreadable input is an error naming the file; a frame without a
// worm is a record with ok false.
func TrackFiles(ctx context.Context, c FileConfig, out io.Writer, log *slog.Logger) (Summary, error) {
	sum, err := trackFiles(ctx, c, out, log)
	if len(sum.lengths) > 0 {
		sort.Float64s(sum.lengths)
		sum.MedianLength = sum.lengths[len(sum.lengths)/2]
	}
	return sum.Summary, err
}

type summary struct {
	Summary
	lengths []float64
}

func trackFiles(ctx context.Context, c FileConfig, out io.Writer, log *slog.Logger) (summary, error) {
	var sum summary
	if err := c.Validate(); err != nil {
		return sum, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.AutoScale {
		est, err := autoScale(ctx, c)
		if err != nil {
			return sum, err
		}
		sum.Scale = &est
		c.PxPerCM = est.PxPerCM
		log.Info("scale estimated", "px_per_cm", est.PxPerCM, "why", est.String())
	}
	sum.ExpectedLength = c.PxPerCM / 10
	src, err := openSource(c)
	if err != nil {
		return sum, err
	}
	defer src.close()
	enc := json.NewEncoder(out)
	var (
		tr  *Tracker
		ov  *overlay
		img = gocv.NewMat()
	)
	defer img.Close()
	defer func() {
		if tr != nil {
			tr.Close()
		}
	}()
	n := 0
	for ; ; n++ {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		name, ok, err := src.next(&img)
		if err != nil {
			return sum, err
		}
		if !ok {
			break
		}
		f, err := greyFrame(img)
		if err != nil {
			return sum, fmt.Errorf("track: frame %d (%s): %w", n, name, err)
		}
		f.Seq = uint64(n)
		if tr == nil {
			cal := arenas.DefaultCalibration()
			cal.PxPerCM = c.PxPerCM
			cal.Width, cal.Height = f.Width, f.Height
			cal.CenterX, cal.CenterY = float64(f.Width)/2, float64(f.Height)/2
			cal.PlateRadius = math.Hypot(float64(f.Width), float64(f.Height))
			if fps := src.fps(); fps > 0 {
				cal.FramePeriod = time.Duration(float64(time.Second) / fps)
			}
			cfg := DefaultConfig(cal)
			cfg.Polarity = c.Polarity
			cfg.PlateMask = false
			cfg.QuantizeDeg = c.QuantizeDeg
			cfg.MotionIdentity = !c.FollowsWorm && c.Video != ""
			cfg.RequireSettled = cfg.MotionIdentity
			if cfg.MinBodyLength < 8 {
				return sum, fmt.Errorf("track: at %v px/cm a 0.4 mm worm is %.1f px long, too small to track", c.PxPerCM, 0.4*cfg.BodyLength)
			}
			if tr, err = New(cfg, log); err != nil {
				return sum, err
			}
		}
		if c.Images != "" {
			tr.Reset()
		}
		r := tr.Track(f)
		sum.Frames++
		if r.OK {
			sum.Found++
			sum.lengths = append(sum.lengths, r.Length)
			if r.Confidence >= Confident {
				sum.Confident++
			}
		}
		rec := NewRecord(n, r, c.Midline)
		if c.Images != "" {
			rec.File = name
		}
		if err := enc.Encode(rec); err != nil {
			return sum, fmt.Errorf("track: write: %w", err)
		}
		if c.Overlay != "" {
			if ov == nil {
				if ov, err = newOverlay(c.Overlay, src.fps(), img.Cols(), img.Rows()); err != nil {
					return sum, err
				}
				defer ov.close()
			}
			if err := ov.add(img, r, n); err != nil {
				return sum, err
			}
		}
	}
	if n == 0 {
		return sum, fmt.Errorf("track: no frame could be read from %s", c.Video+c.Images)
	}
	if ov != nil {
		if err := ov.close(); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// scaleSamples is the number of frames, spread over the recording, the scale is estimated from.
const scaleSamples = 40

// autoScale estimates the scale of c's recording from scaleSamples frames spread over it.
func autoScale(ctx context.Context, c FileConfig) (ScaleEstimate, error) {
	src, err := openSource(c)
	if err != nil {
		return ScaleEstimate{}, err
	}
	defer src.close()
	total := len(src.files)
	if src.vc != nil {
		total = int(src.vc.Get(gocv.VideoCaptureFrameCount))
	}
	step := 1
	if total > scaleSamples {
		step = total / scaleSamples
	}
	img := gocv.NewMat()
	defer img.Close()
	var frames []arenas.Frame
	for n := 0; len(frames) < scaleSamples; n++ {
		if err := ctx.Err(); err != nil {
			return ScaleEstimate{}, err
		}
		if src.vc == nil && n%step != 0 {
			src.i++ // skip the file undecoded
			if src.i > len(src.files) {
				break
			}
			continue
		}
		name, ok, err := src.next(&img)
		if err != nil {
			return ScaleEstimate{}, err
		}
		if !ok {
			break
		}
		if n%step != 0 {
			continue
		}
		f, err := greyFrame(img)
		if err != nil {
			return ScaleEstimate{}, fmt.Errorf("track: frame %d (%s): %w", n, name, err)
		}
		if src.vc != nil && len(frames) > 0 && (f.Width != frames[0].Width || f.Height != frames[0].Height) {
			continue
		}
		frames = append(frames, f)
	}
	if len(frames) == 0 {
		return ScaleEstimate{}, fmt.Errorf("track: no frame could be read from %s", c.Video+c.Images)
	}
	base := DefaultConfig(stillCalibration(frames[0].Width, frames[0].Height, 540))
	base.Polarity = c.Polarity
	if fps := src.fps(); fps > 0 {
		base.Calibration.FramePeriod = time.Duration(float64(time.Second) / fps)
	}
	return EstimateScale(frames, base, src.vc != nil && !c.FollowsWorm)
}

// greyFrame converts an 8-bit image (grey, BGR or BGRA) to a grey frame (a copy).
func greyFrame(img gocv.Mat) (arenas.Frame, error) {
	if img.Empty() {
		return arenas.Frame{}, errors.New("empty image")
	}
	var grey gocv.Mat
	switch img.Channels() {
	case 1:
		grey = img.Clone()
	case 3:
		grey = gocv.NewMat()
		gocv.CvtColor(img, &grey, gocv.ColorBGRToGray)
	case 4:
		grey = gocv.NewMat()
		gocv.CvtColor(img, &grey, gocv.ColorBGRAToGray)
	default:
		return arenas.Frame{}, fmt.Errorf("%d channels", img.Channels())
	}
	defer grey.Close()
	if grey.Type() != gocv.MatTypeCV8U {
		return arenas.Frame{}, fmt.Errorf("pixel type %v, want 8-bit", grey.Type())
	}
	b, err := grey.DataPtrUint8()
	if err != nil {
		return arenas.Frame{}, err
	}
	return arenas.Frame{Width: grey.Cols(), Height: grey.Rows(), Pix: append([]byte(nil), b...)}, nil
}

// source yields the frames of a video or an image directory.
type source struct {
	vc    *gocv.VideoCapture
	files []string
	dir   string
	i     int
}

func openSource(c FileConfig) (*source, error) {
	if c.Video != "" {
		if st, err := os.Stat(c.Video); err != nil {
			return nil, fmt.Errorf("track: video: %w", err)
		} else if st.IsDir() {
			return nil, fmt.Errorf("track: video %s is a directory (use an image directory instead)", c.Video)
		}
		vc, err := gocv.VideoCaptureFile(c.Video)
		if err != nil {
			return nil, fmt.Errorf("track: cannot open video %s: %w", c.Video, err)
		}
		if !vc.IsOpened() {
			vc.Close()
			return nil, fmt.Errorf("track: cannot open video %s", c.Video)
		}
		return &source{vc: vc}, nil
	}
	entries, err := os.ReadDir(c.Images)
	if err != nil {
		return nil, fmt.Errorf("track: image directory: %w", err)
	}
	s := &source{dir: c.Images}
	for _, e := range entries {
		if !e.IsDir() && imageExt(e.Name()) {
			s.files = append(s.files, e.Name())
		}
	}
	sort.Strings(s.files)
	if len(s.files) == 0 {
		return nil, fmt.Errorf("track: no images (png, jpg, bmp, tif, pgm) in %s", c.Images)
	}
	return s, nil
}

// next reads the next frame into img; ok is false at the end.
func (s *source) next(img *gocv.Mat) (name string, ok bool, err error) {
	if s.vc != nil {
		if !s.vc.Read(img) || img.Empty() {
			return "", false, nil
		}
		return "", true, nil
	}
	if s.i >= len(s.files) {
		return "", false, nil
	}
	name = s.files[s.i]
	s.i++
	path := filepath.Join(s.dir, name)
	m := gocv.IMRead(path, gocv.IMReadUnchanged)
	if m.Empty() {
		m.Close()
		return name, false, fmt.Errorf("track: cannot decode image %s", path)
	}
	if m.Type() != gocv.MatTypeCV8U && m.Type() != gocv.MatTypeCV8UC3 && m.Type() != gocv.MatTypeCV8UC4 {
		// 16-bit and other depths: read again as 8-bit grey.
		m.Close()
		m = gocv.IMRead(path, gocv.IMReadGrayScale)
		if m.Empty() {
			m.Close()
			return name, false, fmt.Errorf("track: cannot decode image %s", path)
		}
	}
	m.CopyTo(img)
	m.Close()
	return name, true, nil
}

// fps is the video's frame rate (0 when unknown or for images).
func (s *source) fps() float64 {
	if s.vc == nil {
		return 0
	}
	f := s.vc.Get(gocv.VideoCaptureFPS)
	if !(f > 0) || f > 10000 {
		return 0
	}
	return f
}

func (s *source) close() {
	if s.vc != nil {
		s.vc.Close()
	}
}

// overlay writes frames with the tracking drawn on them.
type overlay struct {
	vw     *gocv.VideoWriter
	dir    string
	canvas gocv.Mat
	closed bool
}

func newOverlay(path string, fps float64, w, h int) (*overlay, error) {
	st, statErr := os.Stat(path)
	if (statErr == nil && st.IsDir()) || filepath.Ext(path) == "" {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, fmt.Errorf("track: overlay directory: %w", err)
		}
		return &overlay{dir: path, canvas: gocv.NewMat()}, nil
	}
	if fps <= 0 {
		fps = 3
	}
	vw, err := gocv.VideoWriterFile(path, "MJPG", fps, w, h, true)
	if err != nil {
		return nil, fmt.Errorf("track: overlay video %s: %w", path, err)
	}
	if !vw.IsOpened() {
		vw.Close()
		return nil, fmt.Errorf("track: cannot write overlay video %s", path)
	}
	return &overlay{vw: vw, canvas: gocv.NewMat()}, nil
}

// add draws r on a colour copy of img and writes it.
func (o *overlay) add(img gocv.Mat, r Result, n int) error {
	switch img.Channels() {
	case 1:
		gocv.CvtColor(img, &o.canvas, gocv.ColorGrayToBGR)
	case 4:
		gocv.CvtColor(img, &o.canvas, gocv.ColorBGRAToBGR)
	default:
		img.CopyTo(&o.canvas)
	}
	DrawResult(&o.canvas, r)
	if o.vw != nil {
		if err := o.vw.Write(o.canvas); err != nil {
			return fmt.Errorf("track: overlay frame %d: %w", n, err)
		}
		return nil
	}
	path := filepath.Join(o.dir, fmt.Sprintf("%06d.png", n))
	if !gocv.IMWrite(path, o.canvas) {
		return fmt.Errorf("track: cannot write overlay image %s", path)
	}
	return nil
}

func (o *overlay) close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	o.canvas.Close()
	if o.vw != nil {
		return o.vw.Close()
	}
	return nil
}

// DrawResult draws a tracking result on a BGR image (gocv takes the colours as RGBA and writes
// them in BGR order): the midline in green (yellow when not
// confident), the head as a red disc, the tail as a small blue disc, and the status when the
// worm was not found or is coiled.
func DrawResult(img *gocv.Mat, r Result) {
	pt := func(p [2]float64) image.Point { return image.Pt(int(math.Round(p[0])), int(math.Round(p[1]))) }
	line := color.RGBA{0, 200, 0, 0}
	if r.Confidence < Confident {
		line = color.RGBA{220, 220, 0, 0}
	}
	scale := max(1, min(img.Cols(), img.Rows())/200)
	// Markers follow the worm's size, so a small worm in a large frame stays visible under them.
	mark := scale
	if r.Length > 0 {
		mark = max(1, min(scale, int(math.Round(r.Length/25))))
	}
	for i := 1; i < len(r.Midline); i++ {
		gocv.Line(img, pt(r.Midline[i-1]), pt(r.Midline[i]), line, 1)
	}
	if r.OK {
		gocv.Circle(img, pt(r.Head), 2*mark, color.RGBA{255, 0, 0, 0}, -1)
		gocv.Circle(img, pt(r.Tail), mark, color.RGBA{0, 0, 255, 0}, -1)
	}
	if !r.OK {
		if r.Status == Coiled {
			gocv.Circle(img, pt([2]float64{r.X, r.Y}), 3*mark, color.RGBA{255, 140, 0, 0}, 1)
		}
		gocv.PutText(img, r.Status.String(), image.Pt(2, 10*scale), gocv.FontHersheySimplex, 0.3*float64(scale), color.RGBA{255, 0, 0, 0}, 1)
	}
}
