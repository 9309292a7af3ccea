package api

import (
	"strings"
	"testing"
)

// TestValidID: the ids the project makes pass; empty, too long, control bytes, spaces, other
// punctuation and non-UTF-8 or non-ASCII bytes are refused with the field and byte named.
func TestValidID(t *testing.T) {
	for _, id := range []string{"c1", "n0", "demo-1", "demo-1.42", "sim-301-0", "lab-pc.example.org-301", "report/demo-1.3/4097",
		"0123456789abcdef0123456789abcdef", "user@host:arena_0", strings.Repeat("x", MaxIDLength)} {
		if err := ValidID("worker id", id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, tc := range []struct{ id, want string }{
		{"", "worker id is required"},
		{strings.Repeat("x", MaxIDLength+1), "worker id of 129 bytes is longer than 128"},
		{"a b", `worker id "a b": byte 1 (" ")`},
		{"a\x00", `byte 1 ("\x00")`},
		{"a\nb", `byte 1 ("\n")`},
		{"\xff", `byte 0 ("\xff")`},
		{"é", `byte 0 ("\xc3")`},
		{"a;b", `byte 1 (";")`},
		{"a%20b", `byte 1 ("%")`},
	} {
		err := ValidID("worker id", tc.id)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.ContainsAny(err.Error(), "\n\x00") {
			t.Errorf("%q: %v, want an error with %s on one line", tc.id, err, tc.want)
		}
	}
}
