package redisstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/optoloop/optoloop/agentlib/replay"
)

// The records of a chunk are one binary value in its stream entry:
//
//	format byte (recordsFormat)
//	uvarint     number of records
//	per record:
//	  flags byte: flagOK, flagLight, flagTarget, flagEpisode, flagPolicy, flagBehaviour
//	  T, X, Y, Body, Head: float64 bits, little endian
//	  flagTarget:  TargetX, TargetY (float64 bits) — else the previous record's (0, 0 at first)
//	  flagEpisode: uvarint length and the bytes of Episode — else the chunk's Episode
//	  flagPolicy:  uvarint PolicyVersion — else the chunk's PolicyVersion
//	  flagBehaviour: BehaviourP (float64 bits) — else 1 for a lit frame, 0 for a dark one
//	CRC-32C (Castagnoli) of all the bytes before it, little endian
//
// The records of a chunk share its episode, policy version and target, which are so written
// once; every float64 round-trips exactly (its bits are stored). A decoder refuses a value
// whose format, length, flags or checksum is wrong.
const recordsFormat byte = 1

const (
	flagOK byte = 1 << iota
	flagLight
	flagTarget
	flagEpisode
	flagPolicy
	flagBehaviour
	flagsKnown = flagOK | flagLight | flagTarget | flagEpisode | flagPolicy | flagBehaviour
)

// certain is the behaviour probability of a frame whose light was decided for sure.
func certain(light bool) float64 {
	if light {
		return 1
	}
	return 0
}

// minRecordSize is the size of a record that shares everything it can.
const minRecordSize = 1 + 5*8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeRecords encodes records of a chunk of episode and policy version.
func encodeRecords(episode string, policy uint64, records []replay.Record) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(records)*minRecordSize+16+4)
	b = append(b, recordsFormat)
	b = binary.AppendUvarint(b, uint64(len(records)))
	var tx, ty uint64 // the previous record's target bits
	for _, r := range records {
		var f byte
		if r.OK {
			f |= flagOK
		}
		if r.Light {
			f |= flagLight
		}
		rx, ry := math.Float64bits(r.TargetX), math.Float64bits(r.TargetY)
		if rx != tx || ry != ty {
			f |= flagTarget
			tx, ty = rx, ry
		}
		if r.Episode != episode {
			f |= flagEpisode
		}
		if r.PolicyVersion != policy {
			f |= flagPolicy
		}
		if math.Float64bits(r.BehaviourP) != math.Float64bits(certain(r.Light)) {
			f |= flagBehaviour
		}
		b = append(b, f)
		for _, v := range [5]float64{r.T, r.X, r.Y, r.Body, r.Head} {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		if f&flagTarget != 0 {
			b = binary.LittleEndian.AppendUint64(b, rx)
			b = binary.LittleEndian.AppendUint64(b, ry)
		}
		if f&flagEpisode != 0 {
			b = binary.AppendUvarint(b, uint64(len(r.Episode)))
			b = append(b, r.Episode...)
		}
		if f&flagPolicy != 0 {
			b = binary.AppendUvarint(b, r.PolicyVersion)
		}
		if f&flagBehaviour != 0 {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.BehaviourP))
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// errCorrupt is wrapped by the error of every stream entry that does not decode.
var errCorrupt = errors.New("corrupt entry")

// decodeRecords decodes what encodeRecords wrote for a chunk of episode and policy version.
func decodeRecords(episode string, policy uint64, b []byte) ([]replay.Record, error) {
	bad := func(format string, a ...any) ([]replay.Record, error) {
		return nil, fmt.Errorf("%w: records: "+format, append([]any{errCorrupt}, a...)...)
	}
	if len(b) < 1+1+4 {
		return bad("%d bytes", len(b))
	}
	if b[0] != recordsFormat {
		return bad("format %d, want %d", b[0], recordsFormat)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return bad("checksum %08x, want %08x", got, want)
	}
	n, k := binary.Uvarint(body[1:])
	if k <= 0 {
		return bad("bad record count")
	}
	p := body[1+k:]
	if n > uint64(len(p)/minRecordSize) {
		return bad("%d records in %d bytes", n, len(p))
	}
	out := make([]replay.Record, n)
	var tx, ty float64
	for i := range out {
		if len(p) < minRecordSize {
			return bad("record %d truncated", i)
		}
		f := p[0]
		if f&^flagsKnown != 0 {
			return bad("record %d: unknown flags %#x", i, f)
		}
		u := func(j int) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(p[1+8*j:])) }
		r := &out[i]
		r.T, r.X, r.Y, r.Body, r.Head = u(0), u(1), u(2), u(3), u(4)
		r.OK, r.Light = f&flagOK != 0, f&flagLight != 0
		p = p[minRecordSize:]
		if f&flagTarget != 0 {
			if len(p) < 16 {
				return bad("record %d: target truncated", i)
			}
			tx = math.Float64frombits(binary.LittleEndian.Uint64(p))
			ty = math.Float64frombits(binary.LittleEndian.Uint64(p[8:]))
			p = p[16:]
		}
		r.TargetX, r.TargetY = tx, ty
		r.Episode = episode
		if f&flagEpisode != 0 {
			l, k := binary.Uvarint(p)
			if k <= 0 || l > uint64(len(p)-k) {
				return bad("record %d: episode truncated", i)
			}
			r.Episode = string(p[k : k+int(l)])
			p = p[k+int(l):]
		}
		r.PolicyVersion = policy
		if f&flagPolicy != 0 {
			v, k := binary.Uvarint(p)
			if k <= 0 {
				return bad("record %d: policy version truncated", i)
			}
			r.PolicyVersion = v
			p = p[k:]
		}
		r.BehaviourP = certain(r.Light)
		if f&flagBehaviour != 0 {
			if len(p) < 8 {
				return bad("record %d: behaviour probability truncated", i)
			}
			r.BehaviourP = math.Float64frombits(binary.LittleEndian.Uint64(p))
			p = p[8:]
		}
	}
	if len(p) != 0 {
		return bad("%d bytes after the last record", len(p))
	}
	return out, nil
}
