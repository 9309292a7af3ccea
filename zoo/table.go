package zoo

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/optoloop/optoloop/episode"

	"github.com/optoloop/optoloop/results"
)

// The criteria for a zoo run (issue 15, "Done when").
const (
	// Alpha is the significance level of every comparison.
	Alpha = 0.05
	// BeatBothShare is the share of hand-drivable lines on which the agent must beat no light
	// and random light.
	BeatBothShare = 0.8
	// ReachShare is the share of hand-drivable lines on which the agent must reach
	// ReachFraction of the best hand policy's improvement over no light.
	ReachShare    = 0.7
	ReachFraction = 0.7
)

// Row is one line of the zoo table. Agent, none and random are the experiment's evaluation
// (its report); hand is the bound's chosen policy on its own evaluation episodes, with its own
// no-light episodes behind PHandVsNone and HandGainCM.
type Row struct {
	Line   string `json:"line"`
	Family Family `json:"family"`
	Split  Split  `json:"split"`
	// AgentCM, NoneCM and RandomCM are the experiment's mean closest approaches (NaN: no
	// episodes); PAgentVsNone and PAgentVsRandom its p values.
	AgentCM        float64 `json:"agent_cm"`
	NoneCM         float64 `json:"none_cm"`
	RandomCM       float64 `json:"random_cm"`
	PAgentVsNone   float64 `json:"p_agent_vs_none"`
	PAgentVsRandom float64 `json:"p_agent_vs_random"`
	// Hand is the best hand policy's name; HandCM its mean closest approach, HandNoneCM the
	// bound's own no-light mean, PHandVsNone their p value.
	Hand        string  `json:"hand"`
	HandCM      float64 `json:"hand_cm"`
	HandNoneCM  float64 `json:"hand_none_cm"`
	PHandVsNone float64 `json:"p_hand_vs_none"`
	// HandDrives: the hand policy beats no light (p < Alpha). AgentBeatsBoth: the agent beats
	// no light and random light (each p < Alpha). AgentGainShare is the agent's improvement
	// over no light (NoneCM - AgentCM) as a share of the hand policy's (HandNoneCM - HandCM).
	HandDrives     bool    `json:"hand_drives"`
	AgentBeatsBoth bool    `json:"agent_beats_both"`
	AgentBeatsNone bool    `json:"agent_beats_none"`
	AgentGainShare float64 `json:"agent_gain_share"`
}

// Criteria are the criteria evaluated on a table.
type Criteria struct {
	// HandLines is the number of lines where the best hand policy beats no light.
	HandLines int `json:"hand_lines"`
	// BeatBoth and Reach count, among them, the lines where the agent beats both baselines
	// and where it reaches ReachFraction of the hand policy's improvement.
	BeatBoth int `json:"beat_both"`
	Reach    int `json:"reach"`
	// Controls is the number of no-effect lines, ControlsDriven how many of them the agent
	// beat no light on (p < Alpha).
	Controls       int  `json:"controls"`
	ControlsDriven int  `json:"controls_driven"`
	Met            bool `json:"met"`
}

// Table is the zoo table: one row per line and the criteria.
type Table struct {
	Rows     []Row    `json:"rows"`
	Criteria Criteria `json:"criteria"`
}

// Compare joins an experiment's report with the bounds of its lines. Every bound's line must be
// in the report; z names the lines' families and splits (lines it does not hold have none).
func Compare(rep *results.Report, bounds []Bound, z *Zoo) (Table, error) {
	var t Table
	byLine := map[string]results.LineResult{}
	for _, l := range rep.Lines {
		byLine[l.Line] = l
	}
	for _, b := range bounds {
		lr, ok := byLine[b.Line]
		if !ok {
			return Table{}, fmt.Errorf("zoo: table: line %s has a bound but no result in the report", b.Line)
		}
		mean := func(k episode.Kind) float64 {
			if c, ok := lr.Conditions[k]; ok && c.N > 0 {
				return c.MeanClosest
			}
			return math.NaN()
		}
		r := Row{Line: b.Line,
			AgentCM: mean(results.Agent), NoneCM: mean(results.None), RandomCM: mean(results.Random),
			PAgentVsNone: lr.PAgentVsNone, PAgentVsRandom: lr.PAgentVsRandom,
			Hand: b.Best.Name, HandCM: b.Hand.Mean, HandNoneCM: b.None.Mean, PHandVsNone: b.PHandVsNone,
		}
		if e, ok := z.Entry(b.Line); ok {
			r.Family, r.Split = e.Family, e.Split
		}
		r.HandDrives = b.BeatsNone(Alpha)
		r.AgentBeatsNone = r.AgentCM < r.NoneCM && r.PAgentVsNone < Alpha
		r.AgentBeatsBoth = r.AgentBeatsNone && r.AgentCM < r.RandomCM && r.PAgentVsRandom < Alpha
		r.AgentGainShare = math.NaN()
		if g := r.HandNoneCM - r.HandCM; g > 0 {
			r.AgentGainShare = (r.NoneCM - r.AgentCM) / g
		}
		t.Rows = append(t.Rows, r)
		c := &t.Criteria
		if r.Family == Control {
			c.Controls++
			if r.AgentBeatsNone {
				c.ControlsDriven++
			}
		}
		if r.HandDrives {
			c.HandLines++
			if r.AgentBeatsBoth {
				c.BeatBoth++
			}
			if r.AgentGainShare >= ReachFraction {
				c.Reach++
			}
		}
	}
	c := &t.Criteria
	h := float64(c.HandLines)
	c.Met = c.HandLines > 0 && float64(c.BeatBoth) >= BeatBothShare*h && float64(c.Reach) >= ReachShare*h && c.ControlsDriven == 0
	return t, nil
}

// num is a float64 that is null in JSON when it is not finite (a line without agent episodes,
// a gain share without a hand improvement), as report.json writes such numbers.
type num float64

func (f num) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

// MarshalJSON writes the row's non-finite numbers as null.
func (r Row) MarshalJSON() ([]byte, error) {
	type fields Row
	return json.Marshal(struct {
		fields
		AgentCM        num `json:"agent_cm"`
		NoneCM         num `json:"none_cm"`
		RandomCM       num `json:"random_cm"`
		PAgentVsNone   num `json:"p_agent_vs_none"`
		PAgentVsRandom num `json:"p_agent_vs_random"`
		AgentGainShare num `json:"agent_gain_share"`
	}{fields(r), num(r.AgentCM), num(r.NoneCM), num(r.RandomCM), num(r.PAgentVsNone), num(r.PAgentVsRandom), num(r.AgentGainShare)})
}
