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
	"time"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/charts"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/report"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/station"
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
	parallel  int
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
	LostFraction    float64    `json:"lost_fraction"`
	ReversalsPerMin float64    `json:"reversals_per_min"`
	MeanSpeedMMs    float64    `json:"mean_speed_mm_s"`
	FinalDistanceCM float64    `json:"final_distance_cm"`
	TargetCM        [2]float64 `json:"target_cm"`
	// track is the episode's track as the worker saw it, kept for --plot.
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
			"random:P as the reference's data collection) on simulated stations, the arena + tracker +\n" +
			"worker loop every experiment uses, and prints one result per episode. Each episode is a new\n" +
			"animal placed near the plate centre with a random heading; its seed is --seed plus the\n" +
			"episode's index and also seeds the light schedule. The default target rotates up, down, left,\n" +
			"right, 1.5 cm from the plate centre. Frames are rendered and tracked unless --no-render (the\n" +
			"worker then sees the simulator's true pose); reversals_per_min is the simulator's own count.",
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
	f.IntVar(&o.parallel, "parallel", 1, "episodes run in parallel (one simulated station each)")
	f.IntVar(&o.parallel, "workers", 1, "episodes run in parallel")
	if err := f.MarkDeprecated("workers", "use --parallel"); err != nil {
		panic(err) // the flag is defined just above
	}
	f.StringVar(&o.frames, "frames", "", "write each episode's rendered frames (PNG) and true and tracked track (CSV) under this directory")
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
	cat    *sim.Catalogue
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
	case o.parallel < 1 || o.parallel > 1024:
		return p, fmt.Errorf("--parallel %d must be within 1-1024", o.parallel)
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
	p.cat = cat
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
	// One simulated station per parallel episode; each runs its share of the episodes.
	stations := make([]*station.Station, min(o.parallel, o.episodes))
	for w := range stations {
		cfg := station.DefaultConfig()
		cfg.ArenaID = fmt.Sprintf("sim-%s-%d", p.line.Code, w)
		cfg.Catalogue, cfg.Line = p.cat, p.line.Code
		cfg.NoRender, cfg.Realtime = o.noRender, o.realtime
		if stations[w], err = station.New(cfg); err != nil {
			return err
		}
		defer stations[w].Close()
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
	for _, st := range stations {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r, err := p.runEpisode(ctx, st, i)
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
		fmt.Fprintln(tw, "line\tseed\tpolicy\tseconds\tclosest_cm\ttime_to_05cm_s\tlight_fraction\tlost_fraction\treversals_per_min\tmean_speed_mm_s\tfinal_distance_cm\t")
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
	_, err := fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.3f\t%s\t%.3f\t%.3f\t%.2f\t%.3f\t%.3f\t\n", r.Line, r.Seed, r.Policy, r.Seconds,
		r.ClosestCM, t05, r.LightFraction, r.LostFraction, r.ReversalsPerMin, r.MeanSpeedMMs, r.FinalDistanceCM)
	return err
}

// runEpisode runs episode i (seed --seed + i: a new animal and its light schedule) on st.
func (p simPlan) runEpisode(ctx context.Context, st *station.Station, i int) (simEpisodeOut, error) {
	seed := p.o.seed + uint64(i)
	tx, ty := p.target.ForEpisode(i)
	kind, lightP := station.FixedLight(p.policy)
	e := station.Episode{
		ID: fmt.Sprintf("sim-%s-%d", p.line.Code, seed),
		Spec: episode.Spec{
			Kind: kind, Line: p.line.Code, Seed: seed, Seconds: p.o.seconds, LightProbability: lightP,
			Target: &episode.Place{XCM: tx, YCM: ty},
		},
		KeepFrames: p.o.plot != "",
	}
	var fw *frameWriter
	if p.o.frames != "" {
		var err error
		if fw, err = newFrameWriter(filepath.Join(p.o.frames, fmt.Sprintf("episode-%04d", i)), p.o.every, st.Calibration().FramePeriod); err != nil {
			return simEpisodeOut{}, err
		}
		e.OnStep = fw.write
	}
	r, err := st.Run(ctx, e)
	if fw != nil {
		if cerr := fw.close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return simEpisodeOut{}, err
	}
	var track *charts.Track
	if p.o.plot != "" {
		t := report.Track(&r.Track)
		t.Label = fmt.Sprintf("seed %d", seed)
		track = &t
	}
	out := r.Outcome
	var t05 *float64
	if out.TimeTo05cmS != nil {
		v := round(*out.TimeTo05cmS, 3)
		t05 = &v
	}
	return simEpisodeOut{
		Line:            p.line.Code,
		Seed:            seed,
		Policy:          p.policy.String(),
		Seconds:         round(p.o.seconds, 3),
		ClosestCM:       round(out.ClosestCM, 4),
		TimeTo05CMS:     t05,
		LightFraction:   round(out.LightFraction, 4),
		LostFraction:    round(out.LostFraction, 4),
		ReversalsPerMin: round(r.Sim.PerMinute(r.Sim.Reversals), 3),
		MeanSpeedMMs:    round(out.MeanSpeedMMs, 4),
		FinalDistanceCM: round(out.FinalDistanceCM, 4),
		TargetCM:        [2]float64{tx, ty},
		track:           track,
	}, nil
}

// round rounds v to d decimals (output only; the metrics are computed at full precision).
func round(v float64, d int) float64 {
	p := math.Pow(10, float64(d))
	return math.Round(v*p) / p
}

// frameWriter writes an episode's rendered frames as PNG files and, for every step, its true
// and tracked pose as CSV.
type frameWriter struct {
	dir    string
	every  int
	period time.Duration
	track  *os.File
	img    *image.Gray
	enc    png.Encoder
}

func newFrameWriter(dir string, every int, period time.Duration) (*frameWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--frames: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "track.csv"))
	if err != nil {
		return nil, fmt.Errorf("--frames: %w", err)
	}
	if _, err := fmt.Fprintln(f, "seq,time_s,light,x_px,y_px,body_angle,head_angle,coiled,tracked_ok,tracked_x_px,tracked_y_px"); err != nil {
		f.Close()
		return nil, err
	}
	return &frameWriter{dir: dir, every: every, period: period, track: f, enc: png.Encoder{CompressionLevel: png.BestSpeed}}, nil
}

// write records one control step: the camera frame's number and time on the arena's clock,
// the light it was exposed under, the simulator's true pose and the pose the worker acted on;
// and every Nth step's frame as PNG.
func (w *frameWriter) write(st station.Step) error {
	f, p, tr := st.Frame, *st.True, st.Pose
	t := float64(f.Seq) * w.period.Seconds()
	if _, err := fmt.Fprintf(w.track, "%d,%.3f,%t,%.2f,%.2f,%.4f,%.4f,%t,%t,%.2f,%.2f\n", f.Seq, t, f.Light.On, p.X, p.Y, p.BodyAngle, p.HeadAngle, p.Coiled, tr.OK, tr.X, tr.Y); err != nil {
		return err
	}
	if st.Index%w.every != 0 || f.Pix == nil {
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
