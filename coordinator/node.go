package coordinator

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/telemetry"
)

// Errors of the node (the client's are in package api).
var (
	// ErrNotLeader: this node is not the leader (internal; the HTTP API forwards instead).
	ErrNotLeader = errors.New("not the leader")
)

// Node is one coordinator: a Raft member with the FSM, and the HTTP API.
type Node struct {
	cfg       Config
	log       *slog.Logger
	fsm       *FSM
	raft      atomic.Pointer[raft.Raft]
	trans     *raft.NetworkTransport
	stream    *streamLayer
	store     *raftboltdb.BoltStore
	logs      *faultyLogStore // the Raft log store with the disk-full fault injection
	ms        membership      // operator safety: join admission, removal quorum (membership.go)
	httpLn    net.Listener
	srv       *http.Server
	fwd       *http.Client
	httpTLS   *tls.Config // nil: plaintext (Config.Insecure)
	needJoin  bool
	proposals chan *proposal
	stopBatch chan struct{}
	batchDone chan struct{}

	httpCodes sync.Map // status code -> *atomic.Uint64
	forwarded atomic.Uint64

	tracer         trace.Tracer
	m              nodeMetrics
	metricsHandler http.Handler
	ownTel         *telemetry.Telemetry // the node's own metrics when the config has none
	leases         leases
	observer       *raft.Observer
	observations   chan raft.Observation
	watchDone      chan struct{}

	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New opens the node's data directory, binds its Raft and HTTP listeners and starts Raft.
// The HTTP API serves once Run is called.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", cfg.ID)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("coordinator: data dir: %w", err)
	}
	n := &Node{cfg: cfg, log: log, fsm: NewFSM()}
	var peerServer, peerClient *tls.Config
	if cfg.TLS != nil {
		n.httpTLS, peerServer, peerClient = cfg.TLS.ServerConfig(), cfg.TLS.PeerServerConfig(), cfg.TLS.PeerClientConfig()
	} else {
		log.Warn("insecure: Raft and HTTP are plaintext; anyone who can reach the Raft port can write to the replicated log (pass --tls-dir)")
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	n.tracer = tp.Tracer(metricsScope)
	n.fwd = &http.Client{Timeout: cfg.ForwardTimeout, Transport: n.forwardTransport()}
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	mp, mh := cfg.MeterProvider, cfg.MetricsHandler
	if mp == nil {
		tel, err := telemetry.New(context.Background(), telemetry.Config{Service: "coordinator", Instance: cfg.ID, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
		n.ownTel, mp, mh = tel, tel.MeterProvider(), tel.MetricsHandler()
	}
	if mh == nil {
		mh = http.NotFoundHandler()
	}
	n.metricsHandler = mh
	if err := n.initMetrics(mp); err != nil {
		return nil, err
	}
	dbPath := filepath.Join(cfg.DataDir, "raft.db")
	if !cfg.Bootstrap && cfg.Join == "" && !hasRaftDB(dbPath) {
		return nil, errNoState(cfg.DataDir)
	}
	var err error
	if n.ms.nonce, err = newNonce(); err != nil {
		return nil, err
	}
	n.store, err = openRaftStore(dbPath, cfg.DataDir, cfg.OpenTimeout)
	if err != nil {
		return nil, err
	}
	n.logs = &faultyLogStore{LogStore: n.store}
	rlog := newRaftLogger(log, cfg.RaftLogLevel)
	snaps, err := newSnapshotStore(cfg.DataDir, cfg.SnapshotRetain, rlog)
	if err != nil {
		return nil, fmt.Errorf("coordinator: snapshot store: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("coordinator: raft listen: %w", err)
	}
	n.stream = newStreamLayer(ln, peerServer, peerClient, log)
	if cfg.RestrictRaftPeers {
		f := peerFilter(n.raft.Load, cfg.RaftAllowedPeers, log)
		n.stream.filter.Store(&f)
	}
	has, err := raft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	if !has && !cfg.Bootstrap && cfg.Join == "" {
		return nil, errNoState(cfg.DataDir)
	}
	// A node that must join holds its Raft port shut until a leader admits it (membership.go).
	n.ms.gate = newAdmissionGate(n.stream, n.ms.nonce, has || cfg.Bootstrap)
	n.ms.bootstrap = cfg.Bootstrap && !has
	n.ms.gate.solo = n.solo
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.ms.gate, MaxPool: 4, Timeout: 10 * time.Second, Logger: rlog,
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	// BatchApplyCh stays off: with it, futures still buffered when Raft stops are never
	// answered. The batcher groups writes instead.
	rc.BatchApplyCh = false
	rc.Logger = rlog
	r, err := raft.NewRaft(rc, n.fsm, n.logs, n.store, snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("coordinator: raft: %w", err)
	}
	n.raft.Store(r)
	n.watchLeadership(r)
	n.proposals = make(chan *proposal, 4*cfg.MaxBatch)
	n.stopBatch = make(chan struct{})
	n.batchDone = make(chan struct{})
	go n.batcher()
	if cfg.Bootstrap && !has {
		conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: n.trans.LocalAddr()}}}
		if err := r.BootstrapCluster(conf).Error(); err != nil {
			return nil, fmt.Errorf("coordinator: bootstrap: %w", err)
		}
	}
	n.needJoin = cfg.Join != "" && !has
	n.httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("coordinator: http listen: %w", err)
	}
	n.httpLn = limitConns(n.httpLn, cfg.MaxConnsPerClient, cfg.MaxConns)
	n.srv = &http.Server{Handler: n.routes(), ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout, ReadTimeout: cfg.HTTPReadTimeout,
		WriteTimeout: cfg.HTTPWriteTimeout, IdleTimeout: cfg.HTTPIdleTimeout, MaxHeaderBytes: cfg.HTTPMaxHeaderBytes, ErrorLog: httpErrorLog(log)}
	ok = true
	return n, nil
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// RaftAddr is the address the Raft transport listens on.
func (n *Node) RaftAddr() string { return string(n.trans.LocalAddr()) }

// HTTPAddr is the host:port the HTTP API listens on.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// URL is the base URL of the HTTP API (https:// with TLS).
func (n *Node) URL() string { return n.scheme() + n.HTTPAddr() }

// clientTLS is the TLS configuration of the node's own HTTP calls (nil without TLS).
func (n *Node) clientTLS() *tls.Config {
	if n.cfg.TLS == nil {
		return nil
	}
	return n.cfg.TLS.ClientConfig()
}

// scheme is "https://" with TLS, "http://" without.
func (n *Node) scheme() string {
	if n.httpTLS != nil {
		return "https://"
	}
	return "http://"
}

// FSM is the node's state machine (for reads).
func (n *Node) FSM() *FSM { return n.fsm }

// Raft is the node's Raft instance.
func (n *Node) Raft() *raft.Raft { return n.raft.Load() }

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool { return n.Raft().State() == raft.Leader }

// RefusedRaftConnections counts Raft connections dropped: by the peer restriction, and with
// TLS those whose handshake failed (no certificate, one the cluster's CA did not sign, one
// that is not a node's, or no handshake within the deadline).
func (n *Node) RefusedRaftConnections() uint64 { return n.stream.refused.Load() }

// ForwardedWrites counts the writes this node forwarded to the leader (also in /metrics).
func (n *Node) ForwardedWrites() uint64 { return n.forwarded.Load() }

// Run serves the HTTP API, proposes ticks while leader, joins the cluster if asked, and on
// ctx's end shuts down cleanly: a leader first hands leadership over. It returns nil after a
// clean shutdown.
func (n *Node) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	ln := n.httpLn
	if n.httpTLS != nil {
		ln = tls.NewListener(ln, n.httpTLS)
	}
	go func() { serveErr <- n.srv.Serve(ln) }()
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); n.leaderLoop(loopCtx) }()
	if n.needJoin {
		wg.Add(1)
		go func() { defer wg.Done(); n.joinLoop(loopCtx) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	stop()
	wg.Wait()
	if e := n.Shutdown(); err == nil {
		err = e
	}
	return err
}

// Shutdown leaves cleanly: a leader transfers leadership to another voter first, then the
// HTTP server drains and Raft stops.
func (n *Node) Shutdown() error {
	r := n.Raft()
	if r != nil && !n.closing.Load() && r.State() == raft.Leader {
		// A transfer future is never answered if Raft stops first: bound the wait.
		done := make(chan error, 1)
		go func() { done <- r.LeadershipTransfer().Error() }()
		t := time.NewTimer(2*n.cfg.ElectionTimeout + time.Second)
		select {
		case err := <-done:
			if err != nil {
				n.log.Warn("leadership transfer", "err", err)
			}
		case <-t.C:
			n.log.Warn("leadership transfer timed out")
		}
		t.Stop()
	}
	if n.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.srv.Shutdown(ctx)
		cancel()
	}
	return n.Close()
}

// Close stops the node at once, without handing leadership over (as a crash looks to the
// others, except that the data directory is left consistent).
func (n *Node) Close() error {
	n.closing.Store(true)
	n.closeOnce.Do(func() {
		var errs []error
		if n.srv != nil {
			errs = append(errs, ignoreClosed(n.srv.Close()))
		} else if n.httpLn != nil {
			errs = append(errs, ignoreClosed(n.httpLn.Close()))
		}
		if r := n.Raft(); r != nil {
			errs = append(errs, r.Shutdown().Error())
			if n.observer != nil {
				r.DeregisterObserver(n.observer)
				close(n.observations)
				<-n.watchDone
			}
		}
		if n.stopBatch != nil {
			close(n.stopBatch)
			<-n.batchDone
		}
		if n.trans != nil {
			errs = append(errs, n.trans.Close())
		} else if n.stream != nil {
			errs = append(errs, n.stream.Close())
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		if n.m.reg != nil {
			errs = append(errs, n.m.reg.Unregister())
		}
		if n.ownTel != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, n.ownTel.Shutdown(ctx))
			cancel()
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// leaderLoop, while this node leads, records its own addresses in the FSM and proposes a tick
// every TickInterval so that expired leases return to pending.
func (n *Node) leaderLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.TickInterval)
	defer t.Stop()
	for {
		if n.IsLeader() {
			self := api.NodeInfo{ID: n.cfg.ID, RaftAddr: n.RaftAddr(), HTTPAddr: n.HTTPAddr()}
			if got, ok := n.fsm.Node(n.cfg.ID); !ok || got != self {
				if _, err := n.propose(ctx, Command{Type: CmdSetNode, SetNode: &self}); err != nil {
					n.log.Warn("record own address", "err", err)
				}
			}
			if _, err := n.propose(ctx, Command{Type: CmdTick}); err != nil && ctx.Err() == nil {
				n.log.Debug("tick", "err", err)
			}
			n.sweepLeases()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// joinLoop asks the cluster at cfg.Join to add this node, with backoff, until it succeeds or
// this node finds itself in the configuration a leader replicated to it (a join whose answer
// was lost). A refused join (this id is still a voter: remove it first; unreachable) is
// retried, so that the node joins once the operator has fixed the cause.
func (n *Node) joinLoop(ctx context.Context) {
	c, err := api.NewClient(api.ClientConfig{Endpoints: []string{n.cfg.Join}, Token: n.cfg.Token, MaxAttempts: 1, TLS: n.clientTLS()})
	if err != nil {
		n.log.Error("join", "err", err)
		return
	}
	backoff := 50 * time.Millisecond
	for {
		if n.inOwnConfig() {
			n.log.Info("joined: in the configuration", "via", n.cfg.Join)
			return
		}
		err := c.Join(ctx, api.JoinRequest{ID: n.cfg.ID, RaftAddr: n.RaftAddr(), HTTPAddr: n.HTTPAddr(), Nonce: n.ms.nonce})
		if err == nil {
			n.log.Info("joined", "via", n.cfg.Join)
			return
		}
		if errors.Is(err, api.ErrRefused) {
			n.log.Error("join refused", "err", err)
		} else {
			n.log.Warn("join", "err", err)
		}
		if !waitJoinRetry(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// proposal is one write waiting for the batcher.
type proposal struct {
	cmd  Command
	done chan proposalResult // buffered: the batcher never blocks on it
}

type proposalResult struct {
	resp *api.Response
	err  error
}

// propose stamps c with the leader's time, replicates it and returns the FSM's response. The
// wait ends with ctx: the entry may still commit later (ErrUnavailable, outcome unknown).
func (n *Node) propose(ctx context.Context, c Command) (*api.Response, error) {
	r := n.Raft()
	if r.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	c.Time = n.cfg.Now()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	if err := newAdmission(n.cfg.KnownLine, n.cfg.MaxItemsPerExperiment, n.cfg.MaxLiveItems).check(n.fsm, c); err != nil {
		return nil, err
	}
	p := &proposal{cmd: c, done: make(chan proposalResult, 1)}
	select {
	case n.proposals <- p:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", api.ErrUnavailable, ctx.Err())
	case <-n.stopBatch:
		return nil, fmt.Errorf("%w: node is closing", api.ErrUnavailable)
	}
	select {
	case res := <-p.done:
		return res.resp, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: outcome unknown: %w", api.ErrUnavailable, ctx.Err())
	}
}

// batcher groups concurrent writes into batch log entries (group commit): it keeps at most
// MaxInflightBatches entries in Raft at once, and whatever arrives meanwhile goes into the
// next entry, up to MaxBatch commands. Under load this makes few, large entries; alone, a
// write goes out at once as a plain entry.
func (n *Node) batcher() {
	defer close(n.batchDone)
	sem := make(chan struct{}, n.cfg.MaxInflightBatches)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var first *proposal
		select {
		case first = <-n.proposals:
		case <-n.stopBatch:
			return
		}
		select {
		case sem <- struct{}{}:
		case <-n.stopBatch:
			first.done <- proposalResult{err: fmt.Errorf("%w: node is closing", api.ErrUnavailable)}
			return
		}
		batch := []*proposal{first}
	drain:
		for len(batch) < n.cfg.MaxBatch {
			select {
			case p := <-n.proposals:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		var entry Command
		if len(batch) == 1 {
			entry = batch[0].cmd
		} else {
			entry = Command{Type: CmdBatch, Time: batch[len(batch)-1].cmd.Time, Batch: make([]Command, len(batch))}
			for i, p := range batch {
				entry.Batch[i] = p.cmd
			}
		}
		b, err := json.Marshal(entry)
		if err != nil {
			<-sem
			for _, p := range batch {
				p.done <- proposalResult{err: fmt.Errorf("%w: %w", api.ErrBadRequest, err)}
			}
			continue
		}
		applied := time.Now()
		f := n.Raft().Apply(b, n.cfg.ApplyTimeout)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc := make(chan error, 1)
			go func() { errc <- f.Error() }()
			var err error
			select {
			case err = <-errc:
			case <-n.stopBatch:
				err = errors.New("node is closing")
			}
			<-sem
			if err == nil {
				n.m.applies.Add(context.Background(), 1)
				n.m.commit.Record(context.Background(), time.Since(applied).Seconds())
			}
			if err != nil {
				err = fmt.Errorf("%w: apply: %w", api.ErrUnavailable, err)
				for _, p := range batch {
					p.done <- proposalResult{err: err}
				}
				return
			}
			switch resp := f.Response().(type) {
			case *api.Response:
				if len(batch) == 1 && resp != nil {
					batch[0].done <- proposalResult{resp: resp}
					return
				}
			case []*api.Response:
				if len(resp) == len(batch) {
					for i, p := range batch {
						p.done <- proposalResult{resp: resp[i]}
					}
					return
				}
			}
			for _, p := range batch {
				p.done <- proposalResult{err: fmt.Errorf("%w: unexpected response %T from the state machine", api.ErrUnavailable, f.Response())}
			}
		}()
	}
}

// leader returns the leader's id and HTTP address ("" when unknown).
func (n *Node) leader() (id, httpAddr string) {
	_, lid := n.Raft().LeaderWithID()
	if lid == "" {
		return "", ""
	}
	info, ok := n.fsm.Node(string(lid))
	if !ok {
		return string(lid), ""
	}
	return string(lid), info.HTTPAddr
}

// watchLeadership logs every change of leader this node observes (gained and elected at
// info, lost at warn) and counts them.
func (n *Node) watchLeadership(r *raft.Raft) {
	n.observations = make(chan raft.Observation, 64)
	n.watchDone = make(chan struct{})
	n.observer = raft.NewObserver(n.observations, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(n.observer)
	self := n.cfg.ID
	go func() {
		defer close(n.watchDone)
		prev := ""
		for o := range n.observations {
			lo, ok := o.Data.(raft.LeaderObservation)
			if !ok {
				continue
			}
			id := string(lo.LeaderID)
			if id == prev {
				continue
			}
			term := r.CurrentTerm()
			switch {
			case id == self:
				n.log.Info("raft: leadership gained", "term", term)
			case prev == self:
				n.forgetLeases()
				if id == "" {
					n.log.Warn("raft: leadership lost", "term", term)
				} else {
					n.log.Warn("raft: leadership lost", "leader", id, "term", term)
				}
			case id == "":
				n.log.Warn("raft: leader lost", "previous", prev, "term", term)
			default:
				n.log.Info("raft: leader elected", "leader", id, "term", term)
			}
			if id != "" {
				n.m.leaderChanges.Add(context.Background(), 1)
			}
			prev = id
		}
	}()
}

// SetRaftPartitioned is fault injection for tests and drills: while true, the node's Raft
// connections are cut and new ones fail (in both directions), as if the network between it
// and its peers were down; its HTTP API keeps serving.
func (n *Node) SetRaftPartitioned(p bool) { n.stream.setPartitioned(p) }

// Snapshot asks Raft for a snapshot now (tests and operators).
func (n *Node) Snapshot() error { return n.Raft().Snapshot().Error() }

// httpErrorLog is the HTTP server's error log: failed TLS handshakes (anyone can open a
// connection) at debug, anything else (a handler's panic) at warn.
func httpErrorLog(l *slog.Logger) *stdlog.Logger {
	return stdlog.New(httpErrorWriter{l}, "", 0)
}

type httpErrorWriter struct{ log *slog.Logger }

func (w httpErrorWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.Contains(msg, "TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg, "component", "http")
	return len(p), nil
}

var _ io.Closer = (*Node)(nil)
