//go:build !race

package coordinator_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// idleConns is how many idle connections the attackers of
// TestIdleConnectionFloodLeavesAPIAnswering open (issue 13: 20,000 filled the leader's
// descriptors), floodProcs how many processes they are spread over (each its own descriptor
// limit: 20,000 here, below what one process needs for 20,000 sockets and the rest).
const (
	idleConns  = 20000
	floodProcs = 2
)

// floodEnv names the environment of an attacker process (TestIdleConnectionFloodHelper): the
// host:port to flood and how many connections to open.
const (
	floodTargetEnv = "OPTOLOOP_TEST_FLOOD_TARGET"
	floodCountEnv  = "OPTOLOOP_TEST_FLOOD_COUNT"
)

// TestIdleConnectionFloodLeavesAPIAnswering pins issue 13's "connections without a token
// exhaust the leader": 20,000 idle TCP connections from one address (127.0.0.2), opened by two
// attacker processes, to the HTTP API of a one-node cluster, while a normal client on 127.0.0.1
// still gets answers within 1 s during and after the flood. The per-client cap closes the
// flood's connections over 256 at once, so the node keeps descriptors for everyone else
// (without the cap it accepted them all, ran out of descriptors and stopped answering).
func TestIdleConnectionFloodLeavesAPIAnswering(t *testing.T) {
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
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type attacker struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Scanner
	}
	var attackers []attacker
	defer func() {
		for _, a := range attackers {
			_ = a.stdin.Close() // the attacker closes its connections and exits
			_ = a.cmd.Wait()
		}
	}()
	dialStart := time.Now()
	for range floodProcs {
		cmd := exec.CommandContext(ctx, self, "-test.run", "^TestIdleConnectionFloodHelper$")
		cmd.Env = append(os.Environ(), floodTargetEnv+"=127.0.0.1:"+port, floodCountEnv+"="+strconv.Itoa(idleConns/floodProcs))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		attackers = append(attackers, attacker{cmd, stdin, bufio.NewScanner(stdout)})
	}
	total := 0
	for i, a := range attackers {
		// The attacker prints "open N" once it holds its connections (or what stopped it).
		for a.out.Scan() {
			if n, ok := strings.CutPrefix(a.out.Text(), "open "); ok {
				got, _ := strconv.Atoi(n)
				total += got
				break
			}
			t.Logf("attacker %d: %s", i, a.out.Text())
		}
	}
	t.Logf("%d idle connections from 127.0.0.2 dialled in %v by %d processes", total, time.Since(dialStart).Round(time.Millisecond), floodProcs)
	close(stop)
	if err := <-probed; err != nil {
		t.Error(err)
	}
	if total < idleConns {
		t.Errorf("the attackers opened %d connections, want %d", total, idleConns)
	}
	for i := range 5 {
		if err := answers(fmt.Sprintf("probe %d after the flood", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIdleConnectionFloodHelper is an attacker process of
// TestIdleConnectionFloodLeavesAPIAnswering (it re-runs this test binary with floodTargetEnv
// set): it opens floodCountEnv idle connections from 127.0.0.2, prints "open N", holds them
// until its stdin closes, then closes them. Without floodTargetEnv it has nothing to do.
func TestIdleConnectionFloodHelper(t *testing.T) {
	target := os.Getenv(floodTargetEnv)
	if target == "" {
		t.Skip("an attacker process of TestIdleConnectionFloodLeavesAPIAnswering only")
	}
	n, err := strconv.Atoi(os.Getenv(floodCountEnv))
	if err != nil {
		t.Fatal(err)
	}
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
	var mu sync.Mutex
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	var dialErr error
	var wg sync.WaitGroup
	per := (n + 7) / 8
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * per; i < min(n, (w+1)*per); i++ {
				cn, err := d.Dial("tcp", target)
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
	if dialErr != nil {
		fmt.Printf("dialling stopped: %v\n", dialErr)
	}
	fmt.Printf("open %d\n", len(conns))
	_, _ = io.Copy(io.Discard, os.Stdin)
}
