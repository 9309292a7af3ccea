package report

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/results"
)

// figureRE matches a figure of the report with its image.
var figureRE = regexp.MustCompile(`<figure id="fig-([^"]+)" data-kind="([^"]*)">\s*<h3>[^<]*</h3>\s*(?:<img src="data:image/png;base64,([^"]+)"|<p class="failed">)`)

// figuresIn returns the figures of an HTML report by id, checking that every image decodes.
func figuresIn(t *testing.T, html []byte) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range figureRE.FindAllSubmatch(html, -1) {
		id := string(m[1])
		if out[id] {
			t.Errorf("figure %s twice", id)
		}
		if len(m[3]) == 0 {
			t.Errorf("figure %s has no image", id)
			out[id] = false
			continue
		}
		b, err := base64.StdEncoding.DecodeString(string(m[3]))
		if err != nil {
			t.Fatalf("figure %s: %v", id, err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("figure %s: %v", id, err)
		}
		if img.Bounds().Dx() < 100 || img.Bounds().Dy() < 100 {
			t.Errorf("figure %s is %v", id, img.Bounds())
		}
		out[id] = true
	}
	return out
}

func expectedFigures(lines []string, cross bool) []string {
	var ids []string
	for _, l := range lines {
		p := "line-" + l + "-"
		ids = append(ids, p+KindClosest, p+KindSurvival, p+KindCurves, p+KindPolicyMap)
		for _, c := range []string{"agent", "none", "random"} {
			ids = append(ids, p+KindTrajectory+"-"+c, p+KindOverlay+"-"+c)
		}
	}
	ids = append(ids, KindEffectSizes)
	if cross {
		ids = append(ids, KindCross)
	}
	return ids
}

func TestFullRunHasEveryFigure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := synth{lines: []string{"301", "446"}, episodes: 4, frames: 300, members: 3, curvePts: 5, cross: []string{"301", "446"}, report: true, experiment: true, maps: true, saveEns: true}
	s.write(t, dir)
	path, err := Write(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, FileName) {
		t.Errorf("path %s", path)
	}
	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	figs := figuresIn(t, html)
	want := expectedFigures(s.lines, true)
	for _, id := range want {
		if !figs[id] {
			t.Errorf("figure %s missing from the report", id)
		}
	}
	if len(figs) != len(want) {
		t.Errorf("%d figures, want %d", len(figs), len(want))
	}
	h := string(html)
	for _, sub := range []string{
		`<td class="k">evaluate.episodes_per_condition</td><td class="k">4</td>`,
		`<td class="k">lines</td><td class="k">301, 446</td>`,
		`id="line-table"`, `<td class="k">301</td>`, `<td class="k">446</td>`, "report.json</td>",
		`id="light-use-table"`, `<td class="k">301</td><td class="k">–</td><td class="k">agent</td>`,
		"optoloop experiment synth", "finished 2026-11-26T21:30:00Z",
		"Own line best in 2 of 2 columns; two-sided Mann-Whitney of the own line&#39;s episodes against the closest other line&#39;s: 301&#39;s agents best on their own line (against 446&#39;s animals, p 0.012)",
	} {
		if !strings.Contains(h, sub) {
			t.Errorf("report lacks %q", sub)
		}
	}
	if strings.Contains(h, `id="missing"`) || strings.Contains(h, `id="problems"`) {
		t.Errorf("complete run reported missing parts or problems")
	}
	// The table shows report.json's means.
	run, err := results.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The table shows report.json's means and how many episodes reached 0.5 cm.
	var cells string
	conds := run.Report.Lines[0].Conditions
	for _, c := range conditions() {
		cells += "<td>" + meanSD(conds[c].ClosestCM) + "</td>"
	}
	for _, c := range conditions() {
		k := 0
		for _, tt := range conds[c].TimeTo05cmS {
			if tt != nil {
				k++
			}
		}
		cells += fmt.Sprintf("<td>%d/%d</td>", k, len(conds[c].TimeTo05cmS))
	}
	if !strings.Contains(h, cells) {
		t.Errorf("line 301's row lacks %s", cells)
	}
	if !strings.Contains(h, `<a href="#line-446">line 446</a>`) {
		t.Error("no link to line 446 in the contents")
	}
}

func TestEmptyRunFolder(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC) }
	rep, err := Build(context.Background(), dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rep.HTML, []byte("Report generated 2031-02-03T04:05:06Z")) {
		t.Error("the report is not stamped with the given clock")
	}
	if len(rep.Figures) != 0 {
		t.Errorf("%d figures from an empty folder", len(rep.Figures))
	}
	h := string(rep.HTML)
	for _, part := range []string{"experiment.yaml", "report.json", "episodes/", "lines/"} {
		if !strings.Contains(h, "<li>"+part+"</li>") {
			t.Errorf("missing part %q not named", part)
		}
	}
	if !strings.Contains(h, "still running, or it failed") || !strings.Contains(h, "No line has results yet") {
		t.Error("empty report does not say the experiment has no results")
	}
}

func TestPartialRunFolder(t *testing.T) {
	t.Parallel()
	// A running experiment: the experiment file, line 301's agent episodes and a curves file cut
	// short by the learner; no report.json, no policy map, no ensemble.
	dir := t.TempDir()
	s := synth{lines: []string{"301"}, episodes: 3, frames: 200, members: 2, curvePts: 3, experiment: true}
	s.write(t, dir)
	for _, c := range []string{"none", "random"} {
		ms, _ := filepath.Glob(filepath.Join(dir, "episodes", "301-"+c+"-*.json"))
		for _, m := range ms {
			os.Remove(m)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "lines", "301", "curves.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"member":0,"update":20`)
	f.Close()

	rep, err := Build(context.Background(), dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	figs := figuresIn(t, rep.HTML)
	for _, id := range []string{"line-301-closest", "line-301-survival", "line-301-trajectories-agent", "line-301-overlay-agent", "line-301-curves", "effect-sizes"} {
		if !figs[id] {
			t.Errorf("figure %s missing", id)
		}
	}
	for _, id := range []string{"line-301-policy-map", "line-301-trajectories-none", "cross"} {
		if figs[id] {
			t.Errorf("figure %s drawn without data", id)
		}
	}
	h := string(rep.HTML)
	for _, part := range []string{"report.json", "lines/301/policy_map.json", "lines/301/ensemble/", "none episodes of line 301", "random episodes of line 301"} {
		if !strings.Contains(h, "<li>"+part+"</li>") {
			t.Errorf("missing part %q not named", part)
		}
	}
	if strings.Contains(h, "<li>experiment.yaml</li>") || strings.Contains(h, "lines/301/curves.jsonl</li>") {
		t.Error("a part that exists is named missing")
	}
	if !strings.Contains(h, "episode files</td>") {
		t.Error("table does not say its numbers come from episode files")
	}
}

func TestCorruptFilesAreNamed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := synth{lines: []string{"73"}, episodes: 2, frames: 100, members: 1, curvePts: 2, report: true, experiment: true, maps: true}
	s.write(t, dir)
	os.WriteFile(filepath.Join(dir, "episodes", "zz-broken.json"), []byte("{not json"), 0o644)
	os.WriteFile(filepath.Join(dir, "lines", "73", "policy_map.json"), []byte("[1,2"), 0o644)
	os.WriteFile(filepath.Join(dir, "lines", "73", "curves.jsonl"), []byte("{\"member\":0}\ngarbage\n{\"member\":1}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "experiment.yaml"), []byte("name: [unclosed\n"), 0o644)
	noPlate := results.Episode{ID: "73-agent-nop", Condition: results.Agent, Line: "73", ClosestCM: 1, Frames: []results.Frame{{X: 1, Y: 1, OK: true}, {X: 2, Y: 2, OK: true}}}
	if err := results.WriteEpisode(dir, &noPlate); err != nil {
		t.Fatal(err)
	}
	rep, err := Build(context.Background(), dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	probs := strings.Join(rep.Problems, "\n")
	for _, name := range []string{"zz-broken.json", "lines/73/policy_map.json", "lines/73/curves.jsonl", "73-agent-nop.json: no plate geometry"} {
		if !strings.Contains(probs, name) {
			t.Errorf("problem with %s not reported: %q", name, probs)
		}
	}
	h := string(rep.HTML)
	if !strings.Contains(h, `id="problems"`) || !strings.Contains(h, "experiment.yaml: ") {
		t.Error("problems not shown in the report")
	}
	figs := figuresIn(t, rep.HTML)
	if !figs["line-73-closest"] || !figs["line-73-trajectories-agent"] {
		t.Errorf("good parts dropped along with the bad: %v", figs)
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	if _, err := Write(context.Background(), file); err == nil {
		t.Error("a file accepted as run folder")
	}
	if _, err := Write(context.Background(), filepath.Join(dir, "absent")); err == nil {
		t.Error("absent folder accepted")
	}
	run := t.TempDir()
	synth{lines: []string{"301"}, episodes: 2, frames: 50, report: true}.write(t, run)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, run, DefaultConfig()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled build: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Resamples = 5
	if _, err := Build(context.Background(), run, cfg); err == nil {
		t.Error("5 resamples accepted")
	}
}

func TestCrossFromEpisodesWhileRunning(t *testing.T) {
	// No report.json yet: the cross-evaluation comes from the cross episodes, with each line's
	// own agent episodes on the diagonal.
	dir := t.TempDir()
	ep := func(id string, cond episode.Kind, line, agentLine string, closest float64) {
		e := results.Episode{ID: id, Condition: cond, Line: line, AgentLine: agentLine, Seconds: 1, PxPerCM: 540,
			PlateCenter: [2]float64{1080, 960}, PlateRadius: 970, Target: [2]float64{1890, 960}, ClosestCM: closest,
			Frames: []results.Frame{{X: 1080, Y: 960, OK: true}, {T: 0.33, X: 1081, Y: 960, OK: true}}}
		if err := results.WriteEpisode(dir, &e); err != nil {
			t.Fatal(err)
		}
	}
	ep("a1", results.Agent, "281", "", 0.2)
	ep("a2", results.Agent, "281", "", 0.4)
	ep("x1", results.Cross, "281", "301", 1.0)
	ep("x2", results.Cross, "281", "301", 1.4)
	ep("x3", results.Cross, "301", "281", 0.9)
	r, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	animals, agents, vals, ns, ok := r.cross()
	if !ok || strings.Join(animals, ",") != "281,301" || strings.Join(agents, ",") != "281,301" {
		t.Fatalf("cross %v x %v (ok %v)", animals, agents, ok)
	}
	near := func(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }
	if !near(vals[0][0], 0.3) || ns[0][0] != 2 || !near(vals[0][1], 1.2) || ns[0][1] != 2 || !near(vals[1][0], 0.9) || ns[1][1] != 0 || vals[1][1] == vals[1][1] {
		t.Errorf("cross values %v, n %v", vals, ns)
	}
	rep, err := Build(context.Background(), dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !figuresIn(t, rep.HTML)["cross"] {
		t.Error("no cross-evaluation figure")
	}
}

func TestTrackFollowsEpisode(t *testing.T) {
	tt := 2.0
	e := results.Episode{ID: "e", ClosestCM: 0.7, TimeTo05cmS: &tt, PxPerCM: 500, PlateCenter: [2]float64{10, 20}, PlateRadius: 900, Target: [2]float64{30, 40},
		Frames: []results.Frame{{T: 0, X: 1, Y: 2, OK: true}, {T: 1, X: 3, Y: 4, Light: true}}}
	tr := Track(&e)
	if tr.Plate.PxPerCM != 500 || tr.Plate.CenterX != 10 || tr.Plate.CenterY != 20 || tr.Plate.Radius != 900 || tr.Target != e.Target {
		t.Errorf("plate %+v target %v", tr.Plate, tr.Target)
	}
	if len(tr.Frames) != 2 || tr.Frames[1].X != 3 || tr.Frames[1].Y != 4 || !tr.Frames[1].Light || tr.Frames[1].OK || !tr.Frames[0].OK || tr.Frames[1].T != 1 {
		t.Errorf("frames %+v", tr.Frames)
	}
	if tr.Label != "e: 0.70 cm" {
		t.Errorf("label %q", tr.Label)
	}
}

func TestExperimentStatus(t *testing.T) {
	t.Parallel()
	started := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	finished := started.Add(90 * time.Minute)
	nan := math.NaN()
	failedEp := results.FailedItem{ID: "tiny-1.9", N: 9, Kind: episode.KindNone, Line: "301", Attempts: 3,
		Reasons: []string{"attempt 1 (w1, lease 4): arena failed: camera stopped", "attempt 2 (w2, lease 9): arena failed: camera stopped", "attempt 3 (w1, lease 12): lease expired"}}
	failedTask := results.FailedItem{ID: "tiny-1.5", N: 5, Kind: episode.KindTrain, Line: "446", Attempts: 3, Reasons: []string{"a", "b", "learner crashed"}}
	partialLine := results.LineResult{Line: "301", RandomRate: nan, PAgentVsNone: nan, PAgentVsRandom: nan, AgentLightFraction: 0.25,
		Conditions: map[episode.Kind]results.Condition{episode.KindAgent: {ClosestCM: []float64{0.3, 0.4}, TimeTo05cmS: []*float64{nil, nil}, EpisodeIDs: []string{"tiny-1.6", "tiny-1.7"}, MeanClosest: 0.35, SDClosest: 0.07, N: 2}}}
	tests := []struct {
		name      string
		rep       results.Report
		want, not []string
	}{
		{name: "done", rep: results.Report{Name: "tiny", Started: started, Finished: finished, Status: plan.StatusDone, Phase: plan.PhaseDone, Items: &results.ItemCounts{Total: 30, Done: 30}},
			want: []string{"<title>optoloop experiment tiny</title>", "finished 2026-03-01T11:30:00Z (1h30m0s)"},
			not:  []string{`id="experiment-failed"`, `id="experiment-running"`, `id="failed-table"`, "not a finished result"}},
		{name: "done with a failed episode", rep: results.Report{Name: "tiny", Started: started, Finished: finished, Status: plan.StatusDone, Failed: []results.FailedItem{failedEp}},
			want: []string{"finished 2026-03-01T11:30:00Z", `id="failed-table"`, `<a href="#failed-items">failed items</a>`,
				`<td class="k">tiny-1.9</td><td class="k">none</td><td class="k">301</td><td class="k">–</td><td>3</td>`, "camera stopped<br>attempt 2", "attempt 3 (w1, lease 12): lease expired"},
			not: []string{`id="experiment-failed"`, `id="experiment-running"`}},
		{name: "failed", rep: results.Report{Name: "tiny", Started: started, Status: plan.StatusFailed, Phase: plan.PhaseTrain,
			Reason: "training task 5 of line 446 failed: learner crashed", Failed: []results.FailedItem{failedTask}, Lines: []results.LineResult{partialLine}},
			want: []string{"<title>optoloop experiment tiny (failed)</title>", `id="experiment-failed"`, "<h2>This experiment failed</h2>",
				"Reason: training task 5 of line 446 failed: learner crashed.", "They are not a finished result.", "started 2026-03-01T10:00:00Z, FAILED (phase train)",
				`<td class="k">tiny-1.5</td><td class="k">train</td><td class="k">446</td>`, "finish time in report.json (the experiment failed)"},
			not: []string{"finished 2026", `id="experiment-running"`}},
		{name: "failed, with a finish time", rep: results.Report{Name: "tiny", Started: started, Finished: finished, Status: plan.StatusFailed, Reason: "cancelled"},
			want: []string{`id="experiment-failed"`, "Reason: cancelled.", "started 2026-03-01T10:00:00Z, FAILED.<br>"},
			not:  []string{"finished 2026"}},
		{name: "running", rep: results.Report{Name: "tiny", Started: started, Status: plan.StatusRunning, Phase: plan.PhaseEvaluate,
			Items: &results.ItemCounts{Total: 30, Done: 12, Failed: 1, Open: 17}, Failed: []results.FailedItem{failedEp}, Lines: []results.LineResult{partialLine}},
			want: []string{"<title>optoloop experiment tiny (still running)</title>", `id="experiment-running"`, "<h2>This experiment is still running</h2>",
				"phase evaluate, 12 of 30 items done, 1 failed, 17 open.", "They are not a finished result.", "started 2026-03-01T10:00:00Z, still running",
				`<td class="k">tiny-1.9</td>`, "finish time in report.json (the experiment is still running)"},
			not: []string{"finished 2026", `id="experiment-failed"`}},
		{name: "older folder, not finished", rep: results.Report{Name: "tiny", Started: started},
			want: []string{"started 2026-03-01T10:00:00Z, not finished", "finish time in report.json (the experiment is still running or failed)"},
			not:  []string{`id="experiment-failed"`, `id="experiment-running"`, "finished 2026"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := results.WriteJSON(filepath.Join(dir, results.ReportFile), &tc.rep); err != nil {
				t.Fatal(err)
			}
			rep, err := Build(context.Background(), dir, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			h := string(rep.HTML)
			for _, s := range tc.want {
				if !strings.Contains(h, s) {
					t.Errorf("report lacks %q", s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(h, s) {
					t.Errorf("report says %q", s)
				}
			}
		})
	}
}
