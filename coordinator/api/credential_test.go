package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/coordinator/api"
)

// TestTokenFileRefusesWeakOrMultiLine pins the finding "weak or multi-line token files are
// accepted": a token shorter than 32 bytes, one with whitespace inside, a file of two non-empty
// lines and an empty file are each refused with one line naming the file and never the token;
// a strong token on one line (with its newline, or CRLF) is read as it is.
func TestTokenFileRefusesWeakOrMultiLine(t *testing.T) {
	dir := t.TempDir()
	strong := strings.Repeat("ab12", 16)
	for _, tc := range []struct {
		name, contents, want string
	}{
		{"short", "hunter2-hunter2\n", "too short"},
		{"inner-space", "0123456789abcdef 0123456789abcdef\n", "whitespace"},
		{"inner-tab", "0123456789abcdef\t0123456789abcdef", "whitespace"},
		{"two-lines", strong + "\n" + strong + "x\n", "2 non-empty lines"},
		{"key-pasted", "-----BEGIN KEY-----\n" + strong + "\n-----END KEY-----\n", "3 non-empty lines"},
		{"empty", "\n\n", "empty"},
		{"control", strong + "\x01", "printable"},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, []byte(tc.contents), 0o600); err != nil {
			t.Fatal(err)
		}
		tok, err := api.ReadTokenFile(path)
		if err == nil {
			t.Errorf("%s: accepted (%d bytes)", tc.name, len(tok))
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q; want one line naming %s and %q", tc.name, msg, path, tc.want)
		}
		if first := strings.TrimSpace(strings.SplitN(tc.contents, "\n", 2)[0]); len(first) > 4 && strings.Contains(msg, first) {
			t.Errorf("%s: the error quotes the token: %q", tc.name, msg)
		}
	}
	for name, contents := range map[string]string{"lf": strong + "\n", "crlf": strong + "\r\n", "bare": strong, "blank-lines": "\n" + strong + "\n\n"} {
		path := filepath.Join(dir, "ok-"+name)
		if err := os.WriteFile(path, []byte(contents), 0o600); err != nil {
			t.Fatal(err)
		}
		if tok, err := api.ReadTokenFile(path); err != nil || tok != strong {
			t.Errorf("%s: %v (token read: %v)", name, err, tok == strong)
		}
	}
}

// TestSignedCredentials checks that a credential verifies only under its own key and only as
// issued: another key, a changed role or holder, a cut or altered MAC are refused; and which
// holders a credential covers.
func TestSignedCredentials(t *testing.T) {
	key, other := []byte(strings.Repeat("k", 32)), []byte(strings.Repeat("o", 32))
	tok, err := api.IssueCredential(key, api.RoleWorker, "lab1.example.org-301")
	if err != nil {
		t.Fatal(err)
	}
	if err := api.CheckToken(tok); err != nil {
		t.Fatalf("an issued credential is not a strong token: %v", err)
	}
	if role, holder, ok := api.VerifyCredential(key, tok); !ok || role != api.RoleWorker || holder != "lab1.example.org-301" {
		t.Fatalf("verify: %v %q %v", role, holder, ok)
	}
	mac := tok[strings.LastIndexByte(tok, '.')+1:]
	for name, bad := range map[string]string{
		"other key":      mustIssue(t, other, api.RoleWorker, "lab1.example.org-301"),
		"role changed":   "optoloop1.admin.lab1.example.org-301." + mac,
		"holder changed": "optoloop1.worker.lab2.example.org-301." + mac,
		"mac cut":        tok[:len(tok)-1],
		"mac altered":    tok[:len(tok)-1] + string(rune('A'+(tok[len(tok)-1]-'A'+1)%26)),
		"no mac":         "optoloop1.worker.lab1.example.org-301.",
		"unknown role":   "optoloop1.root.lab1." + mac,
		"other version":  "optoloop2.worker.lab1.example.org-301." + mac,
	} {
		if _, _, ok := api.VerifyCredential(key, bad); ok {
			t.Errorf("%s: verified", name)
		}
	}
	if _, _, ok := api.VerifyCredential(nil, tok); ok {
		t.Error("verified without a key")
	}
	for _, bad := range []struct {
		key    []byte
		role   api.Role
		holder string
	}{{key[:31], api.RoleWorker, "w"}, {key, "root", "w"}, {key, api.RoleHolder, "w"}, {key, api.RoleWorker, ""}, {key, api.RoleWorker, "a b"}, {key, api.RoleWorker, strings.Repeat("w", 129)}} {
		if _, err := api.IssueCredential(bad.key, bad.role, bad.holder); err == nil {
			t.Errorf("issued a credential of %q for %q with a %d-byte key", bad.role, bad.holder, len(bad.key))
		}
	}
	for _, c := range []struct {
		cred, holder string
		want         bool
	}{{"w1", "w1", true}, {"w1", "w1-0", true}, {"w1", "w1-17", true}, {"w1", "w10", false}, {"w1", "w1-", false},
		{"w1", "w1-a", false}, {"w1", "w1-0-1", false}, {"w1", "w", false}, {"w1", "w2", false}, {"", "w1", false}} {
		if got := api.HolderCovers(c.cred, c.holder); got != c.want {
			t.Errorf("HolderCovers(%q, %q) = %v", c.cred, c.holder, got)
		}
	}
}

func mustIssue(t *testing.T, key []byte, role api.Role, holder string) string {
	t.Helper()
	tok, err := api.IssueCredential(key, role, holder)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
