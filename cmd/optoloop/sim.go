package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/charts"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
	"github.com/spf13/cobra"
)

// simOptions are the flags of `optoloop sim`.
type simOptions struct {
	line      string
	episodes  int
	seconds   float64
	target    string
	policy    string
	seed      uint64
	workers   int
	frames    string
	every     int
	noRender  bool
	realtime  bool
	linesFile string
	asJSON    bool
	plot      string
}

// simEpisodeOut is one line of `optoloop sim` output.
type simEpisodeOut struct {
	Line            string     `json:"line"`
	Seed            uint64     `json:"seed"`
	Policy          string     `json:"policy"`
	Seconds         float64    `json:"seconds"`
	ClosestCM       float64    `json:"closest_cm"`
	TimeTo05CMS     *float64   `json:"time_to_05cm_s"`
	LightFraction   float64    `json:"light_fraction"`
	ReversalsPerMin float64    `json:"reversals_per_min"`
	MeanSpeedMMs    float64    `json:"mean_speed_mm_s"`
	FinalDistanceCM float64    `json:"final_distance_cm"`
	TargetCM        [2]float64 `json:"target_cm"`
	// track is the episode's true track, kept for --plot.
	track *charts.Track
}

// maxSimSeconds bounds an episode's length (a day).
const maxSimSeconds = 86400

func newSimCmd() *cobra.Command {
	o := simOptions{}
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run simulated episodes of one line under a fixed light policy",
		Long: "sim runs episodes of a simulated worm of one line under a fixed light policy (none, always,\n" +
			"random:P as the reference's data collection) and prints one result per episode. Each episode is\n" +
			"a new animal placed near the plate centre with a random heading; its seed is --seed plus the\n" +
			"episode's index. The default target rotates up, down, left, right, 1.5 cm from the plate centre.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSim(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.line, "line", "446", "line code (see `optoloop lines`)")
	f.IntVar(&o.episodes, "episodes", 1, "number of episodes")
	f.Float64Var(&o.seconds, "seconds", 600, "episode length in seconds (simulated time)")
	f.StringVar(&o.target, "target", "", "target: up|down|left|right (1.5 cm from the plate centre) or x,y in cm from the plate centre (image axes); default rotates up/down/left/right")
	f.StringVar(&o.policy, "policy", "none", "light policy: none|always|random:P")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the first episode")
	f.IntVar(&o.workers, "workers", 1, "episodes run in parallel")
	f.StringVar(&o.frames, "frames", "", "write each episode's rendered frames (PNG) and track (CSV) under this directory")
	f.IntVar(&o.every, "frame-every", 1, "with --frames, write every Nth frame's PNG (the track has every frame)")
	f.BoolVar(&o.noRender, "no-render", false, "do not render frames (true pose only; much faster)")
	f.BoolVar(&o.realtime, "realtime", false, "pace frames at the frame period on the wall clock")
	f.StringVar(&o.linesFile, "lines-file", "", "YAML or JSON catalogue merged over the embedded one")
	f.BoolVar(&o.asJSON, "json", false, "print one JSON object per episode (default: a table)")
	f.StringVar(&o.plot, "plot", "", "draw the episodes' trajectories (light marked) to this PNG or SVG file")
	return cmd
}

// simPlan is a validated sim run.
type simPlan struct {
	o      simOptions
	line   sim.Line
	policy episode.Policy
	target episode.Target
}

func planSim(o simOptions) (simPlan, error) {
	p := simPlan{o: o}
	switch {
	case math.IsNaN(o.seconds) || o.seconds <= 0:
		return p, fmt.Errorf("--seconds %v must be positive", o.seconds)
	case o.seconds > maxSimSeconds:
		return p, fmt.Errorf("--seconds %v is absurd (at most %d)", o.seconds, maxSimSeconds)
	case o.episodes < 1 || o.episodes > 1000000:
		return p, fmt.Errorf("--episodes %d must be within 1-1000000", o.episodes)
	case o.workers < 1 || o.workers > 1024:
		return p, fmt.Errorf("--workers %d must be within 1-1024", o.workers)
	case o.every < 1:
		return p, fmt.Errorf("--frame-every %d must be at least 1", o.every)
	case o.frames != "" && o.noRender:
		return p, errors.New("--frames needs rendering: drop --no-render")
	}
	if o.plot != "" {
		if _, err := charts.FormatOf(o.plot); err != nil {
			return p, fmt.Errorf("--plot: %w", err)
		}
	}
	cal := arenas.DefaultCalibration()
	if o.seconds < cal.FramePeriod.Seconds() {
		return p, fmt.Errorf("--seconds %v is shorter than one frame (%v)", o.seconds, cal.FramePeriod)
	}
	cat, err := sim.LoadCatalogue(o.linesFile)
	if err != nil {
		return p, err
	}
	if p.line, err = cat.Line(o.line); err != nil {
		return p, err
	}
	if p.policy, err = episode.ParsePolicy(o.policy); err != nil {
		return p, err
	}
	if p.target, err = episode.ParseTarget(o.target); err != nil {
		return p, err
	}
	if err := p.target.Check(cal.PlateRadius / cal.PxPerCM); err != nil {
		return p, err
	}
	return p, nil
}

func runSim(ctx context.Context, o simOptions, out io.Writer) error {
	p, err := planSim(o)
	if err != nil {
		return err
	}
	if o.frames != "" {
		if err := os.MkdirAll(o.frames, 0o755); err != nil {
			return fmt.Errorf("--frames: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type done struct {
		i   int
		out simEpisodeOut
		err error
	}
	jobs := make(chan int)
	results := make(chan done)
	var wg sync.WaitGroup
	for w := 0; w < min(o.workers, o.episodes); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r, err := p.runEpisode(ctx, i)
				results <- done{i, r, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := 0; i < o.episodes; i++ {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()

	var tw *tabwriter.Writer
	if !o.asJSON {
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "line\tseed\tpolicy\tseconds\tclosest_cm\ttime_to_05cm_s\tlight_fraction\treversals_per_min\tmean_speed_mm_s\tfinal_distance_cm\t")
	}
	pending := map[int]simEpisodeOut{}
	next := 0
	var firstErr error
	var tracks []charts.Track
	for d := range results {
		if d.err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("episode %d (seed %d): %w", d.i, o.seed+uint64(d.i), d.err)
				cancel()
			}
			continue
		}
		pending[d.i] = d.out
		for {
			r, ok := pending[next]
			if !ok || firstErr != nil {
				break
			}
			delete(pending, next)
			next++
			if r.track != nil {
				tracks = append(tracks, *r.track)
			}
			if err := printSimResult(out, tw, o.asJSON, r); err != nil && firstErr == nil {
				firstErr = err
				cancel()
			}
		}
	}
	if tw != nil {
		if err := tw.Flush(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil && o.plot != "" {
		firstErr = writeSimPlot(o.plot, fmt.Sprintf("line %s, %s", p.line.Code, p.policy), tracks)
	}
	return firstErr
}

// writeSimPlot draws the episodes' trajectories as small multiples to path (PNG or SVG).
func writeSimPlot(path, title string, tracks []charts.Track) error {
	format, err := charts.FormatOf(path)
	if err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	var buf bytes.Buffer
	if err := charts.WriteTrajectories(&buf, format, title, tracks); err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	if err := results.WriteFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	return nil
}

func printSimResult(out io.Writer, tw *tabwriter.Writer, asJSON bool, r simEpisodeOut) error {
	if asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	t05 := "-"
	if r.TimeTo05CMS != nil {
		t05 = fmt.Sprintf("%.1f", *r.TimeTo05CMS)
	}
	_, err := fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.3f\t%s\t%.3f\t%.2f\t%.3f\t%.3f\t\n", r.Line, r.Seed, r.Policy, r.Seconds,
		r.ClosestCM, t05, r.LightFraction, r.ReversalsPerMin, r.MeanSpeedMMs, r.FinalDistanceCM)
	return err
}

func (p simPlan) runEpisode(ctx context.Context, i int) (simEpisodeOut, error) {
	seed := p.o.seed + uint64(i)
	cfg := sim.DefaultConfig(p.line)
	cfg.Seed = seed
	cfg.NoRender = p.o.noRender
	cfg.Realtime = p.o.realtime
	tx, ty := p.target.ForEpisode(i)
	e := sim.Episode{
		Arena:      cfg,
		Policy:     p.policy,
		PolicySeed: seed ^ 0x9e3779b97f4a7c15,
		TargetCM:   [2]float64{tx, ty},
		Seconds:    p.o.seconds,
	}
	var closeTrack func() error
	if p.o.frames != "" {
		w, err := newFrameWriter(filepath.Join(p.o.frames, fmt.Sprintf("episode-%04d", i)), p.o.every)
		if err != nil {
			return simEpisodeOut{}, err
		}
		e.Frame = w.write
		closeTrack = w.close
	}
	var track *charts.Track
	if p.o.plot != "" {
		cal := cfg.Calibration
		track = &charts.Track{
			Label:  fmt.Sprintf("seed %d", seed),
			Plate:  charts.Plate{CenterX: cal.CenterX, CenterY: cal.CenterY, Radius: cal.PlateRadius, PxPerCM: cal.PxPerCM},
			Target: [2]float64{cal.CenterX + tx*cal.PxPerCM, cal.CenterY + ty*cal.PxPerCM},
		}
		period := cal.FramePeriod.Seconds()
		next := e.Frame
		e.Frame = func(f arenas.Frame, pose arenas.Pose) error {
			// A frame records the light it was exposed under: the command chosen after the
			// previous frame.
			if n := len(track.Frames); n > 0 {
				track.Frames[n-1].Light = f.Light.On
			}
			track.Frames = append(track.Frames, charts.TrackFrame{T: float64(f.Seq) * period, X: pose.X, Y: pose.Y, OK: true})
			if next != nil {
				return next(f, pose)
			}
			return nil
		}
	}
	r, err := sim.RunEpisode(ctx, e)
	if closeTrack != nil {
		if cerr := closeTrack(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return simEpisodeOut{}, err
	}
	var t05 *float64
	if r.TimeToWithinS != nil {
		v := round(*r.TimeToWithinS, 3)
		t05 = &v
	}
	return simEpisodeOut{
		Line:            p.line.Code,
		Seed:            seed,
		Policy:          p.policy.String(),
		Seconds:         round(r.Seconds, 3),
		ClosestCM:       round(r.ClosestCM, 4),
		TimeTo05CMS:     t05,
		LightFraction:   round(r.LightFraction, 4),
		ReversalsPerMin: round(r.ReversalsPerMin, 3),
		MeanSpeedMMs:    round(r.MeanSpeedMMs, 4),
		FinalDistanceCM: round(r.FinalDistanceCM, 4),
		TargetCM:        [2]float64{tx, ty},
		track:           track,
	}, nil
}

// round rounds v to d decimals (output only; the metrics are computed at full precision).
func round(v float64, d int) float64 {
	p := math.Pow(10, float64(d))
	return math.Round(v*p) / p
}

// frameWriter writes an episode's frames as PNG files and its true track as CSV.
type frameWriter struct {
	dir   string
	every int
	track *os.File
	img   *image.Gray
	enc   png.Encoder
}

func newFrameWriter(dir string, every int) (*frameWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--frames: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "track.csv"))
	if err != nil {
		return nil, fmt.Errorf("--frames: %w", err)
	}
	if _, err := fmt.Fprintln(f, "seq,time_s,light,x_px,y_px,body_angle,head_angle,coiled"); err != nil {
		f.Close()
		return nil, err
	}
	return &frameWriter{dir: dir, every: every, track: f, enc: png.Encoder{CompressionLevel: png.BestSpeed}}, nil
}

func (w *frameWriter) write(f arenas.Frame, p arenas.Pose) error {
	t := float64(f.Seq) * arenas.DefaultCalibration().FramePeriod.Seconds()
	if _, err := fmt.Fprintf(w.track, "%d,%.3f,%t,%.2f,%.2f,%.4f,%.4f,%t\n", f.Seq, t, f.Light.On, p.X, p.Y, p.BodyAngle, p.HeadAngle, p.Coiled); err != nil {
		return err
	}
	if f.Seq%uint64(w.every) != 0 {
		return nil
	}
	if w.img == nil || w.img.Rect.Dx() != f.Width || w.img.Rect.Dy() != f.Height {
		w.img = image.NewGray(image.Rect(0, 0, f.Width, f.Height))
	}
	copy(w.img.Pix, f.Pix)
	out, err := os.Create(filepath.Join(w.dir, fmt.Sprintf("frame-%05d.png", f.Seq)))
	if err != nil {
		return err
	}
	if err := w.enc.Encode(out, w.img); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (w *frameWriter) close() error { return w.track.Close() }
