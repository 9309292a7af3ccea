package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// RequestHash is the hash an HTTP write's idempotency key is bound to: SHA-256 of its method,
// path and body. A follower forwards the same method, path and body, so the leader computes
// the same hash.
func RequestHash(method, path string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// PayloadHash is the hash a Local call's idempotency key is bound to: SHA-256 of the command's
// JSON without its time, key and key hash (what the caller asked for).
func PayloadHash(c Command) string {
	c.Time, c.Key, c.KeyHash = time.Time{}, "", ""
	b, err := json.Marshal(c)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
