package redisstore

// The stores' conformance suite (fleet/storetest), also run by package memstore, against a real
// redis-server: the Redis store has the in-memory stores' semantics. One server, a key prefix
// per subtest.

import (
	"math"
	"slices"
	"testing"

	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/fleet/storetest"
	"github.com/optoloop/optoloop/redisserver"
	"github.com/optoloop/optoloop/results"
)

func TestConformance(t *testing.T) {
	srv := startServer(t, redisserver.Config{})
	storetest.Run(t, func(t *testing.T) fleet.Stores {
		s := openStore(t, srv, t.Name())
		return fleet.Stores{Replay: s, Params: s, Tracks: s, Checkpoints: s}
	})
}

// equalChunk compares chunks field by field, records by their float bits.
func equalChunk(a, b fleet.Chunk) bool {
	return a.Experiment == b.Experiment && a.Line == b.Line && a.Episode == b.Episode && a.Token == b.Token &&
		a.Seq == b.Seq && a.PolicyVersion == b.PolicyVersion && a.TraceParent == b.TraceParent &&
		slices.EqualFunc(a.Records, b.Records, equalRecord)
}

func equalRecord(a, b replay.Record) bool {
	bits := func(r replay.Record) [8]uint64 {
		return [8]uint64{math.Float64bits(r.T), math.Float64bits(r.X), math.Float64bits(r.Y), math.Float64bits(r.Body),
			math.Float64bits(r.Head), math.Float64bits(r.TargetX), math.Float64bits(r.TargetY), math.Float64bits(r.BehaviourP)}
	}
	return bits(a) == bits(b) && a.OK == b.OK && a.Light == b.Light && a.Episode == b.Episode && a.PolicyVersion == b.PolicyVersion
}

func resultsEpisode(id string) results.Episode { return results.Episode{ID: id} }
