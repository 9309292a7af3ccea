package coordinator

import (
	"fmt"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment"
)

// The translation of client requests into commands, shared by the HTTP API (Node) and Local so
// that both check a request alike.

// leaseTTL is the lease length a request asks for: def when it asks for none, else at most a
// day.
func leaseTTL(seconds float64, def time.Duration) (time.Duration, error) {
	if seconds == 0 {
		return def, nil
	}
	if !(seconds > 0) || seconds > 86400 {
		return 0, fmt.Errorf("%w: ttl_seconds %v must be in (0, 86400]", api.ErrBadRequest, seconds)
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

func leaseCommand(req api.LeaseRequest, def time.Duration) (Command, error) {
	ttl, err := leaseTTL(req.TTLSeconds, def)
	if err != nil {
		return Command{}, err
	}
	return Command{Type: CmdLease, Lease: &LeaseCmd{Holder: req.Holder, Type: req.Type, TTL: ttl}}, nil
}

func heartbeatCommand(req api.HeartbeatRequest, def time.Duration) (Command, error) {
	ttl, err := leaseTTL(req.TTLSeconds, def)
	if err != nil {
		return Command{}, err
	}
	return Command{Type: CmdHeartbeat, Heartbeat: &HeartbeatCmd{Holder: req.Holder, ItemID: req.ItemID, Token: req.Token, TTL: ttl, Progress: req.Progress}}, nil
}

// submitCommand checks an experiment file (known, when set, refuses unknown lines) before it
// is proposed; the FSM parses it again.
func submitCommand(spec []byte, known func(string) bool, maxAttempts int) (Command, error) {
	if _, err := experiment.ParseWith(spec, experiment.Options{KnownLine: known}); err != nil {
		return Command{}, fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	return Command{Type: CmdSubmit, Submit: &api.SubmitCmd{Spec: string(spec), MaxAttempts: maxAttempts}}, nil
}
