package report

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/results"
)

// The transfer phase's table: successes, Fisher p, median times to food, unknowns as dashes.
func TestTransferTable(t *testing.T) {
	dir := t.TempDir()
	nan := math.NaN()
	rep := results.Report{Name: "t", Transfer: []results.TransferResult{
		{Line: "301", Environment: "obstacles", FoodDistanceCM: nan, Success: "target", PSuccess: 0.04055944, PTimeToFood: nan,
			Agent: results.TransferCondition{N: 8, Successes: 6, SuccessRate: 0.75, MedianTimeToFoodS: nan},
			None:  results.TransferCondition{N: 7, Successes: 1, SuccessRate: 1.0 / 7, MedianTimeToFoodS: nan}},
		{Line: "301", Environment: "food_5mm", FoodDistanceCM: 0.5, Success: "food", PSuccess: 0.3, PTimeToFood: 0.012,
			Agent: results.TransferCondition{N: 20, Successes: 15, MedianTimeToFoodS: 212},
			None:  results.TransferCondition{N: 20, Successes: 4, MedianTimeToFoodS: 600}},
	}}
	if err := results.WriteJSON(filepath.Join(dir, results.ReportFile), &rep); err != nil {
		t.Fatal(err)
	}
	out, err := Build(context.Background(), dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	h := string(out.HTML)
	for _, want := range []string{`id="transfer-table"`, "<td>6 / 8</td><td>1 / 7</td><td>0.0406</td><td>–</td><td>–</td><td>–</td>",
		"<td>15 / 20</td><td>4 / 20</td><td>0.3</td><td>212</td><td>600</td><td>0.012</td>"} {
		if !strings.Contains(h, want) {
			t.Errorf("report.html lacks %s", want)
		}
	}
	// No section, no table.
	if err := results.WriteJSON(filepath.Join(dir, results.ReportFile), &results.Report{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	if out, err = Build(context.Background(), dir, DefaultConfig()); err != nil || strings.Contains(string(out.HTML), `id="transfer-table"`) {
		t.Errorf("a transfer table without transfer results (err %v)", err)
	}
}
