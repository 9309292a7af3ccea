package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/optoloop/optoloop/agentlib/obs"
)

// MapConfig sets the grids of a policy map.
type MapConfig struct {
	// AngleBins is the number of body and head angle values, evenly spaced over [-180, 180)
	// degrees. Default 36 (10 degree steps).
	AngleBins int
	// PosBins is the number of x and y positions, evenly spaced over [-PosRange, PosRange]
	// times the position scale. Default 9.
	PosBins int
	// PosRange is the half width of the position grid in units of the position scale (900 px).
	// Default 1.
	PosRange float64
}

// DefaultMapConfig is the reference policy map: 36 x 36 angles for 9 x 9 positions within
// +-900 px of the target.
func DefaultMapConfig() MapConfig { return MapConfig{AngleBins: 36, PosBins: 9, PosRange: 1} }

// Validate reports the first unusable field.
func (c MapConfig) Validate() error {
	if c.AngleBins < 1 || c.AngleBins > 3600 || c.PosBins < 1 || c.PosBins > 1000 || !(c.PosRange > 0) || math.IsInf(c.PosRange, 0) {
		return fmt.Errorf("policy: bad map grid %+v", c)
	}
	return nil
}

// Map is a policy map: the ensemble's mean probability of light on for a worm at a grid of
// positions around the target, with a grid of body and head angles, each observation being one
// frame repeated Frames times (with the light observation: every frame captured in the dark, the
// light off for the whole window).
type Map struct {
	// BodyRelDeg are the body angles relative to the direction from the worm to the target
	// (0: the body points at the target), in degrees.
	BodyRelDeg []float64 `json:"body_rel_deg"`
	// HeadRelDeg are the head angles relative to the body angle, in degrees.
	HeadRelDeg []float64 `json:"head_rel_deg"`
	// XRelPx and YRelPx are the worm positions relative to the target (worm - target) in
	// reference pixels, image coordinates (y down).
	XRelPx []float64 `json:"x_rel_px"`
	YRelPx []float64 `json:"y_rel_px"`
	// POn[iy][ix][ib][ih] is P(light on) at YRelPx[iy], XRelPx[ix], BodyRelDeg[ib],
	// HeadRelDeg[ih]. At the target itself (x = y = 0) the target direction is taken as 0
	// (pointing along +x).
	POn [][][][]float64 `json:"p_on"`
	// Members is the ensemble size.
	Members int `json:"members"`
}

// ComputeMap evaluates the ensemble on the grid. Action 1 is "light on".
func ComputeMap(e *Ensemble, cfg MapConfig) (*Map, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	spec := e.arch.Spec
	if spec.Features != obs.Features && spec.Features != obs.LightFeatures {
		return nil, fmt.Errorf("policy: maps need the %d- or %d-feature observation, ensemble has %d", obs.Features, obs.LightFeatures, spec.Features)
	}
	m := &Map{Members: e.Len()}
	for i := range cfg.AngleBins {
		d := -180 + 360*float64(i)/float64(cfg.AngleBins)
		m.BodyRelDeg = append(m.BodyRelDeg, d)
		m.HeadRelDeg = append(m.HeadRelDeg, d)
	}
	for i := range cfg.PosBins {
		v := -cfg.PosRange
		if cfg.PosBins > 1 {
			v += 2 * cfg.PosRange * float64(i) / float64(cfg.PosBins-1)
		}
		m.XRelPx = append(m.XRelPx, v*spec.PosScale)
		m.YRelPx = append(m.YRelPx, v*spec.PosScale)
	}
	o := make([]float32, spec.Size())
	probs := make([]float64, e.Actions())
	f := spec.Frames
	for _, y := range m.YRelPx {
		var row [][][]float64
		for _, x := range m.XRelPx {
			toTarget := 0.0
			if x != 0 || y != 0 {
				toTarget = math.Atan2(-y, -x)
			}
			grid := make([][]float64, cfg.AngleBins)
			for ib, bd := range m.BodyRelDeg {
				grid[ib] = make([]float64, cfg.AngleBins)
				body := toTarget + bd*math.Pi/180
				for ih, hd := range m.HeadRelDeg {
					head := body + hd*math.Pi/180
					vals := [obs.Features]float64{math.Sin(body), math.Cos(body), math.Sin(head), math.Cos(head), x / spec.PosScale, y / spec.PosScale}
					for k, v := range vals {
						for i := range f {
							o[k*f+i] = float32(v)
						}
					}
					e.Probs(o, probs)
					grid[ib][ih] = probs[1]
				}
			}
			row = append(row, grid)
		}
		m.POn = append(m.POn, row)
	}
	return m, nil
}

// WriteJSON writes the map as JSON.
func (m *Map) WriteJSON(w io.Writer) error {
	if err := json.NewEncoder(w).Encode(m); err != nil {
		return fmt.Errorf("policy: write map: %w", err)
	}
	return nil
}
