package episode

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// PolicyKind names a fixed light policy.
type PolicyKind string

// Fixed light policies.
const (
	// None keeps the light off.
	None PolicyKind = "none"
	// Always keeps the light on.
	Always PolicyKind = "always"
	// Random switches the light as the reference's data collection did: at every third frame
	// the light goes on for the next BlockFrames frames with probability P, else stays off.
	Random PolicyKind = "random"
)

// BlockFrames is the length in frames of one random-light decision (reference: 3 frames, 1 s).
const BlockFrames = 3

// MaxDecisionFrames bounds Spec.DecisionFrames (10 s at the reference's 3 Hz).
const MaxDecisionFrames = 30

// Policy is a fixed light policy: none, always or random:P.
type Policy struct {
	Kind PolicyKind
	// P is the probability that a block of BlockFrames frames is lit (Random only).
	P float64
}

// ParsePolicy parses "none", "always" or "random:P" with P in [0, 1].
func ParsePolicy(s string) (Policy, error) {
	switch strings.TrimSpace(s) {
	case string(None):
		return Policy{Kind: None}, nil
	case string(Always):
		return Policy{Kind: Always}, nil
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "random:")
	if !ok {
		return Policy{}, fmt.Errorf("policy %q: want none, always or random:P", s)
	}
	p, err := strconv.ParseFloat(rest, 64)
	if err != nil || !(p >= 0 && p <= 1) {
		return Policy{}, fmt.Errorf("policy %q: P must be a number within 0-1", s)
	}
	return Policy{Kind: Random, P: p}, nil
}

// String returns the form ParsePolicy reads.
func (p Policy) String() string {
	if p.Kind == Random {
		return "random:" + strconv.FormatFloat(p.P, 'g', -1, 64)
	}
	return string(p.Kind)
}

// Schedule returns the policy's light sequence for one episode; the seed fixes the random one.
func (p Policy) Schedule(seed uint64) *Schedule {
	return &Schedule{p: p, rng: rand.New(rand.NewPCG(seed, 0x11647))}
}

// Schedule yields the light command frame after frame. It is not safe for concurrent use.
type Schedule struct {
	p     Policy
	rng   *rand.Rand
	frame int
	on    bool
	lastP float64
}

// Next returns whether the light is on for the next frame interval.
func (s *Schedule) Next() bool {
	switch s.p.Kind {
	case Always:
		s.frame++
		s.lastP = 1
		return true
	case Random:
		if s.frame%BlockFrames == 0 {
			s.on = s.rng.Float64() < s.p.P
			s.lastP = s.p.P
		} else if s.on {
			s.lastP = 1
		} else {
			s.lastP = 0
		}
		s.frame++
		return s.on
	}
	s.frame++
	s.lastP = 0
	return false
}

// LastP is the probability with which the last Next switched the light on, given the frames
// before it: P at the start of a random block, 1 or 0 within one (the block's light), 1 for
// always, 0 for none.
func (s *Schedule) LastP() float64 { return s.lastP }
