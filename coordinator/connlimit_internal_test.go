package coordinator

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestConnLimitListenerCaps: with caps of 2 per client and 3 in all, a third connection from
// one address and a fourth from another are closed at once (the client reads EOF) while Accept
// goes on returning the others; a closed connection frees its slot.
func TestConnLimitListenerCaps(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitConns(raw, 2, 3)
	defer l.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(ip string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedAtOnce := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
	}
	get := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	dial("127.0.0.1")
	dial("127.0.0.1")
	a1, a2 := get(), get()
	if c := dial("127.0.0.1"); !closedAtOnce(c) {
		t.Fatal("a third connection from 127.0.0.1 was kept (cap 2 per client)")
	}
	dial("127.0.0.3")
	b1 := get()
	if c := dial("127.0.0.4"); !closedAtOnce(c) {
		t.Fatal("a fourth connection was kept (cap 3 in all)")
	}
	if l.Refused() != 2 {
		t.Errorf("refused %d, want 2", l.Refused())
	}
	a1.Close()
	a1.Close() // twice: the slot is freed once
	dial("127.0.0.4")
	get()
	if c := dial("127.0.0.5"); !closedAtOnce(c) {
		t.Fatal("the freed slot was counted twice")
	}
	a2.Close()
	b1.Close()
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}
