package memstore

import (
	"context"
	"testing"

	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/fleet/storetest"
)

// TestConformance runs the stores' conformance suite (fleet/storetest), which package
// redisstore runs too.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) fleet.Stores {
		return fleet.Stores{Replay: NewReplay(), Params: NewParams(), Tracks: NewTracks(), Checkpoints: NewCheckpoints()}
	})
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
