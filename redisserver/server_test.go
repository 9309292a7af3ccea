package redisserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optoloop/optoloop/childproc/childproctest"
)

// password has every kind of byte redis.conf would otherwise split or unescape.
const password = `p4ss word "quoted" \x41 back\slash # é`

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Password == "" {
		cfg.Password = password
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func client(t *testing.T, addr, pw string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Password: pw, MaxRetries: -1, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestKillRestartKeepsAcknowledgedWrites(t *testing.T) {
	ctx := context.Background()
	s := start(t, Config{})
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") || s.Password() != password || !s.Running() || s.PID() == 0 {
		t.Fatalf("url %s, running %v, pid %d", s.URL(), s.Running(), s.PID())
	}
	c := client(t, s.Addr(), password)
	if err := c.Set(ctx, "k", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pid := s.PID()
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("second kill: %v", err)
	}
	if s.Running() || s.PID() != 0 {
		t.Fatalf("killed server: running %v, pid %d", s.Running(), s.PID())
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("killed server's pid %d: %v, want no such process (reaped)", pid, err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v1" {
		t.Fatalf("after kill and restart: %q, %v; want v1", got, err)
	}
	if err := s.Restart(ctx); err == nil {
		t.Fatal("restart of a running server: no error")
	}

	// Stop (twice), restart: still there; a write after the restart survives too.
	if err := c.Set(ctx, "k2", "v2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"k": "v1", "k2": "v2"} {
		if got, err := c.Get(ctx, k).Result(); err != nil || got != want {
			t.Errorf("after stop and restart: %s = %q, %v; want %q", k, got, err, want)
		}
	}
}

func TestConfiguration(t *testing.T) {
	ctx := context.Background()
	s := start(t, Config{Fsync: "everysec"})
	c := client(t, s.Addr(), password)
	want := map[string]string{"appendonly": "yes", "appendfsync": "everysec", "save": "", "bind": "127.0.0.1",
		"protected-mode": "yes", "dir": s.Dir(), "requirepass": password}
	for k, v := range want {
		got, err := c.ConfigGet(ctx, k).Result()
		if err != nil || got[k] != v {
			t.Errorf("CONFIG GET %s: %q, %v; want %q", k, got[k], err, v)
		}
	}

	// The password is in a 0600 file, not on the command line.
	fi, err := os.Stat(filepath.Join(s.Dir(), "redis.conf"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("redis.conf: %v, %v; want mode 0600", fi.Mode(), err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.PID()))
	if err == nil && strings.Contains(string(cmdline), "p4ss") {
		t.Errorf("password on the command line: %q", cmdline)
	}

	for name, pw := range map[string]string{"wrong password": "nope", "no password": ""} {
		err := client(t, s.Addr(), pw).Ping(ctx).Err()
		if err == nil {
			t.Errorf("%s: PING answered", name)
		}
	}
}

func TestBadConfig(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for name, cfg := range map[string]Config{
		"no dir":       {Password: "x"},
		"no password":  {Dir: dir},
		"bad fsync":    {Dir: dir, Password: "x", Fsync: "no"},
		"bad address":  {Dir: dir, Password: "x", Addr: "example.org:1"},
		"bad port":     {Dir: dir, Password: "x", Addr: "127.0.0.1:99999"},
		"no binary":    {Dir: dir, Password: "x", Binary: "no-such-redis-server"},
		"half of TLS":  {Dir: dir, Password: "x", TLSCertFile: "c.pem"},
		"bad tls cert": {Dir: dir, Password: "x", TLSCertFile: "/nonexistent.pem", TLSKeyFile: "/nonexistent.key"},
	} {
		s, err := Start(ctx, cfg)
		if err == nil {
			s.Kill()
			t.Errorf("%s: started", name)
			continue
		}
		t.Logf("%s: %v", name, err)
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error of several lines: %q", name, err)
		}
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Start(context.Background(), Config{Dir: t.TempDir(), Password: "x", Addr: l.Addr().String()})
	if !errors.Is(err, errAddrInUse) {
		t.Fatalf("start on a port in use: %v", err)
	}
}

func TestStartGivesUpWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, Config{Dir: t.TempDir(), Password: "x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("start with a cancelled context: %v", err)
	}
}

// TestServerDiesWithItsParent runs a child process that starts a server and is then killed
// with SIGKILL: the kernel kills the server too (Pdeathsig).
func TestServerDiesWithItsParent(t *testing.T) {
	childproctest.DiesWithParent(t, "TestServerDiesWithItsParent", "REDISSERVER_TEST_CHILD", func(dir string) (int, error) {
		s, err := Start(context.Background(), Config{Dir: dir, Password: "x"})
		if err != nil {
			return 0, err
		}
		return s.PID(), nil
	})
}
