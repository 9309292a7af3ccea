package sim

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim/render"
)

// Config configures a simulated arena.
type Config struct {
	// Calibration is the simulated camera and plate (default arenas.DefaultCalibration()).
	Calibration arenas.Calibration
	// Line is the transgenic line on the plate (from a Catalogue).
	Line Line
	// Behaviour is the strain's baseline locomotion (default DefaultBehaviour()).
	Behaviour Behaviour
	// Seed fixes the animal, its behaviour and the camera's look and noise.
	Seed uint64
	// NoRender skips the camera: frames then carry a nil Pix (Width and Height still set) and
	// only the true pose (Pose) tells where the worm is. For large runs and statistics.
	NoRender bool
	// Camera is the camera's look; nil means render.DefaultConfig(Calibration) with Seed, or
	// render.DarkFieldConfig with DarkField.
	Camera *render.Config
	// DarkField images the plate in dark-field (a bright worm on dark agar, as on the reference
	// study's rig) instead of bright-field. With Camera set, Camera.DarkField must agree.
	DarkField bool
	// Realtime paces frames at the calibration's frame period on the wall clock (Now, After);
	// otherwise the virtual clock runs as fast as the CPU allows.
	Realtime bool
	// Speed, with Realtime, runs the wall clock's pacing Speed times faster than real time
	// (frames every FramePeriod/Speed); 0 means 1. The simulated time is unchanged.
	Speed float64
	// Start is the virtual clock's time at the first frame (default 2024-01-01 UTC).
	Start time.Time
	// Now and After are the wall clock used by Realtime (default time.Now and time.After).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// StartPX is where the worm's centre starts, in pixels; nil means the plate centre plus up
	// to 0.3 mm of random offset. StartHeading is the initial heading; nil means random.
	StartPX      *[2]float64
	StartHeading *float64
	// Environment is the episode's food lawn and debris (nil: a bare plate, exactly as
	// before); the camera draws it (render.Scene). See Environment.
	Environment *Environment
	// Logger receives debug messages (default: discard).
	Logger *slog.Logger
}

// DefaultConfig returns a rendered reference-rig arena for line.
func DefaultConfig(line Line) Config {
	return Config{
		Calibration: arenas.DefaultCalibration(),
		Line:        line,
		Behaviour:   DefaultBehaviour(),
		Start:       time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	if !(c.Speed >= 0) || c.Speed > 1e6 {
		return fmt.Errorf("sim: speed %v must be within 0-1e6", c.Speed)
	}
	if err := c.Calibration.Validate(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := c.Line.Validate(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := c.Behaviour.Validate(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if c.Camera != nil {
		if err := c.Camera.Validate(); err != nil {
			return fmt.Errorf("sim: camera: %w", err)
		}
		if c.Camera.DarkField != c.DarkField {
			return fmt.Errorf("sim: DarkField %v but the camera's DarkField %v", c.DarkField, c.Camera.DarkField)
		}
	}
	if err := c.Environment.Validate(c.Calibration.PlateRadius / (c.Calibration.PxPerCM / 10)); err != nil {
		return err
	}
	if p := c.StartPX; p != nil {
		d := math.Hypot(p[0]-c.Calibration.CenterX, p[1]-c.Calibration.CenterY)
		if d > c.Calibration.PlateRadius-c.Behaviour.BodyLengthMM*c.Calibration.PxPerCM/10 {
			return fmt.Errorf("sim: start (%.0f, %.0f) px is not inside the plate", p[0], p[1])
		}
	}
	return nil
}

// Arena is a simulated plate with one worm, a camera and a light. It implements arenas.Arena
// and arenas.Poser (the true pose at the last delivered frame).
type Arena struct {
	cfg    Config
	cal    arenas.Calibration
	model  *Model
	cam    *render.Camera
	log    *slog.Logger
	pxmm   float64
	period float64 // seconds

	mu     sync.Mutex
	light  arenas.Light // command in force (the LED)
	closed bool
	done   chan struct{}
	once   sync.Once

	// Owned by the NextFrame goroutine.
	seq     uint64
	started bool
	wall0   time.Time
	pix     []byte
	mm      [][2]float64
	mid     [][2]float64
	wmm     []float64
	wid     []float64
	pose    arenas.Pose
	poseOK  bool
	midOK   bool
	curX    float64
	curY    float64
	prevX   float64
	prevY   float64
}

// New opens a simulated arena.
func New(cfg Config) (*Arena, error) {
	if cfg.Behaviour == (Behaviour{}) {
		cfg.Behaviour = DefaultBehaviour()
	}
	if cfg.Calibration == (arenas.Calibration{}) {
		cfg.Calibration = arenas.DefaultCalibration()
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cal := cfg.Calibration
	a := &Arena{
		cfg:    cfg,
		cal:    cal,
		log:    cfg.Logger,
		pxmm:   cal.PxPerCM / 10,
		period: cal.FramePeriod.Seconds(),
		done:   make(chan struct{}),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x57a47))
	sx, sy := 0.0, 0.0
	if p := cfg.StartPX; p != nil {
		sx, sy = (p[0]-cal.CenterX)/a.pxmm, (p[1]-cal.CenterY)/a.pxmm
	} else {
		r, th := 0.3*math.Sqrt(rng.Float64()), 2*math.Pi*rng.Float64()
		sx, sy = r*math.Cos(th), r*math.Sin(th)
	}
	heading := 2 * math.Pi * rng.Float64()
	if cfg.StartHeading != nil {
		heading = *cfg.StartHeading
	}
	m, err := NewModel(cfg.Behaviour, cfg.Line, cal.PlateRadius/a.pxmm, cfg.Seed, sx, sy, heading)
	if err != nil {
		return nil, err
	}
	a.model = m
	m.SetEnvironment(cfg.Environment)
	if !cfg.NoRender {
		cc := render.DefaultConfig(cal)
		if cfg.DarkField {
			cc = render.DarkFieldConfig(cal)
		}
		cc.Seed = cfg.Seed
		if cfg.Camera != nil {
			cc = *cfg.Camera
		}
		if env := cfg.Environment; env != nil {
			px := func(x, y, r float64) render.Disc {
				return render.Disc{X: cal.CenterX + x*a.pxmm, Y: cal.CenterY + y*a.pxmm, R: r * a.pxmm}
			}
			sc := render.Scene{Lawns: slices.Clone(cc.Scene.Lawns), Obstacles: slices.Clone(cc.Scene.Obstacles)}
			if f := env.Food; f != nil {
				sc.Lawns = append(sc.Lawns, px(f.XMM, f.YMM, f.RadiusMM))
			}
			for _, o := range env.Obstacles {
				sc.Obstacles = append(sc.Obstacles, px(o.XMM, o.YMM, o.RadiusMM))
			}
			cc.Scene = sc
		}
		cam, err := render.New(cc)
		if err != nil {
			return nil, fmt.Errorf("sim: camera: %w", err)
		}
		a.cam = cam
		a.pix = make([]byte, cal.Width*cal.Height)
	}
	n := cfg.Behaviour.Points
	a.mm = make([][2]float64, n)
	a.wmm = make([]float64, n)
	a.wid = make([]float64, n)
	return a, nil
}

// Calibration implements arenas.Arena.
func (a *Arena) Calibration() arenas.Calibration { return a.cal }

// Model returns the worm model (for statistics; do not advance it directly).
func (a *Arena) Model() *Model { return a.model }

// LightState returns the physical state of the simulated LED.
func (a *Arena) LightState() arenas.Light {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.light
}

// SetLight implements arenas.Arena: the command takes effect for the interval before the next
// frame. An Intensity in (0, 1] scales the light's effect (0 means full intensity).
func (a *Arena) SetLight(ctx context.Context, l arenas.Light) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.Intensity < 0 || l.Intensity > 1 || math.IsNaN(l.Intensity) {
		return fmt.Errorf("sim: light intensity %v outside [0, 1]", l.Intensity)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return arenas.ErrClosed
	}
	a.light = l
	return nil
}

// NextFrame implements arenas.Arena. The first frame shows the worm as placed; each later frame
// comes one frame period later on the virtual clock, the worm having moved under the light
// command in force. Without rendering (Config.NoRender) Pix is nil.
func (a *Arena) NextFrame(ctx context.Context) (arenas.Frame, error) {
	if err := ctx.Err(); err != nil {
		return arenas.Frame{}, err
	}
	a.mu.Lock()
	closed, light := a.closed, a.light
	a.mu.Unlock()
	if closed {
		return arenas.Frame{}, arenas.ErrClosed
	}
	if a.started {
		a.seq++
		level := 0.0
		if light.On {
			level = 1
			if light.Intensity > 0 {
				level = light.Intensity
			}
		}
		a.model.AdvanceLevel(a.period, level)
	} else {
		a.started = true
		a.wall0 = a.cfg.Now()
	}
	if a.cfg.Realtime {
		period := a.cal.FramePeriod
		if a.cfg.Speed > 0 {
			period = time.Duration(float64(period) / a.cfg.Speed)
		}
		due := a.wall0.Add(time.Duration(a.seq) * period)
		if wait := due.Sub(a.cfg.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				// The frame is dropped: the worm has moved on, as on a real rig.
				return arenas.Frame{}, ctx.Err()
			case <-a.done:
				return arenas.Frame{}, arenas.ErrClosed
			case <-a.cfg.After(wait):
			}
		}
	}
	a.snapshot()
	f := arenas.Frame{
		Seq:    a.seq,
		Time:   a.cfg.Start.Add(time.Duration(a.seq) * a.cal.FramePeriod),
		Width:  a.cal.Width,
		Height: a.cal.Height,
		Light:  light,
	}
	if a.cam != nil {
		a.ensureMidline()
		a.cam.Render(a.pix, render.Worm{Midline: a.mid, Width: a.wid}, light.On)
		f.Pix = a.pix
	}
	return f, nil
}

// snapshot records the worm's centre for this frame; the midline in pixels is made on demand
// (ensureMidline) so that the no-render mode pays for it only when a pose is asked for.
func (a *Arena) snapshot() {
	a.prevX, a.prevY = a.curX, a.curY
	mx, my := a.model.Centre()
	a.curX, a.curY = a.cal.CenterX+mx*a.pxmm, a.cal.CenterY+my*a.pxmm
	a.poseOK = false
	a.midOK = false
}

// ensureMidline converts the model's midline and widths to pixels for the current frame.
func (a *Arena) ensureMidline() {
	if a.midOK {
		return
	}
	a.model.Midline(a.mm)
	if a.mid == nil {
		a.mid = make([][2]float64, len(a.mm))
		a.model.Widths(a.wmm) // widths are the animal's, fixed for the arena's life
		for i := range a.wmm {
			a.wid[i] = a.wmm[i] * a.pxmm
		}
	}
	cx, cy := a.cal.CenterX, a.cal.CenterY
	for i, p := range a.mm {
		a.mid[i] = [2]float64{cx + p[0]*a.pxmm, cy + p[1]*a.pxmm}
	}
	a.midOK = true
}

// Pose implements arenas.Poser: the true pose at the last delivered frame (the zero Pose
// before the first frame). Its Midline is a copy.
func (a *Arena) Pose() arenas.Pose {
	if !a.started {
		return arenas.Pose{}
	}
	if !a.poseOK {
		a.ensureMidline()
		mid := make([][2]float64, len(a.mid))
		copy(mid, a.mid)
		p := PoseOf(mid, a.wid)
		if a.seq > 0 {
			p.Speed = math.Hypot(p.X-a.prevX, p.Y-a.prevY) / a.period
		}
		a.pose, a.poseOK = p, true
	}
	return a.pose
}

// Centre returns the worm's true centre in pixels at the last delivered frame, without the cost
// of a full pose.
func (a *Arena) Centre() (x, y float64) { return a.curX, a.curY }

// Close implements arenas.Arena: the light goes off, a pending NextFrame returns ErrClosed.
func (a *Arena) Close() error {
	a.mu.Lock()
	a.light = arenas.Light{}
	a.closed = true
	a.mu.Unlock()
	a.once.Do(func() { close(a.done) })
	return nil
}
