package childproc

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestParseAddr(t *testing.T) {
	for _, c := range []struct {
		addr string
		host string
		port int
	}{
		{"", "127.0.0.1", 0},
		{":6379", "127.0.0.1", 6379},
		{"localhost:0", "127.0.0.1", 0},
		{"0.0.0.0:80", "0.0.0.0", 80},
		{"[::1]:65535", "::1", 65535},
	} {
		host, port, err := ParseAddr(c.addr)
		if err != nil || host != c.host || port != c.port {
			t.Errorf("ParseAddr(%q) = %q, %d, %v; want %q, %d", c.addr, host, port, err, c.host, c.port)
		}
	}
	for _, addr := range []string{"127.0.0.1", "example.org:1", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:x"} {
		if host, port, err := ParseAddr(addr); err == nil {
			t.Errorf("ParseAddr(%q) = %q, %d: want an error", addr, host, port)
		}
	}
}

func TestDialHost(t *testing.T) {
	for host, want := range map[string]string{"0.0.0.0": "127.0.0.1", "::": "::1", "127.0.0.1": "127.0.0.1", "10.1.2.3": "10.1.2.3", "::1": "::1"} {
		if got := DialHost(host); got != want {
			t.Errorf("DialHost(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestFreePort(t *testing.T) {
	port, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if port <= 0 || port > 65535 {
		t.Fatalf("port %d", port)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listen on the free port %d: %v", port, err)
	}
	l.Close()
}

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	check := func(want string) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("content %q, %v; want %q", b, err, want)
		}
	}
	if err := WriteFile(path, []byte("first, longer")); err != nil {
		t.Fatal(err)
	}
	check("first, longer")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("second")); err != nil {
		t.Fatal(err)
	}
	check("second")
	if err := WriteFile(filepath.Join(t.TempDir(), "no", "dir"), nil); err == nil {
		t.Error("wrote in a missing folder")
	}
}
