// Package replay stores the per-frame records of episodes and samples training transitions
// (s, a, r, s') from them.
//
// A transition is a window of obs.Frames+1 consecutive records of one episode, frames t-14..t+1:
// s is the observation of frames t-14..t, s' that of frames t-13..t+1, a is the light chosen
// after observing frame t (Record.Light of frame t, which acted on frame t+1), and r is
// obs.Reward from the position of frame t to that of frame t+1. A window that would cross an
// episode boundary or contains a frame whose tracking was lost is never sampled.
//
// The target of a sampled window: without augmentation it is the target recorded with frame t
// (Record.TargetX, TargetY). With augmentation (the default, for random-light data that has no
// meaningful target) the sample is built as the reference's TranslateRotate does, with the
// worm's position at frame t as the base B: the whole window (s and s') is rotated by one
// uniform angle theta in [0, 2 pi) about B (every position, body and head angle), then every
// position relative to the target is shifted by one uniform (sx, sy) in [-MaxShift, MaxShift]^2:
//
//	(x_i - tx, y_i - ty) in the observation = R(theta) (p_i - B) + (sx, sy)
//
// so that at frame t the target lies at (-sx, -sy) from the worm in the observation's frame.
// Equivalently, the virtual target in the recorded coordinates is B - R(-theta) (sx, sy), and
// the reward (obs.Reward) is computed from the recorded positions and that target; rotation does
// not change distances.
//
// With Mirror as well, half the samples (drawn per sample) are then reflected, worm and target
// together, across the observation's x axis (obs.Mirror): every position's y relative to the
// target and every body and head angle change sign; the light, distances and so the reward are
// unchanged. A worm crawls on its left or its right side, so its turns to one side in the image
// are as likely as to the other across a line's animals; a reflected track is then a track of
// an animal lying on its other side, and a line's few animals count as twice as many.
package replay

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/optoloop/optoloop/agentlib/obs"
)

// BlockFrames is the random-light collection's block: the light is decided every BlockFrames
// frames, counted from each episode's first frame (episode.BlockFrames).
const BlockFrames = 3

// ErrEmpty is returned by Sample when the replay holds no sampleable window.
var ErrEmpty = errors.New("replay: no sampleable window (empty replay or no 16 consecutive tracked frames)")

// Record is one camera frame of one episode.
type Record struct {
	// T is the time of the frame in seconds since the episode started.
	T float64 `json:"t"`
	// X, Y is the worm's centre in reference pixels (540 px/cm), image coordinates.
	X float64 `json:"x"`
	Y float64 `json:"y"`
	// Body and Head are the body and head angles in radians, atan2(dy, dx) in image coordinates.
	Body float64 `json:"body"`
	Head float64 `json:"head"`
	// OK is false when tracking failed on this frame; X, Y, Body and Head are then meaningless.
	OK bool `json:"ok"`
	// Light is the action chosen after observing this frame (a_t): it acts on frame t+1.
	Light bool `json:"light"`
	// Episode identifies the episode; records of one episode are appended in time order.
	Episode string `json:"episode"`
	// PolicyVersion is the parameter version of the policy that chose Light (0: not a learnt
	// policy, e.g. random light).
	PolicyVersion uint64 `json:"policy_version"`
	// TargetX, TargetY is the episode's target in reference pixels (meaningless for random-light
	// collection episodes).
	TargetX float64 `json:"target_x"`
	TargetY float64 `json:"target_y"`
	// BehaviourP is the probability with which the acting policy switched the light on after
	// this frame (mu(on | what it saw)): 1 or 0 for a frame decided for sure (a greedy
	// ensemble, no light, a lost frame, a random-light block under way), the block's P at the
	// start of a random-light block, and (1 - explore) * greedy + explore * P in an online
	// episode. Records decoded from Redis entries written before it hold 1 for lit frames and
	// 0 for dark ones; records in JSON written before it hold 0.
	BehaviourP float64 `json:"behaviour_p"`
}

// Batch is a minibatch of transitions. S and S2 are N x Size row-major, Size being obs.Size (the
// reference observation) or obs.LightSize (with the light).
type Batch struct {
	N  int
	S  []float32 // observations s
	A  []int     // actions: 0 light off, 1 light on
	R  []float32 // rewards
	S2 []float32 // next observations s'
	// A2 are the actions recorded at s' (the light chosen after frame t+1): what the policy
	// that collected the data did next, for critics that estimate that policy's values.
	A2 []int
	// P2 is the probability that the random-light collection schedule (Config.CollectionP)
	// lights frame t+1 given the light at frame t: P at the start of a 3-frame block, else
	// frame t's light (1 or 0: the block goes on), for critics that estimate the collection
	// whatever policy recorded the data (sac.CollectionBackup).
	P2 []float32
}

// NewBatch returns a batch with room for n transitions of the reference observation. It panics
// if n < 1.
func NewBatch(n int) *Batch { return NewBatchOf(n, obs.Size) }

// NewBatchOf returns a batch with room for n transitions of observations of size numbers
// (obs.Size or obs.LightSize). It panics if n < 1 or size is neither.
func NewBatchOf(n, size int) *Batch {
	if n < 1 {
		panic("replay: batch size must be positive")
	}
	if size != obs.Size && size != obs.LightSize {
		panic(fmt.Sprintf("replay: observation size %d, want %d or %d", size, obs.Size, obs.LightSize))
	}
	return &Batch{N: n, S: make([]float32, n*size), A: make([]int, n), R: make([]float32, n), S2: make([]float32, n*size), A2: make([]int, n), P2: make([]float32, n)}
}

// Size returns the length of one of the batch's observations.
func (b *Batch) Size() int { return len(b.S) / b.N }

// Replay is a store of records that samples transitions. Implementations are safe for
// concurrent use. The in-process implementation is Memory; a Redis-backed one lives with the
// cluster code.
type Replay interface {
	// Append adds records. Records of one episode must come in strictly increasing time; a bad
	// record fails the whole call and changes nothing.
	Append(recs ...Record) error
	// Len returns the number of records held.
	Len() int
	// Windows returns the number of sampleable windows.
	Windows() int
	// Sample fills dst with dst.N transitions drawn uniformly (with replacement) from the
	// sampleable windows using rng. It returns ErrEmpty if there is none.
	Sample(rng *rand.Rand, dst *Batch) error
}

// Config configures sampling.
type Config struct {
	// Augment turns on the rotation and shift augmentation (see the package documentation).
	// Default true.
	Augment bool
	// MaxShift is the largest shift of the virtual target from the worm's position at frame t,
	// in reference pixels, in each of x and y. Default 900 (1.667 cm). Used when Augment.
	MaxShift float64
	// Rotate rotates each sampled window by a uniform random angle. Default true. Used when
	// Augment.
	Rotate bool
	// Mirror reflects half the sampled windows (see the package documentation). Default false,
	// as the reference. Used when Augment.
	Mirror bool
	// ReachReward is the reward of a step that ends within obs.ReachRadius (30 px) of the
	// target. Default obs.ReachReward (4), the reference's. Under augmentation such steps are
	// about 0.1 % of the samples but carry almost all of the rewards' variance (runner/SCIENCE.md).
	ReachReward float64
	// CollectionP is the light probability of the random-light collection schedule (3-frame
	// blocks, episode.BlockFrames), used to fill Batch.P2. Default 0 (P2 left zero).
	CollectionP float64
	// LightCost is subtracted from the reward of every step whose action is light on (reward
	// units: obs.ProgressGain / obs.PosScale per reference pixel of approach). Default 0.
	LightCost float64
}

// DefaultConfig returns the reference augmentation (shifts up to +-900 px and random rotation)
// and reward.
func DefaultConfig() Config {
	return Config{Augment: true, MaxShift: 900, Rotate: true, ReachReward: obs.ReachReward}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	if c.Augment && (!(c.MaxShift >= 0) || math.IsInf(c.MaxShift, 0)) {
		return fmt.Errorf("replay: max shift %v must be finite and non-negative", c.MaxShift)
	}
	if !(c.CollectionP >= 0 && c.CollectionP <= 1) {
		return fmt.Errorf("replay: collection light probability %v must be within 0-1", c.CollectionP)
	}
	if math.IsNaN(c.ReachReward) || math.IsInf(c.ReachReward, 0) {
		return fmt.Errorf("replay: reach reward %v must be finite", c.ReachReward)
	}
	if !(c.LightCost >= 0) || math.IsInf(c.LightCost, 0) {
		return fmt.Errorf("replay: light cost %v must be finite and non-negative", c.LightCost)
	}
	return nil
}

type window struct{ track, start int32 }

type track struct {
	id   string
	recs []Record
	trig []obs.Trig // recs in the form sampling encodes
	run  int        // tracked frames at the end of recs
}

// Memory is the in-process Replay. The zero value is not usable; call NewMemory.
type Memory struct {
	cfg     Config
	mu      sync.RWMutex
	index   map[string]int
	tracks  []*track
	windows []window
	n       int
}

var _ Replay = (*Memory)(nil)

// NewMemory returns an empty in-process replay.
func NewMemory(cfg Config) (*Memory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Memory{cfg: cfg, index: map[string]int{}}, nil
}

func finite(v ...float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// Append implements Replay.
func (m *Memory) Append(recs ...Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	last := map[string]float64{}
	for i, r := range recs {
		if r.Episode == "" {
			return fmt.Errorf("replay: record %d has no episode id", i)
		}
		if !finite(r.T, r.TargetX, r.TargetY) || (r.OK && !finite(r.X, r.Y, r.Body, r.Head)) {
			return fmt.Errorf("replay: record %d of episode %q has a non-finite value", i, r.Episode)
		}
		prev, seen := last[r.Episode]
		if !seen {
			if ti, ok := m.index[r.Episode]; ok {
				tr := m.tracks[ti]
				prev, seen = tr.recs[len(tr.recs)-1].T, true
			}
		}
		if seen && !(r.T > prev) {
			return fmt.Errorf("replay: record %d of episode %q at t=%v does not follow t=%v", i, r.Episode, r.T, prev)
		}
		last[r.Episode] = r.T
	}
	for _, r := range recs {
		ti, ok := m.index[r.Episode]
		if !ok {
			ti = len(m.tracks)
			m.index[r.Episode] = ti
			m.tracks = append(m.tracks, &track{id: r.Episode})
		}
		tr := m.tracks[ti]
		tr.recs = append(tr.recs, r)
		var tg obs.Trig
		if r.OK {
			tg = obs.TrigOf(obs.Pose{X: r.X, Y: r.Y, Body: r.Body, Head: r.Head})
		}
		if n := len(tr.recs); n >= 2 && tr.recs[n-2].Light {
			tg.Light = 1 // captured under the light chosen after the frame before
		}
		tr.trig = append(tr.trig, tg)
		if r.OK {
			tr.run++
		} else {
			tr.run = 0
		}
		if tr.run >= obs.Frames+1 {
			m.windows = append(m.windows, window{track: int32(ti), start: int32(len(tr.recs) - obs.Frames - 1)})
		}
		m.n++
	}
	return nil
}

// Len implements Replay.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.n
}

// Windows implements Replay.
func (m *Memory) Windows() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.windows)
}

// Episodes returns the number of episodes held.
func (m *Memory) Episodes() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.tracks)
}

// Sample implements Replay. It allocates nothing.
func (m *Memory) Sample(rng *rand.Rand, dst *Batch) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.windows) == 0 {
		return ErrEmpty
	}
	size := dst.Size()
	if size != obs.Size && size != obs.LightSize {
		return fmt.Errorf("replay: batch of %d-number observations, want %d or %d", size, obs.Size, obs.LightSize)
	}
	for k := 0; k < dst.N; k++ {
		w := m.windows[rng.IntN(len(m.windows))]
		tr := m.tracks[w.track]
		end := int(w.start) + obs.Frames + 1
		frames := tr.trig[w.start:end]
		now := tr.recs[end-2]
		next := frames[obs.Frames]
		tx, ty, sin, cos := now.TargetX, now.TargetY, 0.0, 1.0
		if m.cfg.Augment {
			if m.cfg.Rotate {
				sin, cos = math.Sincos(2 * math.Pi * rng.Float64())
			}
			sx := (2*rng.Float64() - 1) * m.cfg.MaxShift
			sy := (2*rng.Float64() - 1) * m.cfg.MaxShift
			// target = B - R(-theta) (sx, sy)
			tx = now.X - (cos*sx + sin*sy)
			ty = now.Y - (-sin*sx + cos*sy)
		}
		obs.EncodeTrig(dst.S[k*size:(k+1)*size], frames[:obs.Frames], tx, ty, sin, cos)
		obs.EncodeTrig(dst.S2[k*size:(k+1)*size], frames[1:], tx, ty, sin, cos)
		if m.cfg.Augment && m.cfg.Mirror && rng.IntN(2) == 0 {
			obs.Mirror(dst.S[k*size : (k+1)*size])
			obs.Mirror(dst.S2[k*size : (k+1)*size])
		}
		dst.A[k], dst.A2[k] = 0, 0
		if now.Light {
			dst.A[k] = 1
		}
		if tr.recs[end-1].Light {
			dst.A2[k] = 1
		}
		if dst.P2 != nil {
			// Record end-1 is frame t+1 of its episode (every frame is recorded, lost or not).
			switch {
			case (end-1)%BlockFrames == 0:
				dst.P2[k] = float32(m.cfg.CollectionP)
			case now.Light:
				dst.P2[k] = 1
			default:
				dst.P2[k] = 0
			}
		}
		r := obs.RewardReach(now.X, now.Y, next.X, next.Y, tx, ty, m.cfg.ReachReward)
		if now.Light {
			r -= m.cfg.LightCost
		}
		dst.R[k] = float32(r)
	}
	return nil
}
