package results

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

// ErrNotFound is wrapped by a Source's error for a part it does not hold. Build leaves such a
// part out of the run folder; any other error of a Source ends Build.
var ErrNotFound = errors.New("results: not found")

// Source holds what an experiment's workers and learners stored beside the outcomes the
// broker accepted: one experiment's tracks, parameter versions and training checkpoints (in
// one process the memstore stores, in a cluster Redis).
type Source interface {
	// Track returns the track the attempt under lease token stored for episode id.
	Track(ctx context.Context, id string, token uint64) (Episode, error)
	// Ensemble returns a line's parameter version: a policy.Ensemble.MarshalBinary blob.
	Ensemble(ctx context.Context, line string, version uint64) ([]byte, error)
	// Checkpoint returns a training task's learner files by name, relative to the learner's
	// folder (agentlib/learner's layout: CurvesFile and checkpoint/...).
	Checkpoint(ctx context.Context, task string) (map[string][]byte, error)
}

// TrainingSummary is the output (api.Result.Output, JSON) a learner reports with a done
// training task.
type TrainingSummary struct {
	// Members is the ensemble size, Updates the number of updates per member.
	Members int `json:"members"`
	Updates int `json:"updates"`
	// Transitions is the number of replay windows trained on, Episodes the number of accepted
	// collect episodes they came from.
	Transitions int `json:"transitions"`
	Episodes    int `json:"episodes"`
}

// EnsembleArch is the architecture of the ensembles Build reads for a training item of train
// section t: the reference actor on the observation t names (train.observation).
func EnsembleArch(t experiment.Train) policy.Arch {
	if t.LightObservation() {
		return policy.ArchOn(policy.LightSpec())
	}
	return policy.ReferenceArch()
}

// Build writes the run folder of an experiment in dir from what its broker holds (view: the
// experiment and its items) and what its roles stored (src), and returns the report, so that
// every broker (coordinator.Local, a Raft cluster) yields the same folder from the same
// accepted work. specYAML is the experiment file as submitted (nil: the spec re-encoded).
//
// Only done items and their accepted results count, taken in item order (api.Item.N), never
// in the order they completed: the same accepted outcomes give the same report.json. It
// writes, in this order:
//
//   - experiment.yaml;
//   - episodes/<id>.json for every done episode whose track src holds (the track under the
//     accepted lease token, with the item's identity and the accepted outcome's metrics);
//   - per line whose training task is done: lines/<line>/ensemble/ (the final version),
//     policy_map.json (policy.ComputeMap, DefaultMapConfig) and curves.jsonl (from the task's
//     checkpoint), each one that src holds;
//   - report.json, last and atomically.
//
// The report names the experiment's status and the items that failed; its Finished time is
// set only when the experiment is done, so that a running or failed experiment is never
// presented as a finished result. Build may be run again on the same folder as the experiment
// advances; what a later run writes replaces what an earlier one wrote.
func Build(ctx context.Context, dir string, view api.ExperimentView, specYAML []byte, src Source) (*Report, error) {
	if dir == "" {
		return nil, errors.New("results: build: no run folder")
	}
	if src == nil {
		return nil, errors.New("results: build: no source")
	}
	items := slices.Clone(view.Items)
	slices.SortFunc(items, func(a, b api.Item) int { return cmp.Compare(a.N, b.N) })
	rep, err := buildReport(view.Experiment, items)
	if err != nil {
		return nil, err
	}
	exp := view.Experiment
	if specYAML == nil {
		if specYAML, err = experiment.Marshal(exp.Spec); err != nil {
			return nil, fmt.Errorf("results: build: %w", err)
		}
	}
	if err := WriteFileAtomic(filepath.Join(dir, ExperimentFile), specYAML); err != nil {
		return nil, fmt.Errorf("results: build: %w", err)
	}
	for i := range items {
		if err := writeEpisode(ctx, dir, &items[i], src); err != nil {
			return nil, err
		}
	}
	for i := range items {
		if err := writeTraining(ctx, dir, &items[i], src); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("results: build: %w", err)
	}
	if err := WriteJSON(filepath.Join(dir, ReportFile), rep); err != nil {
		return nil, fmt.Errorf("results: build: %w", err)
	}
	return rep, nil
}

// doneEpisode reports whether it is an episode accepted with an outcome.
func doneEpisode(it *api.Item) bool {
	return it.Type == plan.TypeEpisode && it.State == api.StateDone && it.Result != nil && it.Result.Outcome != nil
}

// doneTraining reports whether it is an accepted training task.
func doneTraining(it *api.Item) bool {
	return it.Type == plan.TypeTrain && it.State == api.StateDone && it.Result != nil
}

// buildReport computes report.json from the experiment and its items (sorted by N).
func buildReport(exp api.Experiment, items []api.Item) (*Report, error) {
	spec := exp.Spec
	rep := &Report{Name: spec.Name, ID: exp.ID, Started: exp.SubmittedAt.UTC(), Status: exp.Status, Phase: exp.Phase, Reason: exp.Reason,
		Items: &ItemCounts{Total: len(items)}}
	if exp.Status == plan.StatusDone {
		rep.Finished = exp.UpdatedAt.UTC()
	}
	for i := range items {
		it := &items[i]
		switch it.State {
		case api.StateDone:
			rep.Items.Done++
		case api.StateFailed:
			rep.Items.Failed++
			rep.Failed = append(rep.Failed, FailedItem{ID: it.ID, N: it.N, Kind: it.Kind, Line: it.Line, AgentLine: it.AgentLine,
				Attempts: it.Attempts, Reasons: append([]string{}, it.Failures...)})
		default:
			rep.Items.Open++
		}
	}
	for _, l := range spec.Lines {
		lr, err := lineResult(exp, items, l)
		if err != nil {
			return nil, err
		}
		rep.Lines = append(rep.Lines, lr)
	}
	rep.Cross = crossResult(spec.CrossLines(), items)
	rep.Transfer = transferResults(spec, items)
	return rep, nil
}

// condition gathers the done episodes of a kind on animals of line, in item order.
func condition(items []api.Item, kind episode.Kind, line, agentLine string) Condition {
	var c Condition
	for i := range items {
		it := &items[i]
		if !doneEpisode(it) || it.Kind != kind || it.Line != line || it.AgentLine != agentLine {
			continue
		}
		o := it.Result.Outcome
		c.ClosestCM = append(c.ClosestCM, o.ClosestCM)
		c.TimeTo05cmS = append(c.TimeTo05cmS, copyTime(o.TimeTo05cmS))
		c.EpisodeIDs = append(c.EpisodeIDs, it.ID)
		c.LightFrac = append(c.LightFrac, o.LightFraction)
		c.LostFraction = append(c.LostFraction, o.LostFraction)
	}
	c.MeanClosest, c.SDClosest, c.N = Summarize(c.ClosestCM)
	return c
}

func copyTime(t *float64) *float64 {
	if t == nil {
		return nil
	}
	v := *t
	return &v
}

func lineResult(exp api.Experiment, items []api.Item, l string) (LineResult, error) {
	nan := math.NaN()
	lr := LineResult{Line: l, Conditions: map[episode.Kind]Condition{}, RandomRate: nan, PAgentVsNone: nan, PAgentVsRandom: nan, AgentLightFraction: nan}
	agent, none, random := condition(items, Agent, l, l), condition(items, None, l, ""), condition(items, Random, l, "")
	for k, c := range map[episode.Kind]Condition{Agent: agent, None: none, Random: random} {
		if c.N > 0 {
			lr.Conditions[k] = c
		}
	}
	if r, ok := exp.RandomRates[l]; ok {
		lr.RandomRate = r
	}
	lr.AgentLightFraction, _, _ = Summarize(agent.LightFrac)
	if _, p, err := MannWhitneyU(agent.ClosestCM, none.ClosestCM); err == nil {
		lr.PAgentVsNone = p
	}
	if _, p, err := MannWhitneyU(agent.ClosestCM, random.ClosestCM); err == nil {
		lr.PAgentVsRandom = p
	}
	for i := range items {
		it := &items[i]
		if !doneTraining(it) || it.Line != l {
			continue
		}
		var sum TrainingSummary
		if len(it.Result.Output) > 0 {
			if err := json.Unmarshal(it.Result.Output, &sum); err != nil {
				return lr, fmt.Errorf("results: build: training task %s: output: %w", it.ID, err)
			}
		}
		lr.Members, lr.Updates, lr.TransitionsUsed, lr.EpisodesUsed = sum.Members, sum.Updates, sum.Transitions, sum.Episodes
		lr.PolicyVersion = it.Result.PolicyVersion
	}
	lr.AnimalHours = animalSeconds(items, l, math.MaxInt64) / 3600
	lr.Curve = learningCurve(exp, items, l, agent, lr.AnimalHours)
	return lr, nil
}

// animalSeconds sums the lengths of line's done collect episodes and of its done online
// episodes that name a version up to maxNamed.
func animalSeconds(items []api.Item, line string, maxNamed int64) float64 {
	var s float64
	for i := range items {
		it := &items[i]
		if !doneEpisode(it) || it.Line != line || !it.Kind.Collects() || (it.Kind == episode.KindOnline && int64(it.PolicyVersion) > maxNamed) {
			continue
		}
		s += it.Seconds // the episode's length on the arena's clock (its outcome's ends a frame early)
	}
	return s
}

// learningCurve is line's closest approach against animal time: a point per checkpoint version
// (its animal time: the done collect and online episodes that version trained on, see
// experiment.Spec.OnlineData) and the final evaluation's agents at the line's whole animal time.
func learningCurve(exp api.Experiment, items []api.Item, line string, agent Condition, hours float64) []CurvePoint {
	by := map[uint64][]float64{}
	for i := range items {
		it := &items[i]
		if doneEpisode(it) && it.Kind == episode.KindCheckpoint && it.Line == line {
			by[it.PolicyVersion] = append(by[it.PolicyVersion], it.Result.Outcome.ClosestCM)
		}
	}
	var out []CurvePoint
	for _, v := range slices.Sorted(maps.Keys(by)) {
		m, sd, n := Summarize(by[v])
		// Online episode i names version i+1: the OnlineData(v) episodes version v trained on
		// are those naming up to OnlineData(v).
		trained := int64(exp.Spec.OnlineData(v))
		out = append(out, CurvePoint{Version: v, AnimalHours: animalSeconds(items, line, trained) / 3600, Kind: episode.KindCheckpoint,
			MeanClosest: m, SDClosest: sd, N: n})
	}
	if agent.N > 0 {
		var v uint64
		for i := range items {
			if it := &items[i]; doneEpisode(it) && it.Kind == episode.KindAgent && it.Line == line {
				v = it.Result.Outcome.PolicyVersion
			}
		}
		out = append(out, CurvePoint{Version: v, AnimalHours: hours, Kind: episode.KindAgent, MeanClosest: agent.MeanClosest, SDClosest: agent.SDClosest, N: agent.N})
	}
	return out
}

// crossResult is the cross-evaluation matrix over lines (agents x animals, in the file's
// order), nil when no cross episode is done.
func crossResult(lines []string, items []api.Item) *CrossResult {
	if len(lines) == 0 {
		return nil
	}
	cr := &CrossResult{Agents: lines, Animals: lines}
	some := false
	cells := make([][]Condition, len(lines)) // [animal][agent]
	for i, animal := range lines {
		row, nrow := make([]float64, len(lines)), make([]int, len(lines))
		cells[i] = make([]Condition, len(lines))
		for j, agent := range lines {
			c := condition(items, Cross, animal, agent)
			cells[i][j] = c
			row[j], nrow[j] = c.MeanClosest, c.N
			some = some || c.N > 0
		}
		cr.ClosestCM, cr.N = append(cr.ClosestCM, row), append(cr.N, nrow)
	}
	if !some {
		return nil
	}
	for j := range lines {
		if col, ok := crossColumn(j, lines, cells); ok {
			cr.Columns = append(cr.Columns, col)
		}
	}
	return cr
}

// crossColumn is the verdict of the column of agent line lines[j] (cells[i][j]: its agents on
// animals of lines[i], its own animals at i = j), false when its own cell or every other cell
// has no episodes.
func crossColumn(j int, lines []string, cells [][]Condition) (CrossColumn, bool) {
	own := cells[j][j]
	rival := -1
	for i := range lines {
		if i != j && cells[i][j].N > 0 && (rival < 0 || cells[i][j].MeanClosest < cells[rival][j].MeanClosest) {
			rival = i
		}
	}
	if own.N == 0 || rival < 0 {
		return CrossColumn{}, false
	}
	col := CrossColumn{Agent: lines[j], OwnBest: own.MeanClosest < cells[rival][j].MeanClosest, Rival: lines[rival], P: math.NaN()}
	if _, p, err := MannWhitneyU(own.ClosestCM, cells[rival][j].ClosestCM); err == nil {
		col.P = p
	}
	return col, true
}

// writeEpisode writes the episode file of a done episode whose track src holds.
func writeEpisode(ctx context.Context, dir string, it *api.Item, src Source) error {
	if !doneEpisode(it) {
		return nil
	}
	e, err := src.Track(ctx, it.ID, it.Result.Token)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("results: build: track of %s: %w", it.ID, err)
	}
	// The item says what the episode was and the accepted outcome what it measured, so that
	// the episode files and report.json agree whatever a worker put in its track.
	o := it.Result.Outcome
	e.ID, e.Condition, e.Line, e.AgentLine, e.Seed, e.LightProbability = it.ID, it.Kind, it.Line, it.AgentLine, it.Seed, it.LightProbability
	e.Seconds, e.ClosestCM, e.TimeTo05cmS, e.LightFraction, e.LostFraction, e.FinalDistanceCM =
		o.Seconds, o.ClosestCM, copyTime(o.TimeTo05cmS), o.LightFraction, o.LostFraction, o.FinalDistanceCM
	e.Environment, e.TimeToFoodS = "", copyTime(o.TimeToFoodS)
	if it.Environment != nil {
		e.Environment = it.Environment.Name
	}
	if err := WriteEpisode(dir, &e); err != nil {
		return fmt.Errorf("results: build: %w", err)
	}
	return nil
}

// writeTraining writes the line folder of a done training task: its final ensemble, policy map
// and learning curves, each that src holds.
func writeTraining(ctx context.Context, dir string, it *api.Item, src Source) error {
	if !doneTraining(it) {
		return nil
	}
	ld := LineDir(dir, it.Line)
	if v := it.Result.PolicyVersion; v > 0 {
		blob, err := src.Ensemble(ctx, it.Line, v)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return fmt.Errorf("results: build: ensemble of line %s version %d: %w", it.Line, v, err)
		case saved(ld, blob):
			// An earlier Build wrote this version and its map: the map takes seconds to
			// compute, and an experiment is exported again as it advances.
		default:
			var t experiment.Train
			if it.Train != nil {
				t = *it.Train
			}
			ens, err := policy.UnmarshalEnsemble(blob, EnsembleArch(t))
			if err != nil {
				return fmt.Errorf("results: build: ensemble of line %s version %d: %w", it.Line, v, err)
			}
			if err := policy.SaveDir(filepath.Join(ld, EnsembleDir), ens); err != nil {
				return fmt.Errorf("results: build: %w", err)
			}
			m, err := policy.ComputeMap(ens, policy.DefaultMapConfig())
			if err != nil {
				return fmt.Errorf("results: build: policy map of line %s: %w", it.Line, err)
			}
			if err := WriteJSON(filepath.Join(ld, PolicyMapFile), m); err != nil {
				return fmt.Errorf("results: build: %w", err)
			}
		}
	}
	files, err := src.Checkpoint(ctx, it.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("results: build: checkpoint of %s: %w", it.ID, err)
	}
	if curves, ok := files[CurvesFile]; ok {
		if err := WriteFileAtomic(filepath.Join(ld, CurvesFile), curves); err != nil {
			return fmt.Errorf("results: build: %w", err)
		}
	}
	return nil
}

// saved reports whether the line folder ld holds the ensemble blob and a policy map.
func saved(ld string, blob []byte) bool {
	if _, err := os.Stat(filepath.Join(ld, PolicyMapFile)); err != nil {
		return false
	}
	e, err := LoadEnsemble(filepath.Join(ld, EnsembleDir))
	if err != nil {
		return false
	}
	b, err := e.MarshalBinary()
	return err == nil && bytes.Equal(b, blob)
}
