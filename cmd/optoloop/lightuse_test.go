package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/results"
)

func TestLightUseCommand(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runReportCmd(t, "light-use", dir); err == nil || !strings.Contains(err.Error(), "no episode") {
		t.Errorf("empty run folder: error %v, want one naming the missing tracks", err)
	}
	// An agent episode of line 301: 20 frames still at the plate centre, facing away from the
	// target (body angle pi, target along +x), the light on in every frame.
	e := results.Episode{ID: "agent-301-000", Condition: results.Agent, Line: "301", AgentLine: "301", Seconds: 20. / 3,
		PxPerCM: 540, PlateCenter: [2]float64{1080, 960}, PlateRadius: 970, Target: [2]float64{1890, 960}}
	for i := 0; i < 20; i++ {
		e.Frames = append(e.Frames, results.Frame{T: float64(i) / 3, X: 1080, Y: 960, Body: 3.14159, Light: true, OK: true})
	}
	if err := results.WriteEpisode(dir, &e); err != nil {
		t.Fatal(err)
	}
	out, _, err := runReportCmd(t, "light-use", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "LINE") {
		t.Fatalf("output %q, want a header and one row", out)
	}
	// 6 frames counted (14..19), all still, facing away, lit.
	want := []string{"301", "301", "agent", "1", "1.00", "1.00", "-", "-", "-", "-", "1.00", "-", "-", "-"}
	if got := strings.Fields(lines[1]); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("row %q, want %q", got, want)
	}
	out, _, err = runReportCmd(t, "light-use", "--json", "--window", "5", dir)
	if err != nil {
		t.Fatal(err)
	}
	var use []results.LightUse
	if err := json.Unmarshal([]byte(out), &use); err != nil {
		t.Fatal(err)
	}
	if len(use) != 1 || use[0].Still[0] != (results.LightUseCell{On: 16, Frames: 16}) {
		t.Errorf("json %+v, want 16 still lit frames facing away with a 5-frame window", use)
	}
	if _, _, err := runReportCmd(t, "light-use", "--window", "1", dir); err == nil {
		t.Error("a one-frame window was accepted")
	}
}
