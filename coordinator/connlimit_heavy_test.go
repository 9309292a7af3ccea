//go:build !race

package coordinator_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// idleConns is how many idle connections the attacker of TestIdleConnectionFloodLeavesAPIAnswering
// opens (issue 13: 20,000 filled the leader's descriptors).
const idleConns = 20000

// nodeFDBudget is the descriptors the test leaves the node beyond the attacker's own sockets
// (the attacker shares the test's process, so its descriptors count against the same limit).
const nodeFDBudget = 4096

// TestIdleConnectionFloodLeavesAPIAnswering pins issue 13's "connections without a token
// exhaust the leader": 20,000 idle TCP connections from one address (127.0.0.2) to the HTTP API
// of a one-node cluster, while a normal client on 127.0.0.1 still gets answers within 1 s
// during and after the flood. The per-client cap closes the flood's connections over 256 at
// once, so the node keeps descriptors for everyone else (without the cap it accepted them all,
// ran out of descriptors and stopped answering).
func TestIdleConnectionFloodLeavesAPIAnswering(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	orig := lim
	want := uint64(idleConns + nodeFDBudget)
	n := idleConns
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}); err != nil {
		// Not root: use what the limit allows, leaving the node its budget.
		if lim.Cur = min(lim.Max, want); syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur > nodeFDBudget+1000 {
			n = int(lim.Cur) - nodeFDBudget
		} else {
			n = 1000
		}
		t.Logf("cannot raise the descriptor limit to %d (%v): flooding with %d connections", want, err, n)
	} else {
		t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	}

	c := coordinatortest.New(t, 1, nil)
	addr := c.Leader().HTTPAddr()
	_, port, _ := net.SplitHostPort(addr)
	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: c.ClientTLS()}}
	answers := func(when string) error {
		req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1:"+port+"/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+coordinatortest.ViewerToken)
		start := time.Now()
		resp, err := probe.Do(req)
		if err != nil {
			return fmt.Errorf("%s: no answer within 1 s: %w", when, err)
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s after %v, %v", when, resp.Status, time.Since(start), err)
		}
		return nil
	}
	if err := answers("before the flood"); err != nil {
		t.Fatal(err)
	}

	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	var mu sync.Mutex
	stop := make(chan struct{})
	probed := make(chan error, 1)
	go func() {
		// Probe while the flood is under way.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var err error
		for i := 0; err == nil; i++ {
			select {
			case <-stop:
				probed <- nil
				return
			case <-tick.C:
			}
			err = answers(fmt.Sprintf("probe %d during the flood", i))
		}
		probed <- err
	}()
	// IP_BIND_ADDRESS_NO_PORT lets the kernel pick the source port at connect (a bind to port 0
	// searches the whole range each time: thousands of dials would take minutes).
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second,
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1) }); err != nil {
				return err
			}
			return serr
		}}
	var dialErr error
	var wg sync.WaitGroup
	per := (n + 7) / 8
	dialStart := time.Now()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * per; i < min(n, (w+1)*per); i++ {
				cn, err := d.Dial("tcp", "127.0.0.1:"+port)
				mu.Lock()
				if err != nil {
					if dialErr == nil {
						dialErr = err
					}
					mu.Unlock()
					return
				}
				conns = append(conns, cn)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("dialled in %v", time.Since(dialStart).Round(time.Millisecond))
	close(stop)
	if err := <-probed; err != nil {
		t.Error(err)
	}
	if dialErr != nil {
		t.Logf("dialling stopped after %d connections: %v", len(conns), dialErr)
	}
	t.Logf("%d idle connections from 127.0.0.2 open", len(conns))
	for i := range 5 {
		if err := answers(fmt.Sprintf("probe %d after the flood", i)); err != nil {
			t.Fatal(err)
		}
	}
}
