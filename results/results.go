// Package results defines an experiment's run folder and the files in it: report.json (the
// per-line comparison of agent against baselines, the cross-evaluation, the experiment's status
// and its failed items), one JSON file per episode (metrics and the per-frame track), and where
// the ensembles, learning curves and policy maps of each line are kept. Build writes it from an
// experiment's accepted outcomes and stored outputs, whichever broker ran it; the report
// renderer reads it, also while an experiment is still running or after one failed (Load
// tolerates missing parts, and folders written before reports carried a status).
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

	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
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

// Conditions of evaluation episodes, and the kind of data-collection episodes: the episode
// kinds (package episode), so a run folder names episodes as the coordinator does.
const (
	Collect = episode.KindCollect // random light, data for training
	Agent   = episode.KindAgent   // the line's own ensemble acts
	None    = episode.KindNone    // light never on
	Random  = episode.KindRandom  // random light at the agent's measured on-rate
	Cross   = episode.KindCross   // another line's ensemble acts on this line's animals
)

// Report is report.json.
type Report struct {
	// Name of the experiment and when the run started and finished. Finished is zero unless
	// the experiment is done: a report of a running or failed experiment is never a finished
	// result.
	Name     string    `json:"name"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// ID is the experiment's id at the coordinator that ran it ("" in folders the former
	// single-process runner wrote).
	ID string `json:"id,omitempty"`
	// Status is the experiment's status when the report was built (running, done or failed;
	// "" in folders written before reports carried it), Phase the phase it had reached and
	// Reason why a failed experiment failed.
	Status plan.Status `json:"status,omitempty"`
	Phase  plan.Phase  `json:"phase,omitempty"`
	Reason string      `json:"reason,omitempty"`
	// Items counts the experiment's items (episodes and training tasks) by state; nil in
	// folders written before reports carried it.
	Items *ItemCounts `json:"items,omitempty"`
	// Lines holds one entry per line, in the experiment's order.
	Lines []LineResult `json:"lines"`
	// Cross is the cross-evaluation, nil when the experiment has none (or none of its
	// episodes is done yet).
	Cross *CrossResult `json:"cross,omitempty"`
	// Transfer holds, per transfer line and environment (in plan order), the agent against no
	// light; nil when the experiment has no transfer section.
	Transfer []TransferResult `json:"transfer,omitempty"`
	// Failed names the items that failed for good, in item order, with the reason of every
	// failed attempt as the coordinator recorded it (naming the holder and lease of the
	// attempt, which depend on the scheduling as timestamps do).
	Failed []FailedItem `json:"failed,omitempty"`
}

// ItemCounts counts an experiment's items by state.
type ItemCounts struct {
	Total  int `json:"total"`
	Done   int `json:"done"`
	Failed int `json:"failed"`
	// Open are the items neither done nor failed (pending or leased).
	Open int `json:"open"`
}

// FailedItem is an episode or a training task that failed for good: its attempts are spent,
// or the experiment failed around it.
type FailedItem struct {
	ID string `json:"id"`
	// N is the item's number in the experiment.
	N         int          `json:"n"`
	Kind      episode.Kind `json:"kind"`
	Line      string       `json:"line"`
	AgentLine string       `json:"agent_line,omitempty"`
	Attempts  int          `json:"attempts"`
	// Reasons holds the reason of every failed attempt, oldest first.
	Reasons []string `json:"reasons"`
}

// LineResult compares a line's agent against the baselines on that line's animals. A number
// that cannot be had yet (no episode of a condition, no random-light rate before the plan set
// it) is NaN, written as null in report.json.
type LineResult struct {
	Line string `json:"line"`
	// Conditions holds the conditions that have done episodes (keys Agent, None, Random).
	Conditions map[episode.Kind]Condition `json:"conditions"`
	// RandomRate is the light-on probability of the random condition: the agent's own measured
	// on-rate (the mean light fraction of its evaluation episodes) as the plan set it.
	RandomRate float64 `json:"random_rate"`
	// P values of two-sided Mann-Whitney U tests on closest approach.
	PAgentVsNone   float64 `json:"p_agent_vs_none"`
	PAgentVsRandom float64 `json:"p_agent_vs_random"`
	// AgentLightFraction is the mean share of frames with the light on under the agent.
	AgentLightFraction float64 `json:"agent_light_fraction"`
	// Updates is the number of training updates per ensemble member; Members the ensemble size.
	Updates int `json:"updates"`
	Members int `json:"members"`
	// TransitionsUsed is the number of replay frames the ensemble was trained on, EpisodesUsed
	// the number of collect episodes they came from.
	TransitionsUsed int `json:"transitions_used"`
	EpisodesUsed    int `json:"episodes_used,omitempty"`
	// PolicyVersion is the final parameter version of the line's ensemble (0: not trained).
	PolicyVersion uint64 `json:"policy_version,omitempty"`
	// AnimalHours is the animal time the line's training data took: the lengths of its done
	// collect and online episodes, in hours (evaluation, checkpoint and cross episodes are not
	// counted).
	AnimalHours float64 `json:"animal_hours"`
	// Curve is the learning curve against animal time: in online mode one point per evaluation
	// checkpoint (the checkpoint episodes of one version) and the final evaluation's agent
	// episodes; offline only the final evaluation. Points are in increasing animal time.
	Curve []CurvePoint `json:"learning_curve,omitempty"`
}

// CurvePoint is one point of a learning curve: the agents of one parameter version, trained on
// AnimalHours of animal time, evaluated in N episodes.
type CurvePoint struct {
	Version     uint64  `json:"version"`
	AnimalHours float64 `json:"animal_hours"`
	// Kind is the episodes' kind: checkpoint, or agent for the final evaluation.
	Kind        episode.Kind `json:"kind"`
	MeanClosest float64      `json:"mean_closest_cm"`
	SDClosest   float64      `json:"sd_closest_cm"`
	N           int          `json:"n"`
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
// the number of episodes behind it (NaN, null in report.json, where there is none).
type CrossResult struct {
	Agents    []string    `json:"agents"`
	Animals   []string    `json:"animals"`
	ClosestCM [][]float64 `json:"closest_cm"`
	N         [][]int     `json:"n"`
	// Columns is the verdict of each agent line's column, in Agents' order; a column whose own
	// cell or every other cell has no episodes yet is left out.
	Columns []CrossColumn `json:"columns,omitempty"`
}

// CrossColumn is one agent line's column of the cross-evaluation: whether its agents came
// closest on their own line's animals, and how sure that is. A column's cells are different
// animals of different lines, so a cell's mean carries its animals' variation (a 20-episode
// cell's standard error is about 0.1 cm).
type CrossColumn struct {
	Agent string `json:"agent"`
	// OwnBest: the own line's mean is the lowest of the column.
	OwnBest bool `json:"own_best"`
	// Rival is the other animal line with the lowest mean in the column.
	Rival string `json:"rival"`
	// P is the two-sided Mann-Whitney p of the own line's episodes against Rival's (NaN, null
	// in report.json, when either has none).
	P float64 `json:"p_own_vs_rival"`
}

// OwnBest is the number of columns whose own line's mean is the lowest.
func (c *CrossResult) OwnBest() int {
	n := 0
	for _, col := range c.Columns {
		if col.OwnBest {
			n++
		}
	}
	return n
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
	ID        string       `json:"id"`
	Condition episode.Kind `json:"condition"` // Collect, Agent, None, Random or Cross
	Line      string       `json:"line"`      // the animal's line
	AgentLine string       `json:"agent_line,omitempty"`
	Seed      uint64       `json:"seed"`
	Seconds   float64      `json:"seconds"`
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
	// Environment names a transfer episode's environment ("obstacles", "food_5mm"; "" for the
	// others) and TimeToFoodS is the time until the worm first lay on its lawn (nil: never).
	Environment string   `json:"environment,omitempty"`
	TimeToFoodS *float64 `json:"time_to_food_s,omitempty"`
	Frames      []Frame  `json:"frames,omitempty"`
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

// WriteFileAtomic writes data to path atomically with mode 0644 (policy.WriteFileAtomic: a
// reader never sees a half-written file), creating parent folders.
func WriteFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return policy.WriteFileAtomic(path, data)
}

// WriteEpisode stores e as episodes/<id>.json in runDir.
func WriteEpisode(runDir string, e *Episode) error {
	if e.ID == "" || strings.ContainsAny(e.ID, `/\`) || strings.HasPrefix(e.ID, ".") {
		return fmt.Errorf("episode id %q is not a valid file name", e.ID)
	}
	return WriteJSON(filepath.Join(runDir, EpisodesDir, e.ID+".json"), e)
}

// ReportNumbers reads dir's report.json as JSON values without its wall-clock times (started,
// finished): what two runs of one experiment file and seed must share, wherever they ran (one
// process or a cluster) and however fast.
func ReportNumbers(dir string) (map[string]any, error) {
	b, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", ReportFile, err)
	}
	delete(m, "started")
	delete(m, "finished")
	return m, nil
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
