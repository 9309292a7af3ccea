package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/optoloop/optoloop/results"
)

// Stores are the stores the roles of one deployment share.
type Stores struct {
	Replay      Replay
	Params      Params
	Tracks      Tracks
	Checkpoints Checkpoints
}

// Export writes the run folder of experiment id (results.Build): report.json from the
// accepted outcomes the broker holds, episode files from the stored tracks, each line's final
// ensemble, learning curves and policy map. It works alike for coordinator.Local and a cluster.
// specYAML nil takes the file the coordinator was given.
func Export(ctx context.Context, dir string, b Broker, id string, specYAML []byte, st Stores) (*results.Report, error) {
	view, err := b.Experiment(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("fleet: export %s: %w", id, err)
	}
	if at := view.Experiment.ArchivedAt; !at.IsZero() {
		return nil, fmt.Errorf("fleet: export %s: the experiment was archived at %s: its items and results are gone from the coordinator", id, at.Format(time.RFC3339))
	}
	if specYAML == nil && view.Experiment.File != "" {
		specYAML = []byte(view.Experiment.File)
	}
	return results.Build(ctx, dir, view, specYAML, source{exp: id, st: st})
}

// source reads one experiment's stored outputs (results.Source).
type source struct {
	exp string
	st  Stores
}

func (s source) Track(ctx context.Context, id string, token uint64) (results.Episode, error) {
	return s.st.Tracks.Get(ctx, s.exp, id, token)
}

func (s source) Ensemble(ctx context.Context, line string, version uint64) ([]byte, error) {
	return s.st.Params.Fetch(ctx, s.exp, line, version)
}

func (s source) Checkpoint(ctx context.Context, task string) (map[string][]byte, error) {
	return s.st.Checkpoints.Load(ctx, s.exp, task)
}
