package results

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/episode"
)

func TestReportJSON(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		rep  Report
		// has must appear in the JSON; nan lists the numbers that must read back as NaN.
		has []string
	}{
		{name: "complete", rep: Report{Name: "x", Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Finished: time.Date(2026, 1, 2, 4, 4, 5, 0, time.UTC),
			Lines: []LineResult{{Line: "301", RandomRate: 0.25, PAgentVsNone: 0.01, PAgentVsRandom: 0.5, AgentLightFraction: 0.25,
				Conditions: map[episode.Kind]Condition{Agent: {ClosestCM: []float64{1, 2}, MeanClosest: 1.5, SDClosest: 0.7, N: 2}}}},
			Cross: &CrossResult{Agents: []string{"a", "b"}, Animals: []string{"a", "b"}, ClosestCM: [][]float64{{1, 2}, {3, 4}}, N: [][]int{{1, 1}, {1, 1}},
				Columns: []CrossColumn{{Agent: "a", OwnBest: true, Rival: "b", P: 0.02}, {Agent: "b", Rival: "a", P: nan}}}},
			has: []string{`"p_agent_vs_none":0.01`, `"own_best":true,"rival":"b","p_own_vs_rival":0.02`, `"p_own_vs_rival":null`, `"mean":1.5`, `"closest_cm":[[1,2],[3,4]]`, `"finished":"2026-01-02T04:04:05Z"`}},
		{name: "unknown numbers are null", rep: Report{Name: "x", Status: "running",
			Lines: []LineResult{{Line: "301", RandomRate: nan, PAgentVsNone: nan, PAgentVsRandom: nan, AgentLightFraction: nan,
				Conditions: map[episode.Kind]Condition{None: {MeanClosest: nan, SDClosest: nan}}}},
			Cross: &CrossResult{Agents: []string{"a"}, Animals: []string{"a"}, ClosestCM: [][]float64{{nan}}, N: [][]int{{0}}}},
			has: []string{`"random_rate":null`, `"p_agent_vs_none":null`, `"p_agent_vs_random":null`, `"agent_light_fraction":null`, `"mean":null`, `"sd":null`, `"closest_cm":[[null]]`, `"status":"running"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.rep)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tc.has {
				if !strings.Contains(string(b), h) {
					t.Errorf("JSON lacks %s:\n%s", h, b)
				}
			}
			var back Report
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			b2, _ := json.Marshal(back)
			if string(b2) != string(b) {
				t.Errorf("round trip:\n%s\nwant\n%s", b2, b)
			}
			for i, l := range back.Lines {
				if math.IsNaN(l.PAgentVsNone) != math.IsNaN(tc.rep.Lines[i].PAgentVsNone) {
					t.Errorf("p value %v read back as %v", tc.rep.Lines[i].PAgentVsNone, l.PAgentVsNone)
				}
			}
		})
	}
}

func TestLoadOldReport(t *testing.T) {
	// report.json as the former single-process runner wrote it: no status, every number set.
	old := `{"name": "demo", "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T01:00:00Z",
 "lines": [{"line": "301", "conditions": {"agent": {"closest_cm": [0.5], "time_to_05cm_s": [null], "episode_ids": ["agent-301-000"],
 "mean": 0.5, "sd": 0, "n": 1, "light_fraction": [0.3], "lost_fraction": [0]}}, "random_rate": 0.3, "p_agent_vs_none": 0.02,
 "p_agent_vs_random": 0.04, "agent_light_fraction": 0.3, "updates": 100, "members": 2, "transitions_used": 900}],
 "cross": {"agents": ["301"], "animals": ["301"], "closest_cm": [[0.5]], "n": [[1]]}}`
	var rep Report
	if err := json.Unmarshal([]byte(old), &rep); err != nil {
		t.Fatal(err)
	}
	lr := rep.Lines[0]
	if rep.Status != "" || rep.Finished.IsZero() || lr.PAgentVsNone != 0.02 || lr.RandomRate != 0.3 || lr.Members != 2 || lr.TransitionsUsed != 900 ||
		lr.Conditions[Agent].MeanClosest != 0.5 || lr.Conditions[Agent].SDClosest != 0 || rep.Cross.ClosestCM[0][0] != 0.5 {
		t.Errorf("old report read as %+v", rep)
	}
}
