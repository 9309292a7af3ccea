package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/optoloop/optoloop/charts"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/results"
)

// AnimalTimeSeries reads the report.json and experiment.yaml of each run folder and returns
// the learning curves against animal time of their lines (only those of lines, when given): a
// solid series per line of each online run ("LINE online, seed S"), and per line one dashed series
// joining the final evaluations of every offline run, in order of animal hours ("LINE
// offline").
func AnimalTimeSeries(dirs []string, lines []string) ([]charts.AnimalSeries, error) {
	var out []charts.AnimalSeries
	off := map[string][]charts.AnimalPoint{}
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, results.ReportFile))
		if err != nil {
			return nil, fmt.Errorf("run folder %s: %w", dir, err)
		}
		var rep results.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, results.ReportFile), err)
		}
		spec, err := experiment.ParseFile(filepath.Join(dir, results.ExperimentFile), experiment.Options{})
		if err != nil {
			return nil, fmt.Errorf("run folder %s: %w", dir, err)
		}
		for _, l := range rep.Lines {
			if len(lines) > 0 && !slices.Contains(lines, l.Line) {
				continue
			}
			var pts []charts.AnimalPoint
			for _, p := range l.Curve {
				pts = append(pts, charts.AnimalPoint{Hours: p.AnimalHours, Mean: p.MeanClosest, SD: p.SDClosest, N: p.N})
			}
			if spec.Online() {
				if len(pts) > 0 {
					out = append(out, charts.AnimalSeries{Name: fmt.Sprintf("%s online, seed %d", l.Line, spec.Seed), Group: l.Line, Points: pts})
				}
				continue
			}
			off[l.Line] = append(off[l.Line], pts...)
		}
	}
	for _, l := range slices.Sorted(maps.Keys(off)) {
		pts := off[l]
		slices.SortFunc(pts, func(a, b charts.AnimalPoint) int { return cmp.Compare(a.Hours, b.Hours) })
		if len(pts) > 0 {
			out = append(out, charts.AnimalSeries{Name: l + " offline", Group: l, Points: pts, Dashed: true})
		}
	}
	return out, nil
}

// online reports whether some series is an online run's curve.
func online(series []charts.AnimalSeries) bool {
	return slices.ContainsFunc(series, func(s charts.AnimalSeries) bool { return !s.Dashed })
}
