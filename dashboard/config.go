package dashboard

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/live"
)

// Config configures a Server.
type Config struct {
	// Coordinator is the client the dashboard reads the cluster through, with the dashboard's
	// own credential (a viewer's is enough). Actions never use it with that credential: they
	// carry the signed-in user's token (api.WithToken). Required.
	Coordinator *api.Client
	// Live reads the arenas' tiles and thumbnails and the training tasks' curves. Required.
	Live live.Reader
	// Stores are the experiment stores: Tracks for the episode page, all of them for the
	// report (fleet.Export). Tracks is required; a report needs Params and Checkpoints too and
	// says what it misses when they are nil.
	Stores fleet.Stores
	// WorkDir holds the report cache: one run folder per experiment, exported again when the
	// experiment changed. Required.
	WorkDir string
	// TraceURL, when set, links an episode page to its trace: a URL template whose
	// "{trace_id}" is replaced by the episode's trace id in hex (a Jaeger UI's
	// "http://host:16686/trace/{trace_id}"). Empty: the page names the command only.
	TraceURL string
	// Poll is how often the shared snapshot is rebuilt while a page is watching. Default 1 s.
	Poll time.Duration
	// LostAfter is how long the coordinator may not have heard from a worker or learner
	// before the page says "lost heartbeat". Default 15 s.
	LostAfter time.Duration
	// CurvePoints bounds the points of each learning curve sent to the page (the curve is
	// downsampled, keeping its first and last point). Default 300.
	CurvePoints int
	// FinishedExperiments is how many finished experiments (newest first) the page shows
	// beside every running one. Default 20.
	FinishedExperiments int
	// FrameRows is how many frames the episode page lists (the full track is a JSON link).
	// Default 200.
	FrameRows int
	// SessionIdle ends a session not used for this long; MaxSessions bounds the sessions
	// kept (the least recently used goes first). Defaults 12 h and 1024.
	SessionIdle time.Duration
	MaxSessions int
	// MaxStreams bounds the event streams open at once (over every session). Default 256.
	MaxStreams int
	// Heartbeat is how often an event stream with nothing new sends a comment, so that
	// proxies and the browser keep it open and a dead client is noticed. Default 15 s.
	Heartbeat time.Duration
	// Logger (default: discard). Tokens are never logged.
	Logger *slog.Logger
	// Now is the clock that ages workers, learners and sessions. Default time.Now.
	Now func() time.Time
}

// DefaultConfig returns the defaults documented on Config; the required fields must still be
// set.
func DefaultConfig() Config {
	return Config{Poll: time.Second, LostAfter: 15 * time.Second, CurvePoints: 300, FinishedExperiments: 20, FrameRows: 200,
		SessionIdle: 12 * time.Hour, MaxSessions: 1024, MaxStreams: 256, Heartbeat: 15 * time.Second,
		Logger: slog.New(slog.DiscardHandler), Now: time.Now}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	switch {
	case c.Coordinator == nil:
		return errors.New("dashboard: a coordinator client is required")
	case c.Live == nil:
		return errors.New("dashboard: a live reader is required")
	case c.Stores.Tracks == nil:
		return errors.New("dashboard: a track store is required")
	case c.WorkDir == "":
		return errors.New("dashboard: a work folder (the report cache) is required")
	case c.TraceURL != "" && !strings.Contains(c.TraceURL, "{trace_id}"):
		return fmt.Errorf("dashboard: trace url %q has no {trace_id}", c.TraceURL)
	case c.Poll < 10*time.Millisecond || c.Poll > time.Minute:
		return fmt.Errorf("dashboard: poll %v must be within 10ms-1m", c.Poll)
	case c.LostAfter <= 0:
		return fmt.Errorf("dashboard: lost-after %v must be positive", c.LostAfter)
	case c.CurvePoints < 2 || c.CurvePoints > live.MaxCurvePoints:
		return fmt.Errorf("dashboard: curve points %d must be within 2-%d", c.CurvePoints, live.MaxCurvePoints)
	case c.FinishedExperiments < 0 || c.FrameRows < 0:
		return errors.New("dashboard: finished experiments and frame rows must not be negative")
	case c.SessionIdle <= 0 || c.MaxSessions < 1 || c.MaxStreams < 1:
		return errors.New("dashboard: session idle time, max sessions and max streams must be positive")
	case c.Heartbeat <= 0:
		return fmt.Errorf("dashboard: heartbeat %v must be positive", c.Heartbeat)
	case c.Logger == nil:
		return errors.New("dashboard: logger is required")
	case c.Now == nil:
		return errors.New("dashboard: clock (Now) is required")
	}
	return nil
}
