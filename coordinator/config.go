package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/certs"
	"github.com/optoloop/optoloop/coordinator/api"
)

// Config configures one coordinator node.
type Config struct {
	// ID names the node in the Raft configuration (unique, stable across restarts). Required.
	ID string
	// RaftAddr is the host:port the Raft transport listens on and advertises (a port of 0
	// picks a free one; a node restarted from its data directory must keep its address).
	// Required.
	RaftAddr string
	// HTTPAddr is the host:port the HTTP API listens on (port 0 picks a free one). Required.
	HTTPAddr string
	// DataDir holds the Raft log and stable store (raft.db, bbolt) and the snapshots. Required.
	DataDir string
	// Bootstrap makes this node the first member of a new cluster when DataDir holds no
	// state. At most one of Bootstrap and Join.
	Bootstrap bool
	// Join is the HTTP URL of any node of an existing cluster; a new node asks it (it forwards
	// to the leader) to add it as a voter. Ignored when DataDir already holds state.
	Join string
	// Token is the admin credential (api.RoleAdmin: membership and every operator call; it
	// names no holder, so it cannot lease or report). Required: a cluster without a credential
	// is refused. Every token is at least api.MinTokenLength bytes, one word (api.CheckToken).
	Token string
	// OperatorToken and ViewerToken, when set, are credentials of lesser roles
	// (api.RoleOperator: submit and cancel experiments, drain workers, read; api.RoleViewer:
	// read, e.g. a dashboard). Each must differ from the others.
	OperatorToken string
	ViewerToken   string
	// CredentialKey, when set, is the cluster's signing key (at least api.MinTokenLength
	// bytes): the node accepts the signed credentials it made (api.VerifyCredential) of every
	// role, the worker and learner ones naming their holder. Without it workers and learners
	// have no credential and cannot lease.
	CredentialKey []byte
	// RestrictRaftPeers, when set, makes the Raft transport drop connections whose remote IP
	// is neither in the current Raft configuration nor in RaftAllowedPeers.
	RestrictRaftPeers bool
	// RaftAllowedPeers are extra host names or IPs accepted when RestrictRaftPeers is set
	// (needed for a node that is about to join: its configuration is still empty).
	RaftAllowedPeers []string
	// TLS is the node's TLS material (certs.Load of what `optoloop cluster certs` wrote for
	// it: the cluster's CA and a node certificate). The Raft port then speaks mutual TLS and
	// accepts only peers showing a node certificate that CA signed; the HTTP API is served
	// over HTTPS (client certificates optional: the bearer tokens stay the credential), and
	// the node's own HTTP calls (forwards, status fan-out, join) verify the nodes against the
	// CA. One of TLS and Insecure is required.
	TLS *certs.Identity
	// Insecure runs Raft and HTTP in plaintext (the node logs a warning at start): anyone who
	// can reach the Raft port can write to the replicated log.
	Insecure bool

	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout and CommitTimeout are the
	// hashicorp/raft timeouts. The defaults (1 s, 1 s, 500 ms, 5 ms) are conservative: shorter
	// ones (500 ms with a 250 ms lease) caused needless elections on a CPU-loaded machine. A
	// leader's loss is detected within about HeartbeatTimeout and a new leader is elected within
	// about one more ElectionTimeout. Validate accepts shorter timeouts (tests set them); the
	// coordinator command refuses a lease below MinLeaderLeaseTimeout without its override flag.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// OpenTimeout bounds how long New waits for the lock on DataDir's Raft store (another
	// process holding it: "data dir ... is in use by another process"). Default 5 s.
	OpenTimeout time.Duration
	// HealthMaxLag and HealthMaxContact bound how far a follower may trail before /healthz
	// fails: its applied index behind the leader's commit index by more than HealthMaxLag
	// entries, or its last contact with the leader older than HealthMaxContact. Defaults 1000
	// entries and 5 s.
	HealthMaxLag     uint64
	HealthMaxContact time.Duration
	// ApplyTimeout bounds how long a write waits to be enqueued to Raft (not to be committed:
	// see DESIGN.md). Default 5 s.
	ApplyTimeout time.Duration
	// MaxBatch is the most writes the leader groups into one log entry; MaxInflightBatches
	// how many entries it keeps in Raft at once (writes arriving meanwhile wait and are grouped).
	// Defaults 256 and 4.
	MaxBatch           int
	MaxInflightBatches int
	// SnapshotThreshold is the number of new log entries that triggers a snapshot; TrailingLogs
	// how many entries stay behind it; SnapshotInterval how often the threshold is checked.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotInterval  time.Duration
	// SnapshotRetain is how many snapshot files are kept. Default 2.
	SnapshotRetain int

	// LeaseTTL is the lease length when a lease or heartbeat asks for none. Default 30 s.
	LeaseTTL time.Duration
	// MaxAttempts is how many times an item may be leased before it is marked failed (fixed
	// per experiment when it is submitted). Default 3.
	MaxAttempts int
	// TickInterval is how often the leader proposes a tick, so that expired leases return to
	// pending while nobody writes. Default 1 s.
	TickInterval time.Duration
	// ForwardTimeout bounds a follower's forwarding of a write to the leader. Default 10 s.
	ForwardTimeout time.Duration

	// HTTPReadHeaderTimeout, HTTPReadTimeout, HTTPWriteTimeout and HTTPIdleTimeout bound how
	// long the HTTP API waits for a request's headers, for a whole request (headers and body:
	// a slowly trickled body is cut there), for writing a response (longer than the 5 s a read
	// may wait for ?min_index and than ForwardTimeout), and for the next request on an idle
	// keep-alive connection. Defaults 5 s, 30 s, 60 s, 60 s. HTTPMaxHeaderBytes bounds a
	// request's headers. Default 64 KiB.
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPWriteTimeout      time.Duration
	HTTPIdleTimeout       time.Duration
	HTTPMaxHeaderBytes    int
	// MaxConnsPerClient and MaxConns cap the HTTP connections open at once from one remote IP
	// and in all; a connection over a cap is closed at once. Defaults 256 and 8192.
	MaxConnsPerClient int
	MaxConns          int

	// KnownLine, when set, must accept every line of a submitted experiment (the lines
	// catalogue); it is checked on the node that receives the submission, before replication.
	KnownLine func(code string) bool
	// MaxItemsPerExperiment and MaxLiveItems are the operator's bounds on the items of one
	// experiment and of every experiment not archived together, counted from the file before a
	// submission is proposed (0: the hard bounds api.MaxItemsPerExperiment and
	// api.MaxLiveItems, which the FSM enforces whatever a node's configuration says; an
	// operator's bound can only be lower).
	MaxItemsPerExperiment int64
	MaxLiveItems          int64
	// Now is the node's clock; the leader stamps commands with it. Default: the wall time at
	// DefaultConfig plus the monotonic time since, so that a step of the wall clock does not
	// move the leader's time (the FSM rebases time per Raft term, see DESIGN.md).
	Now func() time.Time
	// Logger receives the node's logs (and hashicorp/raft's, at RaftLogLevel and above).
	// Default: discard.
	Logger *slog.Logger
	// RaftLogLevel is the lowest level of hashicorp/raft's messages passed to Logger. Default
	// warn.
	RaftLogLevel slog.Level

	// TracerProvider, when set, traces the node: otelhttp server spans for requests that carry
	// trace context, the coordinator.* spans of every item's trace, its root span and the
	// stand-ins of lost attempts (see tracing.go). Nil: no spans.
	TracerProvider trace.TracerProvider
	// MeterProvider receives the node's metrics and MetricsHandler serves them at /metrics
	// (telemetry.Telemetry gives both). With no MeterProvider the node makes a meter provider
	// and handler of its own; with a MeterProvider but no handler, /metrics answers 404.
	MeterProvider  metric.MeterProvider
	MetricsHandler http.Handler
}

// MinLeaderLeaseTimeout is the shortest leader lease the coordinator command accepts without
// its override flag (Validate accepts shorter ones, for tests).
const MinLeaderLeaseTimeout = 500 * time.Millisecond

// DefaultConfig returns the defaults; ID, RaftAddr, HTTPAddr, DataDir and Token are left for
// the caller.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: MinLeaderLeaseTimeout,
		CommitTimeout:      5 * time.Millisecond,
		OpenTimeout:        5 * time.Second,
		HealthMaxLag:       1000,
		HealthMaxContact:   5 * time.Second,
		ApplyTimeout:       5 * time.Second,
		MaxBatch:           256,
		MaxInflightBatches: 4,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
		SnapshotInterval:   30 * time.Second,
		SnapshotRetain:     2,
		LeaseTTL:           30 * time.Second,
		MaxAttempts:        3,
		TickInterval:       time.Second,
		ForwardTimeout:     10 * time.Second,
		Now:                monotonicClock(),
		RaftLogLevel:       slog.LevelWarn,

		HTTPReadHeaderTimeout: 5 * time.Second,
		HTTPReadTimeout:       30 * time.Second,
		HTTPWriteTimeout:      60 * time.Second,
		HTTPIdleTimeout:       60 * time.Second,
		HTTPMaxHeaderBytes:    64 << 10,
		MaxConnsPerClient:     256,
		MaxConns:              8192,
	}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	switch {
	case api.ValidID("node id", c.ID) != nil:
		return fmt.Errorf("coordinator config: %w", api.ValidID("node id", c.ID))
	case c.DataDir == "":
		return errors.New("coordinator config: data dir is required")
	case c.Token == "":
		return errors.New("coordinator config: token is required")
	case c.OperatorToken != "" && (c.OperatorToken == c.Token || c.OperatorToken == c.ViewerToken),
		c.ViewerToken != "" && c.ViewerToken == c.Token:
		return errors.New("coordinator config: the cluster, operator and viewer tokens must differ")
	case api.CheckToken(c.Token) != nil:
		return fmt.Errorf("coordinator config: token: %w", api.CheckToken(c.Token))
	case c.OperatorToken != "" && api.CheckToken(c.OperatorToken) != nil:
		return fmt.Errorf("coordinator config: operator token: %w", api.CheckToken(c.OperatorToken))
	case c.ViewerToken != "" && api.CheckToken(c.ViewerToken) != nil:
		return fmt.Errorf("coordinator config: viewer token: %w", api.CheckToken(c.ViewerToken))
	case len(c.CredentialKey) > 0 && len(c.CredentialKey) < api.MinTokenLength:
		return fmt.Errorf("coordinator config: credential key: too short (%d bytes; at least %d)", len(c.CredentialKey), api.MinTokenLength)
	case c.TLS == nil && !c.Insecure:
		return errors.New("coordinator config: no TLS material: pass --tls-dir DIR (see optoloop cluster certs) or, for plaintext Raft and HTTP, --insecure")
	case c.TLS != nil && c.Insecure:
		return errors.New("coordinator config: --tls-dir and --insecure are exclusive")
	case c.Bootstrap && c.Join != "":
		return errors.New("coordinator config: bootstrap and join are exclusive")
	case c.HeartbeatTimeout < 10*time.Millisecond || c.ElectionTimeout < 10*time.Millisecond:
		return errors.New("coordinator config: heartbeat and election timeouts must be >= 10ms")
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return errors.New("coordinator config: election timeout must be >= heartbeat timeout")
	case c.LeaderLeaseTimeout < 5*time.Millisecond || c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return errors.New("coordinator config: leader lease timeout must be in [5ms, heartbeat timeout]")
	case c.OpenTimeout <= 0:
		return errors.New("coordinator config: open timeout must be positive")
	case c.HealthMaxLag == 0 || c.HealthMaxContact <= 0:
		return errors.New("coordinator config: health max lag and max contact must be positive")
	case c.CommitTimeout <= 0 || c.ApplyTimeout <= 0 || c.ForwardTimeout <= 0:
		return errors.New("coordinator config: commit, apply and forward timeouts must be positive")
	case c.SnapshotThreshold == 0 || c.SnapshotInterval < 5*time.Millisecond || c.SnapshotRetain < 1:
		return errors.New("coordinator config: snapshot threshold, interval (>= 5ms) and retain must be positive")
	case c.MaxBatch < 1 || c.MaxBatch > api.MaxBatch || c.MaxInflightBatches < 1:
		return fmt.Errorf("coordinator config: max batch must be in 1..%d and max in-flight batches >= 1", api.MaxBatch)
	case c.LeaseTTL <= 0 || c.LeaseTTL > 24*time.Hour:
		return errors.New("coordinator config: lease ttl must be in (0, 24h]")
	case c.MaxAttempts < 1 || c.MaxAttempts > 1000:
		return errors.New("coordinator config: max attempts must be in 1..1000")
	case c.TickInterval <= 0:
		return errors.New("coordinator config: tick interval must be positive")
	case c.Now == nil:
		return errors.New("coordinator config: clock (Now) is required")
	case c.HTTPReadHeaderTimeout <= 0 || c.HTTPReadTimeout <= 0 || c.HTTPIdleTimeout <= 0:
		return errors.New("coordinator config: http read header, read and idle timeouts must be positive")
	case c.HTTPReadHeaderTimeout > c.HTTPReadTimeout:
		return fmt.Errorf("coordinator config: http read header timeout %v must not exceed the read timeout %v", c.HTTPReadHeaderTimeout, c.HTTPReadTimeout)
	case c.HTTPWriteTimeout <= max(minIndexWait, c.ForwardTimeout):
		return fmt.Errorf("coordinator config: http write timeout %v must exceed the %v min_index wait and the forward timeout %v", c.HTTPWriteTimeout, minIndexWait, c.ForwardTimeout)
	case c.HTTPMaxHeaderBytes < 4<<10 || c.HTTPMaxHeaderBytes > 1<<20:
		return fmt.Errorf("coordinator config: http max header bytes %d must be in 4KiB..1MiB", c.HTTPMaxHeaderBytes)
	case c.MaxConnsPerClient < 1 || c.MaxConns < c.MaxConnsPerClient:
		return fmt.Errorf("coordinator config: max connections per client %d must be >= 1 and at most max connections %d", c.MaxConnsPerClient, c.MaxConns)
	case c.MaxItemsPerExperiment < 0 || c.MaxItemsPerExperiment > api.MaxItemsPerExperiment:
		return fmt.Errorf("coordinator config: max items per experiment %d must be in 0..%d (0: the hard bound)", c.MaxItemsPerExperiment, api.MaxItemsPerExperiment)
	case c.MaxLiveItems < 0 || c.MaxLiveItems > api.MaxLiveItems:
		return fmt.Errorf("coordinator config: max live items %d must be in 0..%d (0: the hard bound)", c.MaxLiveItems, api.MaxLiveItems)
	}
	for _, a := range []struct{ name, v string }{{"raft", c.RaftAddr}, {"http", c.HTTPAddr}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return fmt.Errorf("coordinator config: %s address %q: %w", a.name, a.v, err)
		}
	}
	if c.TLS != nil {
		if err := c.TLS.CheckNode(); err != nil {
			return fmt.Errorf("coordinator config: %w", err)
		}
	}
	if c.Join != "" {
		u, err := url.Parse(c.Join)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("coordinator config: join %q must be an http(s) URL", c.Join)
		}
	}
	return nil
}
