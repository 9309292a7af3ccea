// Package fleet holds the roles that lease work from a coordinator: Worker (one arena: lease an
// episode of its line, run it on its station, append its records to the replay, store its track,
// report its outcome) and Learner (lease a training task, snapshot the line's replay, train,
// publish every parameter version, checkpoint, report the final version).
//
// fleet defines the interfaces it consumes, context first: Broker (coordinator.Local in one
// process, api.Client against a Raft cluster), Replay, Params, Tracks and Checkpoints (package
// memstore in memory; Redis for a cluster). Nothing in fleet decides phases, items or seeds:
// the coordinator's plan does, and the roles only run what they lease.
package fleet

import (
	"context"

	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/results"
)

// ErrNotFound is returned (wrapped) by stores for a key they do not hold.
var ErrNotFound = results.ErrNotFound

// Broker is the coordinator as the roles use it. coordinator.Local and api.Client implement it;
// both return the api package's sentinel errors (api.ErrStaleLease, api.ErrDuplicate, ...).
type Broker interface {
	RegisterWorker(ctx context.Context, w api.RegisterWorkerCmd) error
	RegisterLearner(ctx context.Context, l api.RegisterLearnerCmd) error
	// Lease returns nil, nil when there is no work for the holder.
	Lease(ctx context.Context, req api.LeaseRequest) (*api.Item, error)
	Heartbeat(ctx context.Context, req api.HeartbeatRequest) (*api.Item, error)
	Report(ctx context.Context, req api.ReportCmd) (*api.Item, error)
	Fail(ctx context.Context, req api.FailCmd) (*api.Item, error)
	// Deregister removes a leaving role; a lease it still holds is failed with the reason.
	Deregister(ctx context.Context, req api.DeregisterRequest) error
	Experiment(ctx context.Context, id string) (api.ExperimentView, error)
}

// Notifier is implemented by brokers that can say when their state changed (coordinator.Local):
// a role with no work waits on Changed instead of polling.
type Notifier interface {
	Changed() <-chan struct{}
}

// Chunk is a run of consecutive frames of one attempt at an episode, as a worker appends them
// to the replay while the episode runs.
type Chunk struct {
	// Experiment and Line name the replay (one per experiment and line).
	Experiment string
	Line       string
	// Episode is the episode's item id; Token the lease token of the attempt that recorded it.
	Episode string
	Token   uint64
	// Seq numbers the attempt's chunks from 0.
	Seq int
	// PolicyVersion is the parameter version that chose the chunk's lights (0: a fixed
	// schedule).
	PolicyVersion uint64
	// TraceParent is the W3C traceparent of the span that wrote the chunk (empty when not
	// traced).
	TraceParent string
	Records     []replay.Record
}

// Replay is the shared replay: chunks appended by workers, read back by learners.
type Replay interface {
	// Append stores a chunk. It returns only once the chunk is durable as the store defines
	// it; appending the same (Episode, Token, Seq) again changes nothing.
	Append(ctx context.Context, c Chunk) error
	// Chunks returns every chunk of an experiment's line (of every attempt), in any order: the
	// learner keeps those of accepted attempts and orders them.
	Chunks(ctx context.Context, experiment, line string) ([]Chunk, error)
}

// Params stores parameter versions: one ensemble blob (policy.Ensemble.MarshalBinary) per
// experiment, line and version.
type Params interface {
	// Publish stores a version; publishing the same version with the same bytes again is not
	// an error, with other bytes it is.
	Publish(ctx context.Context, experiment, line string, version uint64, blob []byte) error
	// Fetch returns a version's blob (ErrNotFound when absent).
	Fetch(ctx context.Context, experiment, line string, version uint64) ([]byte, error)
	// Latest returns the newest version published (ErrNotFound when none).
	Latest(ctx context.Context, experiment, line string) (uint64, error)
}

// TracedParams is implemented by Params stores that keep a W3C traceparent beside each
// version: the learner.publish span that published it, so that an episode acting with the
// version links to the training that made it. Both stores of the project implement it.
type TracedParams interface {
	// PublishTraced is Publish that also stores traceParent with the version (when the version
	// is new; publishing it again keeps the first traceparent).
	PublishTraced(ctx context.Context, experiment, line string, version uint64, blob []byte, traceParent string) error
	// TraceParent returns the traceparent stored with a version ("" when none was;
	// ErrNotFound when the version is absent).
	TraceParent(ctx context.Context, experiment, line string, version uint64) (string, error)
}

// Tracks stores each attempt's track: the episode's metrics and per-frame track.
type Tracks interface {
	// Put stores the track of the attempt under lease token.
	Put(ctx context.Context, experiment string, token uint64, track results.Episode) error
	// Get returns the track of episode id stored under token (ErrNotFound when absent).
	Get(ctx context.Context, experiment, id string, token uint64) (results.Episode, error)
}

// Checkpoints stores a training task's checkpoint: the learner's files by name.
type Checkpoints interface {
	// Save replaces the task's checkpoint.
	Save(ctx context.Context, experiment, task string, files map[string][]byte) error
	// Load returns the task's checkpoint (ErrNotFound when there is none).
	Load(ctx context.Context, experiment, task string) (map[string][]byte, error)
}
