package report

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/optoloop/optoloop/agentlib/learner"
	"github.com/optoloop/optoloop/agentlib/nn"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
)

// synth describes a synthetic run folder.
type synth struct {
	lines      []string
	episodes   int // per line and condition
	frames     int // per episode
	members    int // ensemble members (curves; a real ensemble of this size is saved when saveEnsemble)
	curvePts   int // curve points per member
	cross      []string
	report     bool // write report.json
	experiment bool
	maps       bool
	saveEns    bool
	// collect and collectFrames add random-light collection episodes per line (in the folder,
	// not drawn); crossEpisodes adds episodes per pair of cross lines.
	collect, collectFrames int
	crossEpisodes          int
}

// synthEpisode simulates a biased random walk toward the target when the light is on under the
// agent, so that conditions differ.
func synthEpisode(rng *rand.Rand, id, line string, cond episode.Kind, frames int, k int) results.Episode {
	cx, cy, ppc := 1080.0, 960.0, 540.0
	ang := float64(k%4) * math.Pi / 2
	tx, ty := cx+810*math.Cos(ang), cy+810*math.Sin(ang)
	e := results.Episode{ID: id, Condition: cond, Line: line, Seed: uint64(k), Seconds: float64(frames) / 3,
		PxPerCM: ppc, PlateCenter: [2]float64{cx, cy}, PlateRadius: 970, Target: [2]float64{tx, ty}}
	if cond == results.Random {
		e.LightProbability = 0.15
	}
	x, y, h := cx, cy, rng.Float64()*2*math.Pi
	light := false
	best, on, lost := math.Inf(1), 0, 0
	for i := range frames {
		t := float64(i) / 3
		if i%3 == 0 {
			switch cond {
			case results.Agent:
				light = rng.Float64() < 0.3
			case results.Random, results.Cross:
				light = rng.Float64() < 0.15
			case results.Collect:
				light = rng.Float64() < 0.1
			default:
				light = false
			}
		}
		toT := math.Atan2(ty-y, tx-x)
		d := math.Remainder(toT-h, 2*math.Pi)
		h += rng.NormFloat64() * 0.25
		if light && cond == results.Agent {
			h += 0.2 * d
		}
		nx, ny := x+2.5*math.Cos(h), y+2.5*math.Sin(h)
		if math.Hypot(nx-cx, ny-cy) > 950 {
			h += math.Pi
		} else {
			x, y = nx, ny
		}
		ok := rng.Float64() > 0.02
		if !ok {
			lost++
		}
		if light {
			on++
		}
		e.Frames = append(e.Frames, results.Frame{T: t, X: x, Y: y, Light: light, OK: ok, Body: h, Head: h + 0.3*math.Sin(t)})
		if ok {
			dist := math.Hypot(x-tx, y-ty) / ppc
			if dist < best {
				best = dist
			}
			if dist < 0.5 && e.TimeTo05cmS == nil {
				tt := t
				e.TimeTo05cmS = &tt
			}
		}
	}
	e.ClosestCM = best
	e.LightFraction = float64(on) / float64(frames)
	e.LostFraction = float64(lost) / float64(frames)
	last := e.Frames[len(e.Frames)-1]
	e.FinalDistanceCM = math.Hypot(last.X-tx, last.Y-ty) / ppc
	return e
}

// synthMap is a policy map with a known, position-dependent pattern.
func synthMap(members int) *policy.Map {
	m := &policy.Map{Members: members}
	for i := range 36 {
		m.BodyRelDeg = append(m.BodyRelDeg, -180+10*float64(i))
		m.HeadRelDeg = append(m.HeadRelDeg, -180+10*float64(i))
	}
	for i := range 9 {
		m.XRelPx = append(m.XRelPx, -900+225*float64(i))
		m.YRelPx = append(m.YRelPx, -900+225*float64(i))
	}
	for _, y := range m.YRelPx {
		var row [][][]float64
		for _, x := range m.XRelPx {
			g := make([][]float64, 36)
			for ib, b := range m.BodyRelDeg {
				g[ib] = make([]float64, 36)
				for ih, hd := range m.HeadRelDeg {
					g[ib][ih] = 0.5 + 0.45*math.Sin(b*math.Pi/180)*math.Cos(hd*math.Pi/180)*math.Hypot(x, y)/1273
				}
			}
			row = append(row, g)
		}
		m.POn = append(m.POn, row)
	}
	return m
}

// write creates the run folder in dir.
func (s synth) write(t testing.TB, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	if s.experiment {
		y := fmt.Sprintf("name: synth\nseed: 7\nlines: [%s]\ncollect:\n  hours_per_line: 0.5\ntrain:\n  ensemble_size: %d\n  updates: 1000\nevaluate:\n  episodes_per_condition: %d\n", join(s.lines), s.members, s.episodes)
		if len(s.cross) > 0 {
			y += fmt.Sprintf("cross_evaluate:\n  lines: [%s]\n", join(s.cross))
		}
		if err := results.WriteFileAtomic(filepath.Join(dir, results.ExperimentFile), []byte(y)); err != nil {
			t.Fatal(err)
		}
	}
	rep := results.Report{Name: "synth", Started: time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC), Finished: time.Date(2026, 11, 26, 21, 30, 0, 0, time.UTC)}
	k := 0
	for _, l := range s.lines {
		lr := results.LineResult{Line: l, Conditions: map[episode.Kind]results.Condition{}, Members: s.members, Updates: 1000, TransitionsUsed: 5400, RandomRate: 0.15}
		for _, c := range conditions() {
			var cond results.Condition
			for i := range s.episodes {
				e := synthEpisode(rng, fmt.Sprintf("%s-%s-%03d", l, c, i), l, c, s.frames, k)
				k++
				if err := results.WriteEpisode(dir, &e); err != nil {
					t.Fatal(err)
				}
				cond.ClosestCM = append(cond.ClosestCM, e.ClosestCM)
				cond.TimeTo05cmS = append(cond.TimeTo05cmS, e.TimeTo05cmS)
				cond.EpisodeIDs = append(cond.EpisodeIDs, e.ID)
			}
			cond.MeanClosest, cond.SDClosest, cond.N = results.Summarize(cond.ClosestCM)
			lr.Conditions[c] = cond
		}
		_, lr.PAgentVsNone, _ = results.MannWhitneyU(lr.Conditions[results.Agent].ClosestCM, lr.Conditions[results.None].ClosestCM)
		_, lr.PAgentVsRandom, _ = results.MannWhitneyU(lr.Conditions[results.Agent].ClosestCM, lr.Conditions[results.Random].ClosestCM)
		rep.Lines = append(rep.Lines, lr)
		for i := range s.collect {
			e := synthEpisode(rng, fmt.Sprintf("collect-%s-%03d", l, i), l, results.Collect, s.collectFrames, k)
			k++
			if err := results.WriteEpisode(dir, &e); err != nil {
				t.Fatal(err)
			}
		}
		ld := results.LineDir(dir, l)
		if err := os.MkdirAll(ld, 0o755); err != nil {
			t.Fatal(err)
		}
		if s.members > 0 && s.curvePts > 0 {
			f, err := os.Create(filepath.Join(ld, results.CurvesFile))
			if err != nil {
				t.Fatal(err)
			}
			enc := json.NewEncoder(f)
			for p := 1; p <= s.curvePts; p++ {
				for m := range s.members {
					u := int64(p * 500)
					enc.Encode(learner.CurvePoint{Member: m, Update: u, Q1Loss: math.Exp(-float64(u)/2e4) + 0.01*float64(m), Q2Loss: math.Exp(-float64(u) / 2e4),
						Entropy: 0.69 - float64(u)/3e5, Alpha: 1 / (1 + float64(u)/1e4), MeanQ: float64(u) / 1e4})
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if s.maps {
			if err := results.WriteJSON(filepath.Join(ld, results.PolicyMapFile), synthMap(s.members)); err != nil {
				t.Fatal(err)
			}
		}
		if s.saveEns {
			saveEnsemble(t, filepath.Join(ld, results.EnsembleDir), 2, 1)
		}
	}
	for _, a := range s.cross {
		for _, g := range s.cross {
			for i := range s.crossEpisodes {
				e := synthEpisode(rng, fmt.Sprintf("cross-%s-by-%s-%03d", a, g, i), a, results.Cross, s.frames, k)
				e.AgentLine = g
				k++
				if err := results.WriteEpisode(dir, &e); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if len(s.cross) > 0 {
		cr := &results.CrossResult{Agents: s.cross, Animals: s.cross}
		for i := range s.cross {
			var row []float64
			var n []int
			for j := range s.cross {
				v := 1.2
				if i == j {
					v = 0.3
				}
				row = append(row, v+0.1*rng.Float64())
				n = append(n, s.episodes)
			}
			cr.ClosestCM = append(cr.ClosestCM, row)
			cr.N = append(cr.N, n)
			cr.Columns = append(cr.Columns, results.CrossColumn{Agent: s.cross[i], OwnBest: true, Rival: s.cross[(i+1)%len(s.cross)], P: 0.0123})
		}
		rep.Cross = cr
	}
	if s.report {
		if err := results.WriteJSON(filepath.Join(dir, results.ReportFile), rep); err != nil {
			t.Fatal(err)
		}
	}
}

// saveEnsemble writes a real ensemble of the reference architecture with random weights.
func saveEnsemble(t testing.TB, dir string, members int, seed uint64) *policy.Ensemble {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	arch := policy.ReferenceArch()
	var ms []*nn.MLP
	for range members {
		m := nn.New(arch.Sizes...)
		m.InitXavier(rng)
		ms = append(ms, m)
	}
	e, err := policy.NewEnsemble(arch, ms...)
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.SaveDir(dir, e); err != nil {
		t.Fatal(err)
	}
	return e
}

func join(xs []string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", x)
	}
	return s
}
