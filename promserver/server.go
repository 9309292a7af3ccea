// Package promserver starts and manages a real Prometheus server process: the Prometheus that
// tests and `optoloop cluster up --observe` run on loopback to scrape the processes' /metrics.
//
// A Server is configured by a prometheus.yml that Start writes (mode 0600) in the server's data
// folder: one scrape job ("optoloop") whose targets come from a file_sd targets file,
// targets.json, beside it, so targets set with SetTargets after the start are picked up without
// a restart or a reload (Prometheus watches the file and rereads it every 5 s; it applies what it
// discovers every 5 s, so the first scrape of a new target is up to about 5 s after it is set).
// The time series database is in the folder's data/ subfolder. The server listens on one
// loopback address, without the lifecycle or admin APIs. The process is in a process group of
// its own and, on Linux, is killed with SIGKILL when the process that started it dies, so a
// crashed test or command leaves no prometheus behind. Every process started is reaped.
//
// Query and Targets read the server through its HTTP API (/api/v1/query, /api/v1/targets).
package promserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/optoloop/optoloop/childproc"
	"go.yaml.in/yaml/v3"
)

// Config configures a Prometheus server.
type Config struct {
	// Binary is the prometheus executable (default "prometheus", looked up on PATH).
	Binary string
	// Dir is the server's folder (required; created if absent): its prometheus.yml, its
	// targets.json and its time series database (data/) live here.
	Dir string
	// Addr is the host:port to listen on; "" or port 0 is a free port (on 127.0.0.1 when the
	// host is empty). The host must be an IP address or "localhost".
	Addr string
	// Targets are the host:port of the /metrics endpoints to scrape (more can be set later
	// with SetTargets); "https://host:port" is scraped over HTTPS, verified against CAFile.
	Targets []string
	// CAFile, when set, is the CA certificate (PEM) the https targets' certificates are
	// verified against (an optoloop cluster's ca.pem).
	CAFile string
	// ScrapeInterval is how often every target is scraped (default 1 s; at least 1 ms). The
	// scrape timeout is the same.
	ScrapeInterval time.Duration
	// Stderr receives the server's log (default: discarded).
	Stderr io.Writer
}

// Job is the job label of every scraped series.
const Job = "optoloop"

// The files Start writes in Config.Dir, and the database folder.
const (
	ConfigFile  = "prometheus.yml"
	TargetsFile = "targets.json"
	DataDir     = "data"
)

// startAttempts bounds the retries when a free port found is taken before the server binds it.
const startAttempts = 8

// stopTimeout bounds how long Stop waits after SIGTERM before it kills the server.
const stopTimeout = time.Minute

// refreshInterval is how often Prometheus rereads the targets file besides watching it.
const refreshInterval = 5 * time.Second

// Server is a running (or stopped) Prometheus. Its methods are safe for concurrent use.
type Server struct {
	cfg      Config
	binary   string
	host     string // the address bound
	dial     string // the host clients connect to (127.0.0.1 for an unspecified bind address)
	port     int
	conf     string
	targetsF string
	http     *http.Client

	proc    childproc.Slot
	mu      sync.Mutex
	targets []string // as last written to the targets file
}

// Start writes the server's prometheus.yml and targets.json in cfg.Dir, starts prometheus and
// returns once it reports ready (/-/ready). It gives up when ctx ends; the process is then
// killed and reaped.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	free := s.port == 0
	for attempt := 1; ; attempt++ {
		if free {
			if s.port, err = childproc.FreePort(s.host); err != nil {
				return nil, fmt.Errorf("promserver: %w", err)
			}
		}
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errAddrInUse) || !free || attempt == startAttempts {
			return nil, err
		}
	}
}

func newServer(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("promserver: no data folder (Config.Dir)")
	}
	switch {
	case cfg.ScrapeInterval == 0:
		cfg.ScrapeInterval = time.Second
	case cfg.ScrapeInterval < time.Millisecond:
		return nil, fmt.Errorf("promserver: scrape interval %v: want at least 1ms", cfg.ScrapeInterval)
	}
	targets, err := cleanTargets(cfg.Targets)
	if err != nil {
		return nil, err
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	bin := cfg.Binary
	if bin == "" {
		bin = "prometheus"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("promserver: %s not found: install prometheus (scripts/deps.sh) or set Config.Binary: %w", bin, err)
	}
	host, port, err := childproc.ParseAddr(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("promserver: %w", err)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("promserver: data folder %s: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("promserver: data folder: %w", err)
	}
	cfg.Dir = dir
	// A client of its own: no proxy from the environment on loopback.
	tr := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, MaxIdleConns: 4, IdleConnTimeout: 30 * time.Second}
	return &Server{cfg: cfg, binary: path, host: host, dial: childproc.DialHost(host), port: port,
		conf: filepath.Join(dir, ConfigFile), targetsF: filepath.Join(dir, TargetsFile),
		http: &http.Client{Transport: tr}, targets: targets}, nil
}

// cleanTargets checks that every target is a host:port and returns them sorted, without
// repeats.
func cleanTargets(targets []string) ([]string, error) {
	out := make([]string, 0, len(targets))
	for _, t := range targets {
		h, p, err := net.SplitHostPort(strings.TrimPrefix(t, "https://"))
		if err != nil {
			return nil, fmt.Errorf("promserver: target %q: want host:port: %w", t, err)
		}
		if n, err := strconv.Atoi(p); h == "" || err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("promserver: target %q: want host:port with a port in 1-65535", t)
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// errAddrInUse marks a start that failed because the port was taken.
var errAddrInUse = errors.New("address already in use")

// start writes the configuration and the targets, starts the process and waits until it is
// ready.
func (s *Server) start(ctx context.Context) error {
	err := s.proc.Start(func() (*childproc.Process, error) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("promserver %s: start: %w", s.Addr(), err)
		}
		if err := s.writeFiles(); err != nil {
			return nil, err
		}
		cmd := exec.Command(s.binary,
			"--config.file="+s.conf,
			"--storage.tsdb.path="+filepath.Join(s.cfg.Dir, DataDir),
			"--web.listen-address="+net.JoinHostPort(s.host, strconv.Itoa(s.port)),
			"--log.format=logfmt")
		cmd.Dir = s.cfg.Dir
		p, err := childproc.Start(cmd, s.cfg.Stderr, lastLine)
		if err != nil {
			return nil, fmt.Errorf("promserver: start %s: %w", s.binary, err)
		}
		if err := s.waitReady(ctx, p); err != nil {
			p.Kill()
			return p, err
		}
		return p, nil
	})
	if errors.Is(err, childproc.ErrRunning) {
		return fmt.Errorf("promserver %s: %w", s.Addr(), err)
	}
	return err
}

// writeFiles writes the configuration and the targets last set.
func (s *Server) writeFiles() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	conf, err := s.config()
	if err != nil {
		return err
	}
	if err := childproc.WriteFile(s.conf, conf); err != nil {
		return fmt.Errorf("promserver: write %s: %w", s.conf, err)
	}
	return s.writeTargets(s.targets)
}

// waitReady polls /-/ready until the server answers 200 and then checks that the server
// answering is this one (its database path), or the process exits or ctx ends.
func (s *Server) waitReady(ctx context.Context, p *childproc.Process) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	// A request in flight ends when the process exits (something else may hold the port).
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
		err := s.ready(pctx)
		if err == nil {
			return s.checkOwn(pctx)
		}
		select {
		case <-p.Done():
			if strings.Contains(p.Output(), "address already in use") {
				return fmt.Errorf("promserver %s: %w: %s", s.Addr(), errAddrInUse, p.Summary())
			}
			return fmt.Errorf("promserver %s: exited at start (%v): %s", s.Addr(), p.Err(), p.Summary())
		case <-ctx.Done():
			return fmt.Errorf("promserver %s: not ready (last: %v): %w", s.Addr(), err, ctx.Err())
		case <-tick.C:
		}
	}
}

// ready asks /-/ready once.
func (s *Server) ready(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, s.URL()+"/-/ready", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/-/ready: %s", resp.Status)
	}
	return nil
}

// checkOwn makes sure the Prometheus answering on the address is the one started: its
// database path is this server's.
func (s *Server) checkOwn(ctx context.Context) error {
	var flags map[string]string
	if err := s.get(ctx, "/api/v1/status/flags", nil, &flags); err != nil {
		return fmt.Errorf("promserver %s: ready, but its flags: %w", s.Addr(), err)
	}
	want := filepath.Join(s.cfg.Dir, DataDir)
	if got := flags["storage.tsdb.path"]; got != want {
		return fmt.Errorf("promserver %s: another Prometheus answers there (database %q, want %q)", s.Addr(), got, want)
	}
	return nil
}

// promConfig is the part of Prometheus's configuration file the server writes.
type promConfig struct {
	Global        promGlobal     `yaml:"global"`
	ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
}

type promGlobal struct {
	ScrapeInterval     string `yaml:"scrape_interval"`
	ScrapeTimeout      string `yaml:"scrape_timeout"`
	EvaluationInterval string `yaml:"evaluation_interval"`
}

type scrapeConfig struct {
	JobName       string         `yaml:"job_name"`
	MetricsPath   string         `yaml:"metrics_path"`
	Scheme        string         `yaml:"scheme"`
	TLSConfig     *tlsConfig     `yaml:"tls_config,omitempty"`
	FileSDConfigs []fileSDConfig `yaml:"file_sd_configs"`
}

type tlsConfig struct {
	CAFile string `yaml:"ca_file"`
}

type fileSDConfig struct {
	Files           []string `yaml:"files"`
	RefreshInterval string   `yaml:"refresh_interval"`
}

// promDuration writes d in Prometheus's duration syntax, in whole milliseconds.
func promDuration(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "ms"
}

// config is the prometheus.yml of the server.
func (s *Server) config() ([]byte, error) {
	iv := promDuration(s.cfg.ScrapeInterval)
	c := promConfig{
		Global: promGlobal{ScrapeInterval: iv, ScrapeTimeout: iv, EvaluationInterval: iv},
		ScrapeConfigs: []scrapeConfig{{JobName: Job, MetricsPath: "/metrics", Scheme: "http",
			FileSDConfigs: []fileSDConfig{{Files: []string{s.targetsF}, RefreshInterval: promDuration(refreshInterval)}}}},
	}
	if s.cfg.CAFile != "" {
		c.ScrapeConfigs[0].TLSConfig = &tlsConfig{CAFile: s.cfg.CAFile}
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("promserver: configuration: %w", err)
	}
	return append([]byte("# Written by optoloop's promserver at every start; changes are overwritten.\n"), b...), nil
}

// targetGroup is one entry of a file_sd targets file.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// writeTargets replaces the targets file in one rename, so Prometheus never reads half of it.
func (s *Server) writeTargets(targets []string) error {
	groups := []targetGroup{}
	var plain, secure []string
	for _, t := range targets {
		if hp, ok := strings.CutPrefix(t, "https://"); ok {
			secure = append(secure, hp)
		} else {
			plain = append(plain, t)
		}
	}
	if len(plain) > 0 {
		groups = append(groups, targetGroup{Targets: plain})
	}
	if len(secure) > 0 {
		groups = append(groups, targetGroup{Targets: secure, Labels: map[string]string{"__scheme__": "https"}})
	}
	b, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return fmt.Errorf("promserver: targets: %w", err)
	}
	tmp := s.targetsF + ".tmp"
	if err := childproc.WriteFile(tmp, append(b, '\n')); err != nil {
		return fmt.Errorf("promserver: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.targetsF); err != nil {
		return fmt.Errorf("promserver: targets file: %w", err)
	}
	return nil
}

// SetTargets replaces the scraped targets (host:port of /metrics endpoints) by rewriting the
// targets file: a running server picks them up within about 5 s (Prometheus applies the targets
// it discovers every 5 s; the same holds for Config.Targets after Start) and stops scraping the
// ones left out, whose series then go stale. Setting the targets it has already does nothing. A stopped
// server scrapes them once started again.
func (s *Server) SetTargets(targets []string) error {
	t, err := cleanTargets(targets)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(t, s.targets) {
		return nil
	}
	if err := s.writeTargets(t); err != nil {
		return err
	}
	s.targets = t
	return nil
}

// CurrentTargets returns the targets last set (sorted, without repeats).
func (s *Server) CurrentTargets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.targets)
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.dial, strconv.Itoa(s.port)) }

// URL returns the server's base URL, http://host:port (its web UI and HTTP API).
func (s *Server) URL() string { return "http://" + s.Addr() }

// Dir returns the server's folder.
func (s *Server) Dir() string { return s.cfg.Dir }

// Running reports whether the server process is running (started and not yet exited).
func (s *Server) Running() bool { return s.proc.Running() }

// PID returns the process id of the running server (0 when it is not running).
func (s *Server) PID() int { return s.proc.PID() }

// Stop shuts the server down with SIGTERM and waits for it to exit (Prometheus closes its
// database). A server that has not exited after a minute is killed. Stopping a server that is
// not running does nothing.
func (s *Server) Stop() error {
	if err := s.proc.Stop(stopTimeout); err != nil {
		return fmt.Errorf("promserver %s: %w", s.Addr(), err)
	}
	return nil
}

// Kill kills the server with SIGKILL and waits until it is reaped: a crash, for tests. Killing
// a server that is not running does nothing.
func (s *Server) Kill() error {
	s.proc.Kill()
	return nil
}

// lastLine returns the last error line of the output (logfmt: level=error), or else its last
// line, without the time stamp and caller ("no output" when there is none).
func lastLine(out string) string {
	var last, lastErr string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		last = l
		if strings.Contains(l, "level=error") {
			lastErr = l
		}
	}
	if lastErr != "" {
		last = lastErr
	}
	if last == "" {
		return "no output"
	}
	var keep []string
	for _, f := range strings.SplitAfter(last, " ") {
		if strings.HasPrefix(f, "ts=") || strings.HasPrefix(f, "caller=") {
			continue
		}
		keep = append(keep, f)
	}
	return strings.TrimSpace(strings.Join(keep, ""))
}
