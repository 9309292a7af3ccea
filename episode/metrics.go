package episode

import (
	"errors"
	"fmt"
	"math"
)

// WithinCM is the distance to the target that counts as arrival for TimeToWithinS.
const WithinCM = 0.5

// Record is one frame of an episode.
type Record struct {
	// T is the frame's time in seconds since the episode began.
	T float64
	// X, Y is the worm's centre in pixels; TargetX, TargetY the target in pixels.
	X, Y, TargetX, TargetY float64
	// Light is the light command in force when the frame was exposed.
	Light bool
}

// Metrics summarise one episode.
type Metrics struct {
	// Seconds is the time from the first to the last record.
	Seconds float64 `json:"seconds"`
	// ClosestCM is the smallest distance between the worm's centre and the target.
	ClosestCM float64 `json:"closest_cm"`
	// TimeToWithinS is the time of the first record within WithinCM of the target; nil if none.
	TimeToWithinS *float64 `json:"time_to_05cm_s"`
	// LightFraction is the share of records with the light on.
	LightFraction float64 `json:"light_fraction"`
	// MeanSpeedMMs is the centre's path length between records divided by Seconds.
	MeanSpeedMMs float64 `json:"mean_speed_mm_s"`
	// FinalDistanceCM is the distance to the target at the last record.
	FinalDistanceCM float64 `json:"final_distance_cm"`
}

// Accumulator computes Metrics record by record without keeping the records.
// The zero value is not usable: use NewAccumulator.
type Accumulator struct {
	pxPerCM float64
	n, lit  int
	t0, t   float64
	x, y    float64
	path    float64
	closest float64
	within  *float64
	final   float64
}

// NewAccumulator returns an accumulator for a camera of pxPerCM pixels per centimetre.
func NewAccumulator(pxPerCM float64) (*Accumulator, error) {
	if !(pxPerCM > 0) || math.IsInf(pxPerCM, 0) {
		return nil, fmt.Errorf("episode: px per cm %v must be positive", pxPerCM)
	}
	return &Accumulator{pxPerCM: pxPerCM, closest: math.Inf(1)}, nil
}

// Add adds the next record. Records must come in time order with finite values.
func (a *Accumulator) Add(r Record) error {
	for _, v := range []float64{r.T, r.X, r.Y, r.TargetX, r.TargetY} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("episode: record %d has a non-finite value", a.n)
		}
	}
	if a.n > 0 && r.T < a.t {
		return fmt.Errorf("episode: record %d at %vs before the previous one at %vs", a.n, r.T, a.t)
	}
	d := math.Hypot(r.X-r.TargetX, r.Y-r.TargetY) / a.pxPerCM
	if a.n == 0 {
		a.t0 = r.T
	} else {
		a.path += math.Hypot(r.X-a.x, r.Y-a.y)
	}
	if d < a.closest {
		a.closest = d
	}
	if a.within == nil && d <= WithinCM {
		s := r.T - a.t0
		a.within = &s
	}
	if r.Light {
		a.lit++
	}
	a.x, a.y, a.t, a.final = r.X, r.Y, r.T, d
	a.n++
	return nil
}

// Metrics returns the metrics of the records added so far.
func (a *Accumulator) Metrics() (Metrics, error) {
	if a.n == 0 {
		return Metrics{}, errors.New("episode: no records")
	}
	m := Metrics{
		Seconds:         a.t - a.t0,
		ClosestCM:       a.closest,
		LightFraction:   float64(a.lit) / float64(a.n),
		FinalDistanceCM: a.final,
	}
	if a.within != nil {
		s := *a.within
		m.TimeToWithinS = &s
	}
	if m.Seconds > 0 {
		m.MeanSpeedMMs = a.path / a.pxPerCM * 10 / m.Seconds
	}
	return m, nil
}

// Compute returns the metrics of a whole episode's records.
func Compute(recs []Record, pxPerCM float64) (Metrics, error) {
	a, err := NewAccumulator(pxPerCM)
	if err != nil {
		return Metrics{}, err
	}
	for _, r := range recs {
		if err := a.Add(r); err != nil {
			return Metrics{}, err
		}
	}
	return a.Metrics()
}
