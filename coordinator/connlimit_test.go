package coordinator_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// TestTrickledBodyIsCutAtReadTimeout pins issue 13's "a slowly trickled body holds a
// connection too": a write whose body arrives one byte at a time is cut when the node's read
// timeout (1 s here) runs out: the connection is answered or closed within a 5 s liveness bound
// while the client is still trickling (without a read timeout the node waited for ever).
func TestTrickledBodyIsCutAtReadTimeout(t *testing.T) {
	c := coordinatortest.New(t, 1, func(cfg *coordinator.Config) {
		cfg.HTTPReadTimeout = time.Second
		cfg.HTTPReadHeaderTimeout = time.Second
	})
	cn, err := net.Dial("tcp", c.Leader().HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	body := `{"holder":"w1","item_id":"x.1","token":1}`
	if _, err := fmt.Fprintf(cn, "POST /v1/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		coordinatortest.Token, len(body)); err != nil {
		t.Fatal(err)
	}
	ended := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(cn).ReadString('\n')
		if err != nil {
			line = "connection closed: " + err.Error()
		}
		ended <- strings.TrimSpace(line)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case got := <-ended:
			t.Logf("after %v and %d of %d bytes: %s", time.Since(start).Round(10*time.Millisecond), i, len(body), got)
			if strings.HasPrefix(got, "HTTP/1.1 2") {
				t.Fatalf("the trickled write was served: %s", got)
			}
			return
		case <-ctx.Done():
			t.Fatalf("the node still holds a trickled request after %v (read timeout 1 s)", time.Since(start).Round(time.Millisecond))
		case <-tick.C:
			if i < len(body)-1 { // never the last byte: the body stays incomplete
				if _, err := cn.Write([]byte{body[i]}); err != nil && !errors.Is(err, net.ErrClosed) {
					t.Logf("write: %v", err)
				}
			}
		}
	}
}
