package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/telemetry"
)

// ErrUnavailable is wrapped by stores for a failure that may pass by itself (the store is
// away: a refused connection, a timeout, a server restarting). The roles retry such writes
// with backoff; any other error is final.
var ErrUnavailable = errors.New("store unavailable")

// ErrBufferFull is wrapped in the failure of an episode whose records could not reach the
// replay while it ran and outgrew the worker's buffer: the episode ends (light off) rather
// than lose frames.
var ErrBufferFull = errors.New("replay buffer full")

// retry calls fn until it succeeds, fails with an error that does not wrap ErrUnavailable, ctx
// ends, or budget has passed since the first call (then the last error is returned). Waits
// start at 50 ms and double to at most 2 s.
func retry(ctx context.Context, budget time.Duration, log *slog.Logger, what string, fn func(context.Context) error) error {
	deadline := time.Now().Add(budget)
	wait := 50 * time.Millisecond
	for a := 1; ; a++ {
		err := fn(ctx)
		if err == nil || !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		if !time.Now().Add(wait).Before(deadline) {
			return fmt.Errorf("%s: gave up after %d attempts in %v: %w", what, a, budget, err)
		}
		log.Warn("store unavailable; retrying", "op", what, "attempt", a, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// chunkSink sends an episode's records to the replay as numbered chunks without holding up the
// closed loop: Append queues a copy and returns; a goroutine appends the chunks in order,
// retrying while the store is unavailable. At most limit frames wait in the queue. An Append
// that would pass the bound while the store is away fails with ErrBufferFull, as does every
// Append after a chunk failed for good, so the episode ends (light off) instead of losing
// frames silently; while the store answers, such an Append waits for room instead (a simulated
// arena can outrun any store; a rig at 3 Hz never waits). Flush waits until every queued chunk
// is stored.
type chunkSink struct {
	replay Replay
	log    *slog.Logger
	limit  int
	tel    *workerTel

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []Chunk
	queued  int // frames in queue (including the chunk being written)
	next    Chunk
	err     error // the first chunk that failed for good
	away    bool  // the last attempt to append failed because the store was unavailable
	closed  bool
	cancel  context.CancelFunc
	stopped chan struct{}
}

// newChunkSink starts the writer; ctx bounds every store call (and its span is the parent of
// each chunk's replay.append span). Close it when the episode ends.
func newChunkSink(ctx context.Context, r Replay, first Chunk, limit int, log *slog.Logger, tel *workerTel) *chunkSink {
	ctx, cancel := context.WithCancel(ctx)
	s := &chunkSink{replay: r, log: log, limit: limit, tel: tel, next: first, cancel: cancel, stopped: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.write(ctx)
	return s
}

// Append queues recs as the episode's next chunk.
func (s *chunkSink) Append(recs ...replay.Record) error {
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.err != nil:
			return s.err
		case s.closed:
			return errors.New("fleet: replay sink closed")
		case s.queued > 0 && s.queued+len(recs) > s.limit && s.away:
			s.err = fmt.Errorf("%w: %d frames of episode %s wait for an unavailable replay (bound %d)", ErrBufferFull, s.queued, s.next.Episode, s.limit)
			s.cond.Broadcast()
			return s.err
		case s.queued > 0 && s.queued+len(recs) > s.limit:
			s.cond.Wait() // the store answers but is behind: wait for room
			continue
		}
		break
	}
	c := s.next
	c.Records = slices.Clone(recs)
	s.next.Seq++
	s.queue = append(s.queue, c)
	s.queued += len(recs)
	s.tel.buffer.Add(context.Background(), int64(len(recs)))
	s.cond.Broadcast()
	return nil
}

// write appends queued chunks in order until the sink is closed and empty, or a chunk fails for
// good.
func (s *chunkSink) write(ctx context.Context) {
	defer close(s.stopped)
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed && s.err == nil {
			s.cond.Wait()
		}
		if s.err != nil || len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		c := s.queue[0]
		s.mu.Unlock()

		// Unavailable stores are retried for as long as the episode runs: the buffer's bound,
		// not a time limit, decides when an episode gives up while it runs; Flush bounds the
		// wait after it ended.
		// Each chunk is a replay.append span (its retries included), whose traceparent the
		// chunk carries into the store.
		actx, span := s.tel.tracer.Start(ctx, "replay.append", trace.WithAttributes(attribute.Int(telemetry.AttrChunkSeq, c.Seq),
			attribute.String(telemetry.AttrItem, c.Episode), attribute.Int64(telemetry.AttrToken, int64(c.Token)), attribute.Int("optoloop.frames", len(c.Records))))
		c.TraceParent = telemetry.TraceParent(span.SpanContext())
		err := retry(actx, 365*24*time.Hour, s.log, "append chunk", func(ctx context.Context) error {
			t0 := time.Now()
			err := s.replay.Append(ctx, c)
			if err == nil {
				s.tel.chunkWrite.Record(ctx, time.Since(t0).Seconds())
			}
			s.mu.Lock()
			if away := errors.Is(err, ErrUnavailable); away != s.away {
				s.away = away
				s.cond.Broadcast()
			}
			s.mu.Unlock()
			return err
		})
		endSpan(span, err)

		s.mu.Lock()
		if err != nil {
			if s.err == nil {
				s.err = fmt.Errorf("append chunk %d of episode %s: %w", c.Seq, c.Episode, err)
			}
		} else {
			s.queue = s.queue[1:]
			s.queued -= len(c.Records)
			s.tel.buffer.Add(context.Background(), -int64(len(c.Records)))
		}
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// Flush waits until every queued chunk is stored; it returns the first final failure, or
// ctx's error when ctx ends first.
func (s *chunkSink) Flush(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cond.Broadcast()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) > 0 && s.err == nil && ctx.Err() == nil {
		s.cond.Wait()
	}
	switch {
	case s.err != nil:
		return s.err
	case len(s.queue) > 0:
		return fmt.Errorf("%d chunks of episode %s not stored: %w", len(s.queue), s.next.Episode, ctx.Err())
	}
	return nil
}

// Close stops the writer and waits for it: chunks still queued (Flush was not called or
// failed) are dropped, which is right for an attempt that did not end in a report.
func (s *chunkSink) Close() {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.cancel()
	<-s.stopped
	s.mu.Lock()
	if s.queued > 0 {
		s.tel.buffer.Add(context.Background(), -int64(s.queued))
		s.queued = 0
	}
	s.mu.Unlock()
}
