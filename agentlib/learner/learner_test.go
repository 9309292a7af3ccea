package learner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/agentlib/replay"
)

type recorder struct {
	mu       sync.Mutex
	versions []uint64
	blobs    map[uint64][]byte
}

func (r *recorder) Publish(_ context.Context, v uint64, b []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.blobs == nil {
		r.blobs = map[uint64][]byte{}
	}
	r.versions = append(r.versions, v)
	r.blobs[v] = append([]byte(nil), b...)
	return nil
}

// cancelAfter cancels a context once n minibatches have been sampled.
type cancelAfter struct {
	Sampler
	n      int64
	count  atomic.Int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Sample(rng *rand.Rand, dst *replay.Batch) error {
	if c.count.Add(1) == c.n {
		c.cancel()
	}
	return c.Sampler.Sample(rng, dst)
}

func smallConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.Members = 2
	cfg.Updates = 300
	cfg.Round = 100
	cfg.CurveEvery = 40 // not a divisor of Round: curve windows span round boundaries
	cfg.SAC.Hidden = []int{16, 16}
	cfg.SAC.BatchSize = 16
	cfg.SAC.TargetEvery = 7
	return cfg
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestResumeAfterCancelEqualsUninterruptedRun(t *testing.T) {
	mem := toyReplay(t, 3, 200, 2)

	// Uninterrupted.
	dirA := t.TempDir()
	recA := &recorder{}
	la, err := New(smallConfig(dirA), mem, recA, quiet(), rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := la.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if la.Updates() != 300 || la.Version() != 3 || len(recA.versions) != 3 {
		t.Fatalf("uninterrupted: updates %d, version %d, published %v", la.Updates(), la.Version(), recA.versions)
	}

	// Cancelled in the middle of the second round (2 members x 100 samples per round).
	dirB := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recB := &recorder{}
	lb, err := New(smallConfig(dirB), &cancelAfter{Sampler: mem, n: 250, cancel: cancel}, recB, quiet(), rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := lb.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run returned %v", err)
	}
	if lb.Updates() != 100 || len(recB.versions) != 1 {
		t.Fatalf("cancelled run: %d updates, published %v; want 100 and [1]", lb.Updates(), recB.versions)
	}
	if _, err := os.Stat(filepath.Join(dirB, "ensemble")); err == nil {
		t.Fatal("a cancelled run wrote a final ensemble")
	}

	// Resume with a different random source: the state comes from the checkpoint.
	lc, err := New(smallConfig(dirB), mem, recB, quiet(), rand.New(rand.NewPCG(99, 99)))
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lc.Updates() != 300 || lc.Version() != 3 {
		t.Fatalf("resumed run: updates %d, version %d", lc.Updates(), lc.Version())
	}
	for v := uint64(1); v <= 3; v++ {
		if !bytes.Equal(recA.blobs[v], recB.blobs[v]) {
			t.Fatalf("version %d published by the resumed run differs from the uninterrupted one", v)
		}
	}
	ca, _ := os.ReadFile(filepath.Join(dirA, "curves.jsonl"))
	cb, _ := os.ReadFile(filepath.Join(dirB, "curves.jsonl"))
	if !bytes.Equal(ca, cb) {
		t.Fatalf("learning curves differ:\n%s\n---\n%s", ca, cb)
	}
	ea, err := policy.LoadDir(filepath.Join(dirA, "ensemble"), policy.Arch{Spec: policy.ReferenceSpec(), Sizes: []int{90, 16, 16, 2}})
	if err != nil {
		t.Fatal(err)
	}
	blobA, _ := ea.MarshalBinary()
	if !bytes.Equal(blobA, recA.blobs[3]) {
		t.Fatal("the saved final ensemble is not the last published version")
	}

	// The curves: one point per member every 40 updates, finite, in member order per round.
	lines := bytes.Split(bytes.TrimSpace(ca), []byte("\n"))
	if len(lines) != 2*(300/40) {
		t.Fatalf("%d curve points, want %d", len(lines), 2*(300/40))
	}
	for _, line := range lines {
		var p CurvePoint
		if err := json.Unmarshal(line, &p); err != nil {
			t.Fatal(err)
		}
		for _, v := range []float64{p.Q1Loss, p.Q2Loss, p.ActorLoss, p.Entropy, p.Alpha, p.MeanQ} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("non-finite curve value in %s", line)
			}
		}
		if p.Update%40 != 0 || p.Entropy <= 0 || p.Alpha <= 0 {
			t.Fatalf("bad curve point %s", line)
		}
	}

	// A finished run started again does nothing more and publishes nothing.
	ld, _ := New(smallConfig(dirB), mem, recB, quiet(), rand.New(rand.NewPCG(1, 1)))
	if err := ld.Run(context.Background()); err != nil || ld.Updates() != 300 {
		t.Fatalf("rerun of a finished learner: %v, %d updates", err, ld.Updates())
	}
	// A checkpoint of another ensemble size is refused.
	other := smallConfig(dirB)
	other.Members = 3
	le, _ := New(other, mem, nil, quiet(), rand.New(rand.NewPCG(1, 1)))
	if err := le.Run(context.Background()); err == nil {
		t.Fatal("resumed a 2-member checkpoint as 3 members")
	}
}

// failAfter fails every Sample call after the first n.
type failAfter struct {
	Sampler
	n     int64
	count atomic.Int64
}

var errBoom = errors.New("replay backend gone")

func (f *failAfter) Sample(rng *rand.Rand, dst *replay.Batch) error {
	if f.count.Add(1) > f.n {
		return errBoom
	}
	return f.Sampler.Sample(rng, dst)
}

func TestSamplerFailureStopsTheRound(t *testing.T) {
	mem := toyReplay(t, 2, 100, 3)
	dir := t.TempDir()
	rec := &recorder{}
	l, err := New(smallConfig(dir), &failAfter{Sampler: mem, n: 150}, rec, quiet(), rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); !errors.Is(err, errBoom) {
		t.Fatalf("Run returned %v, want the sampler's error", err)
	}
	if l.Updates() != 0 || len(rec.versions) != 0 {
		t.Fatalf("a failed round counted: %d updates, published %v", l.Updates(), rec.versions)
	}
}

func TestEmptyReplayAndBadConfig(t *testing.T) {
	mem, _ := replay.NewMemory(replay.DefaultConfig())
	dir := t.TempDir()
	l, err := New(smallConfig(dir), mem, nil, quiet(), rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); !errors.Is(err, replay.ErrEmpty) {
		t.Fatalf("empty replay: %v, want replay.ErrEmpty", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint", "manifest.json")); err == nil {
		t.Fatal("checkpoint written for an empty replay")
	}
	bad := map[string]func(*Config){
		"no dir":       func(c *Config) { c.Dir = "" },
		"no members":   func(c *Config) { c.Members = 0 },
		"no updates":   func(c *Config) { c.Updates = 0 },
		"round 0":      func(c *Config) { c.Round = 0 },
		"curve 0":      func(c *Config) { c.CurveEvery = 0 },
		"bad sac":      func(c *Config) { c.SAC.Gamma = 2 },
		"obs mismatch": func(c *Config) { c.Spec.Frames = 10 },
	}
	for name, f := range bad {
		c := smallConfig(dir)
		f(&c)
		if _, err := New(c, mem, nil, quiet(), rand.New(rand.NewPCG(1, 1))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A learner configured for the light observation samples 105-number observations, trains
// actors on them and publishes an ensemble of that architecture.
func TestLearnerTrainsOnTheLightObservation(t *testing.T) {
	mem, _ := replay.NewMemory(replay.DefaultConfig())
	rng := rand.New(rand.NewPCG(5, 6))
	x, h := 1000.0, 0.0
	for i := range 200 {
		on := rng.Float64() < 0.3
		if err := mem.Append(replay.Record{T: float64(i) / 3, X: x, Y: 900, Body: h, Head: h, OK: true, Light: on, Episode: "e"}); err != nil {
			t.Fatal(err)
		}
		if on {
			h += 0.3
		}
		x += 5 * math.Cos(h)
	}
	cfg := smallConfig(t.TempDir())
	cfg.Updates, cfg.Round = 100, 100
	cfg.Spec = policy.LightSpec()
	cfg.SAC.ObsSize = cfg.Spec.Size()
	pub := &recorder{}
	l, err := New(cfg, mem, pub, quiet(), rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := policy.Arch{Spec: policy.LightSpec(), Sizes: []int{105, 16, 16, 2}}
	e, err := policy.UnmarshalEnsemble(pub.blobs[l.Version()], want)
	if err != nil {
		t.Fatal(err)
	}
	if e.ObservationSize() != 105 {
		t.Fatalf("ensemble acts on %d numbers", e.ObservationSize())
	}
	// A light spec with the reference's input size is refused.
	cfg.SAC.ObsSize = 90
	if _, err := New(cfg, mem, nil, quiet(), rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("light spec with 90 inputs accepted")
	}
}
