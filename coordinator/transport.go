package coordinator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// streamLayer is the Raft transport's listener and dialer (a hashicorp/raft StreamLayer).
// With TLS set, every connection is mutual TLS: Dial shows the node's certificate and accepts
// only a peer showing a node certificate of the cluster's CA, and Accept hands Raft only the
// connections whose handshake proved the same. Handshakes run in goroutines of their own (with
// a deadline), so that one slow or silent client never holds up the accept loop; the accepted
// connections reach Accept over a channel. With a filter set, connections whose remote IP the
// filter refuses are dropped before any handshake. Every refused connection is counted and
// logged, rate-limited (refusalLog).
type streamLayer struct {
	net.Listener
	advertise net.Addr
	filter    atomic.Pointer[func(net.Addr) bool]
	log       *slog.Logger
	refused   atomic.Uint64
	refusals  *refusalLog

	// serverTLS and clientTLS are nil for plaintext (Config.Insecure).
	serverTLS, clientTLS *tls.Config
	handshakeTimeout     time.Duration
	handshakes           chan struct{} // a slot per handshake in flight
	accepted             chan net.Conn
	closed               chan struct{}
	closeOnce            sync.Once
	acceptErr            error // why the accept loop ended (read after closed or loopDone)
	loopDone             chan struct{}

	// Fault injection: while partitioned, every Raft connection is cut and new ones fail.
	mu          sync.Mutex
	partitioned bool
	conns       map[*trackedConn]struct{}
}

// raftHandshakeTimeout bounds a Raft connection's TLS handshake; maxRaftHandshakes is how many
// may be in flight at once (more connections are refused until one ends).
const (
	raftHandshakeTimeout = 5 * time.Second
	maxRaftHandshakes    = 64
	refusalLogEvery      = 10 * time.Second
)

// newStreamLayer starts accepting on ln (the accept loop runs until Close). serverTLS and
// clientTLS are both nil (plaintext) or both set.
func newStreamLayer(ln net.Listener, serverTLS, clientTLS *tls.Config, log *slog.Logger) *streamLayer {
	s := &streamLayer{Listener: ln, advertise: ln.Addr(), log: log, serverTLS: serverTLS, clientTLS: clientTLS,
		handshakeTimeout: raftHandshakeTimeout, handshakes: make(chan struct{}, maxRaftHandshakes),
		accepted: make(chan net.Conn), closed: make(chan struct{}), loopDone: make(chan struct{}),
		refusals: &refusalLog{log: log, every: refusalLogEvery}}
	go s.acceptLoop()
	return s
}

// errPartitioned is returned by Dial while the node is cut off (fault injection).
var errPartitioned = errors.New("raft transport partitioned")

// Accept returns the next connection that passed the filter and, with TLS, the handshake.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.accepted:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	case <-s.loopDone:
		return nil, s.acceptErr
	}
}

// Close stops accepting: Accept returns net.ErrClosed, and handshakes in flight are dropped.
func (s *streamLayer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.Listener.Close()
		s.refusals.stop()
	})
	return err
}

func (s *streamLayer) acceptLoop() {
	defer close(s.loopDone)
	var delay time.Duration
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			select {
			case <-s.closed:
				s.acceptErr = net.ErrClosed
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) {
				// Out of descriptors and the like: back off, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("raft: accept", "err", err, "retry_in", delay)
				select {
				case <-time.After(delay):
					continue
				case <-s.closed:
					s.acceptErr = net.ErrClosed
					return
				}
			}
			s.acceptErr = err
			return
		}
		delay = 0
		if f := s.filter.Load(); f != nil && !(*f)(c.RemoteAddr()) {
			s.refuse(c, "address outside the configuration")
			continue
		}
		if s.serverTLS == nil {
			s.deliver(c)
			continue
		}
		select {
		case s.handshakes <- struct{}{}:
		default:
			s.refuse(c, fmt.Sprintf("more than %d TLS handshakes in flight", maxRaftHandshakes))
			continue
		}
		go func() {
			defer func() { <-s.handshakes }()
			tc, err := s.handshake(c)
			if err != nil {
				s.refuse(c, "tls: "+err.Error())
				return
			}
			s.deliver(tc)
		}()
	}
}

// handshake runs the server side of the TLS handshake within handshakeTimeout (the
// connection's deadline).
func (s *streamLayer) handshake(c net.Conn) (net.Conn, error) {
	_ = c.SetDeadline(time.Now().Add(s.handshakeTimeout))
	tc := tls.Server(c, s.serverTLS)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return tc, nil
}

// deliver hands c to Accept (tracked for fault injection), or closes it when the layer closes.
func (s *streamLayer) deliver(c net.Conn) {
	tc, ok := s.track(c)
	if !ok {
		return
	}
	select {
	case s.accepted <- tc:
	case <-s.closed:
		_ = tc.Close()
	}
}

// refuse closes c and counts and logs (rate-limited) its refusal.
func (s *streamLayer) refuse(c net.Conn, reason string) {
	s.refused.Add(1)
	s.refusals.refused(c.RemoteAddr().String(), reason)
	_ = c.Close()
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	s.mu.Lock()
	p := s.partitioned
	s.mu.Unlock()
	if p {
		return nil, errPartitioned
	}
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", string(addr))
	if err != nil {
		return nil, err
	}
	if s.clientTLS != nil {
		host, _, err := net.SplitHostPort(string(addr))
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		cfg := s.clientTLS.Clone()
		cfg.ServerName = host
		if timeout <= 0 {
			timeout = s.handshakeTimeout
		}
		_ = c.SetDeadline(time.Now().Add(timeout))
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("raft: tls to %s: %w", addr, err)
		}
		_ = c.SetDeadline(time.Time{})
		c = tc
	}
	tc, ok := s.track(c)
	if !ok {
		return nil, errPartitioned
	}
	return tc, nil
}

// refusalLog logs refused Raft connections without flooding the log: the first refusal at
// once (with its remote and reason), then at most one line per every, counting the refusals
// since the last line.
type refusalLog struct {
	log   *slog.Logger
	every time.Duration

	mu             sync.Mutex
	last           time.Time // when a line was last written
	pending        uint64    // refusals since then not yet logged
	remote, reason string    // of the latest pending refusal
	timer          *time.Timer
	stopped        bool
}

func (r *refusalLog) refused(remote, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.pending == 0 && (r.last.IsZero() || now.Sub(r.last) >= r.every) {
		r.last = now
		r.log.Warn("raft: refused connection", "remote", remote, "reason", reason)
		return
	}
	r.pending++
	r.remote, r.reason = remote, reason
	if r.timer == nil && !r.stopped {
		r.timer = time.AfterFunc(r.every-now.Sub(r.last), r.flush)
	}
}

func (r *refusalLog) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timer = nil
	if r.pending == 0 {
		return
	}
	r.log.Warn("raft: refused connections", "count", r.pending, "since", r.last.Format(time.RFC3339),
		"last_remote", r.remote, "last_reason", r.reason)
	r.pending, r.last = 0, time.Now()
}

func (r *refusalLog) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

func (s *streamLayer) track(c net.Conn) (net.Conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.partitioned {
		_ = c.Close()
		return nil, false
	}
	if s.conns == nil {
		s.conns = map[*trackedConn]struct{}{}
	}
	tc := &trackedConn{Conn: c, s: s}
	s.conns[tc] = struct{}{}
	return tc, true
}

// setPartitioned cuts (true) or restores (false) the node's Raft connectivity.
func (s *streamLayer) setPartitioned(p bool) {
	s.mu.Lock()
	s.partitioned = p
	var cut []*trackedConn
	if p {
		for c := range s.conns {
			cut = append(cut, c)
		}
	}
	s.mu.Unlock()
	for _, c := range cut {
		_ = c.Close()
	}
}

type trackedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// peerFilter accepts remote addresses whose IP is one of the Raft configuration's servers or
// of the extra allowed hosts.
func peerFilter(r func() *raft.Raft, extra []string, log *slog.Logger) func(net.Addr) bool {
	allowed := map[string]bool{}
	for _, h := range extra {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		addAddrs(allowed, h, log)
	}
	return func(a net.Addr) bool {
		ta, ok := a.(*net.TCPAddr)
		if !ok {
			return false
		}
		ip := ta.IP.String()
		if allowed[ip] {
			return true
		}
		rf := r()
		if rf == nil {
			return false
		}
		fut := rf.GetConfiguration()
		if fut.Error() != nil {
			return false
		}
		for _, srv := range fut.Configuration().Servers {
			host, _, err := net.SplitHostPort(string(srv.Address))
			if err != nil {
				continue
			}
			if host == ip {
				return true
			}
			if pip := net.ParseIP(host); pip == nil {
				set := map[string]bool{}
				addAddrs(set, host, log)
				if set[ip] {
					return true
				}
			}
		}
		return false
	}
}

func addAddrs(set map[string]bool, host string, log *slog.Logger) {
	if ip := net.ParseIP(host); ip != nil {
		set[ip.String()] = true
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		log.Warn("raft: cannot resolve allowed peer", "host", host, "err", err)
		return
	}
	for _, ip := range ips {
		set[ip.IP.String()] = true
	}
}

// hclogWriter passes hashicorp/raft's log lines (hclog's JSON format, one object a line) to
// slog at their own level: trace and debug at debug, info at info, warn at warn, error at
// error, with the line's key-value pairs as attributes.
type hclogWriter struct {
	log *slog.Logger
	mu  sync.Mutex
}

// hclogReserved are the keys hclog's JSON format gives every line.
var hclogReserved = map[string]bool{"@level": true, "@message": true, "@module": true, "@timestamp": true, "@caller": true}

func (w *hclogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(p))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			w.log.Info(string(line), "component", "raft")
			continue
		}
		msg, _ := rec["@message"].(string)
		lvl, _ := rec["@level"].(string)
		level := slog.LevelInfo
		switch strings.ToLower(lvl) {
		case "trace", "debug":
			level = slog.LevelDebug
		case "warn", "warning":
			level = slog.LevelWarn
		case "error":
			level = slog.LevelError
		}
		attrs := []any{"component", "raft"}
		if m, ok := rec["@module"].(string); ok && m != "" && m != "raft" {
			attrs = append(attrs, "module", m)
		}
		keys := make([]string, 0, len(rec))
		for k := range rec {
			if !hclogReserved[k] {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			attrs = append(attrs, k, rec[k])
		}
		w.log.Log(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
}

func newRaftLogger(l *slog.Logger, level slog.Level) hclog.Logger {
	hl := hclog.Warn
	switch {
	case level <= slog.LevelDebug:
		hl = hclog.Debug
	case level <= slog.LevelInfo:
		hl = hclog.Info
	case level <= slog.LevelWarn:
		hl = hclog.Warn
	default:
		hl = hclog.Error
	}
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hl, Output: &hclogWriter{log: l}, DisableTime: true, JSONFormat: true})
}
