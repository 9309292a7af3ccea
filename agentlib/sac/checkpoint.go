package sac

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/optoloop/optoloop/agentlib/nn"
)

// checkpointMagic opens an agent checkpoint; checkpointVersion is its format version.
const (
	checkpointMagic   = "OLSACCK\x00"
	checkpointVersion = 1
)

// ErrCheckpoint is wrapped by every error of UnmarshalBinary about a malformed or mismatched
// checkpoint.
var ErrCheckpoint = errors.New("sac: bad checkpoint")

// MarshalBinary encodes the whole training state of the agent: every network (actor, critics,
// target critics), every Adam state, the temperature and the update count. Little endian:
// magic "OLSACCK\0", uint32 format version, uint32 layer count, uint32 sizes, int64 updates,
// then float32 values of log alpha, the five networks' parameters and, for each optimiser
// (actor, Q1, Q2, alpha), int64 step count, first and second moments; a trailing CRC-32 (IEEE)
// covers everything before it.
func (a *Agent) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(checkpointMagic)
	w := func(v any) { _ = binary.Write(&buf, binary.LittleEndian, v) }
	sizes := a.cfg.Sizes()
	w(uint32(checkpointVersion))
	w(uint32(len(sizes)))
	for _, s := range sizes {
		w(uint32(s))
	}
	w(a.updates)
	w(a.logAlpha)
	for _, m := range a.nets() {
		w(m.Params)
	}
	for _, o := range a.opts() {
		w(o.T)
		w(o.M)
		w(o.V)
	}
	w(crc32.ChecksumIEEE(buf.Bytes()))
	return buf.Bytes(), nil
}

func (a *Agent) nets() []*nn.MLP { return []*nn.MLP{a.Actor, a.Q1, a.Q2, a.Q1T, a.Q2T} }
func (a *Agent) opts() []*nn.Adam {
	return []*nn.Adam{a.actorOpt, a.q1Opt, a.q2Opt, a.alphaOpt}
}

// UnmarshalBinary restores a state written by MarshalBinary into an agent built with the same
// network sizes. On error (wrapping ErrCheckpoint) the agent is unchanged.
func (a *Agent) UnmarshalBinary(data []byte) error {
	if len(data) < len(checkpointMagic)+4 || string(data[:len(checkpointMagic)]) != checkpointMagic {
		return fmt.Errorf("%w: not an agent checkpoint (magic)", ErrCheckpoint)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return fmt.Errorf("%w: checksum mismatch (truncated or corrupted)", ErrCheckpoint)
	}
	r := bytes.NewReader(body[len(checkpointMagic):])
	var version, nl uint32
	if err := binary.Read(r, binary.LittleEndian, &version); err != nil || version != checkpointVersion {
		return fmt.Errorf("%w: format version %d, want %d", ErrCheckpoint, version, checkpointVersion)
	}
	if err := binary.Read(r, binary.LittleEndian, &nl); err != nil || nl > 64 {
		return fmt.Errorf("%w: bad layer count", ErrCheckpoint)
	}
	sizes := make([]uint32, nl)
	if err := binary.Read(r, binary.LittleEndian, sizes); err != nil {
		return fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	want := a.cfg.Sizes()
	if fmt.Sprint(sizes) != fmt.Sprint(want) {
		return fmt.Errorf("%w: network sizes %v, agent has %v", ErrCheckpoint, sizes, want)
	}
	var updates int64
	logAlpha := make([]float32, 1)
	np := len(a.Actor.Params)
	params := make([][]float32, 5)
	var ts [4]int64
	ms, vs := make([][]float32, 4), make([][]float32, 4)
	read := func(v any) error { return binary.Read(r, binary.LittleEndian, v) }
	err := errors.Join(read(&updates), read(logAlpha))
	for i := range params {
		params[i] = make([]float32, np)
		err = errors.Join(err, read(params[i]))
	}
	for i, o := range a.opts() {
		ms[i], vs[i] = make([]float32, len(o.M)), make([]float32, len(o.V))
		err = errors.Join(err, read(&ts[i]), read(ms[i]), read(vs[i]))
	}
	if err != nil || r.Len() != 0 {
		return fmt.Errorf("%w: wrong length for sizes %v", ErrCheckpoint, want)
	}
	if math.IsNaN(float64(logAlpha[0])) || updates < 0 {
		return fmt.Errorf("%w: bad state values", ErrCheckpoint)
	}
	a.updates = updates
	a.logAlpha[0] = logAlpha[0]
	for i, m := range a.nets() {
		copy(m.Params, params[i])
	}
	for i, o := range a.opts() {
		o.T = ts[i]
		copy(o.M, ms[i])
		copy(o.V, vs[i])
	}
	return nil
}
