package station

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/worker"
)

// scope is the instrumentation scope of the station's spans.
const scope = "github.com/optoloop/optoloop/station"

// arrivals tells when the last frame an arena delivered arrived.
type arrivals interface{ last() time.Time }

// stampArena is an arena whose frames are stamped with the wall-clock time NextFrame returned
// them: the tracker reads the arena through it, so the loop's frame -> light latency counts
// the tracking too.
type stampArena struct {
	arenas.Arena
	at atomic.Int64 // unix nanoseconds of the last frame's arrival
}

func (a *stampArena) NextFrame(ctx context.Context) (arenas.Frame, error) {
	f, err := a.Arena.NextFrame(ctx)
	if err == nil {
		a.at.Store(time.Now().UnixNano())
	}
	return f, err
}

func (a *stampArena) last() time.Time {
	n := a.at.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// stampPoser is a stamped arena that knows its true pose (a simulator without rendering).
type stampPoser struct {
	*stampArena
	arenas.Poser
}

// stamp wraps a, keeping its Poser.
func stamp(a arenas.Arena) interface {
	arenas.Arena
	arrivals
} {
	s := &stampArena{Arena: a}
	if p, ok := a.(arenas.Poser); ok {
		return stampPoser{stampArena: s, Poser: p}
	}
	return s
}

// arrivalObserver is the worker's observer with the arrival times of its arena's frames.
type arrivalObserver struct {
	worker.Observer
	at arrivals
}

func (o *arrivalObserver) Arrived() time.Time { return o.at.last() }

var _ worker.ArrivalObserver = (*arrivalObserver)(nil)

func endSpan(s trace.Span, err error) {
	if err != nil {
		s.SetStatus(codes.Error, err.Error())
	}
	s.End()
}
