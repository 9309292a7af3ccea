package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/optoloop/optoloop/coordinator/api"
)

// checkJSON refuses what encoding/json accepts silently in a request body: data after the
// JSON value, and an object (at any depth) that repeats a key, of which encoding/json would
// keep the last (keys that differ only in case included: the decoder matches field names
// ignoring case). A body that is not JSON at all is left to the decoder's own error.
func checkJSON(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]string // folded key -> the key as sent
		path   string
		n      int  // elements of an array seen
		key    bool // an object expects a key next
		last   string
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or a syntax error that the decoder names
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		d, delim := tok.(json.Delim)
		switch {
		case delim && (d == '}' || d == ']'):
			stack = stack[:len(stack)-1]
		case top != nil && top.object && top.key:
			k, _ := tok.(string)
			// encoding/json matches field names ignoring case, so "ID" after "id" is a
			// duplicate too.
			fold := strings.ToLower(k)
			if first, dup := top.keys[fold]; dup {
				if first != k {
					return fmt.Errorf("%w: duplicate key %q in the JSON object at %s (the same as %q: names are matched ignoring case)", api.ErrBadRequest, k, top.path, first)
				}
				return fmt.Errorf("%w: duplicate key %q in the JSON object at %s", api.ErrBadRequest, k, top.path)
			}
			top.keys[fold] = k
			top.key, top.last = false, k
			continue
		default: // a value
			path := "$"
			if top != nil && top.object {
				path = top.path + "." + top.last
				top.key = true
			} else if top != nil {
				path = top.path + "[" + strconv.Itoa(top.n) + "]"
				top.n++
			}
			if delim {
				stack = append(stack, &frame{object: d == '{', keys: map[string]string{}, path: path, key: d == '{'})
			}
		}
		if len(stack) == 0 {
			// The value is complete: nothing but white space may follow.
			if dec.More() {
				return fmt.Errorf("%w: trailing data after the JSON value (at byte %d)", api.ErrBadRequest, dec.InputOffset())
			}
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: trailing data after the JSON value (at byte %d)", api.ErrBadRequest, dec.InputOffset())
			}
			return nil
		}
	}
}
