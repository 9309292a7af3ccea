package rig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/optoloop/optoloop/arenas"
)

// Camera modes for CameraConfig.Mode.
const (
	// ModeAuto is ModeStream for a regular file and ModeLatest for anything else.
	ModeAuto = "auto"
	// ModeStream returns every frame the source delivers, in order, reading one frame per
	// NextFrame (a file plays as fast as it decodes, or at Period).
	ModeStream = "stream"
	// ModeLatest reads the camera continuously and NextFrame returns the newest frame exposed
	// since the previous one, so a consumer slower than the camera never sees stale frames.
	ModeLatest = "latest"
)

// CameraConfig configures the camera, opened through OpenCV's VideoCapture (gocv).
type CameraConfig struct {
	// Source is a device index ("0" for /dev/video0), a video file, a URL (rtsp://, http://)
	// or a GStreamer pipeline ending in appsink (with API "gstreamer").
	Source string `json:"source" yaml:"source"`
	// API is the OpenCV back end: "any", "v4l2", "gstreamer" or "ffmpeg".
	API string `json:"api" yaml:"api"`
	// Mode is "auto", "stream" or "latest" (see the Mode constants).
	Mode string `json:"mode" yaml:"mode"`
	// Period paces NextFrame: a frame is returned no sooner than Period after the previous one
	// (on the Arena's clock). 0 lets the camera pace (each NextFrame takes the next frame).
	Period Duration `json:"period" yaml:"period"`
	// FrameTimeout is how long NextFrame waits for a frame before it declares the camera
	// stopped (ErrCamera, light off). 0 waits as long as the caller's context allows.
	FrameTimeout Duration `json:"frame_timeout" yaml:"frame_timeout"`
	// FPS, when above 0, is requested from the device (not all devices honour it).
	FPS float64 `json:"fps" yaml:"fps"`
}

// Config configures a real rig.
type Config struct {
	// Calibration describes the camera and the plate. Frames are converted to 8-bit grey and,
	// when the camera delivers another size, resized to Width x Height (INTER_AREA): the
	// calibration is in the coordinates of the delivered frames.
	Calibration arenas.Calibration
	// Camera is the camera.
	Camera CameraConfig
	// LED is the light driver.
	LED LEDConfig
	// Polarity is how the worm shows against the agar, for the tracker: "dark" (bright-field,
	// the worm darker than the agar), "bright" (dark-field, as on the reference's rig) or
	// "auto" (decided from the background built before each episode).
	Polarity string
	// Clock times frames, pacing and timeouts; nil means the system clock.
	Clock Clock
	// Logger receives the rig's events; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig is the reference rig's calibration, camera device 0 through V4L2 paced at the
// calibration's frame period (newest frame each period), a 5 s stall timeout, and the default
// serial light controller.
func DefaultConfig() Config {
	cal := arenas.DefaultCalibration()
	return Config{
		Calibration: cal,
		Camera: CameraConfig{
			Source:       "0",
			API:          "v4l2",
			Mode:         ModeAuto,
			Period:       Duration(cal.FramePeriod),
			FrameTimeout: Duration(5 * time.Second),
		},
		LED:      DefaultLEDConfig(),
		Polarity: PolarityAuto,
	}
}

// Polarities for Config.Polarity.
const (
	PolarityDark   = "dark"
	PolarityBright = "bright"
	PolarityAuto   = "auto"
)

// Validate reports the first unusable field.
func (c Config) Validate() error {
	if err := c.Calibration.Validate(); err != nil {
		return fmt.Errorf("rig: %w", err)
	}
	if err := c.Camera.Validate(); err != nil {
		return fmt.Errorf("rig: %w", err)
	}
	if err := c.LED.Validate(); err != nil {
		return fmt.Errorf("rig: %w", err)
	}
	switch c.Polarity {
	case PolarityDark, PolarityBright, PolarityAuto:
	default:
		return fmt.Errorf("rig: polarity %q: want dark, bright or auto", c.Polarity)
	}
	return nil
}

// Validate reports the first unusable field.
func (c CameraConfig) Validate() error {
	switch {
	case strings.TrimSpace(c.Source) == "":
		return errors.New("camera: source is empty")
	case !validAPI(c.API):
		return fmt.Errorf("camera: api %q unknown (want any, v4l2, gstreamer or ffmpeg)", c.API)
	case c.Mode != ModeAuto && c.Mode != ModeStream && c.Mode != ModeLatest:
		return fmt.Errorf("camera: mode %q unknown (want auto, stream or latest)", c.Mode)
	case c.Period < 0:
		return fmt.Errorf("camera: period %v is negative", c.Period)
	case c.FrameTimeout < 0:
		return fmt.Errorf("camera: frame_timeout %v is negative", c.FrameTimeout)
	case !(c.FPS >= 0 && c.FPS < 1e4):
		return fmt.Errorf("camera: fps %v out of range", c.FPS)
	}
	return nil
}

func validAPI(s string) bool {
	switch s {
	case "any", "", "v4l2", "gstreamer", "ffmpeg":
		return true
	}
	return false
}

// Duration is a time.Duration that reads from a config file as a Go duration string ("333ms",
// "5s") or as a number of seconds, and writes as a string.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if v, err := time.ParseDuration(s); err == nil {
		return Duration(v), nil
	}
	sec, err := strconv.ParseFloat(s, 64)
	if err != nil || !(sec >= 0 && sec < 1e9) {
		return 0, fmt.Errorf("duration %q: want e.g. \"333ms\" or a number of seconds", s)
	}
	return Duration(sec * float64(time.Second)), nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// File is the rig config file, in YAML or JSON (chosen by the extension .json; anything else
// is read as YAML). Fields left out keep DefaultConfig's values; unknown fields are errors.
//
//	calibration:
//	  px_per_cm: 540
//	  center_x_px: 1080
//	  center_y_px: 960
//	  plate_radius_px: 970
//	  width_px: 2160
//	  height_px: 1920
//	  frame_period: 333ms        # or a number of seconds
//	camera:
//	  source: "0"                # device index, file, URL or GStreamer pipeline
//	  api: v4l2                  # any | v4l2 | gstreamer | ffmpeg
//	  mode: auto                 # auto | stream | latest
//	  period: 333ms              # default: frame_period; 0: the camera paces
//	  frame_timeout: 5s          # 0: no stall detection
//	  fps: 15                    # requested from the device when above 0
//	light:
//	  driver: serial             # serial | gpio | command
//	  serial:
//	    device: /dev/ttyACM0
//	    baud: 115200
//	    on: "1\n"
//	    off: "0\n"
//	    intensity: "P{level}\n"  # optional; {level} 0..max_level, {fraction} 0..1
//	    max_level: 255
//	    reply: OK                # optional line the controller answers
//	    timeout: 1s
//	  gpio:
//	    path: /sys/class/gpio/gpio17/value
//	    active_low: false
//	    verify: true
//	  command:
//	    on: [gpioset, gpiochip0, "17=1"]
//	    off: [gpioset, gpiochip0, "17=0"]
//	    timeout: 2s
//	polarity: auto               # dark (bright-field) | bright (dark-field) | auto
type File struct {
	Calibration FileCalibration `json:"calibration" yaml:"calibration"`
	Camera      CameraConfig    `json:"camera" yaml:"camera"`
	Light       LEDConfig       `json:"light" yaml:"light"`
	Polarity    string          `json:"polarity" yaml:"polarity"`
}

// FileCalibration is arenas.Calibration as written in a rig config file.
type FileCalibration struct {
	PxPerCM     float64  `json:"px_per_cm" yaml:"px_per_cm"`
	CenterX     float64  `json:"center_x_px" yaml:"center_x_px"`
	CenterY     float64  `json:"center_y_px" yaml:"center_y_px"`
	PlateRadius float64  `json:"plate_radius_px" yaml:"plate_radius_px"`
	Width       int      `json:"width_px" yaml:"width_px"`
	Height      int      `json:"height_px" yaml:"height_px"`
	FramePeriod Duration `json:"frame_period" yaml:"frame_period"`
}

// LoadConfig reads a rig config file over DefaultConfig and validates the result.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("rig config: %w", err)
	}
	cfg, err := ParseConfig(b, strings.EqualFold(filepath.Ext(path), ".json"))
	if err != nil {
		return Config{}, fmt.Errorf("rig config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig reads a rig config file's contents (JSON when isJSON, else YAML) over
// DefaultConfig and validates the result.
func ParseConfig(b []byte, isJSON bool) (Config, error) {
	def := DefaultConfig()
	cal := def.Calibration
	f := File{
		Calibration: FileCalibration{
			PxPerCM: cal.PxPerCM, CenterX: cal.CenterX, CenterY: cal.CenterY,
			PlateRadius: cal.PlateRadius, Width: cal.Width, Height: cal.Height,
			FramePeriod: Duration(cal.FramePeriod),
		},
		Camera:   def.Camera,
		Light:    def.LED,
		Polarity: def.Polarity,
	}
	f.Camera.Period = -1 // unset: follows the calibration's frame period
	if isJSON {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return Config{}, err
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, err
		}
	}
	c := f.Calibration
	def.Calibration = arenas.Calibration{
		PxPerCM: c.PxPerCM, CenterX: c.CenterX, CenterY: c.CenterY, PlateRadius: c.PlateRadius,
		Width: c.Width, Height: c.Height, FramePeriod: time.Duration(c.FramePeriod),
	}
	def.Camera, def.LED, def.Polarity = f.Camera, f.Light, f.Polarity
	if def.Camera.Period == -1 {
		def.Camera.Period = Duration(def.Calibration.FramePeriod)
	}
	if err := def.Validate(); err != nil {
		return Config{}, err
	}
	return def, nil
}

// File returns c as a config file's contents (the inverse of ParseConfig).
func (c Config) File() File {
	cal := c.Calibration
	return File{
		Calibration: FileCalibration{
			PxPerCM: cal.PxPerCM, CenterX: cal.CenterX, CenterY: cal.CenterY,
			PlateRadius: cal.PlateRadius, Width: cal.Width, Height: cal.Height,
			FramePeriod: Duration(cal.FramePeriod),
		},
		Camera:   c.Camera,
		Light:    c.LED,
		Polarity: c.Polarity,
	}
}
