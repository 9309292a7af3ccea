package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
)

// Credentials. A coordinator knows two kinds of bearer token:
//
//   - the static tokens of its token files (--token-file: admin, --operator-token-file,
//     --viewer-token-file), compared in constant time;
//   - signed credentials, "optoloop1.ROLE.HOLDER.MAC", where MAC is the unpadded base64url
//     HMAC-SHA256, under the cluster's credential key (--credential-key-file), of
//     "optoloop1\x00ROLE\x00HOLDER". Anyone holding the key issues them (optoloop cluster
//     credential); a node verifies them without a list, so a lab adds a worker without
//     restarting the coordinators.
//
// A worker or learner credential names its holder: it may register, lease, heartbeat, report,
// fail and deregister only as that holder (HolderCovers).

// CredentialPrefix starts every signed credential (its format's version).
const CredentialPrefix = "optoloop1"

// MinTokenLength is the shortest token (or credential key) a coordinator accepts: 32 bytes,
// e.g. 16 random bytes in hex. cluster up writes 32 random bytes in hex (64).
const MinTokenLength = 32

// CheckToken reports why tok is not a usable bearer token: shorter than MinTokenLength, or
// holding whitespace or control characters (a token is one word of printable ASCII). It never
// quotes the token.
func CheckToken(tok string) error {
	if len(tok) < MinTokenLength {
		return fmt.Errorf("too short (%d bytes; at least %d, e.g. 32 random bytes in hex)", len(tok), MinTokenLength)
	}
	for _, r := range tok {
		switch {
		case unicode.IsSpace(r):
			return errors.New("holds whitespace inside (a token is one word)")
		case r < 0x21 || r > 0x7e:
			return errors.New("holds a character that is not printable ASCII")
		}
	}
	return nil
}

// ParseToken is the token of a token file's contents: its one non-empty line, trimmed, checked
// with CheckToken. A file of several non-empty lines is refused (it may be a pasted key or two
// tokens), as is an empty one.
func ParseToken(contents string) (string, error) {
	var lines []string
	for l := range strings.Lines(contents) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	switch len(lines) {
	case 0:
		return "", errors.New("is empty")
	case 1:
	default:
		return "", fmt.Errorf("holds %d non-empty lines (a token file holds one line)", len(lines))
	}
	if err := CheckToken(lines[0]); err != nil {
		return "", err
	}
	return lines[0], nil
}

// ReadTokenFile reads a token (or credential key) file: one line, one strong token (ParseToken).
// The error is one line naming the file, never the token.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok, err := ParseToken(string(b))
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	return tok, nil
}

// credentialRoles are the roles a signed credential may carry.
var credentialRoles = []Role{RoleAdmin, RoleOperator, RoleWorker, RoleLearner, RoleViewer}

// CheckHolder reports why holder cannot be named by a credential: empty, longer than
// MaxIDLength, or holding whitespace or a character that is not printable ASCII.
func CheckHolder(holder string) error {
	switch {
	case holder == "" || len(holder) > MaxIDLength:
		return fmt.Errorf("holder %q must be 1-%d bytes", holder, MaxIDLength)
	case strings.ContainsFunc(holder, func(r rune) bool { return r <= 0x20 || r > 0x7e }):
		return fmt.Errorf("holder %q must be printable ASCII without spaces", holder)
	}
	return nil
}

func credentialMAC(key []byte, role Role, holder string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(CredentialPrefix + "\x00" + string(role) + "\x00" + holder))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// IssueCredential returns the signed credential of role for holder under key (at least
// MinTokenLength bytes).
func IssueCredential(key []byte, role Role, holder string) (string, error) {
	if len(key) < MinTokenLength {
		return "", fmt.Errorf("credential key: too short (%d bytes; at least %d)", len(key), MinTokenLength)
	}
	if !isCredentialRole(role) {
		return "", fmt.Errorf("credential: unknown role %q (admin, operator, worker, learner or viewer)", role)
	}
	if err := CheckHolder(holder); err != nil {
		return "", fmt.Errorf("credential: %w", err)
	}
	return CredentialPrefix + "." + string(role) + "." + holder + "." + credentialMAC(key, role, holder), nil
}

func isCredentialRole(r Role) bool {
	for _, c := range credentialRoles {
		if r == c {
			return true
		}
	}
	return false
}

// ParseCredential splits a signed credential into its role and holder WITHOUT verifying it
// (a worker learns its holder name from its own credential); ok is false when tok is not of the
// signed form.
func ParseCredential(tok string) (role Role, holder string, ok bool) {
	rest, ok := strings.CutPrefix(tok, CredentialPrefix+".")
	if !ok {
		return "", "", false
	}
	r, rest, ok := strings.Cut(rest, ".")
	if !ok {
		return "", "", false
	}
	// The MAC (base64url) holds no dot: the holder is everything up to the last one.
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return "", "", false
	}
	holder, mac := rest[:i], rest[i+1:]
	if mac == "" || !isCredentialRole(Role(r)) || CheckHolder(holder) != nil {
		return "", "", false
	}
	return Role(r), holder, true
}

// VerifyCredential returns the role and holder of a signed credential whose MAC key made (the
// comparison takes constant time); ok is false for anything else.
func VerifyCredential(key []byte, tok string) (role Role, holder string, ok bool) {
	if len(key) == 0 {
		return "", "", false
	}
	role, holder, ok = ParseCredential(tok)
	if !ok {
		return "", "", false
	}
	mac := tok[strings.LastIndexByte(tok, '.')+1:]
	if !hmac.Equal([]byte(mac), []byte(credentialMAC(key, role, holder))) {
		return "", "", false
	}
	return role, holder, true
}

// HolderCovers reports whether a credential naming holder cred may act as holder h: h is cred
// itself, or cred followed by "-" and a decimal number. One worker process serves several
// arenas, each its own holder PREFIX-0, PREFIX-1, ... (optoloop worker --sim LINE --arenas N
// --id PREFIX), with the one credential of PREFIX. A lab must therefore not name a worker as
// another's name plus "-N".
func HolderCovers(cred, h string) bool {
	if cred == "" {
		return false
	}
	if h == cred {
		return true
	}
	n, ok := strings.CutPrefix(h, cred+"-")
	if !ok || n == "" {
		return false
	}
	for _, r := range n {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
