// Package learner trains the members of an ensemble of discrete SAC agents on one replay, each
// member in its own goroutine, and publishes, checkpoints and records what it does.
//
// Training proceeds in rounds of Config.Round updates per member. During a round the members run
// in parallel, each with its own random source (minibatch sampling and augmentation) and its own
// agent. At the end of a round the learner, in this order: appends the round's learning-curve
// points to curves.jsonl, publishes the new parameter version (version n after round n) through
// the Publisher, writes a checkpoint and calls Config.Checkpointed. A learner that stops
// (context cancelled, crash) and is started again on the same directory resumes from the last
// checkpoint: it truncates the learning curves back to that point and repeats the interrupted
// round. Since every member is deterministic for its seed, the resumed run ends with exactly the
// parameters, curves and published blobs of an uninterrupted one; a version may be published
// twice (with the same bytes), so publishers must treat a repeated version as idempotent.
//
// Directory layout (Config.Dir):
//
//	checkpoint/manifest.json            the last complete checkpoint (written last, atomically)
//	checkpoint/member-KKK-uNNNNNNNNN.ckpt  agent and random-source state of member KKK
//	curves.jsonl                         one JSON object per member every CurveEvery updates
//	ensemble/                            the final ensemble (policy.SaveDir), written at the end
package learner

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	"github.com/optoloop/optoloop/agentlib/nn"
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/agentlib/sac"
)

// Sampler is the replay a learner trains from (replay.Memory implements it). It must be safe for
// concurrent use: every member samples from it.
type Sampler interface {
	Sample(rng *rand.Rand, dst *replay.Batch) error
}

// Publisher receives each new parameter version: the version number (1 after the first round,
// increasing by one per round) and the ensemble encoded by policy.Ensemble.MarshalBinary. After
// a resume a version may be published again with identical bytes.
type Publisher interface {
	Publish(ctx context.Context, version uint64, ensemble []byte) error
}

// Config configures a learner.
type Config struct {
	// Dir holds checkpoints, learning curves and the final ensemble. Required.
	Dir string
	// Members is the ensemble size K. Default 20.
	Members int
	// Updates is the number of SAC updates per member. Default 100,000 (20 epochs x 5000).
	Updates int64
	// Round is the number of updates per member between publications and checkpoints.
	// Default 5000 (one reference epoch).
	Round int64
	// CurveEvery is the number of updates per learning-curve point; each point holds the means
	// over those updates. Default 500.
	CurveEvery int64
	// SAC configures every member.
	SAC sac.Config
	// Spec is the observation the replay produces, recorded in the parameter files. Default
	// policy.ReferenceSpec().
	Spec policy.ObsSpec
	// Checkpointed, when set, is called after every checkpoint is complete in Dir (its
	// checkpoint/ folder and curves.jsonl), so that a caller can copy it to shared storage; an
	// error ends Run with it.
	Checkpointed func(ctx context.Context) error
	// BeforeRound, when set, is called before every round with the version the round will
	// publish (also the first round after a resume), so that a caller can wait for data and add
	// it to the replay (online training) while no member samples; an error ends Run with it.
	BeforeRound func(ctx context.Context, version uint64) error
}

// DefaultConfig returns the reference training schedule; Dir must still be set.
func DefaultConfig() Config {
	return Config{Members: 20, Updates: 100_000, Round: 5000, CurveEvery: 500, SAC: sac.DefaultConfig(), Spec: policy.ReferenceSpec()}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("learner: dir is required")
	case c.Members < 1 || c.Members > 1024:
		return fmt.Errorf("learner: members %d must be in [1, 1024]", c.Members)
	case c.Updates < 1:
		return fmt.Errorf("learner: updates %d must be positive", c.Updates)
	case c.Round < 1:
		return fmt.Errorf("learner: round %d must be positive", c.Round)
	case c.CurveEvery < 1:
		return fmt.Errorf("learner: curve interval %d must be positive", c.CurveEvery)
	}
	if err := c.SAC.Validate(); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	if err := c.arch().Validate(); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	return nil
}

func (c Config) arch() policy.Arch { return policy.Arch{Spec: c.Spec, Sizes: c.SAC.Sizes()} }

// CurvePoint is one line of curves.jsonl: means over the CurveEvery updates ending at Update.
type CurvePoint struct {
	Member    int     `json:"member"`
	Update    int64   `json:"update"`
	Q1Loss    float64 `json:"q1_loss"`
	Q2Loss    float64 `json:"q2_loss"`
	ActorLoss float64 `json:"actor_loss"`
	AlphaLoss float64 `json:"alpha_loss"`
	Entropy   float64 `json:"entropy"`
	Alpha     float64 `json:"alpha"`
	MeanQ     float64 `json:"mean_q"`
}

type member struct {
	agent *sac.Agent
	pcg   *rand.PCG
	rng   *rand.Rand
	batch *replay.Batch
	sum   sac.Stats
	n     int64
	curve []CurvePoint
}

// Learner trains one ensemble. Use it for one Run; after Run returns an error, start a new
// Learner on the same directory to resume.
type Learner struct {
	cfg     Config
	rep     Sampler
	pub     Publisher
	log     *slog.Logger
	members []*member
	updates int64  // per member, at the last round boundary
	version uint64 // last version published
}

// New returns a learner that samples from rep and publishes to pub (nil: publish nowhere). rng
// seeds the members (two draws per member); with an existing checkpoint in cfg.Dir, Run resumes
// from it and the members' states come from the checkpoint instead.
func New(cfg Config, rep Sampler, pub Publisher, log *slog.Logger, rng *rand.Rand) (*Learner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rep == nil || log == nil || rng == nil {
		return nil, errors.New("learner: replay, logger and random source are required")
	}
	cfg.SAC.Hidden = append([]int(nil), cfg.SAC.Hidden...)
	l := &Learner{cfg: cfg, rep: rep, pub: pub, log: log}
	for range cfg.Members {
		pcg := rand.NewPCG(rng.Uint64(), rng.Uint64())
		r := rand.New(pcg)
		a, err := sac.New(cfg.SAC, r)
		if err != nil {
			return nil, err
		}
		l.members = append(l.members, &member{agent: a, pcg: pcg, rng: r, batch: replay.NewBatchOf(cfg.SAC.BatchSize, cfg.Spec.Size())})
	}
	return l, nil
}

// Updates returns the number of updates per member completed at the last round boundary.
func (l *Learner) Updates() int64 { return l.updates }

// Version returns the last parameter version published (0 before the first round).
func (l *Learner) Version() uint64 { return l.version }

// Ensemble returns the ensemble of the members' current actors.
func (l *Learner) Ensemble() (*policy.Ensemble, error) {
	actors := make([]*nn.MLP, len(l.members))
	for i, m := range l.members {
		actors[i] = m.agent.Actor
	}
	return policy.NewEnsemble(l.cfg.arch(), actors...)
}

// Run trains until every member has done cfg.Updates updates, resuming from the checkpoint in
// cfg.Dir if there is one. It returns ctx.Err() when cancelled (the last checkpoint stays valid)
// and wraps replay.ErrEmpty when the replay has nothing to sample.
func (l *Learner) Run(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(l.cfg.Dir, "checkpoint"), 0o755); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	curveSize, err := l.restore()
	if err != nil {
		return err
	}
	curvePath := filepath.Join(l.cfg.Dir, "curves.jsonl")
	curves, err := os.OpenFile(curvePath, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	defer curves.Close()
	if err := curves.Truncate(curveSize); err != nil {
		return fmt.Errorf("learner: truncate curves: %w", err)
	}
	if _, err := curves.Seek(curveSize, 0); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	l.log.Info("learner starting", "dir", l.cfg.Dir, "members", l.cfg.Members, "updates", l.cfg.Updates,
		"resumed_at", l.updates, "version", l.version)

	for l.updates < l.cfg.Updates {
		target := min(l.updates+l.cfg.Round, l.cfg.Updates)
		if l.cfg.BeforeRound != nil {
			if err := l.cfg.BeforeRound(ctx, l.version+1); err != nil {
				return fmt.Errorf("learner: before round %d: %w", l.version+1, err)
			}
		}
		if err := l.round(ctx, target); err != nil {
			return err
		}
		l.updates = target
		l.version++
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, m := range l.members {
			for _, p := range m.curve {
				_ = enc.Encode(p)
			}
			m.curve = m.curve[:0]
		}
		if _, err := curves.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("learner: write curves: %w", err)
		}
		if err := curves.Sync(); err != nil {
			return fmt.Errorf("learner: sync curves: %w", err)
		}
		curveSize += int64(buf.Len())
		ens, err := l.Ensemble()
		if err != nil {
			return err
		}
		if l.pub != nil {
			blob, _ := ens.MarshalBinary()
			if err := l.pub.Publish(ctx, l.version, blob); err != nil {
				return fmt.Errorf("learner: publish version %d: %w", l.version, err)
			}
		}
		if err := l.checkpoint(curveSize); err != nil {
			return err
		}
		if l.cfg.Checkpointed != nil {
			if err := l.cfg.Checkpointed(ctx); err != nil {
				return fmt.Errorf("learner: after checkpoint at %d updates: %w", l.updates, err)
			}
		}
		l.log.Info("learner round done", "updates", l.updates, "version", l.version)
	}
	ens, err := l.Ensemble()
	if err != nil {
		return err
	}
	if err := policy.SaveDir(filepath.Join(l.cfg.Dir, "ensemble"), ens); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	l.log.Info("learner done", "updates", l.updates, "version", l.version)
	return nil
}

// round advances every member to target updates in parallel.
func (l *Learner) round(ctx context.Context, target int64) error {
	// A member that fails stops the others: the round is lost either way.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(l.members))
	var wg sync.WaitGroup
	for i, m := range l.members {
		wg.Go(func() {
			if errs[i] = l.train(rctx, i, m, target); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

func (l *Learner) train(ctx context.Context, idx int, m *member, target int64) error {
	every := l.cfg.CurveEvery
	for m.agent.Updates() < target {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.rep.Sample(m.rng, m.batch); err != nil {
			return fmt.Errorf("learner: member %d: sample: %w", idx, err)
		}
		st := m.agent.Update(m.batch)
		m.sum.Q1Loss += st.Q1Loss
		m.sum.Q2Loss += st.Q2Loss
		m.sum.ActorLoss += st.ActorLoss
		m.sum.AlphaLoss += st.AlphaLoss
		m.sum.Entropy += st.Entropy
		m.sum.Alpha += st.Alpha
		m.sum.MeanQ += st.MeanQ
		m.n++
		if u := m.agent.Updates(); u%every == 0 {
			n := float64(m.n)
			m.curve = append(m.curve, CurvePoint{Member: idx, Update: u,
				Q1Loss: m.sum.Q1Loss / n, Q2Loss: m.sum.Q2Loss / n, ActorLoss: m.sum.ActorLoss / n,
				AlphaLoss: m.sum.AlphaLoss / n, Entropy: m.sum.Entropy / n, Alpha: m.sum.Alpha / n, MeanQ: m.sum.MeanQ / n})
			m.sum, m.n = sac.Stats{}, 0
		}
	}
	return nil
}

// The checkpoint.

const (
	ckptMagic   = "OLLRNCK\x00"
	ckptVersion = 1
)

type manifest struct {
	FormatVersion int      `json:"format_version"`
	Updates       int64    `json:"updates"`
	Version       uint64   `json:"version"`
	Sizes         []int    `json:"sizes"`
	CurveBytes    int64    `json:"curve_bytes"`
	Members       []string `json:"members"`
}

// memberState encodes a member: magic, version, agent checkpoint, random-source state, the
// partial curve window, CRC-32.
func (m *member) marshal() ([]byte, error) {
	agent, err := m.agent.MarshalBinary()
	if err != nil {
		return nil, err
	}
	rs, err := m.pcg.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString(ckptMagic)
	w := func(v any) { _ = binary.Write(&buf, binary.LittleEndian, v) }
	w(uint32(ckptVersion))
	w(uint64(len(agent)))
	buf.Write(agent)
	w(uint64(len(rs)))
	buf.Write(rs)
	w(m.n)
	w([]float64{m.sum.Q1Loss, m.sum.Q2Loss, m.sum.ActorLoss, m.sum.AlphaLoss, m.sum.Entropy, m.sum.Alpha, m.sum.MeanQ})
	w(crc32.ChecksumIEEE(buf.Bytes()))
	return buf.Bytes(), nil
}

func (m *member) unmarshal(data []byte) error {
	bad := func(what string) error { return fmt.Errorf("learner: bad member checkpoint: %s", what) }
	if len(data) < len(ckptMagic)+8 || string(data[:len(ckptMagic)]) != ckptMagic {
		return bad("magic")
	}
	if crc32.ChecksumIEEE(data[:len(data)-4]) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return bad("checksum")
	}
	r := bytes.NewReader(data[len(ckptMagic) : len(data)-4])
	var version uint32
	var n uint64
	if binary.Read(r, binary.LittleEndian, &version) != nil || version != ckptVersion {
		return bad(fmt.Sprintf("format version %d, want %d", version, ckptVersion))
	}
	if binary.Read(r, binary.LittleEndian, &n) != nil || n > uint64(r.Len()) {
		return bad("length")
	}
	agent := make([]byte, n)
	_, _ = r.Read(agent)
	if binary.Read(r, binary.LittleEndian, &n) != nil || n > uint64(r.Len()) {
		return bad("length")
	}
	rs := make([]byte, n)
	_, _ = r.Read(rs)
	var cnt int64
	sums := make([]float64, 7)
	if binary.Read(r, binary.LittleEndian, &cnt) != nil || binary.Read(r, binary.LittleEndian, sums) != nil || r.Len() != 0 {
		return bad("length")
	}
	if err := m.agent.UnmarshalBinary(agent); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	if err := m.pcg.UnmarshalBinary(rs); err != nil {
		return fmt.Errorf("learner: random source: %w", err)
	}
	m.n = cnt
	m.sum = sac.Stats{Q1Loss: sums[0], Q2Loss: sums[1], ActorLoss: sums[2], AlphaLoss: sums[3], Entropy: sums[4], Alpha: sums[5], MeanQ: sums[6]}
	return nil
}

func (l *Learner) checkpoint(curveSize int64) error {
	dir := filepath.Join(l.cfg.Dir, "checkpoint")
	man := manifest{FormatVersion: ckptVersion, Updates: l.updates, Version: l.version, Sizes: l.cfg.SAC.Sizes(), CurveBytes: curveSize}
	keep := map[string]bool{"manifest.json": true}
	for i, m := range l.members {
		data, err := m.marshal()
		if err != nil {
			return fmt.Errorf("learner: checkpoint member %d: %w", i, err)
		}
		name := fmt.Sprintf("member-%03d-u%09d.ckpt", i, l.updates)
		if err := policy.WriteFileAtomic(filepath.Join(dir, name), data); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
		man.Members = append(man.Members, name)
		keep[name] = true
	}
	b, _ := json.MarshalIndent(man, "", "  ")
	if err := policy.WriteFileAtomic(filepath.Join(dir, "manifest.json"), append(b, '\n')); err != nil {
		return fmt.Errorf("learner: checkpoint: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("learner: checkpoint: %w", err)
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// restore loads the checkpoint if there is one and returns the curve file size it recorded.
func (l *Learner) restore() (int64, error) {
	dir := filepath.Join(l.cfg.Dir, "checkpoint")
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("learner: read checkpoint: %w", err)
	}
	var man manifest
	if err := json.Unmarshal(b, &man); err != nil {
		return 0, fmt.Errorf("learner: checkpoint manifest: %w", err)
	}
	switch {
	case man.FormatVersion != ckptVersion:
		return 0, fmt.Errorf("learner: checkpoint format version %d, want %d", man.FormatVersion, ckptVersion)
	case len(man.Members) != l.cfg.Members:
		return 0, fmt.Errorf("learner: checkpoint has %d members, config wants %d", len(man.Members), l.cfg.Members)
	case fmt.Sprint(man.Sizes) != fmt.Sprint(l.cfg.SAC.Sizes()):
		return 0, fmt.Errorf("learner: checkpoint network sizes %v, config wants %v", man.Sizes, l.cfg.SAC.Sizes())
	case man.Updates > l.cfg.Updates:
		return 0, fmt.Errorf("learner: checkpoint at %d updates is past the configured %d", man.Updates, l.cfg.Updates)
	}
	for i, name := range man.Members {
		if filepath.Base(name) != name {
			return 0, fmt.Errorf("learner: checkpoint member name %q", name)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return 0, fmt.Errorf("learner: read checkpoint: %w", err)
		}
		if err := l.members[i].unmarshal(data); err != nil {
			return 0, fmt.Errorf("member %d: %w", i, err)
		}
		if got := l.members[i].agent.Updates(); got != man.Updates {
			return 0, fmt.Errorf("learner: checkpoint member %d at %d updates, manifest says %d", i, got, man.Updates)
		}
	}
	l.updates, l.version = man.Updates, man.Version
	return man.CurveBytes, nil
}
