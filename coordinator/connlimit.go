package coordinator

import (
	"net"
	"sync"
	"sync/atomic"
)

// connLimitListener caps the connections the HTTP API holds open: at most perClient from one
// remote IP and at most global in all. A connection over a cap is closed as soon as it is
// accepted (Accept never blocks on a cap), so that one client holding thousands of idle
// connections cannot use up the node's descriptors and its API keeps answering the others.
type connLimitListener struct {
	net.Listener
	perClient, global int

	mu      sync.Mutex
	total   int
	byIP    map[string]int
	refused atomic.Uint64
}

// limitConns wraps ln with the per-client and global connection caps (see connLimitListener).
func limitConns(ln net.Listener, perClient, global int) *connLimitListener {
	return &connLimitListener{Listener: ln, perClient: perClient, global: global, byIP: map[string]int{}}
}

// Accept returns the next connection within the caps; connections over a cap are closed and
// counted.
func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		l.mu.Lock()
		if l.total >= l.global || l.byIP[ip] >= l.perClient {
			l.mu.Unlock()
			l.refused.Add(1)
			_ = c.Close()
			continue
		}
		l.total++
		l.byIP[ip]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l, ip: ip}, nil
	}
}

// Refused counts the connections closed because a cap was reached.
func (l *connLimitListener) Refused() uint64 { return l.refused.Load() }

func (l *connLimitListener) release(ip string) {
	l.mu.Lock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
	l.mu.Unlock()
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// limitedConn gives its slot back once, when it is closed.
type limitedConn struct {
	net.Conn
	l    *connLimitListener
	ip   string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}
