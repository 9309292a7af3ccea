package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/agentlib/nn"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/results"
)

func runReportCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	// A run that has only started: an episode and nothing else.
	e := results.Episode{ID: "ep-1", Condition: results.Agent, Line: "301", Seconds: 1, PxPerCM: 540, PlateCenter: [2]float64{1080, 960}, PlateRadius: 970, Target: [2]float64{1890, 960},
		ClosestCM: 1.2, Frames: []results.Frame{{T: 0, X: 1080, Y: 960, OK: true}, {T: 1. / 3, X: 1082, Y: 960, OK: true, Light: true}, {T: 2. / 3, X: 1084, Y: 961, OK: true}}}
	if err := results.WriteEpisode(dir, &e); err != nil {
		t.Fatal(err)
	}
	out, _, err := runReportCmd(t, "report", dir)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "report.html")
	if strings.TrimSpace(out) != want {
		t.Errorf("printed %q, want %q", out, want)
	}
	html, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"<li>report.json</li>", `id="fig-line-301-trajectories-agent"`, "data:image/png;base64,"} {
		if !strings.Contains(string(html), s) {
			t.Errorf("report lacks %q", s)
		}
	}
	if _, _, err := runReportCmd(t, "report", filepath.Join(dir, "absent")); err == nil {
		t.Error("absent run folder accepted")
	}
	if _, _, err := runReportCmd(t, "report"); err == nil {
		t.Error("no run folder accepted")
	}
}

// saveRandomEnsemble saves an untrained ensemble of two reference actors (Xavier init from
// PCG(seed, stream)) to dir.
func saveRandomEnsemble(t *testing.T, dir string, seed, stream uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, stream))
	arch := policy.ReferenceArch()
	var ms []*nn.MLP
	for range 2 {
		m := nn.New(arch.Sizes...)
		m.InitXavier(rng)
		ms = append(ms, m)
	}
	e, err := policy.NewEnsemble(arch, ms...)
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.SaveDir(dir, e); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyMapCommand(t *testing.T) {
	dir := t.TempDir()
	ens := filepath.Join(dir, "ensemble")
	saveRandomEnsemble(t, ens, 4, 5)
	pngPath, jsonPath := filepath.Join(dir, "map.png"), filepath.Join(dir, "map.json")
	out, _, err := runReportCmd(t, "policy-map", "--ensemble", ens, "--out", pngPath, "--json", jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != pngPath {
		t.Errorf("printed %q", out)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("map.png: %v", err)
	}
	var m policy.Map
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Members != 2 || len(m.POn) != 9 || len(m.POn[0][0]) != 36 {
		t.Errorf("map json: %d members, %d rows", m.Members, len(m.POn))
	}
	svgPath := filepath.Join(dir, "map.svg")
	if _, _, err := runReportCmd(t, "policy-map", "--ensemble", ens, "--out", svgPath); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(svgPath); !bytes.Contains(b, []byte("<svg")) {
		t.Error("map.svg is not SVG")
	}
	for _, args := range [][]string{
		{"policy-map", "--ensemble", ens, "--out", filepath.Join(dir, "map.gif")},
		{"policy-map", "--ensemble", filepath.Join(dir, "none"), "--out", filepath.Join(dir, "x.png")},
		{"policy-map", "--out", filepath.Join(dir, "y.png")},
	} {
		if _, _, err := runReportCmd(t, args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	for _, name := range []string{"map.gif", "x.png", "y.png"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s written by a failing command", name)
		}
	}
}

func TestEnsembleName(t *testing.T) {
	for in, want := range map[string]string{
		"runs/x/lines/446/ensemble":  "line 446",
		"runs/x/lines/446/ensemble/": "line 446",
		"/tmp/my-ens":                "ensemble my-ens",
		"ensemble":                   "ensemble ensemble",
	} {
		if got := ensembleName(in); got != want {
			t.Errorf("ensembleName(%q) = %q, want %q", in, got, want)
		}
	}
}
