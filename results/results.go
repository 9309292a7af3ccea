// Package results defines an experiment's run folder and the files in it: report.json (the
// per-line comparison of agent against baselines, and the cross-evaluation), one JSON file per
// episode (metrics and the per-frame track), and where the ensembles, learning curves and policy
// maps of each line are kept. The single-process runner writes it; the report renderer reads it,
// also while an experiment is still running or after one failed (Load tolerates missing parts).
//
// Layout of a run folder:
//
//	experiment.yaml              the experiment file as submitted
//	report.json                  Report (written last, atomically)
//	episodes/<id>.json           Episode, one per finished episode
//	lines/<line>/ensemble/       the line's trained ensemble (agentlib/policy format)
//	lines/<line>/curves.jsonl    learning curves (agentlib/learner format)
//	lines/<line>/policy_map.json policy map (agentlib/policy format)
package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File and folder names inside a run folder.
const (
	ExperimentFile = "experiment.yaml"
	ReportFile     = "report.json"
	EpisodesDir    = "episodes"
	LinesDir       = "lines"
	EnsembleDir    = "ensemble"
	CurvesFile     = "curves.jsonl"
	PolicyMapFile  = "policy_map.json"
)

// Conditions of evaluation episodes, and the kind of data-collection episodes.
const (
	Collect = "collect" // random light, data for training
	Agent   = "agent"   // the line's own ensemble acts
	None    = "none"    // light never on
	Random  = "random"  // random light at the agent's measured on-rate
	Cross   = "cross"   // another line's ensemble acts on this line's animals
)

// Report is report.json.
type Report struct {
	// Name of the experiment and when the run started and finished (zero while running).
	Name     string    `json:"name"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Lines holds one entry per line, in the experiment's order.
	Lines []LineResult `json:"lines"`
	// Cross is the cross-evaluation, nil when the experiment has none.
	Cross *CrossResult `json:"cross,omitempty"`
}

// LineResult compares a line's agent against the baselines on that line's animals.
type LineResult struct {
	Line       string               `json:"line"`
	Conditions map[string]Condition `json:"conditions"` // keys Agent, None, Random
	// RandomRate is the light-on probability of the random condition: the agent's own measured
	// on-rate (the mean light fraction of its evaluation episodes).
	RandomRate float64 `json:"random_rate"`
	// P values of two-sided Mann-Whitney U tests on closest approach.
	PAgentVsNone   float64 `json:"p_agent_vs_none"`
	PAgentVsRandom float64 `json:"p_agent_vs_random"`
	// AgentLightFraction is the mean share of frames with the light on under the agent.
	AgentLightFraction float64 `json:"agent_light_fraction"`
	// Updates is the number of training updates per ensemble member; Members the ensemble size.
	Updates int `json:"updates"`
	Members int `json:"members"`
	// TransitionsUsed is the number of replay frames the ensemble was trained on.
	TransitionsUsed int `json:"transitions_used"`
}

// Condition holds per-episode results of one condition, in episode order, and their summary.
type Condition struct {
	ClosestCM    []float64  `json:"closest_cm"`
	TimeTo05cmS  []*float64 `json:"time_to_05cm_s"` // nil where the worm never came within 0.5 cm
	EpisodeIDs   []string   `json:"episode_ids"`
	MeanClosest  float64    `json:"mean"`
	SDClosest    float64    `json:"sd"`
	N            int        `json:"n"`
	LightFrac    []float64  `json:"light_fraction"`
	LostFraction []float64  `json:"lost_fraction"`
}

// CrossResult is the cross-evaluation: mean closest approach of agents of one line on animals of
// another. ClosestCM[i][j] is animal line Animals[i] under the agent of line Agents[j]; N[i][j]
// the number of episodes behind it.
type CrossResult struct {
	Agents    []string    `json:"agents"`
	Animals   []string    `json:"animals"`
	ClosestCM [][]float64 `json:"closest_cm"`
	N         [][]int     `json:"n"`
}

// Frame is one frame of an episode's track.
type Frame struct {
	T     float64 `json:"t"`           // seconds since the episode started
	X     float64 `json:"x"`           // worm centre, pixels of the arena's camera
	Y     float64 `json:"y"`           //
	Light bool    `json:"l"`           // light command chosen after this frame
	OK    bool    `json:"ok"`          // tracking ok
	Body  float64 `json:"b"`           // body angle, radians
	Head  float64 `json:"h"`           // head angle, radians
	Ver   uint64  `json:"v,omitempty"` // policy version that chose the light
}

// Episode is one finished episode: what it was, its metrics and its track.
type Episode struct {
	ID        string  `json:"id"`
	Condition string  `json:"condition"` // Collect, Agent, None, Random or Cross
	Line      string  `json:"line"`      // the animal's line
	AgentLine string  `json:"agent_line,omitempty"`
	Seed      uint64  `json:"seed"`
	Seconds   float64 `json:"seconds"`
	// LightProbability is P of a random-light schedule (Collect, Random).
	LightProbability float64 `json:"light_probability,omitempty"`
	// Plate geometry in pixels and the target, so the track can be drawn without the arena.
	PxPerCM     float64    `json:"px_per_cm"`
	PlateCenter [2]float64 `json:"plate_center_px"`
	PlateRadius float64    `json:"plate_radius_px"`
	Target      [2]float64 `json:"target_px"`
	// Metrics.
	ClosestCM       float64  `json:"closest_cm"`
	TimeTo05cmS     *float64 `json:"time_to_05cm_s"`
	LightFraction   float64  `json:"light_fraction"`
	LostFraction    float64  `json:"lost_fraction"`
	FinalDistanceCM float64  `json:"final_distance_cm"`
	Frames          []Frame  `json:"frames,omitempty"`
}

// Run is what Load found in a run folder. Missing names the parts that are absent, so that a
// report of a running or failed experiment can say what it lacks.
type Run struct {
	Dir        string
	Experiment []byte // experiment.yaml, nil when absent
	Report     *Report
	Episodes   []Episode // sorted by ID
	Lines      []string  // line folders present under lines/, sorted
	Missing    []string
}

// LineDir is the folder of one line's training outputs.
func LineDir(runDir, line string) string { return filepath.Join(runDir, LinesDir, line) }

// WriteJSON writes v as indented JSON to path atomically (a temporary file renamed into place),
// creating parent folders.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return WriteFileAtomic(path, append(b, '\n'))
}

// WriteFileAtomic writes data to path through a temporary file in the same folder and a rename,
// so a reader never sees a half-written file.
func WriteFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	// CreateTemp makes the file private (0600); results are for the lab to read.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteEpisode stores e as episodes/<id>.json in runDir.
func WriteEpisode(runDir string, e *Episode) error {
	if e.ID == "" || strings.ContainsAny(e.ID, `/\`) || strings.HasPrefix(e.ID, ".") {
		return fmt.Errorf("episode id %q is not a valid file name", e.ID)
	}
	return WriteJSON(filepath.Join(runDir, EpisodesDir, e.ID+".json"), e)
}

// Load reads what exists of a run folder. It fails only when dir is not a readable folder or a
// file in it is corrupt; absent parts are listed in Run.Missing.
func Load(dir string) (*Run, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("run folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("run folder %s is not a folder", dir)
	}
	r := &Run{Dir: dir}
	if b, err := os.ReadFile(filepath.Join(dir, ExperimentFile)); err == nil {
		r.Experiment = b
	} else if errors.Is(err, fs.ErrNotExist) {
		r.Missing = append(r.Missing, ExperimentFile)
	} else {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, ReportFile)); err == nil {
		var rep Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return nil, fmt.Errorf("%s: %w", ReportFile, err)
		}
		r.Report = &rep
	} else if errors.Is(err, fs.ErrNotExist) {
		r.Missing = append(r.Missing, ReportFile)
	} else {
		return nil, err
	}
	eps, err := filepath.Glob(filepath.Join(dir, EpisodesDir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(eps) == 0 {
		r.Missing = append(r.Missing, EpisodesDir+"/")
	}
	sort.Strings(eps)
	for _, p := range eps {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var e Episode
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(p), err)
		}
		r.Episodes = append(r.Episodes, e)
	}
	ents, err := os.ReadDir(filepath.Join(dir, LinesDir))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.Missing = append(r.Missing, LinesDir+"/")
	case err != nil:
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() {
			r.Lines = append(r.Lines, e.Name())
		}
	}
	return r, nil
}
