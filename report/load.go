package report

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/optoloop/optoloop/agentlib/learner"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/results"
)

// run is what the report knows about a run folder: results.Load's view plus each line's
// learning curves and policy map, the parts found missing and the problems met while reading.
type run struct {
	*results.Run
	// Lines in the order of report.json, then any other line found in lines/ or episodes.
	order []string
	// byLine[line][condition] are the line's episodes (the animal's line) of one condition.
	byLine map[string]map[episode.Kind][]*results.Episode
	curves map[string][]learner.CurvePoint
	maps   map[string]*policy.Map
	// ensembles holds the lines whose ensemble folder has a manifest.
	ensembles map[string]bool
	// missing names absent parts (paths relative to the run folder, or a description);
	// problems describes parts that exist but could not be read.
	missing, problems []string
}

// load reads the run folder. It fails only when dir is not a readable folder; anything else that
// is absent or unreadable is recorded in missing or problems.
func load(dir string) (*run, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("report: run folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("report: run folder %s is not a folder", dir)
	}
	r := &run{
		byLine:    map[string]map[episode.Kind][]*results.Episode{},
		curves:    map[string][]learner.CurvePoint{},
		maps:      map[string]*policy.Map{},
		ensembles: map[string]bool{},
	}
	rr, err := results.Load(dir)
	if err != nil {
		// A corrupt file: read what can be read, one part at a time.
		r.problems = append(r.problems, err.Error())
		rr = loadTolerant(dir, &r.problems)
	}
	r.Run = rr
	r.missing = append(r.missing, rr.Missing...)

	seen := map[string]bool{}
	add := func(l string) {
		if !seen[l] {
			seen[l] = true
			r.order = append(r.order, l)
		}
	}
	if rr.Report != nil {
		for _, lr := range rr.Report.Lines {
			add(lr.Line)
		}
	}
	var rest []string
	for _, l := range rr.Lines {
		rest = append(rest, l)
	}
	for i := range rr.Episodes {
		e := &rr.Episodes[i]
		if e.Line != "" {
			rest = append(rest, e.Line)
		}
		if r.byLine[e.Line] == nil {
			r.byLine[e.Line] = map[episode.Kind][]*results.Episode{}
		}
		r.byLine[e.Line][e.Condition] = append(r.byLine[e.Line][e.Condition], e)
		if !hasPlate(e) {
			r.problems = append(r.problems, fmt.Sprintf("%s/%s.json: no plate geometry (px_per_cm %v, plate_radius_px %v); its track is not drawn", results.EpisodesDir, e.ID, e.PxPerCM, e.PlateRadius))
		}
	}
	sort.Strings(rest)
	for _, l := range rest {
		add(l)
	}

	for _, l := range r.order {
		ld := results.LineDir(dir, l)
		rel := func(name string) string { return filepath.ToSlash(filepath.Join(results.LinesDir, l, name)) }
		cs, err := readCurves(filepath.Join(ld, results.CurvesFile))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			r.missing = append(r.missing, rel(results.CurvesFile))
		case err != nil:
			r.problems = append(r.problems, fmt.Sprintf("%s: %v", rel(results.CurvesFile), err))
		case len(cs) == 0:
			r.missing = append(r.missing, rel(results.CurvesFile)+" (empty)")
		default:
			r.curves[l] = cs
		}
		m, err := readMap(filepath.Join(ld, results.PolicyMapFile))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			r.missing = append(r.missing, rel(results.PolicyMapFile))
		case err != nil:
			r.problems = append(r.problems, fmt.Sprintf("%s: %v", rel(results.PolicyMapFile), err))
		default:
			r.maps[l] = m
		}
		if _, err := os.Stat(filepath.Join(ld, results.EnsembleDir, "ensemble.json")); err == nil {
			r.ensembles[l] = true
		} else {
			r.missing = append(r.missing, rel(results.EnsembleDir)+"/")
		}
		for _, c := range conditions() {
			if len(r.byLine[l][c]) == 0 {
				r.missing = append(r.missing, fmt.Sprintf("%s episodes of line %s", c, l))
			}
		}
	}
	if rep := rr.Report; rep != nil && rep.Finished.IsZero() {
		why := "the experiment is still running or failed"
		switch rep.Status {
		case plan.StatusFailed:
			why = "the experiment failed"
		case plan.StatusRunning:
			why = "the experiment is still running"
		}
		r.missing = append(r.missing, "finish time in report.json ("+why+")")
	}
	return r, nil
}

// loadTolerant reads each part of a run folder on its own, skipping and noting corrupt files.
func loadTolerant(dir string, problems *[]string) *results.Run {
	rr := &results.Run{Dir: dir}
	note := func(err error) { *problems = append(*problems, err.Error()) }
	if b, err := os.ReadFile(filepath.Join(dir, results.ExperimentFile)); err == nil {
		rr.Experiment = b
	} else {
		rr.Missing = append(rr.Missing, results.ExperimentFile)
	}
	if b, err := os.ReadFile(filepath.Join(dir, results.ReportFile)); err == nil {
		var rep results.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			note(fmt.Errorf("%s: %w (not used)", results.ReportFile, err))
			rr.Missing = append(rr.Missing, results.ReportFile+" (unreadable)")
		} else {
			rr.Report = &rep
		}
	} else {
		rr.Missing = append(rr.Missing, results.ReportFile)
	}
	eps, _ := filepath.Glob(filepath.Join(dir, results.EpisodesDir, "*.json"))
	sort.Strings(eps)
	for _, p := range eps {
		b, err := os.ReadFile(p)
		if err != nil {
			note(err)
			continue
		}
		var e results.Episode
		if err := json.Unmarshal(b, &e); err != nil {
			note(fmt.Errorf("%s/%s: %w (skipped)", results.EpisodesDir, filepath.Base(p), err))
			continue
		}
		rr.Episodes = append(rr.Episodes, e)
	}
	if len(rr.Episodes) == 0 {
		rr.Missing = append(rr.Missing, results.EpisodesDir+"/")
	}
	ents, err := os.ReadDir(filepath.Join(dir, results.LinesDir))
	if err != nil {
		rr.Missing = append(rr.Missing, results.LinesDir+"/")
	}
	for _, e := range ents {
		if e.IsDir() {
			rr.Lines = append(rr.Lines, e.Name())
		}
	}
	return rr
}

// readCurves reads a learner's curves.jsonl. A last line cut short by a learner still writing
// is ignored; any other bad line is an error.
func readCurves(path string) ([]learner.CurvePoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []learner.CurvePoint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	var pending error
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if pending != nil {
			return nil, pending
		}
		var p learner.CurvePoint
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			pending = fmt.Errorf("line %d: %w", n, err)
			continue
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// readMap reads a policy map written by policy.Map.WriteJSON.
func readMap(path string) (*policy.Map, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m policy.Map
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}
