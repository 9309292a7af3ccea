package redisstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optoloop/optoloop/agentlib/replay"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/fleet/storetest"
	"github.com/optoloop/optoloop/redisserver"
)

const testPassword = "s3cret-test-password"

// startServer starts a redis-server for the test on a free loopback port, in a temporary
// folder; it is stopped when the test ends.
func startServer(t testing.TB, cfg redisserver.Config) *redisserver.Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Password == "" {
		cfg.Password = testPassword
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := redisserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// openStore opens a store on srv whose keys start with prefix; it is closed when the test ends.
func openStore(t testing.TB, srv *redisserver.Server, prefix string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{URL: srv.URL(), Password: srv.Password(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawClient is a plain client of srv, to change what the store wrote behind its back.
func rawClient(t testing.TB, srv *redisserver.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: srv.Password(), DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, redisserver.Config{})
	s := openStore(t, srv, "")
	if s.Durability() != DurabilityAppendFsyncAlways || s.Addr() != srv.Addr() {
		t.Errorf("durability %q, addr %s", s.Durability(), s.Addr())
	}
	everysec := startServer(t, redisserver.Config{Fsync: "everysec"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	tests := []struct {
		name string
		cfg  Config
		want string // in the error
	}{
		{"wrong password", Config{URL: srv.URL(), Password: "wrong-" + testPassword}, "redis " + srv.Addr() + ": wrong password"},
		{"wrong ACL user", Config{URL: "redis://nobody@" + srv.Addr(), Password: testPassword}, `wrong password for user "nobody"`},
		{"password in the URL", Config{URL: "redis://:" + testPassword + "@" + srv.Addr(), Password: testPassword}, "put the password in --redis-password-file, not the URL"},
		{"user and password in the URL", Config{URL: "redis://default:" + testPassword + "@" + srv.Addr(), Password: testPassword}, "not the URL"},
		{"no password", Config{URL: srv.URL()}, "no password: AUTH is required"},
		{"unreachable", Config{URL: "redis://" + closed, Password: testPassword, Timeout: time.Second}, "redis " + closed + ": cannot connect: "},
		{"appendfsync everysec", Config{URL: everysec.URL(), Password: testPassword}, "appendfsync is everysec: acknowledged writes could be lost; set appendfsync always"},
		{"bad scheme", Config{URL: "http://" + srv.Addr(), Password: testPassword}, "want redis:// or rediss://"},
		{"bad URL with a password", Config{URL: "redis://u:" + testPassword + "@host:port%zz", Password: testPassword}, "bad URL"},
		{"query", Config{URL: srv.URL() + "?dial_timeout=1s", Password: testPassword}, "query"},
		{"bad database", Config{URL: srv.URL() + "/x", Password: testPassword}, "database"},
		{"CA file without TLS", Config{URL: srv.URL(), Password: testPassword, CAFile: "ca.pem"}, "rediss://"},
		{"no URL", Config{Password: testPassword}, "no URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want %q in it", msg, tc.want)
			}
			if strings.Contains(msg, testPassword) {
				t.Errorf("the password is in the error %q", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error of several lines: %q", msg)
			}
		})
	}
}

func TestOpenRefusesAppendOnlyOff(t *testing.T) {
	srv := startServer(t, redisserver.Config{})
	if err := rawClient(t, srv).ConfigSet(context.Background(), "appendonly", "no").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Config{URL: srv.URL(), Password: testPassword})
	if err == nil || !strings.Contains(err.Error(), "appendonly is no") {
		t.Fatalf("open with appendonly no: %v", err)
	}
}

// TestAcknowledgedSurvivesKill: what Append, Publish, Put and Save acknowledged is in the
// append-only file: it survives SIGKILL of the server, and the same store goes on after the
// restart (new connections, the script cache reloaded).
func TestAcknowledgedSurvivesKill(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, redisserver.Config{})
	s := openStore(t, srv, "")
	c := fleet.Chunk{Experiment: "e", Line: "301", Episode: "e.1", Token: 7, Seq: 0, PolicyVersion: 3,
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		Records:     []replay.Record{{T: 0.1, X: 1.5, Y: -2, Body: 0.3, Head: 3.1, OK: true, Light: true, Episode: "e.1", PolicyVersion: 3, TargetX: 10, TargetY: 20}}}
	if err := s.Append(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, "e", "301", 1, []byte("ensemble")); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "e", "e.9", map[string][]byte{"a": []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Chunks(ctx, "e", "301")
	if err != nil || len(got) != 1 || !equalChunk(got[0], c) {
		t.Fatalf("after kill and restart: %+v, %v", got, err)
	}
	if b, err := s.Fetch(ctx, "e", "301", 1); err != nil || string(b) != "ensemble" {
		t.Errorf("params after kill and restart: %q, %v", b, err)
	}
	if f, err := s.Load(ctx, "e", "e.9"); err != nil || string(f["a"]) != "1" {
		t.Errorf("checkpoint after kill and restart: %q, %v", f, err)
	}
	// The seen set survived too: the same chunk again changes nothing.
	if err := s.Append(ctx, c); err != nil {
		t.Fatal(err)
	}
	c2 := c
	c2.Seq = 1
	if err := s.Append(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Chunks(ctx, "e", "301"); err != nil || len(got) != 2 {
		t.Fatalf("after appending again: %d chunks, %v; want 2", len(got), err)
	}
}

// TestRedisAway: with the server down, every call fails (within about Timeout) with an error
// naming the server; none hangs.
func TestRedisAway(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, redisserver.Config{})
	s, err := Open(ctx, Config{URL: srv.URL(), Password: testPassword, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	_, chunksErr := s.Chunks(ctx, "e", "301")
	_, fetchErr := s.Fetch(ctx, "e", "301", 1)
	_, latestErr := s.Latest(ctx, "e", "301")
	_, waitErr := s.Wait(ctx, "e", "301", 1)
	_, getErr := s.Get(ctx, "e", "e.1", 1)
	_, loadErr := s.Load(ctx, "e", "e.1")
	for name, err := range map[string]error{
		"append":  s.Append(ctx, fleet.Chunk{Experiment: "e", Line: "301", Episode: "e.1"}),
		"chunks":  chunksErr,
		"publish": s.Publish(ctx, "e", "301", 1, []byte("a")),
		"fetch":   fetchErr,
		"latest":  latestErr,
		"wait":    waitErr,
		"put":     s.Put(ctx, "e", 1, resultsEpisode("e.1")),
		"get":     getErr,
		"save":    s.Save(ctx, "e", "e.1", nil),
		"load":    loadErr,
	} {
		if err == nil || errors.Is(err, fleet.ErrNotFound) || !strings.Contains(err.Error(), "redis "+srv.Addr()+": ") {
			t.Errorf("%s with Redis away: %v", name, err)
		}
		// The roles retry what may pass.
		if !errors.Is(err, fleet.ErrUnavailable) {
			t.Errorf("%s with Redis away: %v does not wrap fleet.ErrUnavailable", name, err)
		}
	}
	// Once Redis is back the same calls work; a refusal is final, not unavailable.
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, "e", "301", 1, []byte("a")); err != nil {
		t.Fatalf("publish after the restart: %v", err)
	}
	if err := s.Publish(ctx, "e", "301", 1, []byte("b")); err == nil || errors.Is(err, fleet.ErrUnavailable) {
		t.Errorf("publishing other bytes: %v; want a final refusal", err)
	}
}

// TestRedisHung: a server that accepted the connection but does not answer (stopped with
// SIGSTOP) fails a call after about Timeout, not never.
func TestRedisHung(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, redisserver.Config{})
	s, err := Open(ctx, Config{URL: srv.URL(), Password: testPassword, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pid := srv.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	err = s.Append(ctx, storetest.Chunk("e", "301", "e.1", 1, 0, 1))
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") || !errors.Is(err, fleet.ErrUnavailable) {
		t.Fatalf("append to a hung server: %v; want no answer, unavailable", err)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// The append may or may not have reached the server: appending again stores it once.
	if err := s.Append(ctx, storetest.Chunk("e", "301", "e.1", 1, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Chunks(ctx, "e", "301"); err != nil || len(got) != 1 {
		t.Fatalf("%d chunks, %v; want 1", len(got), err)
	}
}

// TestAppendRetriedAfterLostReply: appenders whose calls time out (the reply lost, the script
// maybe run) retry until an append is acknowledged; every chunk is stored once.
func TestAppendRetriedAfterLostReply(t *testing.T) {
	srv := startServer(t, redisserver.Config{})
	s := openStore(t, srv, "")
	const appenders, chunks = 4, 25
	var wg sync.WaitGroup
	var timeouts atomic.Int64
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range chunks {
				c := storetest.Chunk("e", "301", fmt.Sprintf("e.%d", a%2), 1, i, float64(i)) // two appenders per episode
				// The deadline doubles up to 1 s, below the store's own 5 s network timeout, so
				// that on a loaded machine a slow answer is a retry, not an i/o error.
				for d := 20 * time.Microsecond; ; d = min(2*d, time.Second) {
					ctx, cancel := context.WithTimeout(context.Background(), d)
					err := s.Append(ctx, c)
					cancel()
					if err == nil {
						break
					}
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Error(err)
						return
					}
					timeouts.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.Chunks(context.Background(), "e", "301")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d appends timed out and were retried", timeouts.Load())
	seen := map[string]bool{}
	for _, c := range got {
		k := fmt.Sprintf("%s/%d", c.Episode, c.Seq)
		if seen[k] || len(c.Records) != 1 || c.Records[0].T != float64(c.Seq) {
			t.Errorf("chunk %s stored twice or wrong: %+v", k, c)
		}
		seen[k] = true
	}
	if len(got) != 2*chunks {
		t.Errorf("%d chunks stored, want %d", len(got), 2*chunks)
	}
}

// pastDeadline is a context whose deadline has passed but whose timer has not fired yet: what
// a caller's context looks like in the instant after go-redis's network deadline (the same
// time) fired first.
type pastDeadline struct{ context.Context }

func (pastDeadline) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// TestTimeoutOnTheCallersDeadline: a read that timed out on the caller's own deadline is the
// caller's context.DeadlineExceeded, not a retry-worthy server that gave no answer, even
// before the context's timer has marked it done.
func TestTimeoutOnTheCallersDeadline(t *testing.T) {
	s := openStore(t, startServer(t, redisserver.Config{}), "")
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	ctx := pastDeadline{context.Background()}
	err := s.fail(ctx, "append", timeout)
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "no answer") || transient(ctx, timeout) {
		t.Errorf("caller's deadline passed: got %v (transient %v), want the caller's deadline", err, transient(ctx, timeout))
	}
	// The same read timeout with the caller's deadline still ahead is the store's own.
	ahead, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if err := s.fail(ahead, "append", timeout); !strings.Contains(err.Error(), "no answer within") || !transient(ahead, timeout) {
		t.Errorf("caller's deadline ahead: got %v (transient %v), want the store's timeout, transient", err, transient(ahead, timeout))
	}
}

func TestCorruptEntries(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, redisserver.Config{})
	s := openStore(t, srv, "")
	raw := rawClient(t, srv)
	good := encodeRecords("e.1", 0, []replay.Record{{T: 1, Episode: "e.1"}})
	flipped := slices.Clone(good)
	flipped[5] ^= 0x10
	fields := func(kv ...string) map[string]any {
		m := map[string]any{fieldEpisode: "e.1", fieldToken: "7", fieldSeq: "0", fieldPolicy: "0", fieldTraceParent: "", fieldRecords: string(good)}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for name, v := range map[string]map[string]any{
		"a flipped bit":   fields(fieldRecords, string(flipped)),
		"truncated":       fields(fieldRecords, string(good[:len(good)-1])),
		"another format":  fields(fieldRecords, "\x07"+string(good[1:])),
		"no records":      fields(fieldRecords, "-"),
		"no token":        fields(fieldToken, "-"),
		"bad token":       fields(fieldToken, "x"),
		"negative seq":    fields(fieldSeq, "-1"),
		"an extra field":  fields("extra", "1"),
		"bad policy":      fields(fieldPolicy, "1.5"),
		"no traceparent":  fields(fieldTraceParent, "-"),
		"no episode name": fields(fieldEpisode, "-"),
	} {
		t.Run(name, func(t *testing.T) {
			line := strings.ReplaceAll(name, " ", "-")
			if err := s.Append(ctx, storetest.Chunk("e", line, "e.0", 1, 0, 0.5)); err != nil {
				t.Fatal(err)
			}
			id, err := raw.XAdd(ctx, &redis.XAddArgs{Stream: s.key("e", "replay", line), Values: v}).Result()
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Chunks(ctx, "e", line)
			if err == nil {
				t.Fatalf("chunks of a replay with a corrupt entry: %q", storetest.Times(got))
			}
			t.Log(err)
			if !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), id) {
				t.Errorf("error %q does not name entry %s as corrupt", err, id)
			}
		})
	}
	// A parameter blob changed behind the store's back fails its checksum.
	if err := s.Publish(ctx, "e", "301", 4, []byte("blob")); err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, s.key("e", "params", "301", "4"), fieldBlob, "blub").Err(); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Fetch(ctx, "e", "301", 4); err == nil || !strings.Contains(err.Error(), "version 4") {
		t.Errorf("fetch of a corrupt blob: %q, %v", b, err)
	}
}

// TestKeysOfOtherNamesDiffer: names holding the key separator do not share keys.
func TestKeysOfOtherNamesDiffer(t *testing.T) {
	s := &Store{prefix: "p"}
	if a, b := s.key("x:replay:y", "replay", "z"), s.key("x", "replay", "y:replay:z"); a == b {
		t.Errorf("both names have key %s", a)
	}
	if a, b := s.key("x%3Ay", "replay", "z"), s.key("x:y", "replay", "z"); a == b {
		t.Errorf("both names have key %s", a)
	}
}

func TestTLS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	srv := startServer(t, redisserver.Config{TLSCertFile: cert, TLSKeyFile: key})
	s, err := Open(ctx, Config{URL: srv.TLSURL(), Password: testPassword, CAFile: cert})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(ctx, storetest.Chunk("e", "301", "e.1", 7, 0, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Chunks(ctx, "e", "301"); err != nil || !slices.Equal(storetest.Times(got), []string{"e.1/7/0: 1 2"}) {
		t.Fatalf("chunks over TLS: %q, %v", storetest.Times(got), err)
	}
	// Without the CA the server's certificate is not trusted; plain redis:// to the TLS port
	// gets no answer.
	for name, cfg := range map[string]Config{
		"no CA":            {URL: srv.TLSURL(), Password: testPassword, Timeout: time.Second},
		"plain to the TLS": {URL: "redis://" + srv.TLSAddr(), Password: testPassword, Timeout: time.Second},
	} {
		s, err := Open(ctx, cfg)
		if err == nil {
			s.Close()
			t.Errorf("%s: opened", name)
			continue
		}
		t.Logf("%s: %v", name, err)
		if strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q", name, err)
		}
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 (its own CA) and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "optoloop test redis"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
