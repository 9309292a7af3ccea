package api

import (
	"errors"
	"fmt"
)

// Code classifies a refused command in a Response.
type Code string

// Response codes. The empty code means the command was applied.
const (
	CodeOK            Code = ""
	CodeBadRequest    Code = "bad_request"
	CodeNotFound      Code = "not_found"
	CodeNotRegistered Code = "not_registered"
	CodeStaleLease    Code = "stale_lease"
	CodeDuplicate     Code = "duplicate"
	// CodeKeyReused: the idempotency key was first used with another request (HTTP 422).
	CodeKeyReused Code = "key_reused"
	CodeRefused   Code = "refused"
	CodeExists    Code = "exists"
)

// Sentinel errors callers branch on. Response.Err and the client wrap them.
var (
	// ErrUnauthorized: the bearer token is missing or wrong; nothing changed.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the token is valid but its role may not make this call; nothing changed.
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: no leader is known, or the write's outcome is unknown (the request
	// ended before its log entry was applied). Retrying with the same idempotency key is safe.
	ErrUnavailable = errors.New("unavailable")

	// ErrBadRequest: the request is malformed (including a bad experiment file); nothing changed.
	ErrBadRequest = errors.New("bad request")
	// ErrNotFound: no such experiment, item or node.
	ErrNotFound = errors.New("not found")
	// ErrNotRegistered: the worker or learner must register before it leases.
	ErrNotRegistered = errors.New("not registered")
	// ErrStaleLease: the token is not the item's current lease (expired, re-leased, wrong token
	// or holder); the report or heartbeat was refused and nothing changed.
	ErrStaleLease = errors.New("stale lease")
	// ErrDuplicate: the item is already done under this very lease; nothing changed.
	ErrDuplicate = errors.New("duplicate report")
	// ErrKeyReused: the idempotency key was already used (within the coordinator's window) for
	// a request with another method, path or body; nothing changed. Retrying cannot succeed:
	// a new request needs a new key.
	ErrKeyReused = errors.New("idempotency key reused for another request")
	// ErrRefused: a membership change was refused as unsafe (unreachable address, a voter
	// already present, a removal below quorum); nothing changed.
	ErrRefused = errors.New("refused")
	// ErrExists: the same experiment file is already submitted and live (the error names the
	// experiment); submit it again deliberately with SubmitCmd.Again. Nothing changed.
	ErrExists = errors.New("already submitted")
)

// Response is what applying a command returns (and what the HTTP API returns for writes).
type Response struct {
	Code  Code   `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// Index is the log index at which the command was applied.
	Index uint64 `json:"index"`
	// ExperimentID is set by submit.
	ExperimentID string `json:"experiment_id,omitempty"`
	// Item is the leased item (lease; nil when there is no work), or the item after a
	// heartbeat, report or fail.
	Item *Item `json:"item,omitempty"`
}

// Err returns nil for an applied command, else an error wrapping the code's sentinel.
func (r *Response) Err() error {
	var s error
	switch r.Code {
	case CodeOK:
		return nil
	case CodeBadRequest:
		s = ErrBadRequest
	case CodeNotFound:
		s = ErrNotFound
	case CodeNotRegistered:
		s = ErrNotRegistered
	case CodeStaleLease:
		s = ErrStaleLease
	case CodeDuplicate:
		s = ErrDuplicate
	case CodeKeyReused:
		s = ErrKeyReused
	case CodeRefused:
		s = ErrRefused
	case CodeExists:
		s = ErrExists
	default:
		return fmt.Errorf("coordinator: %s: %s", r.Code, r.Error)
	}
	return fmt.Errorf("%w: %s", s, r.Error)
}
