// Package live holds what the roles publish for watching a running cluster, as opposed to what
// they report: each arena's tile (its latest camera frame downscaled, with the tracked midline,
// head, target and light drawn, and the numbers of the episode it runs) and each training task's
// learning curve as it grows. The dashboard reads them.
//
// Nothing here is part of an experiment's results: tiles expire after a short TTL (a tile that
// is not refreshed says so by vanishing), and curves are a copy of what the learner also keeps
// in its checkpoint. A store that fails to take a tile costs the tile, never the episode.
//
// Producers use Publisher (fleet.Worker, fleet.Learner); the dashboard uses Reader. memstore and
// redisstore implement both, and both pass the conformance suite in live/livetest.
package live

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Arena states as a worker publishes them. The dashboard adds its own: stale (no tile within
// its TTL) and lost heartbeat (the coordinator has not heard from the worker).
const (
	StateIdle     = "idle"     // registered, no episode leased
	StateLeased   = "leased"   // an episode is leased and the arena is being prepared
	StateRunning  = "running"  // the closed loop runs
	StateFailed   = "failed"   // the last attempt failed (Tile.Error says why); the worker goes on
	StateDraining = "draining" // no new leases: the worker is leaving
)

// MaxThumbnailBytes bounds a tile's JPEG.
const MaxThumbnailBytes = 256 << 10

// MaxCurvePoints is how many points of one task's curve a store keeps (the newest).
const MaxCurvePoints = 4096

// Tile is one arena's live state.
type Tile struct {
	// Arena is the arena id (the worker id: one fleet.Worker per arena), Worker the process
	// that runs it, Line the line its worm carries.
	Arena  string `json:"arena"`
	Worker string `json:"worker"`
	Line   string `json:"line"`
	// State is one of the State constants.
	State string `json:"state"`
	// Experiment, Episode and Kind name the episode leased (empty when idle); Token is its
	// lease token.
	Experiment string `json:"experiment,omitempty"`
	Episode    string `json:"episode,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Token      uint64 `json:"token,omitempty"`
	// Step and Steps are the episode's progress in control steps.
	Step  int `json:"step"`
	Steps int `json:"steps"`
	// DistanceCM is the tracked worm's distance to the target (negative when not tracked or
	// when the episode has no target: collection),
	// Confidence the tracker's confidence, Light the light state in force.
	DistanceCM float64 `json:"distance_cm"`
	// Tracked says the loop had a usable pose at Step.
	Tracked    bool    `json:"tracked"`
	Confidence float64 `json:"confidence"`
	Light      bool    `json:"light"`
	// LatencyMS is the last frame -> light latency in milliseconds.
	LatencyMS float64 `json:"latency_ms"`
	// PolicyVersion is the parameter version acting (0: a fixed light schedule).
	PolicyVersion uint64 `json:"policy_version,omitempty"`
	// Error is the reason of the last failed attempt (StateFailed).
	Error string `json:"error,omitempty"`
	// At is when the worker published the tile (its clock).
	At time.Time `json:"at"`
	// Seq counts the worker's tiles from 1; a reader sees it grow while the arena lives.
	Seq uint64 `json:"seq"`
}

// Validate reports the first field that makes t unfit to store.
func (t Tile) Validate() error {
	switch {
	case t.Arena == "" || len(t.Arena) > 256:
		return errors.New("live: tile arena id must be 1-256 bytes")
	case t.State == "":
		return fmt.Errorf("live: tile %s has no state", t.Arena)
	case t.At.IsZero():
		return fmt.Errorf("live: tile %s has no time", t.Arena)
	}
	return nil
}

// CheckTile refuses a tile put no store may keep: an invalid tile (Tile.Validate), a number
// JSON cannot hold, a thumbnail over MaxThumbnailBytes, a TTL under a millisecond. Both stores
// call it, so they refuse the same puts.
func CheckTile(t Tile, jpeg []byte, ttl time.Duration) error {
	if err := t.Validate(); err != nil {
		return err
	}
	switch {
	case !finite(t.DistanceCM, t.Confidence, t.LatencyMS):
		return fmt.Errorf("live: tile %s: distance %v, confidence %v and latency %v must be finite", t.Arena, t.DistanceCM, t.Confidence, t.LatencyMS)
	case len(jpeg) > MaxThumbnailBytes:
		return fmt.Errorf("live: tile %s: thumbnail of %d bytes, at most %d", t.Arena, len(jpeg), MaxThumbnailBytes)
	case ttl < time.Millisecond:
		return fmt.Errorf("live: tile %s: ttl %v must be at least 1ms", t.Arena, ttl)
	}
	return nil
}

// CheckCurve refuses a curve append no store may keep: no experiment or task, a number JSON
// cannot hold.
func CheckCurve(experiment, task string, points []CurvePoint) error {
	switch {
	case experiment == "":
		return errors.New("live: curve append without an experiment")
	case task == "":
		return fmt.Errorf("live: curve append of experiment %s without a task", experiment)
	}
	for _, p := range points {
		if !finite(p.Critic, p.Actor, p.Entropy, p.Alpha) {
			return fmt.Errorf("live: curve of %s/%s: point at update %d: losses, entropy and temperature must be finite", experiment, task, p.Update)
		}
	}
	return nil
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// CurvePoint is one point of a training task's learning curve: the means over every ensemble
// member of the curve interval ending at Update (updates counted per member).
type CurvePoint struct {
	Update  int64   `json:"update"`
	Critic  float64 `json:"critic_loss"`
	Actor   float64 `json:"actor_loss"`
	Entropy float64 `json:"entropy"`
	// Alpha is the entropy temperature.
	Alpha float64 `json:"alpha"`
	// Version is the parameter version published at or before this point (0: none yet).
	Version uint64    `json:"version"`
	At      time.Time `json:"at"`
}

// Curve is one training task's learning curve.
type Curve struct {
	Experiment string       `json:"experiment"`
	Task       string       `json:"task"`
	Line       string       `json:"line"`
	Points     []CurvePoint `json:"points"`
}

// Publisher takes what the roles publish.
type Publisher interface {
	// PutTile replaces arena t.Arena's tile and thumbnail (a JPEG, at most MaxThumbnailBytes;
	// nil keeps none); both expire after ttl.
	PutTile(ctx context.Context, t Tile, jpeg []byte, ttl time.Duration) error
	// AppendCurve adds points to a task's curve (keeping the newest MaxCurvePoints); points
	// whose Update is not above the curve's last are dropped, so a resumed task that publishes
	// again does not fold its curve back.
	AppendCurve(ctx context.Context, experiment, task, line string, points []CurvePoint) error
}

// Reader reads what was published.
type Reader interface {
	// Tiles returns every unexpired tile, ordered by arena id.
	Tiles(ctx context.Context) ([]Tile, error)
	// Thumbnail returns an arena's JPEG (ErrNotFound when it has none or it expired).
	Thumbnail(ctx context.Context, arena string) ([]byte, error)
	// Curves returns the curves of an experiment's tasks, ordered by task id.
	Curves(ctx context.Context, experiment string) ([]Curve, error)
}

// ErrNotFound is returned (wrapped) for a tile or thumbnail that is absent or expired.
var ErrNotFound = errors.New("not found")
