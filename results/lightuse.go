package results

import (
	"fmt"
	"math"
	"sort"

	"github.com/optoloop/optoloop/episode"
)

// FacingBins is the number of bins of the facing cosine in a LightUse table: cos(body angle -
// direction to the target) in [-1, -0.5), [-0.5, 0), [0, 0.5) and [0.5, 1], from facing away to
// facing the target.
const FacingBins = 4

// LightUseConfig says when a frame counts as "still".
type LightUseConfig struct {
	// Window is the number of frames over which movement is measured, ending at the frame
	// itself. Default 15, the observation's length (5 s at 3 Hz).
	Window int
	// StillMM is the largest displacement of the worm's centre over Window frames for the
	// frame to count as still. Default 0.15 mm: about 0.03 mm/s over 5 s, a fifth of a forward
	// run's speed (a paralysed or pausing worm).
	StillMM float64
}

// DefaultLightUseConfig returns a 15-frame window and 0.15 mm.
func DefaultLightUseConfig() LightUseConfig { return LightUseConfig{Window: 15, StillMM: 0.15} }

// LightUseCell counts the frames of one state and how many of them had the light on.
type LightUseCell struct {
	On     int `json:"on"`
	Frames int `json:"frames"`
}

// P returns the share of the cell's frames with the light on, NaN for an empty cell.
func (c LightUseCell) P() float64 {
	if c.Frames == 0 {
		return math.NaN()
	}
	return float64(c.On) / float64(c.Frames)
}

// LightUse is how one group of episodes (one line's animals under one condition and agent) used
// the light, by the state the worm was in when the light was chosen: moving or still, and which
// way it faced relative to the target. It shows what a policy does on the tracks it produced,
// where a policy map shows it on made-up observations.
type LightUse struct {
	Line      string       `json:"line"` // the animals' line
	AgentLine string       `json:"agent_line,omitempty"`
	Condition episode.Kind `json:"condition"`
	Episodes  int          `json:"episodes"`
	// Moving and Still are indexed by facing bin (FacingBins), from facing away to facing the
	// target.
	Moving [FacingBins]LightUseCell `json:"moving"`
	Still  [FacingBins]LightUseCell `json:"still"`
}

// All returns the cell of every counted frame.
func (u LightUse) All() LightUseCell {
	var c LightUseCell
	for i := 0; i < FacingBins; i++ {
		c.On += u.Moving[i].On + u.Still[i].On
		c.Frames += u.Moving[i].Frames + u.Still[i].Frames
	}
	return c
}

// StillAll returns the cell of every counted still frame.
func (u LightUse) StillAll() LightUseCell {
	var c LightUseCell
	for _, s := range u.Still {
		c.On += s.On
		c.Frames += s.Frames
	}
	return c
}

// StillShare returns the share of counted frames that were still, NaN when none were counted.
func (u LightUse) StillShare() float64 {
	all := u.All()
	if all.Frames == 0 {
		return math.NaN()
	}
	return float64(u.StillAll().Frames) / float64(all.Frames)
}

// FacingBin returns the bin of a facing cosine.
func FacingBin(cos float64) int {
	return min(FacingBins-1, max(0, int(math.Floor((cos+1)/2*FacingBins))))
}

// LightUseOf groups the episodes that have tracks by (line, agent line, condition) and counts
// their frames. Frames whose window holds a lost frame, and the first Window-1 frames of an
// episode, are not counted. Groups come sorted by line, condition and agent line.
func LightUseOf(eps []Episode, cfg LightUseConfig) ([]LightUse, error) {
	if cfg.Window < 2 || !(cfg.StillMM > 0) {
		return nil, fmt.Errorf("results: light use needs a window of at least 2 frames and a positive still distance, got %d and %v mm", cfg.Window, cfg.StillMM)
	}
	type key struct {
		line, agent string
		cond        episode.Kind
	}
	groups := map[key]*LightUse{}
	for i := range eps {
		e := &eps[i]
		if len(e.Frames) < cfg.Window || !(e.PxPerCM > 0) {
			continue
		}
		k := key{e.Line, e.AgentLine, e.Condition}
		g := groups[k]
		if g == nil {
			g = &LightUse{Line: e.Line, AgentLine: e.AgentLine, Condition: e.Condition}
			groups[k] = g
		}
		g.Episodes++
		stillPx := cfg.StillMM / 10 * e.PxPerCM
		lost := 0 // lost frames in the current window
		for t, f := range e.Frames {
			if !f.OK {
				lost++
			}
			if t >= cfg.Window && !e.Frames[t-cfg.Window].OK {
				lost--
			}
			if t < cfg.Window-1 || lost > 0 {
				continue
			}
			first := e.Frames[t-cfg.Window+1]
			cells := &g.Moving
			if math.Hypot(f.X-first.X, f.Y-first.Y) < stillPx {
				cells = &g.Still
			}
			c := &cells[FacingBin(math.Cos(f.Body-math.Atan2(e.Target[1]-f.Y, e.Target[0]-f.X)))]
			c.Frames++
			if f.Light {
				c.On++
			}
		}
	}
	out := make([]LightUse, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Condition != b.Condition {
			return a.Condition < b.Condition
		}
		return a.AgentLine < b.AgentLine
	})
	return out, nil
}
