package redisstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/redisserver"
)

const (
	benchChunkFrames = 30      // frames per chunk, as a worker appends them (10 s at 3 Hz)
	benchWriters     = 16      // concurrent appenders (workers)
	benchReplay      = 100_000 // frames of the replay a snapshot reads
)

// benchStore starts a redis-server with appendfsync fsync and opens a store on it.
func benchStore(b *testing.B, fsync string) *Store {
	b.Helper()
	srv := startServer(b, redisserver.Config{Fsync: fsync})
	s, err := open(context.Background(), Config{URL: srv.URL(), Password: srv.Password()}, fsync == "always")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkReplayInsert appends chunks of 30 frames from 16 concurrent writers to one
// experiment's line, each acknowledged by the server: with appendfsync always (durable: the
// server fsyncs once per event-loop turn for all the writers) and with appendfsync everysec
// (not durable), for the cost of durability. One op is one chunk.
func BenchmarkReplayInsert(b *testing.B) {
	for _, fsync := range []string{"always", "everysec"} {
		b.Run("appendfsync="+fsync, func(b *testing.B) {
			s := benchStore(b, fsync)
			ctx := context.Background()
			var next atomic.Int64
			var failed atomic.Value
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range benchWriters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ep := fmt.Sprintf("e.%d", w)
					records := frames(ep, 1, benchChunkFrames)
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						c := fleet.Chunk{Experiment: "bench", Line: "301", Episode: ep, Token: 1, Seq: int(i), PolicyVersion: 1, Records: records}
						if err := s.Append(ctx, c); err != nil {
							failed.Store(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*benchChunkFrames)/elapsed.Seconds(), "frames/s")
		})
	}
}

// BenchmarkReplaySnapshotRead reads a 100,000-frame replay (chunks of 30 frames) as a
// learner's snapshot does (appendfsync always; reads do not fsync). One op is one snapshot.
func BenchmarkReplaySnapshotRead(b *testing.B) {
	s := benchStore(b, "always")
	ctx := context.Background()
	chunks := (benchReplay + benchChunkFrames - 1) / benchChunkFrames
	var wg sync.WaitGroup
	errc := make(chan error, benchWriters)
	for w := range benchWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < chunks; i += benchWriters {
				ep := fmt.Sprintf("e.%d", i/40)
				c := fleet.Chunk{Experiment: "bench", Line: "301", Episode: ep, Token: 1, Seq: i % 40, PolicyVersion: 1,
					Records: frames(ep, 1, benchChunkFrames)}
				if err := s.Append(ctx, c); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		cs, err := s.Chunks(ctx, "bench", "301")
		if err != nil {
			b.Fatal(err)
		}
		if len(cs) != chunks {
			b.Fatalf("%d chunks, want %d", len(cs), chunks)
		}
	}
	b.ReportMetric(float64(b.N*chunks*benchChunkFrames)/time.Since(start).Seconds(), "frames/s")
}
