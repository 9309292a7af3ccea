package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/zoo"
)

func TestZooBadInput(t *testing.T) {
	dir := t.TempDir()
	lines := filepath.Join(dir, "zoo.yaml")
	if _, err := runCmd(t, "zoo", "lines", "--lines", "6", "--seed", "2", "--out", lines); err != nil {
		t.Fatal(err)
	}
	exp := filepath.Join(dir, "exp.yaml")
	if err := os.WriteFile(exp, []byte("name: x\nlines: [\"446\"]\nevaluate: {episodes_per_condition: -1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badLines := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badLines, []byte("lines:\n  - code: \"9\"\n    name: x\n    opsin: ChR2\n    sign: excitatory\n    neurons: [AIY]\n    wavelength_nm: 467\n    response: {speed_factor: 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("name: x\nlines: [\"446\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	used := filepath.Join(dir, "used")
	if err := os.MkdirAll(used, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bounds.json", "zoo.json"} {
		if err := os.WriteFile(filepath.Join(used, f), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"lines: none", []string{"zoo", "lines", "--lines", "0", "--out", out}, "--lines 0 must be within 1-1000"},
		{"lines: too many", []string{"zoo", "lines", "--lines", "1001", "--out", out}, "--lines 1001"},
		{"lines: bad seed", []string{"zoo", "lines", "--seed", "-1", "--out", out}, "invalid argument"},
		{"bounds: no lines", []string{"zoo", "bounds", "--out", out}, "no lines: name them with --line or give --lines-file"},
		{"bounds: unknown line", []string{"zoo", "bounds", "--lines-file", lines, "--line", "Z9-0", "--out", out}, `unknown line "Z9-0"`},
		{"bounds: missing lines file", []string{"zoo", "bounds", "--lines-file", filepath.Join(dir, "nope.yaml"), "--out", out}, "lines file"},
		{"bounds: bad lines file", []string{"zoo", "bounds", "--lines-file", badLines, "--out", out}, `sources.neurons: missing`},
		{"bounds: negative episodes", []string{"zoo", "bounds", "--line", "446", "--episodes", "-2", "--out", out}, "--episodes -2"},
		{"bounds: negative seconds", []string{"zoo", "bounds", "--line", "446", "--seconds", "-1", "--out", out}, "--seconds -1"},
		{"bounds: negative parallel", []string{"zoo", "bounds", "--line", "446", "--parallel", "-1", "--out", out}, "--parallel -1"},
		{"bounds: bad experiment", []string{"zoo", "bounds", "--line", "446", "--experiment", exp, "--out", out}, "evaluate.episodes_per_condition"},
		{"bounds: folder used", []string{"zoo", "bounds", "--line", "446", "--out", used}, "already holds bounds.json"},
		{"run: bad split", []string{"zoo", "run", "--split", "test", "--out", out}, `split "test" must be train, heldout or all`},
		{"run: no lines", []string{"zoo", "run", "--lines", "0", "--out", out}, "--lines 0"},
		{"run: empty split", []string{"zoo", "run", "--lines", "1", "--split", "heldout", "--out", out}, "holds no lines"},
		{"run: missing experiment", []string{"zoo", "run", filepath.Join(dir, "nope.yaml"), "--out", out}, "experiment file"},
		{"run: bad experiment", []string{"zoo", "run", exp, "--out", out}, "evaluate.episodes_per_condition"},
		{"run: folder used", []string{"zoo", "run", good, "--out", used}, "already holds zoo.json"},
		{"run: two files", []string{"zoo", "run", exp, exp, "--out", out}, "accepts at most 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, err := runCmd(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if stdout != "" {
				t.Fatalf("wrote output on bad input: %q", stdout)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("bad input wrote %s", out)
			}
		})
	}
}

// TestZooLinesAndBounds: zoo lines writes the generator's file (to a file or standard output),
// and zoo bounds on it prints the table and writes bounds.json.
func TestZooLinesAndBounds(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "zoo.yaml")
	if _, err := runCmd(t, "zoo", "lines", "--lines", "6", "--seed", "4", "--out", file); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	z, err := zoo.Generate(6, 4)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := z.YAML()
	stdout, err := runCmd(t, "zoo", "lines", "--lines", "6", "--seed", "4")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || stdout != string(want) {
		t.Fatal("zoo lines does not write the generator's zoo")
	}
	out := filepath.Join(dir, "bounds")
	stdout, err = runCmd(t, "zoo", "bounds", "--lines-file", file, "--line", "Z4-5", "--line", "Z4-0", "--seed", "3", "--episodes", "2", "--seconds", "15", "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"BEST HAND POLICY", "Z4-5", "control", "Z4-0", "wrote " + filepath.Join(out, "bounds.json")} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	var bf struct {
		Bounds   []zoo.Bound      `json:"bounds"`
		Policies []zoo.HandPolicy `json:"policies"`
	}
	b, err := os.ReadFile(filepath.Join(out, "bounds.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &bf); err != nil {
		t.Fatal(err)
	}
	if len(bf.Bounds) != 2 || bf.Bounds[0].Line != "Z4-5" || bf.Bounds[0].Hand.N != 2 || len(bf.Bounds[0].Selection) != len(zoo.HandFamily()) || len(bf.Policies) != len(zoo.HandFamily()) {
		t.Fatalf("bounds.json: %s", b)
	}
}

// TestZooRun runs a tiny experiment on a two-line zoo's held-out split through the experiment
// engine, bounds it and checks the table.
func TestZooRun(t *testing.T) {
	dir := t.TempDir()
	exp := filepath.Join(dir, "exp.yaml")
	spec := `name: tiny
lines: ["73", "446"]
collect: {hours_per_line: 0.02, episode_seconds: 36}
train: {ensemble_size: 1, updates: 10, checkpoint_every: 10}
evaluate: {episodes_per_condition: 2, episode_seconds: 15}
cross_evaluate: {lines: ["73", "446"]}
`
	if err := os.WriteFile(exp, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "zoo")
	stdout, err := runCmd(t, "zoo", "run", "--lines", "2", "--seed", "6", "--split", "heldout", exp, "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"AGENT cm", "Z6-1", "lines where the best hand policy beats no light", "criteria: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "Z6-0") {
		t.Errorf("the training split's line ran:\n%s", stdout)
	}
	var tab struct {
		Split zoo.Split `json:"split"`
		Rows  []struct {
			Line    string   `json:"line"`
			AgentCM *float64 `json:"agent_cm"`
			HandCM  float64  `json:"hand_cm"`
		} `json:"rows"`
	}
	b, err := os.ReadFile(filepath.Join(out, "zoo.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &tab); err != nil {
		t.Fatal(err)
	}
	if tab.Split != zoo.SplitHeldout || len(tab.Rows) != 1 || tab.Rows[0].Line != "Z6-1" || tab.Rows[0].AgentCM == nil {
		t.Fatalf("zoo.json: %s", b)
	}
	for _, f := range []string{"lines.yaml", "bounds.json", filepath.Join("experiment", "report.json")} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	// A second run with agents that see the light, then zoo select between the two.
	exp2 := filepath.Join(dir, "exp2.yaml")
	if err := os.WriteFile(exp2, []byte(strings.Replace(spec, "checkpoint_every: 10}", "checkpoint_every: 10, observation: light}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(dir, "zoo-light")
	if _, err := runCmd(t, "zoo", "run", "--lines", "2", "--seed", "6", "--split", "heldout", exp2, "--out", out2); err != nil {
		t.Fatal(err)
	}
	sel := filepath.Join(dir, "sel")
	for _, bad := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--seed", "7", out, out2}, "made on another zoo"},
		{[]string{"--seed", "6", "--split", "train", out, out2}, "not the train split's"},
		{[]string{"--seed", "6", out, filepath.Join(dir, "nope")}, "nope"},
		{[]string{"--seed", "6", out, out}, "two runs are named zoo"},
	} {
		args := append([]string{"zoo", "select", "--lines", "2", "--split", "heldout", "--out", sel}, bad.args...)
		if _, err := runCmd(t, args...); err == nil || !strings.Contains(err.Error(), bad.wantErr) || strings.Contains(err.Error(), "\n") {
			t.Errorf("zoo select %v: error %v, want one line containing %q", bad.args, err, bad.wantErr)
		}
		if _, err := os.Stat(sel); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("bad input wrote %s", sel)
		}
	}
	stdout, err = runCmd(t, "zoo", "select", "--lines", "2", "--seed", "6", "--split", "heldout", out, out2, "--out", sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CHOSEN", "zoo-light cm (selection)", "Z6-1", "criteria: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("zoo select output lacks %q:\n%s", want, stdout)
		}
	}
	var selected struct {
		Runs     []string `json:"runs"`
		Selected []struct {
			Chosen string `json:"chosen"`
		} `json:"selected"`
		Table struct {
			Rows []struct {
				Line string `json:"line"`
			} `json:"rows"`
		} `json:"table"`
	}
	if b, err = os.ReadFile(filepath.Join(sel, "select.json")); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &selected); err != nil {
		t.Fatal(err)
	}
	if len(selected.Selected) != 1 || (selected.Selected[0].Chosen != "zoo" && selected.Selected[0].Chosen != "zoo-light") ||
		len(selected.Table.Rows) != 1 || selected.Table.Rows[0].Line != "Z6-1" {
		t.Fatalf("select.json: %s", b)
	}
}
