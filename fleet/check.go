package fleet

import "fmt"

// The checks every store makes before it writes, so that the stores (memstore, redisstore)
// refuse alike. The errors name the write; a store puts its name in front.

// CheckKey refuses an empty experiment or key (a line, an item id, a task id) for the write
// what.
func CheckKey(what, experiment, key string) error {
	switch {
	case experiment == "":
		return fmt.Errorf("%s: no experiment", what)
	case key == "":
		return fmt.Errorf("%s: empty key", what)
	}
	return nil
}

// CheckChunk refuses a chunk no replay may hold: no experiment, line or episode, or a negative
// sequence number.
func CheckChunk(c Chunk) error {
	if err := CheckKey("append", c.Experiment, c.Line); err != nil {
		return err
	}
	switch {
	case c.Episode == "":
		return fmt.Errorf("append to %s/%s: chunk without an episode", c.Experiment, c.Line)
	case c.Seq < 0:
		return fmt.Errorf("append to %s/%s: chunk %d of episode %s: seq must be >= 0", c.Experiment, c.Line, c.Seq, c.Episode)
	}
	return nil
}

// CheckPublish refuses a parameter version no store may hold: versions number from 1 (0 is the
// version of a fixed light schedule, never a parameter version) and a blob is never empty.
func CheckPublish(experiment, line string, version uint64, blob []byte) error {
	if err := CheckKey("publish", experiment, line); err != nil {
		return err
	}
	switch {
	case version == 0:
		return fmt.Errorf("publish %s/%s: version 0 is not a parameter version", experiment, line)
	case len(blob) == 0:
		return fmt.Errorf("publish %s/%s version %d: empty blob", experiment, line, version)
	}
	return nil
}
