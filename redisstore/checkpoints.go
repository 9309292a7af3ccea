package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/optoloop/optoloop/fleet"
)

// A checkpoint is one hash: the field "@" marks it (so a checkpoint of no files exists too),
// and each file is the field "f:" + its name.
const (
	fieldCheckpoint = "@"
	filePrefix      = "f:"
)

// saveScript replaces a checkpoint whole: DEL, then HSET of the marker and the files, in one
// step, so that a reader never sees half of two checkpoints. KEYS: the checkpoint's hash.
// ARGV: field and value pairs.
var saveScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 200 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 199, #ARGV)))
end
return 1
`)

// Save replaces the task's checkpoint with files and returns once Redis has it in its
// append-only file.
func (s *Store) Save(ctx context.Context, experiment, task string, files map[string][]byte) error {
	if err := errCtx(ctx, "save checkpoint"); err != nil {
		return err
	}
	if err := fleet.CheckKey("save checkpoint", experiment, task); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	args := make([]any, 0, 2+2*len(files))
	args = append(args, fieldCheckpoint, "1")
	for f, b := range files {
		if f == "" {
			return errors.New("redisstore: save checkpoint: empty file name")
		}
		if b == nil {
			b = []byte{}
		}
		args = append(args, filePrefix+f, b)
	}
	if _, err := s.eval(ctx, saveScript, []string{s.key(experiment, "checkpoint", task)}, args...); err != nil {
		return s.fail(ctx, fmt.Sprintf("save checkpoint of task %q of experiment %q", task, experiment), err)
	}
	return nil
}

// Load returns the task's checkpoint (fleet.ErrNotFound when none was saved).
func (s *Store) Load(ctx context.Context, experiment, task string) (map[string][]byte, error) {
	if err := errCtx(ctx, "load checkpoint"); err != nil {
		return nil, err
	}
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	h, err := s.rdb.HGetAll(cctx, s.key(experiment, "checkpoint", task)).Result()
	if err != nil {
		return nil, s.fail(ctx, fmt.Sprintf("load checkpoint of task %q of experiment %q", task, experiment), err)
	}
	if _, ok := h[fieldCheckpoint]; !ok {
		return nil, fmt.Errorf("redisstore: checkpoint of task %q of experiment %q: %w", task, experiment, fleet.ErrNotFound)
	}
	files := make(map[string][]byte, len(h)-1)
	for k, v := range h {
		if k == fieldCheckpoint {
			continue
		}
		name, ok := strings.CutPrefix(k, filePrefix)
		if !ok || name == "" {
			return nil, fmt.Errorf("redisstore: checkpoint of task %q of experiment %q: unknown field %q", task, experiment, k)
		}
		files[name] = []byte(v)
	}
	return files, nil
}
