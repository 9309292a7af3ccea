package redisstore

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/optoloop/optoloop/agentlib/replay"
)

// frames returns n records of one episode as a worker appends them: one target, one policy
// version, times at 3 Hz.
func frames(episode string, policy uint64, n int) []replay.Record {
	out := make([]replay.Record, n)
	for i := range out {
		out[i] = replay.Record{T: float64(i) / 3, X: 1000 + 0.1*float64(i), Y: 900 - 0.37*float64(i), Body: 0.01 * float64(i),
			Head: -0.02 * float64(i), OK: i%7 != 0, Light: i%3 == 0, Episode: episode, PolicyVersion: policy, TargetX: 1200.5, TargetY: 700.25}
		out[i].BehaviourP = certain(out[i].Light)
	}
	return out
}

func TestRecordsRoundTrip(t *testing.T) {
	nan := math.Float64frombits(0x7ff8000000000bad) // a NaN with a payload
	odd := []replay.Record{
		{T: math.Copysign(0, -1), X: math.Inf(1), Y: math.Inf(-1), Body: nan, Head: math.SmallestNonzeroFloat64, TargetX: math.MaxFloat64, Episode: "e.1"},
		{T: 0.1, Episode: "another episode", PolicyVersion: math.MaxUint64, TargetX: math.MaxFloat64},
		{T: 0.2, Episode: "", TargetY: math.Copysign(0, -1)},
		{T: 0.3, Episode: "e.1", PolicyVersion: 4, OK: true, Light: true},
		{T: 0.4, Episode: "e.1", PolicyVersion: 4, OK: true, Light: true, BehaviourP: 0.91},
		{T: 0.5, Episode: "e.1", PolicyVersion: 4, OK: true, BehaviourP: 0.1},
	}
	tests := []struct {
		name    string
		episode string
		policy  uint64
		records []replay.Record
	}{
		{name: "none", episode: "e.1"},
		{name: "a chunk of an episode", episode: "e.12", policy: 3, records: frames("e.12", 3, 30)},
		{name: "odd values and records of other episodes and versions", episode: "e.1", policy: 4, records: odd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeRecords(tc.episode, tc.policy, tc.records)
			got, err := decodeRecords(tc.episode, tc.policy, b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tc.records, equalRecord) {
				t.Errorf("decoded %+v, want %+v", got, tc.records)
			}
		})
	}
	// Shared episode, version and target, and a behaviour probability of 1 or 0 that the light
	// implies, are written once or not at all: 41 bytes a record.
	if n := len(encodeRecords("e.12", 3, frames("e.12", 3, 30))); n != 1+1+30*41+16+4 {
		t.Errorf("30 records in %d bytes", n)
	}
}

// TestRecordsCorrupt: every truncation and every single bit flipped is refused.
func TestRecordsCorrupt(t *testing.T) {
	b := encodeRecords("e.1", 0, append(frames("e.1", 0, 3), replay.Record{Episode: "x", PolicyVersion: 9}))
	for n := range len(b) {
		if _, err := decodeRecords("e.1", 0, b[:n]); !errors.Is(err, errCorrupt) {
			t.Fatalf("%d of %d bytes: %v", n, len(b), err)
		}
	}
	for i := range len(b) * 8 {
		c := slices.Clone(b)
		c[i/8] ^= 1 << (i % 8)
		if _, err := decodeRecords("e.1", 0, c); !errors.Is(err, errCorrupt) {
			t.Fatalf("bit %d flipped: %v", i, err)
		}
	}
	if _, err := decodeRecords("e.1", 0, append(slices.Clone(b), 0)); !errors.Is(err, errCorrupt) {
		t.Fatalf("a byte appended: %v", err)
	}
}

func FuzzDecodeRecords(f *testing.F) {
	f.Add(encodeRecords("e.1", 2, frames("e.1", 2, 4)))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecords("e.1", 2, b)
		if err != nil {
			return
		}
		if again, err := decodeRecords("e.1", 2, encodeRecords("e.1", 2, r)); err != nil || !slices.EqualFunc(again, r, equalRecord) {
			t.Fatalf("decoded records do not round-trip: %v", err)
		}
	})
}
