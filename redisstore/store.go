package redisstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optoloop/optoloop/fleet"
)

var (
	_ fleet.Replay      = (*Store)(nil)
	_ fleet.Params      = (*Store)(nil)
	_ fleet.Tracks      = (*Store)(nil)
	_ fleet.Checkpoints = (*Store)(nil)
)

// Config configures a connection to Redis.
type Config struct {
	// URL is redis://host:port[/db], or rediss://host:port[/db] for TLS. A user name in the
	// URL (redis://user@host:port) is an ACL user; a password in the URL is refused.
	URL string
	// Password is the password AUTH requires (required).
	Password string
	// CAFile is a PEM file of certificate authorities trusted besides the system's, for a
	// rediss:// URL (optional).
	CAFile string
	// Prefix starts every key and channel name (default "optoloop").
	Prefix string
	// Timeout bounds each Redis command, connecting included (default 5s): a store call fails
	// within about Timeout when Redis is away.
	Timeout time.Duration
	// Logger receives what the store has to say (default: nothing).
	Logger *slog.Logger
}

// DefaultTimeout is the per-command timeout of a Config that sets none.
const DefaultTimeout = 5 * time.Second

// DefaultPrefix is the key prefix of a Config that sets none.
const DefaultPrefix = "optoloop"

// Durability settings a Store reports.
const (
	// DurabilityAppendFsyncAlways: the server fsyncs its append-only file before it answers a
	// write (appendonly yes, appendfsync always).
	DurabilityAppendFsyncAlways = "appendfsync always"
	// DurabilityWaitAOF: every write is followed by WAITAOF 1 0 on its connection (Redis >=
	// 7.2 with appendonly yes), and acknowledged once the server has fsynced it.
	DurabilityWaitAOF = "WAITAOF 1 0 after each write"
	// durabilityNone: acknowledged writes may be lost (benchmarks only).
	durabilityNone = "none"
)

// Store is Redis's fleet.Replay, fleet.Params, fleet.Tracks and fleet.Checkpoints, and a
// live.Publisher and live.Reader. It is safe for concurrent use. A write returns only once
// Redis has it in its append-only file (see Durability), so a Redis restart loses nothing
// acknowledged; tiles and curves are written without WAITAOF.
type Store struct {
	rdb        *redis.Client
	addr       string
	password   string
	prefix     string
	timeout    time.Duration
	log        *slog.Logger
	waitAOF    bool
	durability string
}

// Open connects to Redis, authenticates, and checks that the server acknowledges writes only
// once they are in its append-only file: appendonly yes with appendfsync always, or else a
// server that answers WAITAOF (Redis >= 7.2) with appendonly yes, whose writes are then each
// followed by WAITAOF 1 0. Errors are one line naming the server and the problem; the password
// is never in them.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	return open(ctx, cfg, true)
}

// open is Open; with durable false (benchmarks of what durability costs, never the fleet) it
// accepts a server that does not fsync before it answers.
func open(ctx context.Context, cfg Config, durable bool) (*Store, error) {
	opt, addr, err := options(cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{rdb: redis.NewClient(opt), addr: addr, password: cfg.Password, prefix: cfg.Prefix,
		timeout: opt.ReadTimeout, log: cfg.Logger}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	version, err := s.check(ctx)
	if err != nil && !durable && s.durability == "" && ctx.Err() == nil && s.rdb.Ping(ctx).Err() == nil {
		s.durability, err = durabilityNone, nil
	}
	if err != nil {
		s.rdb.Close()
		return nil, err
	}
	s.log.Info("redis store open", "addr", addr, "redis_version", version, "durability", s.durability, "prefix", s.prefix)
	return s, nil
}

// options checks cfg and returns the client's options and the server's host:port.
func options(cfg Config) (*redis.Options, string, error) {
	if cfg.URL == "" {
		return nil, "", errors.New("redis: no URL")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Error repeats the URL, which may hold a password: keep only its reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "", fmt.Errorf("redis: bad URL: %v", err)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "6379"
	}
	addr := net.JoinHostPort(host, port)
	bad := func(format string, a ...any) (*redis.Options, string, error) {
		return nil, "", fmt.Errorf("redis %s: "+format, append([]any{addr}, a...)...)
	}
	if _, ok := u.User.Password(); ok {
		return bad("the URL carries a password: put the password in --redis-password-file, not the URL")
	}
	switch {
	case u.Scheme != "redis" && u.Scheme != "rediss":
		return bad("URL scheme %q: want redis:// or rediss://", u.Scheme)
	case host == "":
		return bad("the URL has no host")
	case u.RawQuery != "" || u.Fragment != "":
		return bad("the URL has a query or fragment: options go in flags, not the URL")
	case cfg.Password == "":
		return bad("no password: AUTH is required; give it with --redis-password-file or $OPTOLOOP_REDIS_PASSWORD")
	case cfg.CAFile != "" && u.Scheme != "rediss":
		return bad("a CA file is for TLS: use a rediss:// URL")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return bad("bad port %q", port)
	}
	db := 0
	if p := strings.Trim(u.Path, "/"); p != "" {
		if db, err = strconv.Atoi(p); err != nil || db < 0 {
			return bad("database %q in the URL: want a number", p)
		}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	opt := &redis.Options{
		Addr:     addr,
		Username: u.User.Username(),
		Password: cfg.Password,
		DB:       db,
		// The fleet roles retry with backoff themselves: one quick retry here, and every call
		// is bounded by Timeout as a whole.
		MaxRetries:            1,
		MinRetryBackoff:       10 * time.Millisecond,
		MaxRetryBackoff:       100 * time.Millisecond,
		DialTimeout:           timeout,
		DialerRetries:         1,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
	}
	if u.Scheme == "rediss" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return bad("CA file: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return bad("CA file %s holds no PEM certificate", cfg.CAFile)
			}
		}
		opt.TLSConfig = &tls.Config{ServerName: host, RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return opt, addr, nil
}

// check pings the server and decides how writes are made durable. It returns the server's
// version.
func (s *Store) check(ctx context.Context) (string, error) {
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	if err := s.rdb.Ping(cctx).Err(); err != nil {
		return "", s.fail(ctx, "", err)
	}
	version := "unknown"
	if info, err := s.rdb.Info(cctx, "server").Result(); err == nil {
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
				version = v
			}
		}
	}
	conf, confErr := s.rdb.ConfigGet(cctx, "append*").Result()
	if confErr == nil && conf["appendonly"] == "yes" && conf["appendfsync"] == "always" {
		s.durability = DurabilityAppendFsyncAlways
		return version, nil
	}
	// Redis >= 7.2: WAITAOF 1 0 answers at once on a connection that has written nothing, when
	// the append-only file is on.
	w, waitErr := s.rdb.Do(cctx, "WAITAOF", 1, 0, s.timeout.Milliseconds()).Int64Slice()
	if waitErr == nil && len(w) == 2 && w[0] >= 1 {
		s.waitAOF, s.durability = true, DurabilityWaitAOF
		return version, nil
	}
	if ctx.Err() != nil {
		return "", s.fail(ctx, "check durability", ctx.Err())
	}
	switch {
	case confErr != nil:
		return "", s.fail(ctx, "", fmt.Errorf("cannot check durability: CONFIG GET: %v; WAITAOF: %w", confErr, waitErr))
	case conf["appendonly"] != "yes":
		return "", s.fail(ctx, "", errors.New("appendonly is no: acknowledged writes could be lost; set appendonly yes and appendfsync always"))
	default:
		return "", s.fail(ctx, "", fmt.Errorf("appendfsync is %s: acknowledged writes could be lost; set appendfsync always", conf["appendfsync"]))
	}
}

// Close closes the store's connections.
func (s *Store) Close() error { return s.rdb.Close() }

// Durability says how the store makes writes durable: DurabilityAppendFsyncAlways or
// DurabilityWaitAOF.
func (s *Store) Durability() string { return s.durability }

// Addr returns the server's host:port.
func (s *Store) Addr() string { return s.addr }

// ClientLogger is go-redis's process-wide logger written to a slog.Logger at debug level. go-redis
// has no logger per client, and by default prints its own messages (failed dials, reconnects)
// to standard error: a command's wiring calls redis.SetLogger(redisstore.ClientLogger{l}) once
// so that they join its log instead.
type ClientLogger struct{ Logger *slog.Logger }

// Printf logs one go-redis message.
func (c ClientLogger) Printf(ctx context.Context, format string, v ...any) {
	c.Logger.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// cmdCtx bounds one command by the store's timeout.
func (s *Store) cmdCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// fail turns a Redis error of the call what into the store's one-line error, naming the server
// and the problem, never the password.
func (s *Store) fail(ctx context.Context, what string, err error) error {
	if what != "" {
		what += ": "
	}
	passing := transient(ctx, err)
	done := callerDone(ctx)
	var op *net.OpError
	switch {
	case done != nil:
		err = fmt.Errorf("redis %s: %s%w", s.addr, what, done)
	case redis.IsAuthError(err):
		who := "wrong password"
		if s.rdb.Options().Username != "" {
			who = fmt.Sprintf("wrong password for user %q (or no such user)", s.rdb.Options().Username)
		}
		err = fmt.Errorf("redis %s: %s%s", s.addr, what, who)
	case errors.As(err, &op) && op.Op == "dial":
		cause := op.Err
		var sys *os.SyscallError
		if errors.As(cause, &sys) {
			cause = sys.Err // "connection refused", not "connect: connection refused"
		}
		err = fmt.Errorf("redis %s: %scannot connect: %w", s.addr, what, cause)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		err = fmt.Errorf("redis %s: %sno answer within %v: %w", s.addr, what, s.timeout, err)
	default:
		err = fmt.Errorf("redis %s: %s%w", s.addr, what, err)
	}
	if msg := err.Error(); s.password != "" && strings.Contains(msg, s.password) {
		err = errors.New(strings.ReplaceAll(msg, s.password, "[password]"))
	}
	if strings.Contains(err.Error(), "\n") {
		err = errors.New(strings.Join(strings.Fields(err.Error()), " "))
	}
	if passing {
		return unavailable{err}
	}
	return err
}

// unavailable marks an error that may pass by itself (fleet.ErrUnavailable): the roles retry it.
type unavailable struct{ error }

func (u unavailable) Unwrap() []error { return []error{u.error, fleet.ErrUnavailable} }

// transient reports whether err of a call whose context is still live may pass by itself: the
// server is away (a refused or broken connection, no answer in time) or not ready (loading its
// append-only file after a restart, a script still running, a replica that is read-only).
func transient(ctx context.Context, err error) bool {
	if callerDone(ctx) != nil || err == nil || redis.IsAuthError(err) || errors.Is(err, redis.ErrClosed) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) || isTimeout(err) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"LOADING ", "BUSY ", "TRYAGAIN", "MASTERDOWN", "READONLY ", "redis: connection pool timeout"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// callerDone is ctx's error, or context.DeadlineExceeded once ctx's deadline has passed even
// if its timer has not fired yet: go-redis gives the connection ctx's deadline, and the
// network deadline can fire first, so a read that timed out on the caller's deadline is the
// caller's timeout, not a server that does not answer.
func callerDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// isTimeout reports whether err is a network timeout (a read or write deadline).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// eval runs a script that writes and returns once the write is durable (WAITAOF when the
// store uses it).
func (s *Store) eval(ctx context.Context, sc *redis.Script, keys []string, args ...any) (any, error) {
	cctx, cancel := s.cmdCtx(ctx)
	defer cancel()
	if !s.waitAOF {
		return sc.Run(cctx, s.rdb, keys, args...).Result()
	}
	for try := 0; ; try++ {
		var ev *redis.Cmd
		w, err := s.withWaitAOF(cctx, func(p redis.Pipeliner) { ev = p.EvalSha(cctx, sc.Hash(), keys, args...) })
		if noScript := errors.Is(ev.Err(), redis.ErrNoScript) || redis.HasErrorPrefix(ev.Err(), "NOSCRIPT"); noScript && try == 0 {
			// The server lost its script cache (a restart): load the script, run it again.
			if err := sc.Load(cctx, s.rdb).Err(); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := w(); err != nil {
			return nil, err
		}
		return ev.Val(), nil
	}
}

// withWaitAOF sends the commands queue adds followed by WAITAOF 1 0 in one pipeline (WAITAOF
// waits for the writes of its own connection). The function it returns says whether the
// server has fsynced them.
func (s *Store) withWaitAOF(ctx context.Context, queue func(redis.Pipeliner)) (func() error, error) {
	var wait *redis.Cmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		queue(p)
		wait = p.Do(ctx, "WAITAOF", 1, 0, s.timeout.Milliseconds())
		return nil
	})
	return func() error {
		n, err := wait.Int64Slice()
		switch {
		case err != nil:
			return fmt.Errorf("WAITAOF: %w", err)
		case len(n) < 1 || n[0] < 1:
			return fmt.Errorf("WAITAOF: the write is not in the append-only file after %v", s.timeout)
		}
		return nil
	}, err
}

// key returns the key of an experiment's kind of data, from parts escaped so that no two keys
// of different parts are equal.
func (s *Store) key(experiment, kind string, parts ...string) string {
	var b strings.Builder
	b.WriteString(s.prefix)
	b.WriteByte(':')
	b.WriteString(escape(experiment))
	b.WriteByte(':')
	b.WriteString(kind)
	for _, p := range parts {
		b.WriteByte(':')
		b.WriteString(escape(p))
	}
	return b.String()
}

// escape writes '%' and ':' in a key part as %25 and %3A: ':' separates the parts of a key.
func escape(p string) string {
	if !strings.ContainsAny(p, "%:") {
		return p
	}
	return strings.NewReplacer("%", "%25", ":", "%3A").Replace(p)
}

// errCtx returns the context's error, wrapped, when it has ended.
func errCtx(ctx context.Context, what string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: %s: %w", what, err)
	}
	return nil
}
