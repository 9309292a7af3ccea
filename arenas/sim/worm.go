package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Behaviour is the baseline locomotion of the strain on an unseeded agar plate (off food),
// shared by every line; a line's Response modulates it while the light is on. Lengths are in
// millimetres, times in seconds, rates per minute, angles in degrees. Per-animal values are drawn
// around these means (see the *SD fields). DESIGN.md in this directory gives the sources and how
// the values were tuned.
type Behaviour struct {
	// BodyLengthMM is the mean adult body length (~1 mm).
	BodyLengthMM float64
	// BodyWidthMM is the mean maximal body width (3-5 px at 540 px/cm, ~0.075 mm).
	BodyWidthMM float64
	// Points is the number of midline points.
	Points int
	// WavelengthBL is the body wave's wavelength in body lengths (~0.65).
	WavelengthBL float64
	// HeadSwingDeg is the amplitude of the head's swing about the direction of travel.
	HeadSwingDeg float64
	// ForwardSpeedMMs and ReversalSpeedMMs are the mean speeds of the two gaits.
	ForwardSpeedMMs  float64
	ReversalSpeedMMs float64
	// SpeedSD is the relative SD of an animal's speed around the mean.
	SpeedSD float64
	// ReversalsPerMin is the mean spontaneous reversal rate during forward runs; ReversalRateSD
	// the SD of its logarithm across animals.
	ReversalsPerMin float64
	ReversalRateSD  float64
	// ReversalS is the median reversal duration (log-normal, SD of the log ReversalSpreadLog).
	ReversalS         float64
	ReversalSpreadLog float64
	// OmegaShare is the share of reversals followed by an omega turn; OmegaS its duration and
	// OmegaDeg the mean heading change.
	OmegaShare float64
	OmegaS     float64
	OmegaDeg   float64
	// TurnsPerMin, TurnDeg, TurnS: shallow turns during forward runs.
	TurnsPerMin float64
	TurnDeg     float64
	TurnS       float64
	// PausesPerMin and PauseS: spontaneous pauses.
	PausesPerMin float64
	PauseS       float64
	// BiasRadMM is the mean of an animal's persistent turning bias (path curvature, rad/mm, to
	// the animal's ventral side; log-normal across animals with SD of the log BiasAnimalSD), the
	// looping of area-restricted search. BiasDriftRadMM is the SD of the slow drift around it,
	// BiasTauS the drift's correlation time.
	BiasRadMM      float64
	BiasAnimalSD   float64
	BiasDriftRadMM float64
	BiasTauS       float64
	// BiasRecoverS is the time constant with which the turning bias comes back after a light
	// response (Response.BiasReset) or a turn (TurnStraighten) has erased it.
	BiasRecoverS float64
	// TurnStraighten is the fraction of the turning bias erased by an omega turn: the worm
	// leaves a pirouette on a straighter run in its new direction.
	TurnStraighten float64
	// HeadingNoise is the heading diffusion per square root of mm travelled (rad/sqrt(mm)).
	HeadingNoise float64
	// EdgeZoneMM is the distance from the plate edge within which the worm turns away from it.
	EdgeZoneMM float64
	// FatigueMax is the largest fractional loss of speed after long time on the plate, reached
	// with time constant FatigueTauS (tiring over repeated episodes of one animal).
	FatigueMax  float64
	FatigueTauS float64
	// StepS is the internal integration step.
	StepS float64
}

// DefaultBehaviour returns the calibrated baseline (see DESIGN.md).
func DefaultBehaviour() Behaviour {
	return Behaviour{
		BodyLengthMM:      1.0,
		BodyWidthMM:       0.075,
		Points:            50,
		WavelengthBL:      0.65,
		HeadSwingDeg:      36,
		ForwardSpeedMMs:   0.24,
		ReversalSpeedMMs:  0.3,
		SpeedSD:           0.12,
		ReversalsPerMin:   2,
		ReversalRateSD:    0.35,
		ReversalS:         1.8,
		ReversalSpreadLog: 0.3,
		OmegaShare:        0.35,
		OmegaS:            3,
		OmegaDeg:          150,
		TurnsPerMin:       1.5,
		TurnDeg:           40,
		TurnS:             1.5,
		PausesPerMin:      0.6,
		PauseS:            2.5,
		BiasRadMM:         3,
		BiasAnimalSD:      0.3,
		BiasDriftRadMM:    1,
		BiasTauS:          60,
		BiasRecoverS:      75,
		TurnStraighten:    0.8,
		HeadingNoise:      0.2,
		EdgeZoneMM:        0.5,
		FatigueMax:        0.3,
		FatigueTauS:       3600,
		StepS:             1.0 / 30,
	}
}

// Validate reports the first unusable field.
func (b Behaviour) Validate() error {
	pos := []struct {
		name string
		v    float64
	}{
		{"body_length_mm", b.BodyLengthMM}, {"body_width_mm", b.BodyWidthMM},
		{"wavelength_bl", b.WavelengthBL}, {"forward_speed_mm_s", b.ForwardSpeedMMs},
		{"reversal_speed_mm_s", b.ReversalSpeedMMs}, {"reversal_s", b.ReversalS},
		{"omega_s", b.OmegaS}, {"turn_s", b.TurnS}, {"pause_s", b.PauseS},
		{"bias_tau_s", b.BiasTauS}, {"bias_recover_s", b.BiasRecoverS}, {"edge_zone_mm", b.EdgeZoneMM}, {"fatigue_tau_s", b.FatigueTauS},
		{"step_s", b.StepS},
	}
	for _, p := range pos {
		if !(p.v > 0) || math.IsInf(p.v, 0) {
			return fmt.Errorf("behaviour: %s %v must be positive and finite", p.name, p.v)
		}
	}
	nonneg := []struct {
		name string
		v    float64
	}{
		{"head_swing_deg", b.HeadSwingDeg}, {"speed_sd", b.SpeedSD}, {"reversals_per_min", b.ReversalsPerMin},
		{"reversal_rate_sd", b.ReversalRateSD}, {"reversal_spread_log", b.ReversalSpreadLog},
		{"omega_deg", b.OmegaDeg}, {"turns_per_min", b.TurnsPerMin}, {"turn_deg", b.TurnDeg},
		{"pauses_per_min", b.PausesPerMin}, {"bias_rad_mm", b.BiasRadMM},
		{"bias_animal_sd", b.BiasAnimalSD}, {"bias_drift_rad_mm", b.BiasDriftRadMM}, {"heading_noise", b.HeadingNoise},
	}
	for _, p := range nonneg {
		if !(p.v >= 0) || math.IsInf(p.v, 0) {
			return fmt.Errorf("behaviour: %s %v must be >= 0 and finite", p.name, p.v)
		}
	}
	switch {
	case b.Points < 5 || b.Points > ringCap-8:
		return fmt.Errorf("behaviour: points %d must be within 5-%d", b.Points, ringCap-8)
	case b.OmegaShare < 0 || b.OmegaShare > 1:
		return fmt.Errorf("behaviour: omega_share %v must be within 0-1", b.OmegaShare)
	case b.TurnStraighten < 0 || b.TurnStraighten > 1:
		return fmt.Errorf("behaviour: turn_straighten %v must be within 0-1", b.TurnStraighten)
	case b.FatigueMax < 0 || b.FatigueMax >= 1:
		return fmt.Errorf("behaviour: fatigue_max %v must be within [0, 1)", b.FatigueMax)
	case b.StepS > 0.2:
		return fmt.Errorf("behaviour: step_s %v must be at most 0.2", b.StepS)
	}
	return nil
}

// State is the worm's behavioural state.
type State uint8

// Behavioural states.
const (
	Forward State = iota
	Reversal
	Omega
	Pause
)

func (s State) String() string {
	switch s {
	case Forward:
		return "forward"
	case Reversal:
		return "reversal"
	case Omega:
		return "omega"
	case Pause:
		return "pause"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// animal holds one individual's parameters, drawn when it is put on the plate.
type animal struct {
	length, width      float64
	wavelength         float64
	speed, revSpeed    float64
	revRate            float64 // per s
	omegaShare         float64
	turnRate           float64 // per s
	pauseRate          float64 // per s
	headSwing          float64 // rad
	gain               float64 // light responsiveness
	ventral            float64 // +1 or -1: the side omega turns bend to
	biasMean, biasSD   float64 // persistent curvature (signed) and drift SD, rad/mm
	headingSD          float64
	age                float64 // seconds on plates so far (tiring)
	reversalMedian     float64
	reversalSpreadLog  float64
	omegaS, omegaAngle float64
}

// Model is the simulated worm on its plate. Positions are millimetres relative to the plate
// centre in image axes (x right, y down); angles are radians, atan2 in those axes. A Model is
// not safe for concurrent use. Its whole future follows from the seed and the light commands.
type Model struct {
	beh    Behaviour
	resp   Response
	rng    *rand.Rand
	plateR float64

	an animal
	bd body

	st        State
	left      float64 // seconds left in the current reversal, omega or pause
	theta     float64 // leader's direction of travel (centre line of the wave)
	phase     float64 // body wave phase at the leading tip
	bias      float64 // turning bias, rad/mm: biasGain*(animal's mean + drift)
	drift     float64 // slow drift of the turning bias around the animal's mean
	biasGain  float64 // 0-1: how much of the bias is present (light may erase it)
	turnRate  float64 // shallow turn drive, rad/s
	turnLeft  float64
	omegaRate float64

	effect     float64 // light effect after the onset/offset lag, 0-1
	responding bool
	habit      float64 // habituation: remaining fraction of the response

	t         float64 // seconds since the animal was put on the plate this episode
	reversals int
	edgeRevs  int // reversals triggered by the plate edge
	omegas    int
	odometer  float64 // mm travelled by the leading tip

	env      *Environment // nil: a bare plate (SetEnvironment)
	touching bool         // the leading tip touches an obstacle
	touchNew bool         // it has just begun to
	contacts int          // obstacle contacts this episode

	aOn, aOff  float64 // per-step filter coefficients of the light effect
	biasA      float64 // per-step OU decay of the turning bias
	sqrtStep   float64
	fatigueNow float64
}

// NewModel returns a worm of the given line on a plate of radius plateRadiusMM, with a first
// animal placed with its centre near (x, y) heading along heading. The seed fixes everything.
func NewModel(beh Behaviour, line Line, plateRadiusMM float64, seed uint64, x, y, heading float64) (*Model, error) {
	if err := beh.Validate(); err != nil {
		return nil, err
	}
	if err := line.Validate(); err != nil {
		return nil, err
	}
	if !(plateRadiusMM > 2*beh.BodyLengthMM) {
		return nil, fmt.Errorf("sim: plate radius %v mm too small for a %v mm worm", plateRadiusMM, beh.BodyLengthMM)
	}
	if math.Hypot(x, y) > plateRadiusMM-beh.BodyLengthMM {
		return nil, errors.New("sim: start position is not inside the plate")
	}
	m := &Model{beh: beh, resp: line.Response, plateR: plateRadiusMM,
		rng: rand.New(rand.NewPCG(seed, 0x5157a11)),
	}
	dt := beh.StepS
	m.aOn, m.aOff = 1, 1
	if r := line.Response.OnsetLagS; r > 0 {
		m.aOn = 1 - math.Exp(-dt/r)
	}
	if r := line.Response.OffsetLagS; r > 0 {
		m.aOff = 1 - math.Exp(-dt/r)
	}
	m.biasA = math.Exp(-dt / beh.BiasTauS)
	m.sqrtStep = math.Sqrt(1 - m.biasA*m.biasA)
	m.NewAnimal(x, y, heading)
	return m, nil
}

// NewAnimal puts a new animal on the plate (new individual parameters, rested, not habituated)
// with its centre near (x, y) heading along heading.
func (m *Model) NewAnimal(x, y, heading float64) {
	b, r := m.beh, m.rng
	ln := func(sd float64) float64 { return math.Exp(sd*r.NormFloat64() - sd*sd/2) }
	clip := func(v, lo, hi float64) float64 { return math.Min(math.Max(v, lo), hi) }
	a := animal{
		length:            b.BodyLengthMM * clip(1+0.07*r.NormFloat64(), 0.8, 1.2),
		width:             b.BodyWidthMM * clip(1+0.1*r.NormFloat64(), 0.75, 1.25),
		speed:             b.ForwardSpeedMMs * clip(1+b.SpeedSD*r.NormFloat64(), 0.5, 1.5),
		revSpeed:          b.ReversalSpeedMMs * clip(1+b.SpeedSD*r.NormFloat64(), 0.5, 1.5),
		revRate:           b.ReversalsPerMin / 60 * ln(b.ReversalRateSD),
		omegaShare:        clip(b.OmegaShare*clip(1+0.2*r.NormFloat64(), 0.5, 1.5), 0, 1),
		turnRate:          b.TurnsPerMin / 60 * ln(0.3),
		pauseRate:         b.PausesPerMin / 60 * ln(0.3),
		headSwing:         b.HeadSwingDeg * math.Pi / 180 * clip(1+0.1*r.NormFloat64(), 0.75, 1.25),
		biasMean:          b.BiasRadMM * ln(b.BiasAnimalSD),
		biasSD:            b.BiasDriftRadMM,
		headingSD:         b.HeadingNoise,
		reversalMedian:    b.ReversalS,
		reversalSpreadLog: b.ReversalSpreadLog,
		omegaS:            b.OmegaS,
		omegaAngle:        b.OmegaDeg * math.Pi / 180,
		ventral:           1,
	}
	a.wavelength = b.WavelengthBL * a.length * clip(1+0.07*r.NormFloat64(), 0.8, 1.2)
	if r.IntN(2) == 0 {
		a.ventral = -1
	}
	a.biasMean *= a.ventral
	// Draw both numbers whatever the line, so that without light every line's animal of a
	// given seed is the same animal.
	weak, u, z := r.Float64(), r.Float64(), r.NormFloat64()
	if weak < m.resp.WeakFraction {
		a.gain = 0.3 * u
	} else {
		a.gain = clip(1+0.15*z, 0.6, 1.4)
	}
	m.an = a
	m.resetEpisode(x, y, heading)
}

// NextEpisode starts a new episode with the same animal (it keeps its parameters and how tired
// it is; habituation has worn off between episodes) placed near (x, y) heading along heading.
func (m *Model) NextEpisode(x, y, heading float64) {
	m.an.age += m.t
	m.resetEpisode(x, y, heading)
}

func (m *Model) resetEpisode(x, y, heading float64) {
	L := m.an.length
	hx, hy := x+math.Cos(heading)*L/2, y+math.Sin(heading)*L/2
	m.bd.reset(hx, hy, heading, L, m.beh.Points-1)
	m.st, m.left = Forward, 0
	m.theta = heading
	m.phase = 2 * math.Pi * m.rng.Float64()
	m.drift = m.an.biasSD * m.rng.NormFloat64()
	m.biasGain = 1
	m.bias = m.an.biasMean + m.drift
	m.turnRate, m.turnLeft, m.omegaRate = 0, 0, 0
	m.effect, m.responding, m.habit = 0, false, 1
	m.t, m.reversals, m.edgeRevs, m.omegas, m.odometer = 0, 0, 0, 0, 0
	m.touching, m.touchNew, m.contacts = false, false, 0
	m.updateFatigue()
	// Let the body take its undulating shape before the first frame, keeping the heading: no
	// turning bias or heading noise while it does.
	bias, noise := m.bias, m.an.headingSD
	m.bias, m.an.headingSD = 0, 0
	for i := 0; i < int(math.Ceil(1.5*L/m.an.speed/m.beh.StepS)); i++ {
		m.moveForward(m.beh.StepS, m.an.speed, m.an.headSwing, 0)
	}
	m.bias, m.an.headingSD = bias, noise
	cx, cy := m.bd.centroid()
	m.shift(x-cx, y-cy)
	m.t = 0
	m.odometer = 0
}

func (m *Model) shift(dx, dy float64) {
	for i := m.bd.b; i <= m.bd.f; i++ {
		m.bd.x[idx(i)] += dx
		m.bd.y[idx(i)] += dy
	}
}

func (m *Model) updateFatigue() {
	m.fatigueNow = 1 - m.beh.FatigueMax*(1-math.Exp(-(m.an.age+m.t)/m.beh.FatigueTauS))
}

// Advance runs the worm for seconds with the light on (at full intensity) or off.
func (m *Model) Advance(seconds float64, light bool) {
	level := 0.0
	if light {
		level = 1
	}
	m.AdvanceLevel(seconds, level)
}

// AdvanceLevel runs the worm for seconds with the light at level (0 off, 1 the line's full
// intensity; the response's strength follows the level, clipped to 0-1).
func (m *Model) AdvanceLevel(seconds float64, level float64) {
	level = math.Min(math.Max(level, 0), 1)
	if math.IsNaN(level) {
		level = 0
	}
	n := int(math.Round(seconds / m.beh.StepS))
	if n < 1 {
		n = 1
	}
	dt := seconds / float64(n)
	for i := 0; i < n; i++ {
		m.step(dt, level)
	}
	// Slow processes, once per call.
	a := math.Pow(m.biasA, dt*float64(n)/m.beh.StepS)
	m.drift = m.drift*a + m.an.biasSD*math.Sqrt(1-a*a)*m.rng.NormFloat64()
	m.bias = m.biasGain * (m.an.biasMean + m.drift)
	m.updateFatigue()
}

func (m *Model) factor(f, e float64) float64 { return 1 + (f-1)*e }

func (m *Model) step(dt float64, level float64) {
	r := &m.resp
	// Light effect through the onset/offset lag, habituation, responsiveness.
	if level > m.effect {
		m.effect += (level - m.effect) * m.aOn
	} else {
		m.effect += (level - m.effect) * m.aOff
	}
	if r.HabituationTauS > 0 {
		if level > 0 {
			m.habit += (r.HabituationFloor - m.habit) * level * dt / r.HabituationTauS
		} else {
			m.habit += (1 - m.habit) * dt / (3 * r.HabituationTauS)
		}
	}
	g := m.an.gain * m.habit
	e := m.effect * g
	if !m.responding && m.effect >= 0.5 {
		m.responding = true
		if r.ReversalAtOnset > 0 && m.st != Reversal && m.rng.Float64() < r.ReversalAtOnset*g {
			m.startReversal()
		}
	} else if m.responding && m.effect < 0.5 {
		m.responding = false
		if r.ReversalAtOffset > 0 && m.st != Reversal && m.rng.Float64() < r.ReversalAtOffset*g {
			m.startReversal()
		}
	}
	if m.biasGain < 1 {
		m.biasGain += (1 - m.biasGain) * dt / m.beh.BiasRecoverS
	}
	if r.BiasReset > 0 && e > 0 {
		m.biasGain -= m.biasGain * math.Min(1, r.BiasReset*e*dt)
	}
	m.bias = m.biasGain * (m.an.biasMean + m.drift)
	speedF := m.factor(r.SpeedFactor, e) * m.fatigueNow
	swing := m.an.headSwing * m.factor(r.HeadSwingFactor, e)
	m.t += dt

	switch m.st {
	case Forward:
		edge := m.edgeHazard()
		hRev := m.an.revRate*m.factor(r.ReversalRateFactor, e) + edge
		hTurn := m.an.turnRate * m.factor(r.TurnRateFactor, e)
		hPause := m.an.pauseRate * m.factor(r.PauseRateFactor, e)
		if m.env != nil && m.env.Food != nil {
			fr, extra, ft, fp, fs := m.foodRates()
			// The gradient scales the spontaneous reversals; the lawn's edge counts with the
			// plate's (both are edges the worm turns back at).
			hRev = (hRev-edge)*fr + edge + extra
			edge += extra
			hTurn *= ft
			hPause *= fp
			speedF *= fs
		}
		if u := m.rng.Float64(); u < (hRev+hTurn+hPause)*dt {
			u /= dt
			switch {
			case u < hRev:
				if u >= hRev-edge {
					m.edgeRevs++
				}
				m.startReversal()
				return
			case u < hRev+hTurn:
				m.startTurn()
			default:
				m.st, m.left = Pause, m.beh.PauseS*(0.4+1.2*m.rng.Float64())
				return
			}
		}
		steer := r.SteeringDegS * math.Pi / 180 * e
		m.moveForward(dt, m.an.speed*speedF, swing, steer)
		if m.touchNew {
			// Gentle touch to the nose: a reversal at most contacts (Chalfie et al. 1985 J
			// Neurosci; Kaplan and Horvitz 1993 PNAS).
			m.touchNew = false
			if m.rng.Float64() < touchReversal {
				m.startReversal()
			}
		}
	case Reversal:
		m.left -= dt
		if m.left <= 0 {
			m.endReversal(e)
			return
		}
		m.moveBackward(dt, m.an.revSpeed*speedF, 0.6*swing)
	case Omega:
		m.left -= dt
		if m.left <= 0 {
			m.st = Forward
			m.omegaRate = 0
			return
		}
		m.theta += m.omegaRate * dt
		m.moveForward(dt, 0.6*m.an.speed*speedF, 0.3*swing, 0)
	case Pause:
		m.left -= dt
		if m.left <= 0 {
			m.st = Forward
		}
	}
}

// edgeHazard is the extra reversal rate when the head is near the plate edge and heading out.
func (m *Model) edgeHazard() float64 {
	hx, hy := m.bd.head()
	rr := math.Hypot(hx, hy)
	z := m.beh.EdgeZoneMM
	if rr < m.plateR-z {
		return 0
	}
	out := (math.Cos(m.theta)*hx + math.Sin(m.theta)*hy) / rr
	if out <= 0 {
		return 0
	}
	return 3 * out * (rr - (m.plateR - z)) / z
}

func (m *Model) startTurn() {
	ang := m.beh.TurnDeg * math.Pi / 180 * (0.5 + m.rng.Float64())
	if m.rng.IntN(2) == 0 {
		ang = -ang
	}
	d := m.beh.TurnS * (0.6 + 0.8*m.rng.Float64())
	m.turnRate, m.turnLeft = ang/d, d
}

func (m *Model) startReversal() {
	m.st = Reversal
	m.left = m.an.reversalMedian * math.Exp(m.an.reversalSpreadLog*m.rng.NormFloat64())
	m.reversals++
	m.turnLeft = 0
	tx, ty := m.bd.tail()
	px, py := m.bd.pointFromTail(0.3 * m.an.length)
	m.theta = math.Atan2(ty-py, tx-px)
}

func (m *Model) endReversal(e float64) {
	hx, hy := m.bd.head()
	px, py := m.bd.pointFromHead(0.3 * m.an.length)
	m.theta = math.Atan2(hy-py, hx-px)
	p := math.Min(1, m.an.omegaShare*m.factor(m.resp.OmegaFactor, e))
	if m.rng.Float64() < p {
		m.st = Omega
		m.omegas++
		m.left = m.an.omegaS * (0.7 + 0.6*m.rng.Float64())
		ang := m.an.omegaAngle * (0.75 + 0.5*m.rng.Float64())
		m.omegaRate = m.an.ventral * ang / m.left
		m.biasGain *= 1 - m.beh.TurnStraighten
		return
	}
	m.st = Forward
	if m.rng.IntN(2) == 0 {
		m.startTurn()
	}
}

// moveForward advances the head by speed*dt along the wave.
func (m *Model) moveForward(dt, speed, swing, steer float64) {
	d := speed * dt
	s := math.Sin(m.phase)
	m.theta += steer * s * dt
	if m.turnLeft > 0 {
		m.theta += m.turnRate * dt
		m.turnLeft -= dt
	}
	if d <= 0 {
		return
	}
	m.phase += 2 * math.Pi * d / m.an.wavelength
	if m.phase > 2*math.Pi {
		m.phase -= 2 * math.Pi
	}
	m.theta += m.bias*d + m.an.headingSD*math.Sqrt(d)*m.rng.NormFloat64()
	hx, hy := m.bd.head()
	m.theta += m.edgeSteer(hx, hy, m.theta, d)
	if m.env != nil && m.env.Food != nil {
		m.theta += m.weathervane(d)
	}
	dir := m.theta + swing*s
	dx, dy := d*math.Cos(dir), d*math.Sin(dir)
	dx, dy = m.keepInside(hx, hy, dx, dy)
	if m.env != nil && len(m.env.Obstacles) > 0 {
		dx, dy = m.obstacles(hx, hy, dx, dy)
	}
	m.bd.moveHead(dx, dy)
	m.odometer += d
}

// moveBackward moves the tail by speed*dt (reversal: the tail leads).
func (m *Model) moveBackward(dt, speed, swing float64) {
	d := speed * dt
	if d <= 0 {
		return
	}
	m.phase -= 2 * math.Pi * d / m.an.wavelength
	if m.phase < 0 {
		m.phase += 2 * math.Pi
	}
	m.theta += m.an.headingSD * math.Sqrt(d) * m.rng.NormFloat64()
	tx, ty := m.bd.tail()
	m.theta += m.edgeSteer(tx, ty, m.theta, d)
	dir := m.theta + swing*math.Sin(m.phase)
	dx, dy := d*math.Cos(dir), d*math.Sin(dir)
	dx, dy = m.keepInside(tx, ty, dx, dy)
	if m.env != nil && len(m.env.Obstacles) > 0 {
		dx, dy = m.obstacles(tx, ty, dx, dy)
	}
	m.bd.moveTail(dx, dy)
	m.odometer += d
}

// touchReversal is the probability that the nose's contact with debris starts a reversal.
const touchReversal = 0.5

// obstacles keeps the leading tip's step out of the debris and counts new contacts (a touch
// during a forward run may start a reversal, see step).
func (m *Model) obstacles(x, y, dx, dy float64) (float64, float64) {
	dx, dy, hit := m.collide(x, y, dx, dy)
	if hit && !m.touching {
		m.contacts++
		m.touchNew = m.st == Forward
	}
	m.touching = hit
	return dx, dy
}

// edgeSteer turns a tip at (x, y) moving along theta away from the plate edge.
func (m *Model) edgeSteer(x, y, theta, d float64) float64 {
	rr := math.Hypot(x, y)
	z := m.beh.EdgeZoneMM
	if rr < m.plateR-z || rr == 0 {
		return 0
	}
	rad := math.Atan2(y, x)
	rel := math.Remainder(theta-rad, 2*math.Pi) // 0: straight out
	if math.Abs(rel) >= math.Pi/2 {
		return 0
	}
	k := 4 * (rr - (m.plateR - z)) / z // rad per mm
	if rel >= 0 {
		return k * d
	}
	return -k * d
}

// keepInside removes the outward part of a step that would leave the plate.
func (m *Model) keepInside(x, y, dx, dy float64) (float64, float64) {
	nx, ny := x+dx, y+dy
	rr := math.Hypot(nx, ny)
	if rr <= m.plateR {
		return dx, dy
	}
	ux, uy := nx/rr, ny/rr
	out := dx*ux + dy*uy
	return dx - out*ux, dy - out*uy
}

// Centre returns the worm's centre (length-weighted centroid of the midline).
func (m *Model) Centre() (x, y float64) { return m.bd.centroid() }

// Midline writes len(dst) points evenly spaced from head to tail (mm).
func (m *Model) Midline(dst [][2]float64) { m.bd.resample(dst) }

// Widths writes the full body width (mm) at len(dst) points evenly spaced from head to tail.
func (m *Model) Widths(dst []float64) {
	n := len(dst)
	for i := range dst {
		u := 0.0
		if n > 1 {
			u = float64(i) / float64(n-1)
		}
		w := 1.0
		if u < 0.15 {
			w = math.Max(0.3, math.Sqrt(u/0.15))
		}
		if u > 0.7 {
			w = math.Max(0.12, math.Min(w, (1-u)/0.3))
		}
		dst[i] = m.an.width * w
	}
}

// State returns the behavioural state.
func (m *Model) State() State { return m.st }

// Reversals returns the number of reversals since the episode began; Omegas the omega turns.
func (m *Model) Reversals() int { return m.reversals }

// EdgeReversals returns how many of the reversals the plate edge triggered.
func (m *Model) EdgeReversals() int { return m.edgeRevs }

// Omegas returns the number of omega turns since the episode began.
func (m *Model) Omegas() int { return m.omegas }

// Seconds returns the simulated time since the episode began.
func (m *Model) Seconds() float64 { return m.t }

// Effect returns the current strength of the light effect (0-1, after lags, responsiveness and
// habituation).
func (m *Model) Effect() float64 { return m.effect * m.an.gain * m.habit }

// Responsiveness returns the animal's light responsiveness (about 1; 0-0.3 for weak responders).
func (m *Model) Responsiveness() float64 { return m.an.gain }

// Odometer returns the path length travelled by the leading tip this episode (mm).
func (m *Model) Odometer() float64 { return m.odometer }
