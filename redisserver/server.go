// Package redisserver starts and manages a real redis-server process: the Redis that tests,
// benchmarks and `optoloop cluster up` run on loopback.
//
// A Server is configured by a redis.conf that Start writes (mode 0600) in the server's data
// folder, so the password is never on a command line: AUTH required (requirepass), the
// append-only file on (appendonly yes, appendfsync always by default), no RDB snapshots, the log
// on the server's standard output, bound to one address. The process is in a process group of
// its own and, on Linux, is killed with SIGKILL when the process that started it dies, so a
// crashed test or command leaves no redis-server behind. Every process started is reaped.
package redisserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/optoloop/optoloop/childproc"
)

// Config configures a redis-server.
type Config struct {
	// Binary is the redis-server executable (default "redis-server", looked up on PATH).
	Binary string
	// Dir is the server's data folder (required; created if absent): its redis.conf and its
	// append-only file live here.
	Dir string
	// Addr is the host:port to listen on; "" or port 0 is a free port (on 127.0.0.1 when the
	// host is empty). The host must be an IP address or "localhost".
	Addr string
	// Password is the password AUTH requires (required).
	Password string
	// Fsync is the appendfsync policy: "always" (default: a write is acknowledged once it is
	// fsynced to the append-only file) or "everysec".
	Fsync string
	// Stderr receives the server's log (default: discarded).
	Stderr io.Writer

	// TLSCertFile and TLSKeyFile, when both are set, make the server also accept TLS
	// connections (rediss://) on TLSAddr, with that certificate and key; clients are not asked
	// for certificates (AUTH still applies).
	TLSCertFile string
	TLSKeyFile  string
	// TLSPort is the TLS port on Addr's host (0: a free port).
	TLSPort int
}

// startAttempts bounds the retries when a free port found is taken before the server binds it.
const startAttempts = 8

// stopTimeout bounds how long Stop waits after SIGTERM before it kills the server.
const stopTimeout = time.Minute

// Server is a running (or stopped) redis-server. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	binary  string
	host    string // the address bound
	dial    string // the host clients connect to (127.0.0.1 for an unspecified bind address)
	port    int
	tlsPort int
	conf    string

	proc childproc.Slot
}

// Start writes the server's redis.conf in cfg.Dir, starts redis-server and returns once it
// answers an authenticated PING. It gives up when ctx ends; the process is then killed and
// reaped.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	freePort, freeTLS := s.port == 0, s.tls() && s.tlsPort == 0
	for attempt := 1; ; attempt++ {
		if freePort {
			if s.port, err = childproc.FreePort(s.host); err != nil {
				return nil, fmt.Errorf("redisserver: %w", err)
			}
		}
		if freeTLS {
			for {
				if s.tlsPort, err = childproc.FreePort(s.host); err != nil {
					return nil, fmt.Errorf("redisserver: %w", err)
				}
				if s.tlsPort != s.port {
					break
				}
			}
		}
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errAddrInUse) || !(freePort || freeTLS) || attempt == startAttempts {
			return nil, err
		}
	}
}

func newServer(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("redisserver: no data folder (Config.Dir)")
	}
	if cfg.Password == "" {
		return nil, errors.New("redisserver: no password (Config.Password): AUTH is required")
	}
	switch cfg.Fsync {
	case "":
		cfg.Fsync = "always"
	case "always", "everysec":
	default:
		return nil, fmt.Errorf("redisserver: appendfsync %q: want always or everysec", cfg.Fsync)
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return nil, errors.New("redisserver: TLS needs both a certificate and a key file")
	}
	if cfg.TLSPort < 0 || cfg.TLSPort > 65535 {
		return nil, fmt.Errorf("redisserver: TLS port %d out of range", cfg.TLSPort)
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	bin := cfg.Binary
	if bin == "" {
		bin = "redis-server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("redisserver: %s not found: install redis-server or set Config.Binary: %w", bin, err)
	}
	host, port, err := childproc.ParseAddr(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("redisserver: %w", err)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("redisserver: data folder %s: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("redisserver: data folder: %w", err)
	}
	cfg.Dir = dir
	return &Server{cfg: cfg, binary: path, host: host, dial: childproc.DialHost(host), port: port, tlsPort: cfg.TLSPort,
		conf: filepath.Join(dir, "redis.conf")}, nil
}

func (s *Server) tls() bool { return s.cfg.TLSCertFile != "" }

// errAddrInUse marks a start that failed because the port was taken.
var errAddrInUse = errors.New("address already in use")

// start writes the configuration, starts the process and waits until it answers.
func (s *Server) start(ctx context.Context) error {
	err := s.proc.Start(func() (*childproc.Process, error) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("redisserver %s: start: %w", s.Addr(), err)
		}
		if err := childproc.WriteFile(s.conf, s.config()); err != nil {
			return nil, fmt.Errorf("redisserver: write %s: %w", s.conf, err)
		}
		cmd := exec.Command(s.binary, s.conf)
		cmd.Dir = s.cfg.Dir
		p, err := childproc.Start(cmd, s.cfg.Stderr, lastLine)
		if err != nil {
			return nil, fmt.Errorf("redisserver: start %s: %w", s.binary, err)
		}
		if err := s.waitReady(ctx, p); err != nil {
			p.Kill()
			return p, err
		}
		return p, nil
	})
	if errors.Is(err, childproc.ErrRunning) {
		return fmt.Errorf("redisserver %s: %w", s.Addr(), err)
	}
	return err
}

// waitReady polls the server with AUTH and PING until it answers PONG, exits or ctx ends.
func (s *Server) waitReady(ctx context.Context, p *childproc.Process) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	// A ping in flight ends when the process exits (something else may hold the port).
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.Done():
			cancel()
		case <-pctx.Done():
		}
	}()
	for {
		err := ping(pctx, s.Addr(), s.cfg.Password)
		if err == nil {
			return nil
		}
		if errors.Is(err, errWrongPassword) {
			return fmt.Errorf("redisserver %s: another server answers there: %w", s.Addr(), err)
		}
		select {
		case <-p.Done():
			last := p.Summary()
			if strings.Contains(p.Output(), "Address already in use") {
				return fmt.Errorf("redisserver %s: %w: %s", s.Addr(), errAddrInUse, last)
			}
			return fmt.Errorf("redisserver %s: exited at start (%v): %s", s.Addr(), p.Err(), last)
		case <-ctx.Done():
			return fmt.Errorf("redisserver %s: no answer to PING (last: %v): %w", s.Addr(), err, ctx.Err())
		case <-tick.C:
		}
	}
}

// config is the redis.conf of the server.
func (s *Server) config() []byte {
	var b bytes.Buffer
	line := func(k string, v ...string) {
		b.WriteString(k)
		for _, x := range v {
			b.WriteByte(' ')
			b.WriteString(x)
		}
		b.WriteByte('\n')
	}
	b.WriteString("# Written by optoloop's redisserver at every start; changes are overwritten.\n")
	line("bind", s.host)
	line("port", strconv.Itoa(s.port))
	line("protected-mode", "yes")
	line("requirepass", quote(s.cfg.Password))
	line("dir", quote(s.cfg.Dir))
	line("daemonize", "no")
	line("logfile", `""`)
	line("save", `""`)
	line("appendonly", "yes")
	line("appendfsync", s.cfg.Fsync)
	if s.tls() {
		line("tls-port", strconv.Itoa(s.tlsPort))
		line("tls-cert-file", quote(s.cfg.TLSCertFile))
		line("tls-key-file", quote(s.cfg.TLSKeyFile))
		line("tls-auth-clients", "no")
	}
	return b.Bytes()
}

// quote writes v as a double-quoted redis.conf argument: every byte that is not a letter, a
// digit or a harmless punctuation mark is escaped as \xHH, so any value reads back exactly.
func quote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("/._-+=,:@", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.dial, strconv.Itoa(s.port)) }

// URL returns the server's redis:// URL (without the password).
func (s *Server) URL() string { return "redis://" + s.Addr() }

// TLSAddr returns the host:port of the server's TLS listener ("" without TLS).
func (s *Server) TLSAddr() string {
	if !s.tls() {
		return ""
	}
	return net.JoinHostPort(s.dial, strconv.Itoa(s.tlsPort))
}

// TLSURL returns the server's rediss:// URL ("" without TLS).
func (s *Server) TLSURL() string {
	if !s.tls() {
		return ""
	}
	return "rediss://" + s.TLSAddr()
}

// Password returns the password the server requires.
func (s *Server) Password() string { return s.cfg.Password }

// Dir returns the server's data folder.
func (s *Server) Dir() string { return s.cfg.Dir }

// Running reports whether the server process is running (started and not yet exited).
func (s *Server) Running() bool { return s.proc.Running() }

// PID returns the process id of the running server (0 when it is not running).
func (s *Server) PID() int { return s.proc.PID() }

// Stop shuts the server down with SIGTERM and waits for it to exit: Redis fsyncs its
// append-only file on shutdown. A server that has not exited after a minute is killed. Stopping
// a server that is not running does nothing.
func (s *Server) Stop() error {
	if err := s.proc.Stop(stopTimeout); err != nil {
		return fmt.Errorf("redisserver %s: %w", s.Addr(), err)
	}
	return nil
}

// Kill kills the server (and any child it forked) with SIGKILL and waits until it is reaped:
// a crash, for tests. What the server acknowledged with appendfsync always is in its
// append-only file. Killing a server that is not running does nothing.
func (s *Server) Kill() error {
	s.proc.Kill()
	return nil
}

// Restart starts the server again after Stop or Kill (or after it died), on the same port and
// data folder: it reloads its append-only file, and Restart returns once it answers an
// authenticated PING.
func (s *Server) Restart(ctx context.Context) error {
	return s.start(ctx)
}

// errWrongPassword is ping's error for a server that refuses the password.
var errWrongPassword = errors.New("wrong password")

// ping sends AUTH and PING and returns nil when the server answers PONG.
func ping(ctx context.Context, addr, password string) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	deadline := time.Now().Add(2 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline) //nolint:errcheck // a failed deadline shows as a failed read
	var req bytes.Buffer
	fmt.Fprintf(&req, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n", len(password), password)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	for i, want := range []string{"+OK", "+PONG"} {
		l, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == want {
			continue
		}
		if i == 0 && (strings.HasPrefix(l, "-WRONGPASS") || strings.HasPrefix(l, "-ERR invalid password")) {
			return errWrongPassword
		}
		return fmt.Errorf("answer %q", l)
	}
	return nil
}

// lastLine returns the last lines of the output that say why a server stopped, without their
// pid and time stamp ("no output" when there is none).
func lastLine(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		// A log line is "pid:role day month year time level message".
		if f := strings.SplitN(strings.TrimSpace(l), " ", 7); len(f) == 7 && strings.Contains(f[0], ":") {
			l = f[6]
		}
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	switch n := len(lines); {
	case n == 0:
		return "no output"
	case n >= 2 && strings.Contains(lines[n-1], "Check logs"):
		return lines[n-2] + "; " + lines[n-1]
	default:
		return lines[n-1]
	}
}
