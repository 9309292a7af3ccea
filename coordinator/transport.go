package coordinator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// streamLayer is the Raft transport's TCP listener and dialer. With a filter set, Accept drops
// every connection whose remote IP the filter refuses (peers not in the configuration).
type streamLayer struct {
	net.Listener
	advertise net.Addr
	filter    atomic.Pointer[func(net.Addr) bool]
	log       *slog.Logger
	refused   atomic.Uint64

	// Fault injection: while partitioned, every Raft connection is cut and new ones fail.
	mu          sync.Mutex
	partitioned bool
	conns       map[*trackedConn]struct{}
}

// errPartitioned is returned by Dial while the node is cut off (fault injection).
var errPartitioned = errors.New("raft transport partitioned")

func (s *streamLayer) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if f := s.filter.Load(); f != nil && !(*f)(c.RemoteAddr()) {
			s.refused.Add(1)
			s.log.Warn("raft: refused connection from an address outside the configuration", "remote", c.RemoteAddr().String())
			_ = c.Close()
			continue
		}
		tc, ok := s.track(c)
		if !ok {
			continue
		}
		return tc, nil
	}
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
	tc, ok := s.track(c)
	if !ok {
		return nil, errPartitioned
	}
	return tc, nil
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
