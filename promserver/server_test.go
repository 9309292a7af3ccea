package promserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/optoloop/optoloop/childproc/childproctest"
)

// needPrometheus skips a test that starts a server when the prometheus binary is absent.
func needPrometheus(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Skip("prometheus is not on PATH (install it: scripts/deps.sh, Debian package prometheus): " + err.Error())
	}
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	needPrometheus(t)
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if testing.Verbose() && os.Getenv("PROMSERVER_TEST_LOG") != "" {
		cfg.Stderr = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prometheus %s ready in %v", s.URL(), time.Since(t0).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// endpoint is a tiny /metrics endpoint on loopback (promhttp on a registry of its own): a
// counter the test sets and a histogram of three observations.
type endpoint struct {
	srv     *httptest.Server
	counter prometheus.Counter
}

func newEndpoint(t *testing.T) *endpoint {
	t.Helper()
	reg := prometheus.NewRegistry()
	e := &endpoint{counter: prometheus.NewCounter(prometheus.CounterOpts{Name: "promserver_test_things_total", Help: "Things the test counted."})}
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "promserver_test_wait_seconds", Help: "Waits.", Buckets: []float64{0.1, 1}})
	reg.MustRegister(e.counter, h)
	for _, v := range []float64{0.05, 0.5, 0.5} {
		h.Observe(v)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) addr() string { return e.srv.Listener.Addr().String() }

// eventually polls cond every 100 ms until it returns nil or a minute has passed.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	t0 := time.Now()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			t.Logf("%s: after %v", what, time.Since(t0).Round(time.Millisecond))
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// value queries one number.
func value(ctx context.Context, s *Server, q string) (float64, error) {
	r, err := s.Query(ctx, q)
	if err != nil {
		return 0, err
	}
	return r.Value()
}

func TestScrapeAndQuery(t *testing.T) {
	ctx := t.Context()
	e := newEndpoint(t)
	e.counter.Add(42)
	s := start(t, Config{Targets: []string{e.addr()}, ScrapeInterval: 200 * time.Millisecond})
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || !s.Running() || s.PID() == 0 {
		t.Fatalf("url %s, running %v, pid %d", s.URL(), s.Running(), s.PID())
	}
	eventually(t, "the counter through Prometheus", func() error {
		v, err := value(ctx, s, "promserver_test_things_total")
		if err == nil && v != 42 {
			err = fmt.Errorf("%v, want 42", v)
		}
		return err
	})
	r, err := s.Query(ctx, "promserver_test_things_total")
	if err != nil {
		t.Fatal(err)
	}
	if m := r.Vector[0].Metric; m["job"] != Job || m["instance"] != e.addr() || m["__name__"] != "promserver_test_things_total" {
		t.Errorf("labels %v", m)
	}
	if age := time.Since(r.Vector[0].Time); age < -time.Minute || age > time.Minute {
		t.Errorf("sample time %v", r.Vector[0].Time)
	}
	e.counter.Add(8)
	eventually(t, "the counter's new value", func() error {
		v, err := value(ctx, s, "promserver_test_things_total")
		if err == nil && v != 50 {
			err = fmt.Errorf("%v, want 50", v)
		}
		return err
	})
	// The histogram's median: 2 of 3 observations in (0.1, 1], interpolated.
	v, err := value(ctx, s, "histogram_quantile(0.5, promserver_test_wait_seconds_bucket)")
	if err != nil || math.Abs(v-0.325) > 1e-9 {
		t.Errorf("median %v, %v; want 0.325", v, err)
	}
	if v, err := value(ctx, s, "1 + 1"); err != nil || v != 2 {
		t.Errorf("scalar 1 + 1: %v, %v", v, err)
	}
	if r, err := s.Query(ctx, "promserver_test_things_total[2s]"); err != nil || r.Type != "matrix" || len(r.Matrix) != 1 || len(r.Matrix[0].Points) == 0 {
		t.Errorf("range selector: %+v, %v", r, err)
	}
	if r, err := s.Query(ctx, `"hello"`); err != nil || r.Type != "string" || r.String != "hello" {
		t.Errorf("string: %+v, %v", r, err)
	}
	if r, err := s.Query(ctx, "no_such_metric"); err != nil || r.Type != "vector" || len(r.Vector) != 0 {
		t.Errorf("absent metric: %+v, %v", r, err)
	} else if _, err := r.Value(); !errors.Is(err, ErrNoValue) {
		t.Errorf("Value of an empty vector: %v", err)
	}
	if _, err := s.Query(ctx, "sum(("); err == nil || !strings.Contains(err.Error(), "bad_data") || strings.Contains(err.Error(), "\n") {
		t.Errorf("bad query: %v, want one line with bad_data", err)
	}

	ts, err := s.Targets(ctx)
	if err != nil || len(ts) != 1 || ts[0].Health != "up" || ts[0].ScrapeURL != "http://"+e.addr()+"/metrics" || ts[0].LastScrape.IsZero() {
		t.Errorf("targets %+v, %v", ts, err)
	}
	// The configuration is in 0600 files in the folder, the database in data/.
	for _, f := range []string{ConfigFile, TargetsFile} {
		fi, err := os.Stat(filepath.Join(s.Dir(), f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", f, fi.Mode(), err)
		}
	}
	if fi, err := os.Stat(filepath.Join(s.Dir(), DataDir)); err != nil || !fi.IsDir() {
		t.Errorf("database folder: %v", err)
	}
}

func TestSetTargetsAfterStart(t *testing.T) {
	ctx := t.Context()
	a, b := newEndpoint(t), newEndpoint(t)
	a.counter.Add(1)
	b.counter.Add(2)
	s := start(t, Config{ScrapeInterval: 200 * time.Millisecond})
	if ts, err := s.Targets(ctx); err != nil || len(ts) != 0 {
		t.Fatalf("targets of a server without any: %+v, %v", ts, err)
	}
	if err := s.SetTargets([]string{a.addr(), b.addr(), a.addr()}); err != nil {
		t.Fatal(err)
	}
	if got, want := s.CurrentTargets(), []string{a.addr(), b.addr()}; !slices.Equal(got, want) && !slices.Equal(got, []string{want[1], want[0]}) {
		t.Fatalf("current targets %v, want %v", got, want)
	}
	eventually(t, "both targets scraped", func() error {
		v, err := value(ctx, s, "sum(promserver_test_things_total)")
		if err == nil && v != 3 {
			err = fmt.Errorf("sum %v, want 3", v)
		}
		return err
	})
	if err := s.SetTargets([]string{b.addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a dropped", func() error {
		ts, err := s.Targets(ctx)
		if err != nil {
			return err
		}
		if len(ts) != 1 || ts[0].Labels["instance"] != b.addr() {
			return fmt.Errorf("targets %+v, want only %s", ts, b.addr())
		}
		return nil
	})
	// Once a target is dropped its series go stale: only b's remains.
	eventually(t, "a's series stale", func() error {
		v, err := value(ctx, s, "sum(promserver_test_things_total)")
		if err == nil && v != 2 {
			err = fmt.Errorf("sum %v, want 2", v)
		}
		return err
	})
	for _, bad := range [][]string{{"nohost"}, {"127.0.0.1:0"}, {":9090"}, {"127.0.0.1:x"}} {
		if err := s.SetTargets(bad); err == nil {
			t.Errorf("SetTargets(%q) accepted", bad)
		}
	}
	if got := s.CurrentTargets(); !slices.Equal(got, []string{b.addr()}) {
		t.Errorf("after refused targets: %v", got)
	}
}

func TestStopAndKillReap(t *testing.T) {
	needPrometheus(t)
	for _, kill := range []bool{false, true} {
		s, err := Start(t.Context(), Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		pid := s.PID()
		if kill {
			err = s.Kill()
		} else {
			err = s.Stop()
		}
		if err != nil {
			t.Fatalf("kill %v: %v", kill, err)
		}
		if s.Running() || s.PID() != 0 {
			t.Fatalf("stopped server: running %v, pid %d", s.Running(), s.PID())
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("stopped server's pid %d: %v, want no such process (reaped)", pid, err)
		}
		if err := s.Stop(); err != nil {
			t.Errorf("second stop: %v", err)
		}
		if err := s.Kill(); err != nil {
			t.Errorf("kill after stop: %v", err)
		}
		if _, err := s.Query(t.Context(), "1"); err == nil {
			t.Error("a stopped server answered a query")
		}
	}
}

func TestBadConfig(t *testing.T) {
	needPrometheus(t)
	ctx := context.Background()
	dir := t.TempDir()
	for name, cfg := range map[string]Config{
		"no dir":         {},
		"bad address":    {Dir: dir, Addr: "example.org:1"},
		"bad port":       {Dir: dir, Addr: "127.0.0.1:99999"},
		"no binary":      {Dir: dir, Binary: "no-such-prometheus"},
		"bad target":     {Dir: dir, Targets: []string{"127.0.0.1"}},
		"short interval": {Dir: dir, ScrapeInterval: time.Microsecond},
		"not prometheus": {Dir: dir, Binary: "false"},
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
	needPrometheus(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Start(context.Background(), Config{Dir: t.TempDir(), Addr: l.Addr().String()})
	if !errors.Is(err, errAddrInUse) {
		t.Fatalf("start on a port in use: %v", err)
	}
	t.Log(err)
}

func TestStartGivesUpWithContext(t *testing.T) {
	needPrometheus(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, Config{Dir: t.TempDir()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("start with a cancelled context: %v", err)
	}
}

// TestServerDiesWithItsParent runs a child process that starts a server and is then killed
// with SIGKILL: the kernel kills the server too (Pdeathsig).
func TestServerDiesWithItsParent(t *testing.T) {
	needPrometheus(t)
	childproctest.DiesWithParent(t, "TestServerDiesWithItsParent", "PROMSERVER_TEST_CHILD", func(dir string) (int, error) {
		s, err := Start(context.Background(), Config{Dir: dir})
		if err != nil {
			return 0, err
		}
		return s.PID(), nil
	})
}
