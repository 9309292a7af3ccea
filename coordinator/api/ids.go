package api

import (
	"fmt"
	"strconv"
)

// ValidID checks an identifier: a worker, learner or holder id, an arena id, a line code, a
// node id, an experiment or item id, or an idempotency key. It must be 1..MaxIDLength bytes of
// [A-Za-z0-9._:/@-], which holds every id the project makes (experiment names and
// "<name>-<n>", items "<experiment>.<n>", host names, "sim-301-0", "report/<item>/<token>",
// node ids c1, c2, ...) and keeps control bytes, spaces and non-UTF-8 out of logs, metrics and
// URLs. The error names what (e.g. "worker id") and the first offending byte.
func ValidID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s is required", what)
	case len(id) > MaxIDLength:
		return fmt.Errorf("%s of %d bytes is longer than %d", what, len(id), MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return fmt.Errorf("%s %s: byte %d (%s) is not one of [A-Za-z0-9._:/@-]", what, strconv.QuoteToASCII(id), i, strconv.QuoteToASCII(id[i:i+1]))
		}
	}
	return nil
}

func idByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '.', '_', ':', '/', '@', '-':
		return true
	}
	return false
}
