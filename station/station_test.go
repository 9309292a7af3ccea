package station_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/agentlib/obs"
	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/station"
	"github.com/optoloop/optoloop/worker"
)

func catalogue(t *testing.T) *sim.Catalogue {
	t.Helper()
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// smallCal is a cropped reference camera: 540 px/cm, a 640x640 frame, a plate of 0.56 cm
// radius. Rendered episodes on it cost a tenth of the reference frame's.
func smallCal() arenas.Calibration {
	return arenas.Calibration{PxPerCM: 540, CenterX: 320, CenterY: 320, PlateRadius: 300, Width: 640, Height: 640, FramePeriod: time.Second / 3}
}

// simStation opens a simulated station of line (rendered frames on smallCal).
func simStation(t *testing.T, line string, noRender bool) *station.Station {
	t.Helper()
	cfg := station.DefaultConfig()
	if !noRender {
		cfg.Calibration = smallCal()
	}
	cfg.ArenaID = "sim-" + line
	cfg.Catalogue = catalogue(t)
	cfg.Line = line
	cfg.NoRender = noRender
	cfg.Worker.ChunkFrames = 16
	s, err := station.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// spec is an episode of kind on animals of line.
func spec(kind episode.Kind, line string, seed uint64, seconds float64) episode.Spec {
	sp := episode.Spec{Kind: kind, Line: line, Seed: seed, Seconds: seconds, Target: &episode.Place{Name: "up", YCM: -1.5}}
	switch kind {
	case episode.KindCollect:
		sp.LightProbability, sp.Target = 0.3, nil
	case episode.KindRandom:
		sp.LightProbability = 0.5
	case episode.KindAgent:
		sp.AgentLine = line
	case episode.KindCross:
		sp.AgentLine = "281"
	}
	return sp
}

// sink records what it receives, in chunks; it fails when fail says so.
type sink struct {
	chunks [][]replay.Record
	fail   func() error
}

func (s *sink) Append(recs ...replay.Record) error {
	if s.fail != nil {
		if err := s.fail(); err != nil {
			return err
		}
	}
	s.chunks = append(s.chunks, append([]replay.Record(nil), recs...))
	return nil
}

func (s *sink) all() []replay.Record {
	var out []replay.Record
	for _, c := range s.chunks {
		out = append(out, c...)
	}
	return out
}

// policyFunc adapts a function to worker.Policy.
type policyFunc func(o []float32) int

func (f policyFunc) Act(o []float32) int { return f(o) }

// headLeft switches the light on while the head is swung to the left of the body axis (a
// tiny deterministic, state-dependent policy that toggles with every head swing).
var headLeft = policyFunc(func(o []float32) int {
	at := func(feature int) float32 { return o[feature*obs.Frames+obs.Frames-1] }
	if at(2)*at(1)-at(3)*at(0) > 0 { // sin(head - body) of the newest frame
		return 1
	}
	return 0
})

// checkResult checks what every successful episode must satisfy: the outcome agrees with the
// records, every record carries the episode's id and version, the track names the episode.
func checkResult(t *testing.T, e station.Episode, res station.Result, steps int) {
	t.Helper()
	out := res.Outcome
	if err := out.Validate(); err != nil {
		t.Fatal(err)
	}
	if out.Frames != steps || len(res.Records) != steps {
		t.Fatalf("%d frames and %d records, want %d", out.Frames, len(res.Records), steps)
	}
	lit, lost := 0, 0
	for i, r := range res.Records {
		if r.Episode != e.ID || r.PolicyVersion != e.PolicyVersion {
			t.Fatalf("record %d carries episode %q version %d, want %q version %d", i, r.Episode, r.PolicyVersion, e.ID, e.PolicyVersion)
		}
		if r.Light {
			lit++
		}
		if !r.OK {
			lost++
		}
	}
	if want := float64(lit) / float64(steps); out.LightFraction != want {
		t.Fatalf("outcome light fraction %v, records say %v", out.LightFraction, want)
	}
	if want := float64(lost) / float64(steps); out.LostFraction != want {
		t.Fatalf("outcome lost fraction %v, records say %v", out.LostFraction, want)
	}
	if out.PolicyVersion != e.PolicyVersion {
		t.Fatalf("outcome policy version %d, want %d", out.PolicyVersion, e.PolicyVersion)
	}
	tr := res.Track
	sp := e.Spec
	if tr.ID != e.ID || tr.Condition != sp.Kind || tr.Line != sp.Line || tr.AgentLine != sp.AgentLine || tr.Seed != sp.Seed {
		t.Fatalf("track names %q %s %s/%s seed %d", tr.ID, tr.Condition, tr.Line, tr.AgentLine, tr.Seed)
	}
	if tr.ClosestCM != out.ClosestCM || tr.LightFraction != out.LightFraction || tr.Seconds != out.Seconds {
		t.Fatalf("track metrics %v/%v/%v, outcome %v/%v/%v", tr.ClosestCM, tr.LightFraction, tr.Seconds, out.ClosestCM, out.LightFraction, out.Seconds)
	}
	tc := sp.TargetCM()
	if want := [2]float64{tr.PlateCenter[0] + tc[0]*tr.PxPerCM, tr.PlateCenter[1] + tc[1]*tr.PxPerCM}; tr.Target != want {
		t.Fatalf("track target %v px, want %v", tr.Target, want)
	}
	if e.KeepFrames != (len(tr.Frames) == steps) {
		t.Fatalf("keep frames %v, track has %d frames", e.KeepFrames, len(tr.Frames))
	}
}

func TestFixedKinds(t *testing.T) {
	s := simStation(t, "446", true)
	const seconds = 30
	tests := []struct {
		kind      episode.Kind
		keep      bool
		wantLight func(float64) bool
	}{
		{episode.KindCollect, false, func(f float64) bool { return f > 0.1 && f < 0.5 }},
		{episode.KindNone, true, func(f float64) bool { return f == 0 }},
		{episode.KindRandom, true, func(f float64) bool { return f > 0.3 && f < 0.7 }},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			var got sink
			e := station.Episode{ID: "item-" + string(tt.kind), Spec: spec(tt.kind, "446", 11, seconds), Sink: &got, KeepFrames: tt.keep}
			res, err := s.Run(context.Background(), e)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, e, res, seconds*3)
			if !tt.wantLight(res.Outcome.LightFraction) {
				t.Fatalf("light fraction %v under %s", res.Outcome.LightFraction, tt.kind)
			}
			if want := e.Spec.LightPolicy().P; res.Track.LightProbability != want {
				t.Fatalf("track light probability %v, want %v", res.Track.LightProbability, want)
			}
			if !reflect.DeepEqual(got.all(), res.Records) || len(got.chunks) != (seconds*3+15)/16 {
				t.Fatalf("the sink got %d records in %d chunks, want the %d records in chunks of 16", len(got.all()), len(got.chunks), len(res.Records))
			}
			if res.Sim == nil || math.Abs(res.Sim.Seconds-seconds) > 1e-6 || res.Sim.Reversals < res.Sim.EdgeReversals {
				t.Fatalf("simulator statistics %+v", res.Sim)
			}
		})
	}
}

func TestActingKinds(t *testing.T) {
	for _, kind := range []episode.Kind{episode.KindAgent, episode.KindCross} {
		t.Run(string(kind), func(t *testing.T) {
			s := simStation(t, "301", true)
			e := station.Episode{ID: "item-42", Spec: spec(kind, "301", 3, 40), Policy: headLeft, PolicyVersion: 7, KeepFrames: true}
			res, err := s.Run(context.Background(), e)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, e, res, 120)
			if res.Outcome.LightFraction == 0 || res.Track.LightProbability != 0 {
				t.Fatalf("light fraction %v, light probability %v", res.Outcome.LightFraction, res.Track.LightProbability)
			}
			// The policy decided: light exactly when the head was swung left, once the
			// observation was full.
			tracked := 0
			for i, r := range res.Records {
				if !r.OK {
					continue
				}
				side := math.Sin(r.Head - r.Body)
				if tracked++; tracked >= obs.Frames && math.Abs(side) > 1e-4 && r.Light != (side > 0) {
					t.Fatalf("record %d: light %v with the head at %.3f rad from the body", i, r.Light, r.Head-r.Body)
				}
			}
			for i, f := range res.Track.Frames {
				if f.Ver != 7 {
					t.Fatalf("track frame %d has version %d", i, f.Ver)
				}
			}
		})
	}
}

// TestSeeds: the same spec gives the same episode; another seed another animal; the light
// schedule does not change the animal and follows the documented seed derivation.
func TestSeeds(t *testing.T) {
	s := simStation(t, "446", true)
	run := func(kind episode.Kind, seed uint64) station.Result {
		t.Helper()
		res, err := s.Run(context.Background(), station.Episode{ID: "e", Spec: spec(kind, "446", seed, 20)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := run(episode.KindRandom, 5), run(episode.KindRandom, 5)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different episodes:\n%+v\n%+v", a.Outcome, b.Outcome)
	}
	c := run(episode.KindRandom, 6)
	if a.Records[0].X == c.Records[0].X && a.Records[0].Body == c.Records[0].Body {
		t.Fatalf("seeds 5 and 6 placed the same animal: %+v", a.Records[0])
	}
	// The first record is the animal before any light: the same under no light.
	if n, r := run(episode.KindNone, 5).Records[0], a.Records[0]; n.X != r.X || n.Y != r.Y || n.Body != r.Body || n.Head != r.Head {
		t.Fatalf("the light schedule changed the animal:\n%+v\n%+v", n, r)
	}
	// The light follows Spec.LightPolicy().Schedule(ScheduleSeed(seed)), switched off on lost
	// frames.
	sched := spec(episode.KindRandom, "446", 5, 20).LightPolicy().Schedule(station.ScheduleSeed(5))
	for i, r := range a.Records {
		if want := sched.Next() && r.OK; r.Light != want {
			t.Fatalf("record %d: light %v, schedule says %v", i, r.Light, want)
		}
	}
	seen := map[uint64]uint64{}
	for _, seed := range []uint64{0, 1, 2, 5, 1 << 32, math.MaxUint64} {
		ss := station.ScheduleSeed(seed)
		if ss == seed {
			t.Fatalf("schedule seed of %d is the animal's seed", seed)
		}
		if prev, dup := seen[ss]; dup {
			t.Fatalf("seeds %d and %d share schedule seed %d", prev, seed, ss)
		}
		seen[ss] = seed
	}
}

func TestRefusals(t *testing.T) {
	s := simStation(t, "446", true)
	ok := func() station.Episode { return station.Episode{ID: "e", Spec: spec(episode.KindNone, "446", 1, 10)} }
	tests := []struct {
		name    string
		edit    func(e *station.Episode)
		wantErr string
	}{
		{"wrong line", func(e *station.Episode) { e.Spec.Line = "301" }, `line "301", but this station holds animals of line "446"`},
		{"no id", func(e *station.Episode) { e.ID = "" }, "without an id"},
		{"training task", func(e *station.Episode) { e.Spec.Kind = episode.KindTrain }, "not an episode kind"},
		{"no seconds", func(e *station.Episode) { e.Spec.Seconds = 0 }, "seconds 0 must be positive"},
		{"shorter than a frame", func(e *station.Episode) { e.Spec.Seconds = 0.1 }, "shorter than one frame"},
		{"light probability", func(e *station.Episode) { e.Spec.LightProbability = 2 }, "within 0-1"},
		{"target off the plate", func(e *station.Episode) { e.Spec.Target = &episode.Place{XCM: 1.5, YCM: 1.5} }, "outside the plate"},
		{"acting without a policy", func(e *station.Episode) { *e = station.Episode{ID: "e", Spec: spec(episode.KindAgent, "446", 1, 10)} }, "needs a policy"},
		{"fixed with a policy", func(e *station.Episode) { e.Policy = headLeft }, "fixed light policy"},
		{"agent without an agent line", func(e *station.Episode) {
			e.Spec.Kind, e.Policy = episode.KindAgent, headLeft
		}, "needs an agent line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok()
			tt.edit(&e)
			e.OnStep = func(station.Step) error { t.Fatal("a refused episode ran"); return nil }
			res, err := s.Run(context.Background(), e)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if !reflect.DeepEqual(res, station.Result{}) {
				t.Fatalf("a refused episode returned %+v", res)
			}
		})
	}
	if _, err := s.Run(context.Background(), ok()); err != nil {
		t.Fatalf("the station refuses a good episode after bad ones: %v", err)
	}
}

// realArena is an open arena with one animal for the whole test, as a rig's plate.
func realArena(t *testing.T) arenas.Arena {
	t.Helper()
	l, err := catalogue(t).Line("446")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig(l)
	cfg.NoRender = true
	a, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestConfigValidate(t *testing.T) {
	cat := catalogue(t)
	tests := []struct {
		name    string
		edit    func(c *station.Config)
		wantErr string
	}{
		{"no line", func(c *station.Config) { c.Line = "" }, "no line"},
		{"unknown line", func(c *station.Config) { c.Line = "999" }, `unknown line "999"`},
		{"neither sim nor rig", func(c *station.Config) { c.Catalogue = nil }, "exactly one"},
		{"bad worker", func(c *station.Config) { c.Worker.ChunkFrames = 0 }, "chunk_frames"},
		{"bad calibration", func(c *station.Config) { c.Calibration = arenas.Calibration{PxPerCM: 540} }, "calibration"},
		{"both sim and a real arena", func(c *station.Config) { c.Arena = realArena(t) }, "exactly one"},
		{"real arena without rendering", func(c *station.Config) { c.Catalogue, c.Arena, c.NoRender = nil, realArena(t), true }, "for simulated stations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := station.DefaultConfig()
			cfg.Catalogue, cfg.Line = cat, "446"
			tt.edit(&cfg)
			if _, err := station.New(cfg); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRendered runs a short episode on rendered frames through the tracker.
func TestRendered(t *testing.T) {
	s := simStation(t, "446", false)
	e := station.Episode{ID: "r", Spec: spec(episode.KindRandom, "446", 2, 10), KeepFrames: true}
	e.Spec.Target = &episode.Place{XCM: 0.3}
	var worst float64
	steps := 0
	e.OnStep = func(st station.Step) error {
		if st.Index != steps || st.Frame.Pix == nil || st.True == nil {
			t.Fatalf("step %d: index %d, pixels %v, true pose %v", steps, st.Index, st.Frame.Pix != nil, st.True)
		}
		steps++
		if st.Pose.OK {
			worst = math.Max(worst, math.Hypot(st.Pose.X-st.True.X, st.Pose.Y-st.True.Y))
		}
		return nil
	}
	var ticks []worker.Tick
	e.Watch = func(tk worker.Tick) {
		if tk.Index != len(ticks) || tk.Index >= steps || tk.Frame.Pix == nil {
			t.Fatalf("watch: tick %d after %d ticks and %d steps, pixels %v", tk.Index, len(ticks), steps, tk.Frame.Pix != nil)
		}
		tk.Frame.Pix, tk.Pose.Midline = nil, nil
		ticks = append(ticks, tk)
	}
	res, err := s.Run(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, e, res, 30)
	if steps != 30 {
		t.Fatalf("the step hook saw %d steps", steps)
	}
	if len(ticks) != 30 {
		t.Fatalf("the watch saw %d steps", len(ticks))
	}
	for i, tk := range ticks {
		if r := res.Records[i]; tk.Light != r.Light || tk.OK != r.OK || tk.Steps != 30 || !(tk.Latency > 0) || tk.TargetPx != res.Track.Target {
			t.Fatalf("tick %d: %+v, record %+v", i, tk, r)
		}
	}
	t.Logf("rendered and tracked: lost %.2f of the frames, tracked centre at most %.1f px from the true one", res.Outcome.LostFraction, worst)
	// The tracker settles head and tail within a few frames, then follows the true centre.
	if res.Outcome.LostFraction > 8.0/30 || worst > 10 {
		t.Fatalf("lost %v of the frames; tracked centre up to %.1f px from the true one", res.Outcome.LostFraction, worst)
	}
}

// TestCloseEndsAnEpisode: Close from another goroutine (here the step hook) ends the running
// episode at its next frame; later episodes are refused.
func TestCloseEndsAnEpisode(t *testing.T) {
	s := simStation(t, "446", true)
	e := station.Episode{ID: "c", Spec: spec(episode.KindNone, "446", 1, 30)}
	e.OnStep = func(st station.Step) error {
		if st.Index == 5 {
			return s.Close()
		}
		return nil
	}
	if _, err := s.Run(context.Background(), e); !errors.Is(err, arenas.ErrClosed) {
		t.Fatalf("error %v, want one wrapping arenas.ErrClosed", err)
	}
	e.OnStep = nil
	if _, err := s.Run(context.Background(), e); !errors.Is(err, arenas.ErrClosed) {
		t.Fatalf("episode after Close: error %v", err)
	}
}

// The worker's types satisfy what the station passes on.
var (
	_ worker.Sink   = (*sink)(nil)
	_ worker.Policy = headLeft
)

func TestFixedLight(t *testing.T) {
	for _, tt := range []struct {
		policy string
		kind   episode.Kind
		p      float64
	}{
		{"none", episode.KindNone, 0},
		{"always", episode.KindRandom, 1},
		{"random:0.25", episode.KindRandom, 0.25},
	} {
		pol, err := episode.ParsePolicy(tt.policy)
		if err != nil {
			t.Fatal(err)
		}
		kind, p := station.FixedLight(pol)
		if kind != tt.kind || p != tt.p {
			t.Fatalf("%s: kind %s at %v, want %s at %v", tt.policy, kind, p, tt.kind, tt.p)
		}
		// The kind's schedule is the policy's.
		sp := episode.Spec{Kind: kind, LightProbability: p}
		a, b := sp.LightPolicy().Schedule(9), pol.Schedule(9)
		for i := 0; i < 300; i++ {
			if a.Next() != b.Next() {
				t.Fatalf("%s: the schedules differ at frame %d", tt.policy, i)
			}
		}
	}
}
