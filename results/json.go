package results

import (
	"bytes"
	"encoding/json"
	"math"
)

// A report of an experiment that is still running, or failed, lacks numbers: a p value with an
// empty condition, a mean of no episodes. They are NaN in Go; JSON has no NaN, so report.json
// writes them as null and reads null back as NaN. Finite numbers are written as encoding/json
// writes a float64.

// number is a float64 that is null in JSON when it is not finite.
type number float64

// MarshalJSON writes null for NaN and infinities.
func (f number) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads null as NaN.
func (f *number) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*f = number(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = number(v)
	return nil
}

// lineJSON is LineResult as report.json holds it.
type lineJSON struct {
	lineFields
	RandomRate         number `json:"random_rate"`
	PAgentVsNone       number `json:"p_agent_vs_none"`
	PAgentVsRandom     number `json:"p_agent_vs_random"`
	AgentLightFraction number `json:"agent_light_fraction"`
}

// lineFields has LineResult's fields without its methods; lineJSON's own fields hide the
// float64 ones of the same names.
type lineFields LineResult

// MarshalJSON writes the numbers that are not known (NaN) as null.
func (l LineResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(lineJSON{lineFields(l), number(l.RandomRate), number(l.PAgentVsNone), number(l.PAgentVsRandom), number(l.AgentLightFraction)})
}

// UnmarshalJSON reads null numbers as NaN; numbers absent from the JSON are NaN too.
func (l *LineResult) UnmarshalJSON(b []byte) error {
	nan := number(math.NaN())
	w := lineJSON{RandomRate: nan, PAgentVsNone: nan, PAgentVsRandom: nan, AgentLightFraction: nan}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*l = LineResult(w.lineFields)
	l.RandomRate, l.PAgentVsNone, l.PAgentVsRandom, l.AgentLightFraction = float64(w.RandomRate), float64(w.PAgentVsNone), float64(w.PAgentVsRandom), float64(w.AgentLightFraction)
	return nil
}

type conditionJSON struct {
	conditionFields
	MeanClosest number `json:"mean"`
	SDClosest   number `json:"sd"`
}

type conditionFields Condition

// MarshalJSON writes the mean and SD of no episodes (NaN) as null.
func (c Condition) MarshalJSON() ([]byte, error) {
	return json.Marshal(conditionJSON{conditionFields(c), number(c.MeanClosest), number(c.SDClosest)})
}

// UnmarshalJSON reads a null mean or SD as NaN.
func (c *Condition) UnmarshalJSON(b []byte) error {
	nan := number(math.NaN())
	w := conditionJSON{MeanClosest: nan, SDClosest: nan}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Condition(w.conditionFields)
	c.MeanClosest, c.SDClosest = float64(w.MeanClosest), float64(w.SDClosest)
	return nil
}

type crossJSON struct {
	crossFields
	ClosestCM [][]number `json:"closest_cm"`
}

type crossFields CrossResult

// MarshalJSON writes the cells without episodes (NaN) as null.
func (c CrossResult) MarshalJSON() ([]byte, error) {
	w := crossJSON{crossFields: crossFields(c)}
	if c.ClosestCM != nil {
		w.ClosestCM = make([][]number, len(c.ClosestCM))
	}
	for i, row := range c.ClosestCM {
		w.ClosestCM[i] = make([]number, len(row))
		for j, v := range row {
			w.ClosestCM[i][j] = number(v)
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads null cells as NaN.
func (c *CrossResult) UnmarshalJSON(b []byte) error {
	var w crossJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = CrossResult(w.crossFields)
	c.ClosestCM = nil
	if w.ClosestCM != nil {
		c.ClosestCM = make([][]float64, len(w.ClosestCM))
	}
	for i, row := range w.ClosestCM {
		c.ClosestCM[i] = make([]float64, len(row))
		for j, v := range row {
			c.ClosestCM[i][j] = float64(v)
		}
	}
	return nil
}

type transferJSON struct {
	transferFields
	FoodDistanceCM number `json:"food_distance_cm"`
	PSuccess       number `json:"p_success"`
	PTimeToFood    number `json:"p_time_to_food"`
}

type transferFields TransferResult

// MarshalJSON writes the numbers that are not known (NaN) as null.
func (r TransferResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(transferJSON{transferFields(r), number(r.FoodDistanceCM), number(r.PSuccess), number(r.PTimeToFood)})
}

// UnmarshalJSON reads null numbers as NaN; numbers absent from the JSON are NaN too.
func (r *TransferResult) UnmarshalJSON(b []byte) error {
	nan := number(math.NaN())
	w := transferJSON{FoodDistanceCM: nan, PSuccess: nan, PTimeToFood: nan}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = TransferResult(w.transferFields)
	r.FoodDistanceCM, r.PSuccess, r.PTimeToFood = float64(w.FoodDistanceCM), float64(w.PSuccess), float64(w.PTimeToFood)
	return nil
}

type transferConditionJSON struct {
	transferConditionFields
	SuccessRate       number `json:"success_rate"`
	MedianTimeToFoodS number `json:"median_time_to_food_s"`
	MeanClosestCM     number `json:"mean_closest_cm"`
}

type transferConditionFields TransferCondition

// MarshalJSON writes the numbers that are not known (NaN) as null.
func (c TransferCondition) MarshalJSON() ([]byte, error) {
	return json.Marshal(transferConditionJSON{transferConditionFields(c), number(c.SuccessRate), number(c.MedianTimeToFoodS), number(c.MeanClosestCM)})
}

// UnmarshalJSON reads null numbers as NaN; numbers absent from the JSON are NaN too.
func (c *TransferCondition) UnmarshalJSON(b []byte) error {
	nan := number(math.NaN())
	w := transferConditionJSON{SuccessRate: nan, MedianTimeToFoodS: nan, MeanClosestCM: nan}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = TransferCondition(w.transferConditionFields)
	c.SuccessRate, c.MedianTimeToFoodS, c.MeanClosestCM = float64(w.SuccessRate), float64(w.MedianTimeToFoodS), float64(w.MeanClosestCM)
	return nil
}

// columnFields has CrossColumn's fields without its methods.
type columnFields CrossColumn

type columnJSON struct {
	columnFields
	P number `json:"p_own_vs_rival"`
}

// MarshalJSON writes an unknown p (NaN) as null.
func (c CrossColumn) MarshalJSON() ([]byte, error) {
	return json.Marshal(columnJSON{columnFields(c), number(c.P)})
}

// UnmarshalJSON reads a null or absent p as NaN.
func (c *CrossColumn) UnmarshalJSON(b []byte) error {
	w := columnJSON{P: number(math.NaN())}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = CrossColumn(w.columnFields)
	c.P = float64(w.P)
	return nil
}
