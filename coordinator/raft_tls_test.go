package coordinator_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/optoloop/optoloop/certs"
	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// quiet makes a harness cluster that holds its leader (1 s timeouts), so that a test can
// compare terms before and after.
func quiet(cfg *coordinator.Config) {
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
}

// attackStream is a Raft stream layer of a process that is not a node: plain TCP, or TLS with
// whatever certificate it has (it does not check the node's).
type attackStream struct {
	net.Listener
	tls *tls.Config
}

func (a *attackStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if a.tls == nil {
		return d.Dial("tcp", string(addr))
	}
	return tls.DialWithDialer(d, "tcp", string(addr), a.tls)
}

func attacker(t *testing.T, cfg *tls.Config) *raft.NetworkTransport {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &attackStream{Listener: ln, tls: cfg}, MaxPool: 1, Timeout: 5 * time.Second, Logger: hclog.NewNullLogger(),
	})
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// forgedAppend is the AppendEntries a fake leader sends to n: at n's term, after n's last
// entry, one entry registering worker "intruder", committed at once.
func forgedAppend(t *testing.T, n *coordinator.Node, from raft.ServerAddress) *raft.AppendEntriesRequest {
	t.Helper()
	r := n.Raft()
	last := r.LastIndex()
	lastTerm, err := strconv.ParseUint(r.Stats()["last_log_term"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(coordinator.Command{Type: coordinator.CmdRegisterWorker, Time: time.Now(),
		RegisterWorker: &api.RegisterWorkerCmd{ID: "intruder", ArenaID: "x", Line: "301"}})
	if err != nil {
		t.Fatal(err)
	}
	return &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(from)},
		Term:      r.CurrentTerm(), PrevLogEntry: last, PrevLogTerm: lastTerm,
		Entries:           []*raft.Log{{Index: last + 1, Term: r.CurrentTerm(), Type: raft.LogCommand, Data: data}},
		LeaderCommitIndex: last + 1,
	}
}

func hasIntruder(n *coordinator.Node) bool {
	for _, w := range n.FSM().Workers() {
		if w.ID == "intruder" {
			return true
		}
	}
	return false
}

// TestForgedAppendEntriesWritesToAPlaintextNode is the finding, on a cluster run with
// --insecure: one hand-made AppendEntries from a process without any credential writes a fake
// worker registration into a node's log and state, and a TimeoutNow forces an election. (It shows the forged request of
// TestRaftRefusesPeersWithoutANodeCertificate is one a node would apply.)
func TestForgedAppendEntriesWritesToAPlaintextNode(t *testing.T) {
	c := coordinatortest.New(t, 3, func(cfg *coordinator.Config) { quiet(cfg); coordinatortest.Plaintext(cfg) })
	f := c.Followers()[0]
	tr := attacker(t, nil)
	var resp raft.AppendEntriesResponse
	if err := tr.AppendEntries(raft.ServerID(f.ID()), raft.ServerAddress(f.RaftAddr()), forgedAppend(t, f, tr.LocalAddr()), &resp); err != nil || !resp.Success {
		t.Fatalf("forged AppendEntries on a plaintext node: %+v, %v", resp, err)
	}
	coordinatortest.WaitFor(t, 5*time.Second, "the intruder registered on "+f.ID(), func() bool { return hasIntruder(f) })
	term := f.Raft().CurrentTerm()
	var tresp raft.TimeoutNowResponse
	if err := tr.TimeoutNow(raft.ServerID(f.ID()), raft.ServerAddress(f.RaftAddr()), &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(tr.LocalAddr())}}, &tresp); err != nil {
		t.Fatal(err)
	}
	coordinatortest.WaitFor(t, 5*time.Second, "a forced election on "+f.ID(), func() bool { return f.Raft().CurrentTerm() > term })
}

// TestRaftRefusesPeersWithoutANodeCertificate: on a TLS cluster, the forged AppendEntries and a
// TimeoutNow from a process with plain TCP, TLS without a certificate, a node certificate of
// another CA, or a worker's or client's certificate of the cluster's own CA are refused at the
// handshake: no node's state or term moves, no fake worker is registered, and no node's log
// holds an entry its leader did not write (the leader's ticks go on meanwhile).
func TestRaftRefusesPeersWithoutANodeCertificate(t *testing.T) {
	c := coordinatortest.New(t, 3, quiet)
	other, err := certs.NewCA("another CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *certs.CA, role certs.Role, name string) *tls.Config {
		var hosts []string
		if role == certs.RoleNode {
			hosts = certs.DefaultHosts()
		}
		id, err := ca.NewIdentity(role, name, hosts, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cfg := id.ClientConfig()
		cfg.RootCAs, cfg.InsecureSkipVerify = nil, true
		return cfg
	}
	cases := []struct {
		name string
		tls  *tls.Config
	}{
		{"plain TCP", nil},
		{"TLS without a certificate", &tls.Config{InsecureSkipVerify: true}},
		{"a node certificate of another CA", issue(other, certs.RoleNode, "n0")},
		{"a worker certificate of the cluster CA", issue(c.CA(), certs.RoleWorker, "w1")},
		{"a client certificate of the cluster CA", issue(c.CA(), certs.RoleClient, "ops")},
	}
	type snapshot struct {
		digest    []byte
		last      uint64
		term      uint64
		refused   uint64
		intruders bool
	}
	take := func() map[string]snapshot {
		out := map[string]snapshot{}
		for _, n := range c.Nodes() {
			d, err := n.FSM().StateDigest()
			if err != nil {
				t.Fatal(err)
			}
			out[n.ID()] = snapshot{withoutStats(t, d), n.Raft().LastIndex(), n.Raft().CurrentTerm(), n.RefusedRaftConnections(), hasIntruder(n)}
		}
		return out
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := take()
			f := c.Followers()[0]
			tr := attacker(t, tc.tls)
			var resp raft.AppendEntriesResponse
			err := tr.AppendEntries(raft.ServerID(f.ID()), raft.ServerAddress(f.RaftAddr()), forgedAppend(t, f, tr.LocalAddr()), &resp)
			if err == nil {
				t.Fatalf("forged AppendEntries answered %+v", resp)
			}
			var tresp raft.TimeoutNowResponse
			if err := tr.TimeoutNow(raft.ServerID(f.ID()), raft.ServerAddress(f.RaftAddr()), &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(tr.LocalAddr())}}, &tresp); err == nil {
				t.Fatalf("TimeoutNow answered %+v", tresp)
			}
			coordinatortest.WaitFor(t, 10*time.Second, "both connections counted as refused", func() bool {
				return f.RefusedRaftConnections() >= before[f.ID()].refused+2
			})
			c.WaitConverged()
			after := take()
			leaderLast := c.Leader().Raft().LastIndex()
			for id, b := range before {
				a := after[id]
				if !bytes.Equal(a.digest, b.digest) || a.last > leaderLast || a.term != b.term || a.intruders {
					t.Errorf("node %s moved: last index %d -> %d (leader's %d), term %d -> %d, state changed %v, intruder %v",
						id, b.last, a.last, leaderLast, b.term, a.term, !bytes.Equal(a.digest, b.digest), a.intruders)
				}
			}
		})
	}
	// The nodes still replicate among themselves.
	ctx := t.Context()
	if err := c.Client(t).RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l"}); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged()
}

// TestRaftHandshakeDoesNotBlockTheAcceptLoop: a client that opens the Raft port and says
// nothing does not hold up a node's handshake meanwhile, and is dropped after the handshake
// deadline.
func TestRaftHandshakeDoesNotBlockTheAcceptLoop(t *testing.T) {
	c := coordinatortest.New(t, 1, quiet)
	n := c.Leader()
	refused := n.RefusedRaftConnections()
	silent, err := net.Dial("tcp", n.RaftAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	peer, err := c.CA().NewIdentity(certs.RoleNode, "n9", certs.DefaultHosts(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := peer.PeerClientConfig()
	cfg.ServerName = "127.0.0.1"
	d := &net.Dialer{Timeout: 10 * time.Second}
	good, err := tls.DialWithDialer(d, "tcp", n.RaftAddr(), cfg)
	if err != nil {
		t.Fatalf("a node's handshake while a silent client waits: %v", err)
	}
	good.Close()
	// The silent client is still open: its handshake has not timed out yet.
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	var ne net.Error
	if _, err := silent.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silent client: %v; want it still waiting (a node's handshake was held up behind it)", err)
	}
	// It is dropped at the handshake deadline.
	_ = silent.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("silent client after the deadline: %v, want EOF", err)
	}
	coordinatortest.WaitFor(t, 5*time.Second, "the silent client counted as refused", func() bool { return n.RefusedRaftConnections() > refused })
}

// TestRefusedRaftConnectionsDoNotFloodTheLog: 40 refused connections are all counted, and
// the log gets one line for the first (the rest are summed up in at most one line per 10 s).
func TestRefusedRaftConnectionsDoNotFloodTheLog(t *testing.T) {
	var logs coordinator.LockedBuffer
	c := coordinatortest.New(t, 1, func(cfg *coordinator.Config) {
		quiet(cfg)
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	n := c.Leader()
	refused := n.RefusedRaftConnections()
	const probes = 40
	for range probes {
		conn, err := net.Dial("tcp", n.RaftAddr())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write([]byte("not a TLS client hello\n"))
		conn.Close()
	}
	coordinatortest.WaitFor(t, 10*time.Second, "every probe refused", func() bool { return n.RefusedRaftConnections() >= refused+probes })
	lines := strings.Count(logs.String(), "raft: refused")
	if lines < 1 || lines > 2 {
		t.Fatalf("%d log lines about %d refused connections, want 1 (or 2 across a 10 s window):\n%s", lines, probes, logs.String())
	}
}

// TestNodeWithoutTLSOrInsecureIsRefused: a node configured with neither TLS material nor an
// explicit Insecure does not start, and a worker's certificate is not a node's.
func TestNodeWithoutTLSOrInsecureIsRefused(t *testing.T) {
	cfg := coordinator.DefaultConfig()
	cfg.ID, cfg.RaftAddr, cfg.HTTPAddr, cfg.DataDir, cfg.Token = "n0", "127.0.0.1:0", "127.0.0.1:0", filepath.Join(t.TempDir(), "n0"), coordinatortest.Token
	cfg.Bootstrap = true
	_, err := coordinator.New(cfg)
	if err == nil || !strings.Contains(err.Error(), "--tls-dir") || !strings.Contains(err.Error(), "--insecure") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("New without TLS: %v, want one line naming --tls-dir and --insecure", err)
	}
	if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir created by a refused node")
	}
	ca, err := certs.NewCA("ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS, err = ca.NewIdentity(certs.RoleWorker, "w1", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := coordinator.New(cfg); err == nil || !strings.Contains(err.Error(), "node certificate") {
		t.Fatalf("New with a worker's certificate: %v", err)
	}
	cfg.Insecure = true
	if _, err := coordinator.New(cfg); err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Fatalf("New with TLS and Insecure: %v", err)
	}
	// An explicit Insecure starts, and says so at WARN.
	var logs coordinator.LockedBuffer
	cfg.TLS, cfg.Logger = nil, slog.New(slog.NewTextHandler(&logs, nil))
	n, err := coordinator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !strings.HasPrefix(n.URL(), "http://") || !strings.Contains(logs.String(), "level=WARN msg=\"insecure: Raft and HTTP are plaintext") {
		t.Fatalf("insecure node: URL %s, log:\n%s", n.URL(), logs.String())
	}
}
