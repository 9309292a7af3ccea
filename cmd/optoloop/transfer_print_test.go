package main

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/results"
)

// The run's printout gives the transfer phase per line and environment: successes, Fisher p,
// median times to food (dashes where there are none); a report without transfer prints none.
func TestPrintTransfer(t *testing.T) {
	nan := math.NaN()
	rep := &results.Report{Transfer: []results.TransferResult{
		{Line: "301", Environment: "obstacles", Success: "target", PSuccess: 1.0e-5, PTimeToFood: nan,
			Agent: results.TransferCondition{N: 20, Successes: 15, MedianTimeToFoodS: nan}, None: results.TransferCondition{N: 20, Successes: 1, MedianTimeToFoodS: nan}},
		{Line: "301", Environment: "food_5mm", Success: "food", PSuccess: 0.047, PTimeToFood: 3.7e-4,
			Agent: results.TransferCondition{N: 20, Successes: 20, MedianTimeToFoodS: 202}, None: results.TransferCondition{N: 20, Successes: 15, MedianTimeToFoodS: 402}},
	}}
	var b bytes.Buffer
	if err := printReportTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	rows := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 8 && f[0] == "301" {
			rows[f[1]] = f[2:]
		}
	}
	if got := strings.Join(rows["obstacles"], " "); got != "15/20 1/20 1.0e-05 - - -" {
		t.Errorf("obstacles row %q in\n%s", got, out)
	}
	if got := strings.Join(rows["food_5mm"], " "); got != "20/20 15/20 0.047 202 402 3.7e-04" {
		t.Errorf("food row %q in\n%s", got, out)
	}
	b.Reset()
	if err := printReportTable(&b, &results.Report{}); err != nil || strings.Contains(b.String(), "transfer") {
		t.Errorf("transfer printed without transfer results (err %v):\n%s", err, b.String())
	}
}

// The run's printout gives the cross-evaluation's matrix and each column's verdict: how many
// columns the own line wins, and per column the closest other line and the p against it.
func TestPrintCrossColumns(t *testing.T) {
	rep := &results.Report{Cross: &results.CrossResult{Agents: []string{"281", "301"}, Animals: []string{"281", "301"},
		ClosestCM: [][]float64{{0.12, 1.22}, {1.16, 1.3}}, N: [][]int{{80, 80}, {80, 80}},
		Columns: []results.CrossColumn{{Agent: "281", OwnBest: true, Rival: "301", P: 2e-20}, {Agent: "301", Rival: "281", P: 0.25}}}}
	var b bytes.Buffer
	if err := printReportTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	want := "own line best in 1 of 2 columns, two-sided Mann-Whitney of the own line against the closest other: " +
		"281 own best (against 301's animals, p 2.0e-20); 301 not own best (against 281's animals, p 0.250)\n"
	if out := b.String(); !strings.Contains(out, "281           0.12  1.22\n") || !strings.HasSuffix(out, want) {
		t.Errorf("printout\n%s\nwant the matrix and a last line\n%s", out, want)
	}
}
