package memstore

import (
	"context"
	"testing"

	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/fleet/storetest"
	"github.com/optoloop/optoloop/live/livetest"
)

// TestConformance runs the stores' conformance suite (fleet/storetest), which package
// redisstore runs too.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) fleet.Stores {
		return fleet.Stores{Replay: NewReplay(), Params: NewParams(), Tracks: NewTracks(), Checkpoints: NewCheckpoints()}
	})
}

// TestLiveConformance runs the live stores' conformance suite (live/livetest), which package
// redisstore runs too.
func TestLiveConformance(t *testing.T) {
	livetest.Run(t, func(*testing.T) livetest.Store { return NewLive() })
}

func TestParamsPublished(t *testing.T) {
	ctx := context.Background()
	p := NewParams()

	// Published is closed by a new version, not by publishing a stored one again.
	ch := p.Published()
	if err := p.Publish(ctx, "e", "301", 1, []byte("a")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("Published not closed by a new version")
	}
	ch = p.Published()
	if err := p.Publish(ctx, "e", "301", 1, []byte("a")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("Published closed by a version already stored")
	default:
	}
}
