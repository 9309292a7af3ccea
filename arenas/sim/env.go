package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Environment is what an episode's plate holds besides agar: a food patch (a bacterial lawn with
// an attractant gradient around it) and pieces of debris the body cannot cross. It is optional:
// without one (a nil *Environment) the model runs exactly as before, draw for draw. Positions
// are millimetres relative to the plate centre, image axes (x right, y down), as in the Model.
type Environment struct {
	// Food is the lawn (nil: none).
	Food *Food
	// Obstacles are the pieces of debris (see PlaceObstacles).
	Obstacles []Obstacle
}

// Food is a bacterial lawn: a disc on which the worm dwells, and an attractant that diffuses
// from it. The behaviour it drives is modest on purpose (see DESIGN.md, "Environments"):
//
//   - on the lawn (the head inside the disc) the worm slows and dwells: forward speed times
//     SpeedFactor, shallow turns times TurnFactor, pauses times PauseFactor (dwelling on food:
//     Shtonda and Avery 2006 J Exp Biol; Fujiwara, Sengupta and McIntire 2002 Neuron), and a
//     head leaving the lawn's edge heading out makes the worm reverse at LeaveReversalsPerS
//     (lawn leaving is rare: Milward et al. 2011 PNAS);
//   - off the lawn the attractant's concentration is C = exp(-(r - Radius)/GradientMM) at
//     distance r from the lawn's centre (1 on the lawn). The head senses the temporal change
//     s = (dC/dt)/(C + HalfC), Weber-like near the lawn and fading far from it; the reversal rate
//     is multiplied by exp(-KlinokinesisS s), clipped to 1/4-4: fewer reversals (so fewer
//     pirouettes) while moving up the gradient, more while moving down (the pirouette strategy,
//     Pierce-Shimomura, Morse and Lockery 1999 J Neurosci);
//   - and the direction of travel curves toward the gradient at WeathervaneRadMM x
//     C/(C + HalfC) x sin(bearing) rad per mm travelled (klinotaxis, the weathervane
//     mechanism: Iino and Yoshida 2009 J Neurosci).
type Food struct {
	XMM, YMM float64
	// RadiusMM is the lawn's radius (default 5 mm).
	RadiusMM float64
	// GradientMM is the attractant's decay length off the lawn (default 4 mm); HalfC the
	// concentration at which sensing is half-saturated (default 0.1).
	GradientMM float64
	HalfC      float64
	// SpeedFactor, TurnFactor and PauseFactor scale forward speed, shallow-turn rate and pause
	// rate on the lawn (defaults 0.4, 2, 4).
	SpeedFactor float64
	TurnFactor  float64
	PauseFactor float64
	// LeaveReversalsPerS is the reversal rate of a worm on the lawn whose head is past its edge
	// heading out (default 1/s).
	LeaveReversalsPerS float64
	// KlinokinesisS scales the reversal rate's response to the sensed change (default 10 s).
	KlinokinesisS float64
	// WeathervaneRadMM is the largest steering toward the gradient (default 1 rad/mm).
	WeathervaneRadMM float64
}

// DefaultFood returns a lawn of radius 5 mm centred at (x, y) mm with the default behaviour.
func DefaultFood(x, y float64) Food {
	return Food{XMM: x, YMM: y, RadiusMM: 5, GradientMM: 4, HalfC: 0.1, SpeedFactor: 0.4, TurnFactor: 2,
		PauseFactor: 4, LeaveReversalsPerS: 1, KlinokinesisS: 10, WeathervaneRadMM: 1}
}

// Obstacle is a piece of debris: a disc the worm's body does not cross.
type Obstacle struct {
	XMM, YMM, RadiusMM float64
}

// Validate reports the first unusable part of the environment on a plate of radius plateMM.
func (e *Environment) Validate(plateMM float64) error {
	if e == nil {
		return nil
	}
	if f := e.Food; f != nil {
		for _, p := range []struct {
			name string
			v    float64
		}{{"radius_mm", f.RadiusMM}, {"gradient_mm", f.GradientMM}, {"half_c", f.HalfC}, {"speed_factor", f.SpeedFactor}} {
			if !(p.v > 0) || math.IsInf(p.v, 0) {
				return fmt.Errorf("sim: food %s %v must be positive and finite", p.name, p.v)
			}
		}
		for _, p := range []struct {
			name string
			v    float64
		}{{"turn_factor", f.TurnFactor}, {"pause_factor", f.PauseFactor}, {"leave_reversals_per_s", f.LeaveReversalsPerS},
			{"klinokinesis_s", f.KlinokinesisS}, {"weathervane_rad_mm", f.WeathervaneRadMM}} {
			if !(p.v >= 0) || math.IsInf(p.v, 0) {
				return fmt.Errorf("sim: food %s %v must be >= 0 and finite", p.name, p.v)
			}
		}
		if !finite(f.XMM) || !finite(f.YMM) || math.Hypot(f.XMM, f.YMM) > plateMM {
			return fmt.Errorf("sim: food centre (%v, %v) mm is not on the plate", f.XMM, f.YMM)
		}
	}
	for i, o := range e.Obstacles {
		if !(o.RadiusMM > 0) || o.RadiusMM > plateMM/4 {
			return fmt.Errorf("sim: obstacle %d radius %v mm must be within (0, %v]", i, o.RadiusMM, plateMM/4)
		}
		if !finite(o.XMM) || !finite(o.YMM) || math.Hypot(o.XMM, o.YMM)+o.RadiusMM > plateMM {
			return fmt.Errorf("sim: obstacle %d at (%v, %v) mm is not on the plate", i, o.XMM, o.YMM)
		}
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Obstacle placement.
const (
	// obstacleStream is the seeded generator's stream of PlaceObstacles.
	obstacleStream = 0xdeb415
	// obstacleClearMM is how far an obstacle's edge keeps from every avoided point, and
	// obstacleGapMM from another obstacle's edge.
	obstacleClearMM = 1.5
	obstacleGapMM   = 0.5
)

// PlaceObstacles scatters n pieces of debris of radius radiusMM (each 0.7-1.3 times it) over
// the region of the plate that matters to an episode: the disc around the midpoint of from
// and to (the start and the target, mm) of radius half their distance plus 3 mm, inside a
// plate of radius plateMM less 2 mm. Every piece keeps 1.5 mm from from and to and 0.5 mm from
// the others. The positions follow from seed alone. It fails when the pieces do not fit.
func PlaceObstacles(seed uint64, n int, radiusMM, plateMM float64, from, to [2]float64) ([]Obstacle, error) {
	if n < 0 || n > 200 {
		return nil, fmt.Errorf("sim: %d obstacles must be within 0-200", n)
	}
	if !(radiusMM > 0) || radiusMM > 3 {
		return nil, fmt.Errorf("sim: obstacle radius %v mm must be within (0, 3]", radiusMM)
	}
	rng := rand.New(rand.NewPCG(seed, obstacleStream))
	cx, cy := (from[0]+to[0])/2, (from[1]+to[1])/2
	reach := math.Hypot(to[0]-from[0], to[1]-from[1])/2 + 3
	inner := plateMM - 2
	out := make([]Obstacle, 0, n)
	for tries := 0; len(out) < n; tries++ {
		if tries > 2000*(n+1) {
			return nil, errors.New("sim: the obstacles do not fit between the start and the target")
		}
		rad, ang := reach*math.Sqrt(rng.Float64()), 2*math.Pi*rng.Float64()
		o := Obstacle{XMM: cx + rad*math.Cos(ang), YMM: cy + rad*math.Sin(ang), RadiusMM: radiusMM * (0.7 + 0.6*rng.Float64())}
		ok := math.Hypot(o.XMM, o.YMM)+o.RadiusMM <= inner &&
			math.Hypot(o.XMM-from[0], o.YMM-from[1]) >= o.RadiusMM+obstacleClearMM &&
			math.Hypot(o.XMM-to[0], o.YMM-to[1]) >= o.RadiusMM+obstacleClearMM
		for _, p := range out {
			if math.Hypot(o.XMM-p.XMM, o.YMM-p.YMM) < o.RadiusMM+p.RadiusMM+obstacleGapMM {
				ok = false
			}
		}
		if ok {
			out = append(out, o)
		}
	}
	return out, nil
}

// SetEnvironment puts env on the plate for the rest of the animal's episodes (nil: a bare plate).
// env must be valid (Environment.Validate); the Model keeps it and does not change it.
func (m *Model) SetEnvironment(env *Environment) {
	if env != nil && env.Food == nil && len(env.Obstacles) == 0 {
		env = nil
	}
	m.env = env
	m.touching = false
}

// OnFood reports whether the worm's centre is on the lawn (false without one).
func (m *Model) OnFood() bool {
	if m.env == nil || m.env.Food == nil {
		return false
	}
	f := m.env.Food
	x, y := m.bd.centroid()
	return math.Hypot(x-f.XMM, y-f.YMM) <= f.RadiusMM
}

// Contacts returns how many times the leading tip has touched a piece of debris this episode.
func (m *Model) Contacts() int { return m.contacts }

// foodRates returns the factors the lawn applies, in the forward state, to the reversal rate
// (and an extra reversal rate at the lawn's edge), turn rate, pause rate and speed.
func (m *Model) foodRates() (rev, extra, turn, pause, speed float64) {
	f := m.env.Food
	hx, hy := m.bd.head()
	ux, uy := hx-f.XMM, hy-f.YMM
	r := math.Hypot(ux, uy)
	out := 0.0 // cosine of the heading with the outward direction
	if r > 0 {
		out = (math.Cos(m.theta)*ux + math.Sin(m.theta)*uy) / r
	}
	if r <= f.RadiusMM {
		return 1, 0, f.TurnFactor, f.PauseFactor, f.SpeedFactor
	}
	extra = 0.0
	if cx, cy := m.bd.centroid(); math.Hypot(cx-f.XMM, cy-f.YMM) <= f.RadiusMM && out > 0 {
		extra = f.LeaveReversalsPerS * out
	}
	c := math.Exp(-(r - f.RadiusMM) / f.GradientMM)
	// dC/dt of the head moving at the animal's speed along theta.
	dc := -c / f.GradientMM * m.an.speed * out
	s := dc / (c + f.HalfC)
	rev = math.Min(math.Max(math.Exp(-f.KlinokinesisS*s), 0.25), 4)
	return rev, extra, 1, 1, 1
}

// weathervane is the change of the direction of travel toward the lawn over d mm travelled.
func (m *Model) weathervane(d float64) float64 {
	f := m.env.Food
	hx, hy := m.bd.head()
	vx, vy := f.XMM-hx, f.YMM-hy
	r := math.Hypot(vx, vy)
	if r <= f.RadiusMM || f.WeathervaneRadMM == 0 {
		return 0
	}
	c := math.Exp(-(r - f.RadiusMM) / f.GradientMM)
	bearing := math.Remainder(math.Atan2(vy, vx)-m.theta, 2*math.Pi)
	return f.WeathervaneRadMM * c / (c + f.HalfC) * math.Sin(bearing) * d
}

// collide projects the leading tip's step (dx, dy) from (x, y) out of every obstacle (the body
// follows the tip's track, so it stays out too) and turns the direction of travel along the
// obstacle's edge. It returns the step and whether the tip touches an obstacle.
func (m *Model) collide(x, y, dx, dy float64) (float64, float64, bool) {
	nx, ny := x+dx, y+dy
	hit := false
	for _, o := range m.env.Obstacles {
		r := o.RadiusMM + m.an.width/2
		ox, oy := nx-o.XMM, ny-o.YMM
		d := math.Hypot(ox, oy)
		if d >= r {
			continue
		}
		if d == 0 {
			ox, oy = x-o.XMM, y-o.YMM
			if d = math.Hypot(ox, oy); d == 0 {
				ox, oy, d = 1, 0, 1
			}
		}
		ux, uy := ox/d, oy/d
		nx, ny = o.XMM+ux*r, o.YMM+uy*r
		// Slide along the edge: drop the inward part of the direction of travel.
		tx, ty := math.Cos(m.theta), math.Sin(m.theta)
		if in := tx*ux + ty*uy; in < 0 {
			tx, ty = tx-in*ux, ty-in*uy
			if tx != 0 || ty != 0 {
				m.theta = math.Atan2(ty, tx)
			}
		}
		hit = true
	}
	return nx - x, ny - y, hit
}
