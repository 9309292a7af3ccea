// Package coordinatortest runs a real coordinator cluster inside a test: hashicorp/raft nodes
// talking Raft over TCP and serving the HTTP API on 127.0.0.1 (free ports), each with its own
// data directory under the test's temporary directory, all sharing a clock the test can move
// forward. Tests kill, restart, partition and stop nodes, wait for a leader or for every node
// to hold the same state, and talk to the cluster through api.Client. Every node is stopped when
// the test ends (tb.Cleanup), whether it passed, failed or panicked.
//
//	c := coordinatortest.New(t, 3, nil)
//	cl := c.Client(t)
//	id, err := cl.Submit(ctx, spec)
//	c.Kill(c.Leader().ID())
//	c.WaitConverged()
//
// Every node speaks TLS (Raft mutual TLS, HTTPS) with a certificate the harness's own CA signed
// (made once per cluster, CA); a tune function that calls Plaintext runs the cluster in
// plaintext instead (coordinator.Config.Insecure).
//
// Methods that wait fail the test (tb.Fatal) when the cluster does not get there in time, so
// they must be called from the test's goroutine.
package coordinatortest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/optoloop/optoloop/certs"
	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

// Token is the admin credential of every harness cluster; OperatorToken and ViewerToken its
// operator's and viewer's credentials; CredentialKey the key its signed credentials are made
// with (WorkerToken, LearnerToken, Credential).
const (
	Token         = "test-admin-token-0123456789abcdef"
	OperatorToken = "test-operator-token-0123456789abcdef"
	ViewerToken   = "test-viewer-token-0123456789abcdef"
	CredentialKey = "test-credential-key-0123456789abcdef"
)

// Credential returns the harness clusters' signed credential of role for holder ("" when
// holder cannot be named by a credential, which every node refuses).
func Credential(role api.Role, holder string) string {
	tok, _ := api.IssueCredential([]byte(CredentialKey), role, holder)
	return tok
}

// WorkerToken returns the worker credential of holder (it acts as holder and holder-N).
func WorkerToken(holder string) string { return Credential(api.RoleWorker, holder) }

// LearnerToken returns the learner credential of holder.
func LearnerToken(holder string) string { return Credential(api.RoleLearner, holder) }

// LogEnv names the environment variable that, when set, sends the nodes' logs (debug level) to
// stderr; by default they are discarded.
const LogEnv = "OPTOLOOP_TEST_LOG"

// Clock is the cluster's clock: the wall clock plus an offset the test moves forward with
// Advance. Every node stamps its commands with it, so advancing it expires leases on the next
// tick without the test sleeping. Safe for concurrent use.
type Clock struct{ offset atomic.Int64 }

// Now returns the wall clock plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Cluster is an in-process coordinator cluster. Node ids are "n0", "n1", ... in the order New
// started them; Add starts more. Safe for concurrent use, except that waiting methods must run
// on the test's goroutine.
type Cluster struct {
	tb    testing.TB
	dir   string
	clock *Clock
	tune  func(*coordinator.Config)
	ca    *certs.CA
	// clientTLS is the clients' TLS configuration: the CA, and a client certificate.
	clientTLS *tls.Config
	// plain is set once a node was configured without TLS (Plaintext).
	plain atomic.Bool

	// learners are the holders the fleet transport saw register as learners or lease
	// training tasks: their later calls carry a learner's credential.
	learners sync.Map

	mu    sync.Mutex
	cfgs  map[string]coordinator.Config // every node ever started, with its bound addresses
	skews map[string]*atomic.Int64      // per node: how far its clock runs ahead of clock
	live  map[string]*member
	order []string
}

type member struct {
	n      *coordinator.Node
	cancel context.CancelFunc
	done   chan error
}

// New starts a cluster of size nodes (size >= 1): n0 bootstraps it, the others join through the
// leader, and New returns once every node holds the same state. tune, when not nil, adjusts
// each node's configuration after the harness's defaults (LAN timeouts with headroom for -race
// on a loaded 2-core machine, 100 ms ticks, 10 s leases, Raft peers restricted to 127.0.0.1).
func New(tb testing.TB, size int, tune func(*coordinator.Config)) *Cluster {
	tb.Helper()
	if size < 1 {
		tb.Fatalf("coordinatortest: cluster size %d must be >= 1", size)
	}
	c := &Cluster{tb: tb, dir: tb.TempDir(), clock: &Clock{}, tune: tune,
		cfgs: map[string]coordinator.Config{}, live: map[string]*member{}, skews: map[string]*atomic.Int64{}}
	ca, err := certs.NewCA("coordinatortest CA", time.Now())
	if err != nil {
		tb.Fatalf("coordinatortest: %v", err)
	}
	c.ca = ca
	c.clientTLS = c.writeClientTLS()
	tb.Cleanup(c.stopAll)
	first := c.config("n0")
	first.Bootstrap = true
	c.start(first)
	c.Leader()
	for i := 1; i < size; i++ {
		c.Add(fmt.Sprintf("n%d", i))
	}
	c.WaitConverged()
	return c
}

// writeClientTLS writes a client certificate of the harness's CA into TLSDir (as `optoloop
// cluster certs` lays out a holder's folder) and returns its TLS configuration.
func (c *Cluster) writeClientTLS() *tls.Config {
	c.tb.Helper()
	cert, key, err := c.ca.Issue(certs.RoleClient, "coordinatortest", nil, time.Now())
	if err != nil {
		c.tb.Fatalf("coordinatortest: %v", err)
	}
	dir := c.TLSDir()
	if err := os.Mkdir(dir, 0o700); err != nil {
		c.tb.Fatalf("coordinatortest: %v", err)
	}
	for name, b := range map[string][]byte{certs.CAFile: c.ca.CertPEM, certs.CertFile: cert, certs.KeyFile: key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			c.tb.Fatalf("coordinatortest: %v", err)
		}
	}
	id, err := certs.Load(dir)
	if err != nil {
		c.tb.Fatalf("coordinatortest: %v", err)
	}
	return id.ClientConfig()
}

// TLSDir is a folder holding the harness's CA and a client certificate, laid out as `optoloop
// cluster certs` writes a holder's: what a command under test takes as --tls-dir.
func (c *Cluster) TLSDir() string { return filepath.Join(c.dir, "client-tls") }

// Plaintext makes a node's configuration plaintext (no TLS, coordinator.Config.Insecure): call
// it from New's tune function for a cluster without TLS.
func Plaintext(cfg *coordinator.Config) {
	cfg.TLS, cfg.Insecure = nil, true
}

// CA is the certificate authority that signed the nodes' certificates (tests issue more with
// it: a worker's, a node's for a process of their own).
func (c *Cluster) CA() *certs.CA { return c.ca }

// ClientTLS is the TLS configuration of the harness's clients (the CA and a client
// certificate).
func (c *Cluster) ClientTLS() *tls.Config { return c.clientTLS.Clone() }

// Clock is the clock every node reads (plus its skew, see SetSkew).
func (c *Cluster) Clock() *Clock { return c.clock }

func (c *Cluster) config(id string) coordinator.Config {
	cfg := coordinator.DefaultConfig()
	cfg.ID = id
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(c.dir, id)
	cfg.Token = Token
	cfg.OperatorToken = OperatorToken
	cfg.ViewerToken = ViewerToken
	cfg.CredentialKey = []byte(CredentialKey)
	cfg.HeartbeatTimeout = 400 * time.Millisecond
	cfg.ElectionTimeout = 400 * time.Millisecond
	cfg.LeaderLeaseTimeout = 200 * time.Millisecond
	cfg.TickInterval = 100 * time.Millisecond
	cfg.SnapshotInterval = time.Second
	cfg.LeaseTTL = 10 * time.Second
	cfg.RestrictRaftPeers = true
	cfg.RaftAllowedPeers = []string{"127.0.0.1"}
	skew := c.skew(id)
	cfg.Now = func() time.Time { return c.clock.Now().Add(time.Duration(skew.Load())) }
	id2, err := c.ca.NewIdentity(certs.RoleNode, id, certs.DefaultHosts(), time.Now())
	if err != nil {
		c.tb.Fatalf("coordinatortest: certificate of %s: %v", id, err)
	}
	cfg.TLS = id2
	cfg.Logger = slog.New(slog.DiscardHandler)
	if os.Getenv(LogEnv) != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	if cfg.TLS == nil {
		c.plain.Store(true)
	}
	return cfg
}

func (c *Cluster) skew(id string) *atomic.Int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.skews[id]
	if !ok {
		s = new(atomic.Int64)
		c.skews[id] = s
	}
	return s
}

// SetSkew makes node id's clock run d ahead of the cluster's Clock (behind for a negative d),
// at once, whether or not the node runs: a node whose clock is wrong. Nodes start with no skew.
func (c *Cluster) SetSkew(id string, d time.Duration) { c.skew(id).Store(int64(d)) }

// Add starts a new node with id that joins through the current leader, and returns once it
// is in the Raft configuration and has received it (so that a restart finds Raft state).
func (c *Cluster) Add(id string) *coordinator.Node {
	c.tb.Helper()
	c.mu.Lock()
	_, exists := c.cfgs[id]
	c.mu.Unlock()
	if exists {
		c.tb.Fatalf("coordinatortest: node %s already exists", id)
	}
	cfg := c.config(id)
	cfg.Join = c.Leader().URL()
	n := c.start(cfg)
	WaitFor(c.tb, 20*time.Second, "node "+id+" in the configuration", func() bool { return c.InConfig(id) && n.Raft().LastIndex() > 0 })
	return n
}

// Wipe kills node id (when it runs) and deletes its data directory, as an operator who
// wipes a node's disk; Rejoin starts it again.
func (c *Cluster) Wipe(id string) {
	c.tb.Helper()
	c.Kill(id)
	if err := os.RemoveAll(c.Config(id).DataDir); err != nil {
		c.tb.Fatalf("coordinatortest: wipe %s: %v", id, err)
	}
}

// Rejoin starts node id again on its old addresses with Join set to the current leader (as
// an operator restarting a wiped node with --join) and returns it without waiting: the
// cluster decides whether it is admitted.
func (c *Cluster) Rejoin(id string) *coordinator.Node {
	c.tb.Helper()
	return c.startAgain(id, false, c.Leader().URL())
}

// Rebootstrap starts node id again on its old addresses with Bootstrap set (as an operator
// restarting a wiped first node from a unit that still says --bootstrap) and returns it
// without waiting. It makes a one-node cluster of its own: Leader and the other helpers that
// look for one leader are confused until it is killed.
func (c *Cluster) Rebootstrap(id string) *coordinator.Node {
	c.tb.Helper()
	return c.startAgain(id, true, "")
}

// startAgain starts the stopped node id with its old configuration but bootstrap and join.
func (c *Cluster) startAgain(id string, bootstrap bool, join string) *coordinator.Node {
	c.tb.Helper()
	c.mu.Lock()
	cfg, ok := c.cfgs[id]
	_, running := c.live[id]
	c.mu.Unlock()
	if !ok || running {
		c.tb.Fatalf("coordinatortest: start again of node %s (known %v, running %v)", id, ok, running)
	}
	cfg.Bootstrap, cfg.Join = bootstrap, join
	return c.start(cfg)
}

// InConfig reports whether the current leader's Raft configuration holds node id (false while
// no single leader is known).
func (c *Cluster) InConfig(id string) bool {
	l := c.LeaderOrNil()
	if l == nil {
		return false
	}
	fut := l.Raft().GetConfiguration()
	if fut.Error() != nil {
		return false
	}
	for _, s := range fut.Configuration().Servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

func (c *Cluster) start(cfg coordinator.Config) *coordinator.Node {
	c.tb.Helper()
	n, err := coordinator.New(cfg)
	if err != nil {
		c.tb.Fatalf("coordinatortest: start %s: %v", cfg.ID, err)
	}
	// A restart keeps the addresses the node had.
	cfg.RaftAddr, cfg.HTTPAddr = n.RaftAddr(), n.HTTPAddr()
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{n: n, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- n.Run(ctx) }()
	c.mu.Lock()
	if !slices.Contains(c.order, cfg.ID) {
		c.order = append(c.order, cfg.ID)
	}
	c.cfgs[cfg.ID] = cfg
	c.live[cfg.ID] = m
	c.mu.Unlock()
	return n
}

func (c *Cluster) take(id string) *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.live[id]
	delete(c.live, id)
	return m
}

// Kill stops node id abruptly, as a crash looks to the others (no leadership transfer), keeping
// its data directory for Restart. Killing a node that is not running does nothing.
func (c *Cluster) Kill(id string) {
	m := c.take(id)
	if m == nil {
		return
	}
	_ = m.n.Close()
	m.cancel()
	<-m.done
}

// Stop shuts node id down cleanly (a leader hands leadership over first) and returns what its
// Run returned; its data directory is kept for Restart. Stopping a node that is not running
// returns nil.
func (c *Cluster) Stop(id string) error {
	m := c.take(id)
	if m == nil {
		return nil
	}
	m.cancel()
	return <-m.done
}

// Restart starts a killed or stopped node again from its data directory, on its old addresses.
func (c *Cluster) Restart(id string) *coordinator.Node {
	c.tb.Helper()
	c.mu.Lock()
	cfg, ok := c.cfgs[id]
	_, running := c.live[id]
	c.mu.Unlock()
	switch {
	case !ok:
		c.tb.Fatalf("coordinatortest: restart of unknown node %s", id)
	case running:
		c.tb.Fatalf("coordinatortest: restart of running node %s", id)
	}
	cfg.Bootstrap, cfg.Join = false, ""
	return c.start(cfg)
}

// SetPartitioned cuts (true) or restores (false) node id's Raft connections to its peers, in
// both directions; its HTTP API keeps serving.
func (c *Cluster) SetPartitioned(id string, partitioned bool) {
	c.tb.Helper()
	n := c.Node(id)
	if n == nil {
		c.tb.Fatalf("coordinatortest: partition of node %s, which is not running", id)
	}
	n.SetRaftPartitioned(partitioned)
}

func (c *Cluster) stopAll() {
	c.mu.Lock()
	ids := slices.Clone(c.order)
	c.mu.Unlock()
	for _, id := range ids {
		c.Kill(id)
	}
}

// Nodes returns the running nodes in the order they were first started.
func (c *Cluster) Nodes() []*coordinator.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*coordinator.Node
	for _, id := range c.order {
		if m, ok := c.live[id]; ok {
			out = append(out, m.n)
		}
	}
	return out
}

// Node returns running node id, or nil.
func (c *Cluster) Node(id string) *coordinator.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.live[id]; ok {
		return m.n
	}
	return nil
}

// Config returns the configuration node id was (last) started with, its addresses bound.
func (c *Cluster) Config(id string) coordinator.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfgs[id]
}

// LeaderOrNil returns the running node that is the Raft leader, or nil when none is, or when
// two are (an old leader that has not stepped down yet).
func (c *Cluster) LeaderOrNil() *coordinator.Node {
	var found *coordinator.Node
	for _, n := range c.Nodes() {
		if n.Raft().State() == raft.Leader {
			if found != nil {
				return nil
			}
			found = n
		}
	}
	return found
}

// Leader waits (up to 20 s) for a single leader that has recorded its own addresses in the
// replicated state (so that followers can forward writes to it) and returns it.
func (c *Cluster) Leader() *coordinator.Node {
	c.tb.Helper()
	var l *coordinator.Node
	WaitFor(c.tb, 20*time.Second, "a leader", func() bool {
		l = c.LeaderOrNil()
		if l == nil {
			return false
		}
		_, ok := l.FSM().Node(l.ID())
		return ok
	})
	return l
}

// Followers returns the running nodes other than the leader (waiting for one).
func (c *Cluster) Followers() []*coordinator.Node {
	c.tb.Helper()
	l := c.Leader()
	var out []*coordinator.Node
	for _, n := range c.Nodes() {
		if n != l {
			out = append(out, n)
		}
	}
	return out
}

// WaitConverged waits (up to 30 s) until every running node has applied the leader's last log
// index and all hold the same state (coordinator.FSM.StateDigest).
func (c *Cluster) WaitConverged() {
	c.tb.Helper()
	WaitFor(c.tb, 30*time.Second, "all nodes at the same state", func() bool {
		l := c.LeaderOrNil()
		if l == nil {
			return false
		}
		want := l.Raft().LastIndex()
		var first []byte
		for i, n := range c.Nodes() {
			if n.Raft().AppliedIndex() < want {
				return false
			}
			d, err := n.FSM().StateDigest()
			if err != nil {
				return false
			}
			if i == 0 {
				first = d
			} else if !bytes.Equal(first, d) {
				return false
			}
		}
		return true
	})
}

// URLs returns the HTTP base URLs of the running nodes.
func (c *Cluster) URLs() []string {
	var out []string
	for _, n := range c.Nodes() {
		out = append(out, n.URL())
	}
	return out
}

// ClientConfig is the configuration Client uses: the given endpoints (default: every running
// node), Token, patient retries (40 attempts, 10-500 ms backoff) that ride out an election,
// and unless the cluster is plaintext the harness's TLS (ClientTLS, in the HTTPClient's transport).
// Its HTTPClient acts as the whole test fleet (FleetTransport): a worker's or learner's call
// (register, lease, heartbeat, report, fail, deregister) sent with Token goes with the
// credential of the holder it names instead. Set HTTPClient to nil for a client that sends its
// Token as it is.
func (c *Cluster) ClientConfig(urls ...string) api.ClientConfig {
	if len(urls) == 0 {
		urls = c.URLs()
	}
	base := api.NewTransport()
	if !c.plain.Load() {
		base.TLSClientConfig = c.ClientTLS()
	}
	return api.ClientConfig{Endpoints: urls, Token: Token, MaxAttempts: 40, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		HTTPClient: &http.Client{Timeout: 15 * time.Second, Transport: c.FleetTransport(base)}}
}

// FleetTransport wraps base so that one client acts for many workers and learners: a call
// whose holder matters (POST /v1/workers, /v1/learners, /v1/lease, /v1/heartbeat, /v1/report,
// /v1/fail, /v1/deregister) sent with the admin Token is sent instead with the WorkerToken or
// LearnerToken of the holder its body names: a learner's for a holder that registered as a
// learner or leased a training task through any of the cluster's fleet transports. Other
// calls, and calls with any other token, go as they are.
func (c *Cluster) FleetTransport(base http.RoundTripper) http.RoundTripper {
	return fleetTransport{base: base, learners: &c.learners}
}

type fleetTransport struct {
	base     http.RoundTripper
	learners *sync.Map
}

func (f fleetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	learner := false
	switch req.URL.Path {
	case "/v1/learners":
		learner = true
	case "/v1/workers", "/v1/lease", "/v1/heartbeat", "/v1/report", "/v1/fail", "/v1/deregister":
	default:
		return f.base.RoundTrip(req)
	}
	if req.Method != http.MethodPost || req.Body == nil || req.Header.Get("Authorization") != "Bearer "+Token {
		return f.base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	var who struct {
		ID     string        `json:"id"`
		Holder string        `json:"holder"`
		Type   plan.ItemType `json:"type"`
	}
	_ = json.Unmarshal(body, &who)
	holder := who.Holder
	if holder == "" {
		holder = who.ID
	}
	if learner || who.Type == plan.TypeTrain {
		f.learners.Store(holder, true)
	}
	tok := WorkerToken(holder)
	if _, ok := f.learners.Load(holder); ok {
		tok = LearnerToken(holder)
	}
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	r.Header.Set("Authorization", "Bearer "+tok)
	return f.base.RoundTrip(r)
}

// DirectClientConfig is ClientConfig without the fleet transport: the client sends its Token
// as it is (set it), with the harness's TLS unless the cluster is plaintext.
func (c *Cluster) DirectClientConfig(urls ...string) api.ClientConfig {
	cfg := c.ClientConfig(urls...)
	cfg.HTTPClient = nil
	if !c.plain.Load() {
		cfg.TLS = c.ClientTLS()
	}
	return cfg
}

// HTTPClient returns a plain HTTP client for raw requests to the nodes (their URL()): with
// TLS it verifies them against the harness's CA.
func (c *Cluster) HTTPClient() *http.Client {
	t := api.NewTransport()
	t.TLSClientConfig = c.ClientTLS()
	return &http.Client{Timeout: 30 * time.Second, Transport: t}
}

// Client returns a client of the cluster (see ClientConfig) through urls (default: every
// running node).
func (c *Cluster) Client(tb testing.TB, urls ...string) *api.Client {
	tb.Helper()
	cl, err := api.NewClient(c.ClientConfig(urls...))
	if err != nil {
		tb.Fatalf("coordinatortest: client: %v", err)
	}
	return cl
}

// WaitFor polls cond every 5 ms until it holds, and fails the test after timeout naming what it
// waited for.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
