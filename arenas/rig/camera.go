package rig

import (
	"fmt"
	"image"
	"os"
	"strconv"
	"strings"

	"gocv.io/x/gocv"
)

// capture is an OpenCV VideoCapture delivering 8-bit grey frames of a fixed size. It is used
// by one goroutine at a time (the Arena's reader).
type capture struct {
	source     string
	vc         *gocv.VideoCapture
	w, h       int
	src, grey  gocv.Mat
	depth, out gocv.Mat
}

func apiOf(s string) gocv.VideoCaptureAPI {
	switch s {
	case "v4l2":
		return gocv.VideoCaptureV4L2
	case "gstreamer":
		return gocv.VideoCaptureGstreamer
	case "ffmpeg":
		return gocv.VideoCaptureFFmpeg
	}
	return gocv.VideoCaptureAny
}

// isDevice reports whether source names a camera by index.
func isDevice(source string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(source))
	return n, err == nil && n >= 0
}

// isRegularFile reports whether source is a file on disk (played in stream mode by default).
func isRegularFile(source string) bool {
	st, err := os.Stat(source)
	return err == nil && st.Mode().IsRegular()
}

func openCapture(cfg CameraConfig, w, h int, latest bool) (*capture, error) {
	api := apiOf(cfg.API)
	var vc *gocv.VideoCapture
	var err error
	if n, ok := isDevice(cfg.Source); ok {
		vc, err = gocv.VideoCaptureDeviceWithAPI(n, api)
	} else {
		vc, err = gocv.VideoCaptureFileWithAPI(cfg.Source, api)
	}
	if err != nil || !vc.IsOpened() {
		if vc != nil {
			vc.Close()
		}
		return nil, fmt.Errorf("%w: cannot open %q with api %q", ErrCamera, cfg.Source, cfg.API)
	}
	if cfg.FPS > 0 {
		vc.Set(gocv.VideoCaptureFPS, cfg.FPS)
	}
	if latest {
		// Keep the driver's queue short so that the newest frame is close to real time.
		vc.Set(gocv.VideoCaptureBufferSize, 1)
	}
	return &capture{
		source: cfg.Source, vc: vc, w: w, h: h,
		src: gocv.NewMat(), grey: gocv.NewMat(), depth: gocv.NewMat(), out: gocv.NewMat(),
	}, nil
}

// read takes the next frame into dst (w*h bytes): converted to one 8-bit channel and resized
// to w x h when the camera delivers another size.
func (c *capture) read(dst []byte) error {
	if !c.vc.Read(&c.src) || c.src.Empty() {
		return fmt.Errorf("%w: %q delivered no frame (end of stream or device lost)", ErrCamera, c.source)
	}
	m := c.src
	switch m.Channels() {
	case 1:
	case 3:
		gocv.CvtColor(m, &c.grey, gocv.ColorBGRToGray)
		m = c.grey
	case 4:
		gocv.CvtColor(m, &c.grey, gocv.ColorBGRAToGray)
		m = c.grey
	default:
		return fmt.Errorf("%w: %q delivered %d channels", ErrCamera, c.source, m.Channels())
	}
	switch m.Type() {
	case gocv.MatTypeCV8UC1:
	case gocv.MatTypeCV16UC1:
		m.ConvertToWithParams(&c.depth, gocv.MatTypeCV8UC1, 1.0/256, 0)
		m = c.depth
	default:
		return fmt.Errorf("%w: %q delivered pixels of type %v", ErrCamera, c.source, m.Type())
	}
	if m.Cols() != c.w || m.Rows() != c.h {
		gocv.Resize(m, &c.out, image.Pt(c.w, c.h), 0, 0, gocv.InterpolationArea)
		m = c.out
	}
	if !m.IsContinuous() {
		m.CopyTo(&c.out)
		m = c.out
	}
	b, err := m.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrCamera, c.source, err)
	}
	if len(b) != len(dst) {
		return fmt.Errorf("%w: %q: frame of %d bytes, want %d", ErrCamera, c.source, len(b), len(dst))
	}
	copy(dst, b)
	return nil
}

func (c *capture) close() {
	c.vc.Close()
	c.src.Close()
	c.grey.Close()
	c.depth.Close()
	c.out.Close()
}
