package redisstore

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/optoloop/optoloop/fleet"
)

// Stream entry fields of a chunk.
const (
	fieldEpisode     = "episode"
	fieldToken       = "token"
	fieldSeq         = "seq"
	fieldPolicy      = "policy_version"
	fieldTraceParent = "traceparent"
	fieldRecords     = "records"
)

// chunkPage is how many stream entries one XRANGE of Chunks reads.
const chunkPage = 1000

// appendScript adds a chunk to the stream unless its attempt and number are in the seen set:
// both in one step, so a retry after a lost reply changes nothing. KEYS: stream, seen set.
// ARGV: the chunk's seen-set member, then the entry's field and value pairs. It returns 1 when
// it added the chunk, 0 when the chunk was there.
var appendScript = redis.NewScript(`
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
return 1
`)

// Append stores c in its experiment and line's stream and returns once Redis has it in its
// append-only file. Appending a chunk whose (Episode, Token, Seq) is already stored changes
// nothing, whatever its records: the first append of an attempt's chunk is the one kept.
func (s *Store) Append(ctx context.Context, c fleet.Chunk) error {
	if err := errCtx(ctx, "append"); err != nil {
		return err
	}
	if err := fleet.CheckChunk(c); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	stream := s.key(c.Experiment, "replay", c.Line)
	token, seq := strconv.FormatUint(c.Token, 10), strconv.Itoa(c.Seq)
	_, err := s.eval(ctx, appendScript, []string{stream, stream + ":seen"},
		token+" "+seq+" "+c.Episode,
		fieldEpisode, c.Episode,
		fieldToken, token,
		fieldSeq, seq,
		fieldPolicy, strconv.FormatUint(c.PolicyVersion, 10),
		fieldTraceParent, c.TraceParent,
		fieldRecords, encodeRecords(c.Episode, c.PolicyVersion, c.Records))
	if err != nil {
		return s.fail(ctx, fmt.Sprintf("append chunk %d of %s (lease %d) to %s/%s", c.Seq, c.Episode, c.Token, c.Experiment, c.Line), err)
	}
	return nil
}

// Chunks returns every chunk of an experiment's line, of every attempt, in the order they were
// first appended (none: an empty slice). It reads the stream in pages; an entry that does not
// decode is an error naming it.
func (s *Store) Chunks(ctx context.Context, experiment, line string) ([]fleet.Chunk, error) {
	if err := errCtx(ctx, "chunks"); err != nil {
		return nil, err
	}
	stream := s.key(experiment, "replay", line)
	out := []fleet.Chunk{}
	start := "-"
	for {
		cctx, cancel := s.cmdCtx(ctx)
		page, err := s.rdb.XRangeN(cctx, stream, start, "+", chunkPage).Result()
		cancel()
		if err != nil {
			return nil, s.fail(ctx, fmt.Sprintf("read replay %s/%s", experiment, line), err)
		}
		for _, m := range page {
			c, err := decodeChunk(experiment, line, m.Values)
			if err != nil {
				return nil, fmt.Errorf("redisstore: replay %s/%s entry %s: %w", experiment, line, m.ID, err)
			}
			out = append(out, c)
		}
		if len(page) < chunkPage {
			return out, nil
		}
		start = "(" + page[len(page)-1].ID
	}
}

// decodeChunk rebuilds a chunk from its stream entry's fields.
func decodeChunk(experiment, line string, v map[string]any) (fleet.Chunk, error) {
	c := fleet.Chunk{Experiment: experiment, Line: line}
	str := func(f string) (string, error) {
		s, ok := v[f].(string)
		if !ok {
			return "", fmt.Errorf("%w: no %s field", errCorrupt, f)
		}
		return s, nil
	}
	num := func(f string, bits int) (uint64, error) {
		s, err := str(f)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseUint(s, 10, bits)
		if err != nil {
			return 0, fmt.Errorf("%w: %s %q", errCorrupt, f, s)
		}
		return n, nil
	}
	var err error
	if c.Episode, err = str(fieldEpisode); err != nil {
		return c, err
	}
	if c.Token, err = num(fieldToken, 64); err != nil {
		return c, err
	}
	seq, err := num(fieldSeq, strconv.IntSize-1)
	if err != nil {
		return c, err
	}
	c.Seq = int(seq)
	if c.PolicyVersion, err = num(fieldPolicy, 64); err != nil {
		return c, err
	}
	if c.TraceParent, err = str(fieldTraceParent); err != nil {
		return c, err
	}
	records, err := str(fieldRecords)
	if err != nil {
		return c, err
	}
	if c.Records, err = decodeRecords(c.Episode, c.PolicyVersion, []byte(records)); err != nil {
		return c, err
	}
	if len(v) != 6 {
		return c, fmt.Errorf("%w: %d fields, want 6", errCorrupt, len(v))
	}
	return c, nil
}
