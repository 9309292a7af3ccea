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
