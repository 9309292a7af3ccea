package coordinator

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/optoloop/optoloop/coordinator/api"
)

// Operator safety for membership (see DESIGN.md, "Operator safety"):
//
//   - a join is refused unless the leader reaches the joiner's Raft address through its own
//     stream layer (so with TLS the probe is a handshake) and the joiner admits it;
//   - a join of an id that is already a voter is refused (its data dir may have been wiped:
//     remove it first), except the retry of the join that added it;
//   - a node that joins holds its Raft port shut (it drops every Raft connection) until a
//     leader admits it, so that a wiped node listening on its old address does not take the
//     leader's AppendEntries and vote again with its history lost;
//   - a removal is refused when it leaves fewer voters than a quorum of the configured size,
//     or fewer reachable voters than their own quorum, unless forced.

// Probe timings: a live Raft listener keeps a connection open and silent (the probe's read
// times out); a refused or at once closed connection is unreachable.
const (
	probeDialTimeout = 2 * time.Second
	probeQuiet       = 300 * time.Millisecond
	admitTimeout     = 3 * time.Second
	// peekTimeout bounds how long an accepted Raft connection may stay silent before its first
	// byte (a Raft peer sends its request at once).
	peekTimeout = 10 * time.Second
)

// admitPrefix starts the line a leader sends to admit a joining node; no Raft RPC starts with
// this byte (hashicorp/raft's RPC types are small integers).
const admitPrefix = "optoloop-admit "

// membership is the node's state for the safety rules above.
type membership struct {
	nonce string // this process's join nonce (JoinRequest.Nonce)
	gate  *admissionGate
	// bootstrap: this process bootstraps a new cluster (no Raft state, Config.Bootstrap).
	bootstrap bool

	mu       sync.Mutex        // serialises join and remove on the leader
	admitted map[string]string // id -> nonce of the join this leader accepted
}

func newNonce() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("coordinator: join nonce: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// errNoState is New's refusal to start a node that has no Raft state and is told neither to
// bootstrap nor to join.
func errNoState(dir string) error {
	return fmt.Errorf("coordinator: data dir %s holds no Raft state: start the first node of a new cluster with --bootstrap, or join one with --join URL (a node whose data dir was lost must first be removed: optoloop cluster remove ID)", dir)
}

// errDataDirInUse names the data dir another process holds.
func errDataDirInUse(dir string, waited time.Duration) error {
	return fmt.Errorf("coordinator: data dir %s is in use by another process (its raft.db stayed locked for %v)", dir, waited)
}

// hasRaftDB reports whether the data dir already holds a Raft store file.
func hasRaftDB(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// admissionGate wraps the Raft stream layer. It reads the first byte of every accepted
// connection: an admission line from a leader is answered (and, with this process's nonce,
// opens the gate); a Raft RPC passes to the transport only once the gate is open, else the
// connection is dropped. A connection that sends nothing (a reachability probe) is held until
// its peer closes it.
type admissionGate struct {
	raft.StreamLayer
	nonce   string
	open    atomic.Bool
	dropped atomic.Uint64
	// solo reports whether this node's Raft configuration names this node alone (nil: never).
	// Such a node has no peer, so a Raft request from another node is from another cluster, or
	// from one this node was cut away from: it is dropped (counted in foreign). That is what
	// keeps a wiped node started again with --bootstrap (a one-node cluster of its own) from
	// taking its old cluster's entries and voting there with its history lost.
	solo     func() bool
	foreign  atomic.Uint64
	accepted chan acceptResult
	done     chan struct{}
	start    sync.Once
	stop     sync.Once

	mu      sync.Mutex
	pending map[net.Conn]struct{}
}

type acceptResult struct {
	c   net.Conn
	err error
}

func newAdmissionGate(inner raft.StreamLayer, nonce string, open bool) *admissionGate {
	g := &admissionGate{StreamLayer: inner, nonce: nonce, accepted: make(chan acceptResult),
		done: make(chan struct{}), pending: map[net.Conn]struct{}{}}
	g.open.Store(open)
	return g
}

func (g *admissionGate) Accept() (net.Conn, error) {
	g.start.Do(func() { go g.acceptLoop() })
	select {
	case a := <-g.accepted:
		return a.c, a.err
	case <-g.done:
		return nil, net.ErrClosed
	}
}

func (g *admissionGate) acceptLoop() {
	for {
		c, err := g.StreamLayer.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				g.shut()
				return
			}
			select {
			case g.accepted <- acceptResult{err: err}:
			case <-g.done:
				return
			}
			continue
		}
		g.mu.Lock()
		g.pending[c] = struct{}{}
		g.mu.Unlock()
		go g.sort(c)
	}
}

// sort reads c's first byte and hands c on, answers an admission, or drops c.
func (g *admissionGate) sort(c net.Conn) {
	deliver := false
	defer func() {
		g.mu.Lock()
		delete(g.pending, c)
		g.mu.Unlock()
		if !deliver {
			_ = c.Close()
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(peekTimeout))
	br := bufio.NewReaderSize(c, 256)
	first, err := br.Peek(1)
	if err != nil {
		return // a probe that hung up, or a silent connection
	}
	if first[0] == admitPrefix[0] {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, admitPrefix) {
			return
		}
		answer := "no\n"
		if strings.TrimSpace(strings.TrimPrefix(line, admitPrefix)) == g.nonce && g.nonce != "" {
			g.open.Store(true)
			answer = "ok\n"
		}
		_ = c.SetWriteDeadline(time.Now().Add(admitTimeout))
		_, _ = io.WriteString(c, answer)
		return
	}
	if !g.open.Load() {
		g.dropped.Add(1)
		return
	}
	if g.solo != nil && g.solo() {
		g.foreign.Add(1)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	select {
	case g.accepted <- acceptResult{c: &peekedConn{Conn: c, r: br}}:
		deliver = true
	case <-g.done:
	}
}

func (g *admissionGate) shut() {
	g.stop.Do(func() {
		close(g.done)
		g.mu.Lock()
		for c := range g.pending {
			_ = c.Close()
		}
		g.mu.Unlock()
	})
}

func (g *admissionGate) Close() error {
	err := g.StreamLayer.Close()
	g.shut()
	return err
}

// peekedConn reads through the buffer that holds the peeked first byte.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// probeRaft dials addr through the node's stream layer (TLS when the layer is) and, with a
// nonce, admits the node there: it must answer "ok". Without one it checks that the peer
// keeps the connection open and silent, as a Raft listener does. A refused connection, a
// failed handshake or one the peer closes at once (a peer restriction dropping us) is
// unreachable.
func (n *Node) probeRaft(addr, nonce string) error {
	c, err := n.stream.Dial(raft.ServerAddress(addr), probeDialTimeout)
	if err != nil {
		return fmt.Errorf("raft address %s is unreachable from %s: %w", addr, n.cfg.ID, err)
	}
	defer c.Close()
	// A TLS stream layer's connection: finish the handshake first, on its own deadline, so
	// that a slow handshake is not taken for a quiet listener.
	if hs, ok := c.(interface{ Handshake() error }); ok {
		_ = c.SetDeadline(time.Now().Add(admitTimeout))
		if err := hs.Handshake(); err != nil {
			return fmt.Errorf("raft address %s refused %s's handshake: %w", addr, n.cfg.ID, err)
		}
		_ = c.SetDeadline(time.Time{})
	}
	if nonce == "" {
		_ = c.SetReadDeadline(time.Now().Add(probeQuiet))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		if err == nil {
			return fmt.Errorf("raft address %s does not answer as a Raft listener (it sent data unasked)", addr)
		}
		return fmt.Errorf("raft address %s is unreachable from %s: the peer closed the connection (%v): is %s allowed by its --restrict-raft-peers?", addr, n.cfg.ID, err, n.cfg.ID)
	}
	_ = c.SetDeadline(time.Now().Add(admitTimeout))
	if _, err := io.WriteString(c, admitPrefix+nonce+"\n"); err != nil {
		return fmt.Errorf("raft address %s is unreachable from %s: %w", addr, n.cfg.ID, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	switch {
	case err != nil:
		return fmt.Errorf("raft address %s is unreachable from %s: the peer closed the connection or did not answer (%v): is %s allowed by its --restrict-raft-peers?", addr, n.cfg.ID, err, n.cfg.ID)
	case line != "ok\n":
		return fmt.Errorf("raft address %s is another process than the node asking to join", addr)
	}
	return nil
}

// refuseMembership wraps a membership refusal (409, nothing changed).
func refuseMembership(format string, a ...any) error {
	return fmt.Errorf("%w: %s", api.ErrRefused, fmt.Sprintf(format, a...))
}

// admitJoin checks a join before AddVoter (n.ms.mu held). It reports done when the join is the retry of one
// this leader already accepted (nothing more to do).
func (n *Node) admitJoin(req api.JoinRequest) (done bool, err error) {
	fut := n.Raft().GetConfiguration()
	if err := fut.Error(); err != nil {
		return false, fmt.Errorf("%w: %w", api.ErrUnavailable, err)
	}
	for _, s := range fut.Configuration().Servers {
		switch {
		case string(s.ID) == req.ID:
			if string(s.Address) == req.RaftAddr && req.Nonce != "" && n.ms.admitted[req.ID] == req.Nonce {
				return true, nil
			}
			return false, refuseMembership("join refused: node %s is already a %s of the cluster (at %s); if its data dir was lost, remove it first (optoloop cluster remove %s) and start it again with --join", req.ID, strings.ToLower(s.Suffrage.String()), s.Address, req.ID)
		case string(s.Address) == req.RaftAddr:
			return false, refuseMembership("join refused: raft address %s is already used by node %s", req.RaftAddr, s.ID)
		}
	}
	if err := n.probeRaft(req.RaftAddr, req.Nonce); err != nil {
		return false, refuseMembership("join refused: %v", err)
	}
	return false, nil
}

// admit records the nonce of the join that added id (m.mu held).
func (m *membership) admit(id, nonce string) {
	if m.admitted == nil {
		m.admitted = map[string]string{}
	}
	m.admitted[id] = nonce
}

// checkRemoval refuses (unless forced) a removal that leaves fewer voters than a quorum of the
// configured size (the voters now), or fewer reachable voters than the quorum of those left.
func (n *Node) checkRemoval(conf raft.Configuration, id string, force bool) error {
	if force {
		return nil
	}
	var voters, rest []raft.Server
	target := false
	for _, s := range conf.Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters = append(voters, s)
		if string(s.ID) == id {
			target = true
		} else {
			rest = append(rest, s)
		}
	}
	if !target {
		return nil // a non-voter counts for no quorum
	}
	size := len(voters)
	if q := size/2 + 1; len(rest) < q {
		return refuseMembership("remove refused: removing %s would leave %d of the %d voters, fewer than a quorum (%d) of the configured size; add a node first, or pass force", id, len(rest), size, q)
	}
	reach := make([]error, len(rest))
	var wg sync.WaitGroup
	for i, s := range rest {
		if string(s.ID) == n.cfg.ID {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); reach[i] = n.probeRaft(string(s.Address), "") }()
	}
	wg.Wait()
	var down []string
	for i, err := range reach {
		if err != nil {
			down = append(down, string(rest[i].ID))
		}
	}
	if q := len(rest)/2 + 1; len(rest)-len(down) < q {
		return refuseMembership("remove refused: after removing %s only %d of the %d voters left are reachable (%s unreachable), fewer than their quorum (%d); pass force to remove it anyway", id, len(rest)-len(down), len(rest), strings.Join(down, ", "), q)
	}
	return nil
}

// inOwnConfig reports whether this node's Raft configuration names it (it has been added and
// has received the configuration from a leader).
func (n *Node) inOwnConfig() bool {
	fut := n.Raft().GetConfiguration()
	if fut.Error() != nil {
		return false
	}
	for _, s := range fut.Configuration().Servers {
		if string(s.ID) == n.cfg.ID {
			return true
		}
	}
	return false
}

// ForeignRaftConnections counts the Raft requests this node dropped because its configuration
// names it alone: no other node may send it any (a wiped node bootstrapped again).
func (n *Node) ForeignRaftConnections() uint64 { return n.ms.gate.foreign.Load() }

// solo reports whether the node's Raft configuration is this node alone, or will be: a node
// bootstrapping a new cluster has none until BootstrapCluster gives it itself.
func (n *Node) solo() bool {
	r := n.Raft()
	if r == nil {
		return n.ms.bootstrap
	}
	fut := r.GetConfiguration()
	if fut.Error() != nil {
		return n.ms.bootstrap
	}
	s := fut.Configuration().Servers
	if len(s) == 0 {
		return n.ms.bootstrap
	}
	return len(s) == 1 && string(s[0].ID) == n.cfg.ID
}

// UnadmittedRaftConnections counts the Raft requests this node dropped because no leader had
// admitted it yet (a wiped node listening on its old address, still in the configuration).
func (n *Node) UnadmittedRaftConnections() uint64 { return n.ms.gate.dropped.Load() }

// waitJoinRetry waits before the next join attempt; false when ctx ended.
func waitJoinRetry(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
