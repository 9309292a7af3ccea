// Package cluster supervises a whole optoloop cluster on one machine, as separate OS processes
// talking over loopback: one redis-server (redisserver: a generated password, the append-only
// file with appendfsync always, in a fresh folder), three coordinator nodes (`optoloop
// coordinator`: c0 bootstraps, c1 and c2 join it), worker processes (`optoloop worker --sim LINE
// --arenas K`) and learner processes (`optoloop learner`). It is how `optoloop cluster up` runs
// an experiment and how tests run the real cluster.
//
// Secrets never reach a command line or a log: the coordinators' admin token, their credential
// key and the Redis password are generated with crypto/rand, and from the key a signed
// credential for every worker and learner process (naming the process: its arenas are
// NAME-0, NAME-1, ...), an operator's and a viewer's; all are handed to the children in 0600
// files under the cluster's folder, secrets/ (TokenFile, CredentialKeyFile, CredentialFile,
// OperatorTokenFile, ViewerTokenFile, RedisPasswordFile). With Config.Dashboard an `optoloop
// dashboard` process serves the live page (DashboardURL), reading with the viewer's credential.
//
// Every child runs in a process group of its own and is SIGKILLed by the kernel when the
// supervisor dies (Linux: Pdeathsig), even on kill -9 of the supervisor, so nothing outlives
// it. Close stops every process (SIGTERM, then SIGKILL after a grace period) and reaps it; tests
// call it through t.Cleanup. A child's output goes to logs/NAME.log in the cluster's folder
// (and, when Config.Stderr is set, there too with the child's name in front); processes.json
// there lists the processes with their pids as they start and exit.
//
//	c, err := cluster.Up(ctx, cluster.Config{Dir: dir, Lines: []string{"446", "73"}, ArenasPerLine: 2, Workers: 4, Learners: 2})
//	defer c.Close()
//	id, err := c.Submit(ctx, yaml)
//	view, err := c.Wait(ctx, id, nil)
//	err = c.Export(ctx, id, runDir)
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/certs"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/redisserver"
)

// Role is what a supervised process does.
type Role string

// The roles of a cluster's processes.
const (
	RoleRedis       Role = "redis"
	RoleCoordinator Role = "coordinator"
	RoleWorker      Role = "worker"
	RoleLearner     Role = "learner"
	RoleDashboard   Role = "dashboard"
	// RoleTool is a short-lived command the supervisor runs (experiment export).
	RoleTool Role = "tool"
)

// Coordinators is the number of coordinator nodes: c0, c1, c2.
const Coordinators = 3

// Config configures a cluster.
type Config struct {
	// Binary is the optoloop executable the children run. Default: this process's executable
	// (os.Executable), which is right for `optoloop cluster up`; tests build one.
	Binary string
	// Dir is the cluster's folder (required; created when absent; it must not hold a cluster
	// already): secrets/, redis/, coordinators/ID (the Raft data), learners/ID, logs/ and
	// processes.json.
	Dir string
	// Lines are the simulated lines the workers serve (required, unique).
	Lines []string
	// ArenasPerLine is the number of simulated arenas (workers) per line (>= 1).
	ArenasPerLine int
	// Workers is the number of worker processes: lines are assigned to them round robin and a
	// line's arenas are split over its processes. At least one per line and at most one per
	// arena. Default: one per line.
	Workers int
	// Learners is the number of learner processes. Default 1.
	Learners int
	// NoRender makes the workers act on the simulator's own pose instead of rendering and
	// tracking frames.
	NoRender bool
	// Pace runs simulated frames at Pace times real time (0: as fast as possible).
	Pace float64
	// LinesFile is a lines catalogue merged over the embedded one (coordinators and workers).
	LinesFile string
	// LeaseTTL is the lease length the workers and learners ask for (they heartbeat every
	// third of it) and the coordinators' default. Default 10 s.
	LeaseTTL time.Duration
	// MaxAttempts is how many times an item may be leased before it fails for good (0: the
	// coordinator's default).
	MaxAttempts int
	// Grace is the workers' and learners' --grace: how long a running episode or training task
	// may go on after SIGTERM before it is failed (handed back). Default 1 s: a cluster that
	// is closed does not wait for its episodes.
	Grace time.Duration
	// StopGrace is how long Close waits after SIGTERM before it SIGKILLs a process (more than
	// Grace). Default 10 s.
	StopGrace time.Duration
	// StartTimeout bounds Up. Default 2 minutes.
	StartTimeout time.Duration
	// LogLevel is the children's --log-level (debug, info, warn, error). Default info.
	LogLevel string
	// Stderr, when set, also receives every child's output, each line prefixed with the
	// child's name.
	Stderr io.Writer
	// Logger receives the supervisor's own events (default: discard).
	Logger *slog.Logger

	// TraceDir, when set, is every process's --trace-dir: each writes its spans there as OTLP
	// JSON lines (optoloop trace ID --trace-dir DIR reads them).
	TraceDir string
	// OTLPEndpoint, when set, is every process's --otlp-endpoint (an OTLP/HTTP collector).
	OTLPEndpoint string
	// TraceSample, when not zero, is every process's --trace-sample.
	TraceSample float64
	// Metrics gives every worker and learner process --metrics-addr 127.0.0.1:0 (the
	// coordinators serve /metrics on their HTTP address anyway); MetricsTargets lists them.
	Metrics bool
	// TracerProvider, when set, traces the supervisor's own calls made inside a span (a
	// submit in the caller's span), so that they join the caller's trace.
	TracerProvider trace.TracerProvider
	// Dashboard, when set, is the host:port (port 0: a free one) on which an `optoloop
	// dashboard` process serves the live page; it reads with the viewer credential
	// (ViewerTokenFile), and signing in with OperatorTokenFile's token allows its actions.
	// Without it the workers publish no tiles (--no-tiles).
	Dashboard string
	// TraceURL, when set, is the dashboard's --trace-url (a trace viewer's URL with
	// {trace_id}).
	TraceURL string
	// Insecure runs the coordinators' Raft and HTTP in plaintext (every child gets
	// --insecure). By default Up makes a CA and certificates in the folder's tls/ (`optoloop
	// cluster certs` layout: c0..c2 nodes, a folder per worker process, learner and client)
	// and every child runs with its --tls-dir.
	Insecure bool
}

func (c *Config) defaults() error {
	if c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("cluster: no optoloop binary: %w", err)
		}
		c.Binary = exe
	}
	if c.Workers == 0 {
		c.Workers = len(c.Lines)
	}
	if c.Learners == 0 {
		c.Learners = 1
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = time.Second
	}
	if c.StopGrace == 0 {
		c.StopGrace = max(10*time.Second, 2*c.Grace)
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 2 * time.Minute
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Validate reports the first unusable field (after defaults: zero Workers, Learners, LeaseTTL
// and the like are fine).
func (c *Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("cluster: no folder (Config.Dir)")
	case len(c.Lines) == 0:
		return errors.New("cluster: no lines")
	case c.ArenasPerLine < 1:
		return fmt.Errorf("cluster: arenas per line %d must be >= 1", c.ArenasPerLine)
	case c.Workers < 0 || (c.Workers > 0 && c.Workers < len(c.Lines)):
		return fmt.Errorf("cluster: %d worker processes for %d lines: at least one per line", c.Workers, len(c.Lines))
	case c.Workers > len(c.Lines)*c.ArenasPerLine:
		return fmt.Errorf("cluster: %d worker processes for %d arenas: at most one per arena", c.Workers, len(c.Lines)*c.ArenasPerLine)
	case c.Learners < 0:
		return fmt.Errorf("cluster: %d learners must be >= 1", c.Learners)
	case c.Pace < 0:
		return fmt.Errorf("cluster: pace %v must be >= 0", c.Pace)
	case c.LeaseTTL < 0 || c.Grace < 0 || c.StopGrace < 0 || c.StartTimeout < 0:
		return errors.New("cluster: lease TTL, grace, stop grace and start timeout must not be negative")
	case c.StopGrace > 0 && c.StopGrace <= c.Grace:
		return fmt.Errorf("cluster: stop grace %v must exceed the grace %v", c.StopGrace, c.Grace)
	case c.MaxAttempts < 0:
		return fmt.Errorf("cluster: max attempts %d must not be negative", c.MaxAttempts)
	case c.TraceSample < 0 || c.TraceSample > 1:
		return fmt.Errorf("cluster: trace sample %v must be within 0-1", c.TraceSample)
	}
	seen := map[string]bool{}
	for _, l := range c.Lines {
		if l == "" || seen[l] {
			return fmt.Errorf("cluster: line %q empty or repeated", l)
		}
		seen[l] = true
	}
	return nil
}

// WorkerProcess is one worker process of the plan Assign makes.
type WorkerProcess struct {
	// Name is the process's name and its --id prefix: its workers (and arenas) are Name-0,
	// Name-1, ...
	Name   string
	Line   string
	Arenas int
}

// Assign splits lines x arenasPerLine arenas over workers processes: process i serves line
// i mod len(lines), and a line's arenas are split as evenly as possible over its processes.
func Assign(lines []string, arenasPerLine, workers int) ([]WorkerProcess, error) {
	if workers < len(lines) || workers > len(lines)*arenasPerLine {
		return nil, fmt.Errorf("cluster: %d worker processes for %d lines of %d arenas: between one per line and one per arena", workers, len(lines), arenasPerLine)
	}
	perLine := make([]int, len(lines))
	for i := range workers {
		perLine[i%len(lines)]++
	}
	out := make([]WorkerProcess, workers)
	for i := range workers {
		l := i % len(lines)
		j, n := i/len(lines), perLine[l]
		k := arenasPerLine / n
		if j < arenasPerLine%n {
			k++
		}
		out[i] = WorkerProcess{Name: "worker-" + strconv.Itoa(i), Line: lines[l], Arenas: k}
	}
	return out, nil
}

// Process is a supervised process as Processes lists it.
type Process struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// PID is the process id of the current (or last) incarnation.
	PID     int  `json:"pid"`
	Running bool `json:"running"`
	// Log is the process's log file.
	Log string `json:"log,omitempty"`
}

// coordNode is a coordinator node's identity: fixed once it first started, so that a restart
// from its data folder keeps its Raft address.
type coordNode struct {
	id, dataDir      string
	raftAddr, httpAd string
}

// Cluster is a running cluster. Its methods are safe for concurrent use.
type Cluster struct {
	cfg       Config
	log       *slog.Logger
	dir       string
	logDir    string
	tokenFile string
	passFile  string
	token     string
	// operatorFile and viewerFile hold the coordinators' operator and viewer credentials,
	// keyFile the credential key, creds each worker's and learner's credential file by name.
	operatorFile, viewerFile string
	keyFile                  string
	creds                    map[string]string
	dashboard                string // the dashboard's base URL once it listens
	workers                  []WorkerProcess

	spawn    *spawner
	redis    *redisserver.Server
	redisLog *os.File
	outMu    sync.Mutex // serialises the lines written to Config.Stderr

	// startMu is held (read) by every start and (write) by Close while it marks the cluster
	// closing, so that no process starts after Close has listed what to stop.
	startMu sync.RWMutex
	mu      sync.Mutex
	closing bool
	procs   map[string]*child // the current incarnation of every process by name
	order   []string          // names in the order they first started
	argv    map[string][]string
	nodes   map[string]*coordNode
	faults  []error
	faultc  chan struct{} // signalled (non-blocking) on every unexpected exit
	client  *api.Client
	metrics map[string]string // process name -> host:port of its /metrics (workers, learners)
	// tlsDir holds the cluster's certificates ("" with Config.Insecure); clientTLS is the
	// supervisor's own TLS configuration.
	tlsDir    string
	clientTLS *tls.Config

	closeOnce sync.Once
	closeErr  error
}

// Up starts the cluster: redis-server, the coordinator nodes (it waits for a leader and for all
// three in the configuration), the workers and the learners, and returns once every worker
// and learner has registered. On any failure (a child that exits, ctx ending, StartTimeout)
// it stops whatever it started and returns an error naming the process, with its last log
// lines.
func Up(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if !supported {
		return nil, errors.New("cluster: runs on Linux only (children must die with the supervisor)")
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	workers, err := Assign(cfg.Lines, cfg.ArenasPerLine, cfg.Workers)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("cluster: folder %s: %w", cfg.Dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "coordinators")); err == nil {
		return nil, fmt.Errorf("cluster: %s holds a cluster already; choose a new folder", dir)
	}
	// The children run in dir: every path they get is absolute.
	if cfg.Binary, err = exec.LookPath(cfg.Binary); err != nil {
		return nil, fmt.Errorf("cluster: optoloop binary: %w", err)
	}
	if cfg.Binary, err = filepath.Abs(cfg.Binary); err != nil {
		return nil, fmt.Errorf("cluster: optoloop binary: %w", err)
	}
	if cfg.LinesFile != "" {
		if cfg.LinesFile, err = filepath.Abs(cfg.LinesFile); err != nil {
			return nil, fmt.Errorf("cluster: lines file: %w", err)
		}
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger, dir: dir, logDir: filepath.Join(dir, "logs"), workers: workers,
		procs: map[string]*child{}, argv: map[string][]string{}, nodes: map[string]*coordNode{}, faultc: make(chan struct{}, 1),
		metrics: map[string]string{}}
	if cfg.TraceDir != "" {
		if cfg.TraceDir, err = filepath.Abs(cfg.TraceDir); err != nil {
			return nil, fmt.Errorf("cluster: trace dir: %w", err)
		}
		c.cfg.TraceDir = cfg.TraceDir
		if err := os.MkdirAll(cfg.TraceDir, 0o755); err != nil {
			return nil, fmt.Errorf("cluster: trace dir: %w", err)
		}
	}
	for _, d := range []string{dir, c.logDir, filepath.Join(dir, "secrets"), filepath.Join(dir, "coordinators"), filepath.Join(dir, "learners")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	if c.token, err = secret(); err != nil {
		return nil, err
	}
	password, err := secret()
	if err != nil {
		return nil, err
	}
	c.tokenFile = filepath.Join(dir, "secrets", "coordinator-token")
	c.passFile = filepath.Join(dir, "secrets", "redis-password")
	if err := writeSecret(c.tokenFile, c.token); err != nil {
		return nil, err
	}
	if err := writeSecret(c.passFile, password); err != nil {
		return nil, err
	}
	if err := c.writeCredentials(workers); err != nil {
		return nil, err
	}

	if !cfg.Insecure {
		if err := c.makeCerts(workers); err != nil {
			return nil, err
		}
	}

	c.spawn = newSpawner()
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	if err := c.startRedis(ctx, password); err != nil {
		return nil, err
	}
	for i := range Coordinators {
		if err := c.startCoordinator(ctx, "c"+strconv.Itoa(i)); err != nil {
			return nil, err
		}
		if i == 0 {
			if err := c.waitFor(ctx, "a leader", func(st api.Status) bool { return st.Leader.ID == "c0" }); err != nil {
				return nil, err
			}
		}
	}
	if err := c.waitFor(ctx, "3 coordinator voters", func(st api.Status) bool {
		voters := 0
		for _, n := range st.Nodes {
			if n.Voter && n.Reachable {
				voters++
			}
		}
		return st.Leader.ID != "" && voters == Coordinators
	}); err != nil {
		return nil, err
	}
	arenas := 0
	for _, w := range workers {
		arenas += w.Arenas
		c.argv[w.Name] = c.workerArgs(w)
		if err := c.start(w.Name, RoleWorker, c.argv[w.Name], c.watchMetrics(w.Name)); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Learners {
		name := "learner-" + strconv.Itoa(i)
		c.argv[name] = c.learnerArgs(name)
		if err := c.start(name, RoleLearner, c.argv[name], c.watchMetrics(name)); err != nil {
			return nil, err
		}
	}
	if err := c.waitFor(ctx, fmt.Sprintf("%d workers and %d learners registered", arenas, cfg.Learners), func(st api.Status) bool {
		return st.Workers >= arenas && st.Learners >= cfg.Learners
	}); err != nil {
		return nil, err
	}
	if cfg.Dashboard != "" {
		if err := c.startDashboard(ctx); err != nil {
			return nil, err
		}
	}
	c.log.Info("cluster up", "dir", dir, "coordinators", strings.Join(c.Endpoints(), ","), "token_file", c.tokenFile,
		"redis", c.redis.URL(), "redis_password_file", c.passFile, "worker_processes", len(workers), "arenas", arenas, "learners", cfg.Learners)
	return c, nil
}

// writeCredentials makes the credential key and, signed with it, the operator's and viewer's
// credentials and one for every worker and learner process, naming the process.
func (c *Cluster) writeCredentials(workers []WorkerProcess) error {
	key, err := secret()
	if err != nil {
		return err
	}
	secrets := filepath.Join(c.dir, "secrets")
	c.keyFile = filepath.Join(secrets, "credential-key")
	if err := writeSecret(c.keyFile, key); err != nil {
		return err
	}
	c.operatorFile = filepath.Join(secrets, "operator-token")
	c.viewerFile = filepath.Join(secrets, "viewer-token")
	type credential struct {
		file, holder string
		role         api.Role
	}
	issue := []credential{{c.operatorFile, "operator", api.RoleOperator}, {c.viewerFile, "viewer", api.RoleViewer}}
	c.creds = map[string]string{}
	for _, w := range workers {
		c.creds[w.Name] = filepath.Join(secrets, w.Name+".credential")
		issue = append(issue, credential{c.creds[w.Name], w.Name, api.RoleWorker})
	}
	for i := range c.cfg.Learners {
		name := "learner-" + strconv.Itoa(i)
		c.creds[name] = filepath.Join(secrets, name+".credential")
		issue = append(issue, credential{c.creds[name], name, api.RoleLearner})
	}
	for _, x := range issue {
		tok, err := api.IssueCredential([]byte(key), x.role, x.holder)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		if err := writeSecret(x.file, tok); err != nil {
			return err
		}
	}
	return nil
}

// supervisorCert is the client certificate the supervisor and the tools it runs use.
const supervisorCert = "supervisor"

// makeCerts writes the cluster's CA and certificates into tls/: one node certificate per
// coordinator, one per worker process and learner, and client certificates for the dashboard
// and the supervisor.
func (c *Cluster) makeCerts(workers []WorkerProcess) error {
	dir := filepath.Join(c.dir, "tls")
	p := certs.Plan{Clients: []string{supervisorCert, "dashboard"}}
	for i := range Coordinators {
		p.Nodes = append(p.Nodes, certs.Node{Name: "c" + strconv.Itoa(i)})
	}
	for _, w := range workers {
		p.Workers = append(p.Workers, w.Name)
	}
	for i := range c.cfg.Learners {
		p.Learners = append(p.Learners, "learner-"+strconv.Itoa(i))
	}
	if err := certs.Write(dir, p); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	id, err := certs.Load(filepath.Join(dir, supervisorCert))
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.tlsDir, c.clientTLS = dir, id.ClientConfig()
	return nil
}

// tlsArgs are the TLS flags of process name: --tls-dir of its folder, or --insecure.
func (c *Cluster) tlsArgs(name string) []string {
	if c.tlsDir == "" {
		return []string{"--insecure"}
	}
	return []string{"--tls-dir", filepath.Join(c.tlsDir, name)}
}

// scheme is the coordinators' URL scheme.
func (c *Cluster) scheme() string {
	if c.tlsDir == "" {
		return "http://"
	}
	return "https://"
}

// CAFile returns the cluster's CA certificate ("" with Config.Insecure): what the
// coordinators' https URLs (Endpoints, MetricsTargets) are verified against.
func (c *Cluster) CAFile() string {
	if c.tlsDir == "" {
		return ""
	}
	return filepath.Join(c.tlsDir, certs.CAFile)
}

// ClientTLS returns a TLS configuration of a client of the coordinators (the CA and the
// supervisor's certificate; nil with Config.Insecure).
func (c *Cluster) ClientTLS() *tls.Config {
	if c.clientTLS == nil {
		return nil
	}
	return c.clientTLS.Clone()
}

// TLSDir returns the folder of the cluster's certificates ("" with Config.Insecure): ca.pem,
// and per process (c0, worker-0, learner-0, dashboard, supervisor) its folder for --tls-dir.
func (c *Cluster) TLSDir() string { return c.tlsDir }

// secret returns 32 random bytes in hex.
func secret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cluster: random secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// writeSecret writes s to a new file of mode 0600.
func writeSecret(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cluster: secret file: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("cluster: secret file %s: %w", path, err)
	}
	return f.Close()
}

func (c *Cluster) startRedis(ctx context.Context, password string) error {
	f, err := os.OpenFile(filepath.Join(c.logDir, "redis.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	s := &sink{file: f}
	if c.cfg.Stderr != nil {
		s.prefix = &prefixWriter{mu: &c.outMu, w: c.cfg.Stderr, name: "redis"}
	}
	err = c.spawn.do(func() error {
		var err error
		c.redis, err = redisserver.Start(ctx, redisserver.Config{Dir: filepath.Join(c.dir, "redis"), Password: password, Fsync: "always", Stderr: s})
		return err
	})
	if err != nil {
		f.Close()
		return fmt.Errorf("cluster: redis: %w", err)
	}
	c.redisLog = f
	c.mu.Lock()
	c.order = append(c.order, "redis")
	c.mu.Unlock()
	c.writeProcesses()
	return nil
}

// coordLine is what `optoloop coordinator` prints once it listens.
var coordLine = regexp.MustCompile(`^coordinator (\S+): http (\S+) raft (\S+) `)

// startCoordinator starts node id: the first time c0 bootstraps and the others join c0, on
// free ports; a restart runs from the node's data folder on the addresses it had. It returns
// once the node listens.
func (c *Cluster) startCoordinator(ctx context.Context, id string) error {
	c.mu.Lock()
	n := c.nodes[id]
	first := n == nil
	if first {
		n = &coordNode{id: id, dataDir: filepath.Join(c.dir, "coordinators", id), raftAddr: "127.0.0.1:0", httpAd: "127.0.0.1:0"}
		c.nodes[id] = n
	}
	raftAddr, httpAddr := n.raftAddr, n.httpAd
	var join string
	if first && id != "c0" {
		join = c.scheme() + c.nodes["c0"].httpAd
	}
	c.mu.Unlock()

	args := []string{"coordinator", "--id", id, "--raft-addr", raftAddr, "--http-addr", httpAddr, "--data-dir", n.dataDir,
		"--token-file", c.tokenFile, "--credential-key-file", c.keyFile,
		"--lease-ttl", c.cfg.LeaseTTL.String(), "--restrict-raft-peers", "--raft-allowed-peers", "127.0.0.1",
		// Every process of this cluster dials from 127.0.0.1: one client's cap is the node's.
		"--max-conns-per-client", "8192", "--max-conns", "8192",
		"--log-level", c.cfg.LogLevel}
	args = append(args, c.tlsArgs(id)...)
	switch {
	case first && id == "c0":
		args = append(args, "--bootstrap")
	case join != "":
		args = append(args, "--join", join)
	}
	if c.cfg.LinesFile != "" {
		args = append(args, "--lines-file", c.cfg.LinesFile)
	}
	if c.cfg.MaxAttempts > 0 {
		args = append(args, "--max-attempts", strconv.Itoa(c.cfg.MaxAttempts))
	}
	args = append(args, c.telemetryArgs(false)...)
	listening := make(chan [2]string, 1)
	watch := func(l string) {
		if m := coordLine.FindStringSubmatch(l); m != nil && m[1] == id {
			select {
			case listening <- [2]string{strings.TrimPrefix(strings.TrimPrefix(m[2], "https://"), "http://"), m[3]}:
			default:
			}
		}
	}
	if err := c.start(id, RoleCoordinator, args, watch); err != nil {
		return err
	}
	ch := c.current(id)
	select {
	case a := <-listening:
		c.mu.Lock()
		n.httpAd, n.raftAddr = a[0], a[1]
		c.mu.Unlock()
		return nil
	case <-ch.done:
		return fmt.Errorf("cluster: coordinator %s exited at start (%v); its last lines:\n%s", id, ch.err, ch.log.tail())
	case <-ctx.Done():
		return fmt.Errorf("cluster: coordinator %s: not listening: %w", id, ctx.Err())
	}
}

// commonArgs are a worker's or learner's flags; name is the process (its credential file).
func (c *Cluster) commonArgs(name string) []string {
	args := []string{"--coordinator", strings.Join(c.Endpoints(), ","), "--token-file", c.creds[name],
		"--redis", c.redis.URL(), "--redis-password-file", c.passFile,
		"--lease-ttl", c.cfg.LeaseTTL.String(), "--log-level", c.cfg.LogLevel}
	return append(args, c.telemetryArgs(c.cfg.Metrics)...)
}

// telemetryArgs are a process's tracing flags, and with metrics --metrics-addr 127.0.0.1:0.
func (c *Cluster) telemetryArgs(metrics bool) []string {
	var args []string
	if c.cfg.TraceDir != "" {
		args = append(args, "--trace-dir", c.cfg.TraceDir)
	}
	if c.cfg.OTLPEndpoint != "" {
		args = append(args, "--otlp-endpoint", c.cfg.OTLPEndpoint)
	}
	if c.cfg.TraceSample > 0 {
		args = append(args, "--trace-sample", strconv.FormatFloat(c.cfg.TraceSample, 'g', -1, 64))
	}
	if metrics {
		args = append(args, "--metrics-addr", "127.0.0.1:0")
	}
	return args
}

// metricsLine is what a worker or learner prints once its metrics server listens.
var metricsLine = regexp.MustCompile(`^metrics http://(\S+)/metrics$`)

// watchMetrics records the metrics address process name prints (nil without Config.Metrics).
func (c *Cluster) watchMetrics(name string) func(string) {
	if !c.cfg.Metrics {
		return nil
	}
	return func(l string) {
		if m := metricsLine.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			c.mu.Lock()
			c.metrics[name] = m[1]
			c.mu.Unlock()
		}
	}
}

// MetricsTargets returns the host:port of every process's /metrics: the coordinators' HTTP
// addresses, and with Config.Metrics every worker's and learner's metrics address (as the
// process printed it; a restarted process's new one), in a stable order.
func (c *Cluster) MetricsTargets() []string {
	var out []string
	for _, e := range c.Endpoints() {
		out = append(out, strings.TrimPrefix(e, "http://")) // https:// stays: promserver scrapes it over TLS
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.order {
		if a, ok := c.metrics[n]; ok {
			out = append(out, a)
		}
	}
	return out
}

func (c *Cluster) workerArgs(w WorkerProcess) []string {
	args := append([]string{"worker"}, c.commonArgs(w.Name)...)
	args = append(args, "--sim", w.Line, "--arenas", strconv.Itoa(w.Arenas), "--id", w.Name,
		"--grace", c.cfg.Grace.String())
	if c.cfg.NoRender {
		args = append(args, "--no-render")
	}
	if c.cfg.Dashboard == "" {
		args = append(args, "--no-tiles") // nobody watches: no tile is drawn or stored
	}
	if c.cfg.Pace > 0 {
		args = append(args, "--pace", strconv.FormatFloat(c.cfg.Pace, 'g', -1, 64))
	}
	args = append(args, "--parallel", strconv.Itoa(c.parallel(w)))
	args = append(args, c.tlsArgs(w.Name)...)
	if c.cfg.LinesFile != "" {
		args = append(args, "--lines-file", c.cfg.LinesFile)
	}
	return args
}

// parallel is how many of w's arenas may run an episode at once. The processes share this
// machine's cores: unpaced episodes are bound by the CPU, and more of them at once than cores
// only thrash the caches (a rendered arena's working set is ~100 MB), so each process gets its
// share of the cores (at least one); paced episodes mostly wait for the wall clock and all run.
func (c *Cluster) parallel(w WorkerProcess) int {
	if c.cfg.Pace > 0 {
		return w.Arenas
	}
	procs := len(c.workers)
	return min(w.Arenas, max(1, (runtime.NumCPU()+procs-1)/procs))
}

func (c *Cluster) learnerArgs(name string) []string {
	args := append([]string{"learner"}, c.commonArgs(name)...)
	args = append(args, "--id", name, "--work-dir", filepath.Join(c.dir, "learners", name),
		"--grace", c.cfg.Grace.String())
	return append(args, c.tlsArgs(name)...)
}

// dashboardLine is what `optoloop dashboard` prints once it listens.
var dashboardLine = regexp.MustCompile(`^dashboard (http://\S+)/ui/$`)

// startDashboard starts the dashboard process and waits until it listens. It reads with the
// viewer credential.
func (c *Cluster) startDashboard(ctx context.Context) error {
	args := []string{"dashboard", "--coordinator", strings.Join(c.Endpoints(), ","), "--token-file", c.viewerFile,
		"--redis", c.redis.URL(), "--redis-password-file", c.passFile, "--addr", c.cfg.Dashboard,
		"--work-dir", filepath.Join(c.dir, "dashboard"), "--log-level", c.cfg.LogLevel}
	args = append(args, c.tlsArgs("dashboard")...)
	if c.cfg.TraceURL != "" {
		args = append(args, "--trace-url", c.cfg.TraceURL)
	}
	listening := make(chan string, 1)
	watch := func(l string) {
		if m := dashboardLine.FindStringSubmatch(l); m != nil {
			select {
			case listening <- m[1]:
			default:
			}
		}
	}
	c.argv["dashboard"] = args
	if err := c.start("dashboard", RoleDashboard, args, watch); err != nil {
		return err
	}
	ch := c.current("dashboard")
	select {
	case u := <-listening:
		c.mu.Lock()
		c.dashboard = u
		c.mu.Unlock()
		return nil
	case <-ch.done:
		return fmt.Errorf("cluster: dashboard exited at start (%v); its last lines:\n%s", ch.err, ch.log.tail())
	case <-ctx.Done():
		return fmt.Errorf("cluster: dashboard: not listening: %w", ctx.Err())
	}
}

// childEnv is this process's environment without OPTOLOOP_* variables: a child gets its
// coordinator, token and Redis password from its flags and files only.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPTOLOOP_") {
			env = append(env, kv)
		}
	}
	return env
}

// start starts one incarnation of process name with args (which hold no secret), its output
// going to logs/NAME.log (and Config.Stderr); watch, when set, sees every output line.
func (c *Cluster) start(name string, role Role, args []string, watch func(string)) error {
	c.startMu.RLock()
	defer c.startMu.RUnlock()
	c.mu.Lock()
	closing := c.closing
	old := c.procs[name]
	c.mu.Unlock()
	if closing {
		return fmt.Errorf("cluster: closed: %s not started", name)
	}
	if old != nil && !old.exited() {
		return fmt.Errorf("cluster: %s is running (pid %d)", name, old.pid)
	}
	logPath := filepath.Join(c.logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	fmt.Fprintf(f, "=== %s: %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), filepath.Base(c.cfg.Binary), strings.Join(args, " "))
	s := &sink{file: f}
	if c.cfg.Stderr != nil {
		s.prefix = &prefixWriter{mu: &c.outMu, w: c.cfg.Stderr, name: name}
	}
	if watch != nil {
		s.watch(watch)
	}
	r, w, err := os.Pipe()
	if err != nil {
		f.Close()
		return fmt.Errorf("cluster: %w", err)
	}
	cmd := exec.Command(c.cfg.Binary, args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = procAttr()
	err = c.spawn.do(cmd.Start)
	w.Close()
	if err != nil {
		r.Close()
		f.Close()
		return fmt.Errorf("cluster: start %s: %w", name, err)
	}
	ch := &child{name: name, role: role, cmd: cmd, pid: cmd.Process.Pid, log: s, done: make(chan struct{}), expected: role == RoleTool}
	drained := make(chan struct{})
	go func() {
		s.read(r)
		close(drained)
	}()
	go func() {
		ch.err = cmd.Wait()
		select {
		case <-drained:
		case <-time.After(5 * time.Second): // something the child forked holds the pipe
			r.Close()
			<-drained
		}
		r.Close()
		f.Close()
		ch.ended.Store(true)
		c.exited(ch)
		close(ch.done)
	}()
	c.mu.Lock()
	c.procs[name] = ch
	if !slices.Contains(c.order, name) {
		c.order = append(c.order, name)
	}
	c.mu.Unlock()
	c.log.Debug("started", "process", name, "role", role, "pid", ch.pid)
	c.writeProcesses()
	return nil
}

// exited records a child's exit: one the supervisor did not ask for is a fault that Up and
// Wait report.
func (c *Cluster) exited(ch *child) {
	c.mu.Lock()
	fault := !ch.wasExpected() && !c.closing
	if fault {
		c.faults = append(c.faults, fmt.Errorf("cluster: %s (pid %d) exited unexpectedly (%v); its last lines:\n%s", ch.name, ch.pid, exitText(ch.err), ch.log.tail()))
	}
	c.mu.Unlock()
	if fault {
		c.log.Warn("process exited unexpectedly", "process", ch.name, "pid", ch.pid, "err", exitText(ch.err))
		select {
		case c.faultc <- struct{}{}:
		default:
		}
	} else {
		c.log.Debug("process exited", "process", ch.name, "pid", ch.pid, "err", exitText(ch.err))
	}
	c.writeProcesses()
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Failures returns an error for every process that exited without the supervisor asking it
// to (Kill, Stop, Close), oldest first.
func (c *Cluster) Failures() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.faults)
}

func (c *Cluster) fault() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.faults) == 0 {
		return nil
	}
	return c.faults[0]
}

func (c *Cluster) current(name string) *child {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[name]
}

// waitFor polls the cluster's status (every 50 ms) until cond holds, a process fails or ctx
// ends.
func (c *Cluster) waitFor(ctx context.Context, what string, cond func(api.Status) bool) error {
	cl, err := c.newClient(api.ClientConfig{MaxAttempts: 1})
	if err != nil {
		return err
	}
	var last error
	for {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cl.Status(sctx)
		cancel()
		if err == nil && cond(st) {
			return nil
		}
		if err != nil {
			last = err
		}
		if f := c.fault(); f != nil {
			return f
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("cluster: waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("cluster: waiting for %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) newClient(cfg api.ClientConfig) (*api.Client, error) {
	cfg.Endpoints, cfg.Token = c.Endpoints(), c.token
	if cfg.TLS == nil && c.clientTLS != nil {
		cfg.TLS = c.clientTLS.Clone()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = c.cfg.TracerProvider
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts, cfg.BaseBackoff, cfg.MaxBackoff = 40, 10*time.Millisecond, 500*time.Millisecond
	}
	cl, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: client: %w", err)
	}
	return cl, nil
}

// Client returns a client of the coordinators (every node, the cluster's token, patient
// retries that ride out an election).
func (c *Cluster) Client() *api.Client {
	c.mu.Lock()
	cl := c.client
	c.mu.Unlock()
	if cl != nil {
		return cl
	}
	cl, err := c.newClient(api.ClientConfig{})
	if err != nil {
		panic(err) // the endpoints are the nodes' own addresses: always valid
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		c.client = cl
	}
	return c.client
}

// Endpoints returns the coordinators' HTTP base URLs (c0, c1, c2; those started so far).
func (c *Cluster) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for i := range Coordinators {
		if n := c.nodes["c"+strconv.Itoa(i)]; n != nil && !strings.HasSuffix(n.httpAd, ":0") {
			out = append(out, c.scheme()+n.httpAd)
		}
	}
	return out
}

// Dir returns the cluster's folder.
func (c *Cluster) Dir() string { return c.dir }

// TokenFile returns the 0600 file holding the coordinators' admin token (membership and every
// operator call; it cannot lease or report).
func (c *Cluster) TokenFile() string { return c.tokenFile }

// CredentialKeyFile returns the 0600 file holding the coordinators' credential key: `optoloop
// cluster credential --key-file` issues more credentials from it (a worker added later).
func (c *Cluster) CredentialKeyFile() string { return c.keyFile }

// CredentialFile returns the 0600 file holding the signed credential of worker or learner
// process name ("" for another name).
func (c *Cluster) CredentialFile(name string) string { return c.creds[name] }

// OperatorTokenFile and ViewerTokenFile return the 0600 files holding the coordinators'
// operator and viewer credentials (sign in to the dashboard with either).
func (c *Cluster) OperatorTokenFile() string { return c.operatorFile }

// ViewerTokenFile: see OperatorTokenFile.
func (c *Cluster) ViewerTokenFile() string { return c.viewerFile }

// DashboardURL returns the dashboard's base URL ("" without Config.Dashboard).
func (c *Cluster) DashboardURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dashboard
}

// RedisURL returns the redis:// URL of the cluster's Redis (without the password).
func (c *Cluster) RedisURL() string { return c.redis.URL() }

// RedisPasswordFile returns the 0600 file holding the Redis password.
func (c *Cluster) RedisPasswordFile() string { return c.passFile }

// Redis returns the cluster's redis-server (for Stop, Kill and Restart in tests).
func (c *Cluster) Redis() *redisserver.Server { return c.redis }

// Workers returns the worker processes and what each serves.
func (c *Cluster) Workers() []WorkerProcess { return slices.Clone(c.workers) }

// ProcessOf returns the name of the process whose worker or learner id is holder (a lease's
// holder: worker "worker-1-0" belongs to process "worker-1", learner "learner-0" is process
// "learner-0").
func (c *Cluster) ProcessOf(holder string) (string, bool) {
	for _, w := range c.workers {
		if rest, ok := strings.CutPrefix(holder, w.Name+"-"); ok {
			if n, err := strconv.Atoi(rest); err == nil && n >= 0 && n < w.Arenas {
				return w.Name, true
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.procs[holder]; ch != nil && ch.role == RoleLearner {
		return holder, true
	}
	return "", false
}

// Processes lists every process of the cluster in the order they first started, with the pid
// of its current (or last) incarnation.
func (c *Cluster) Processes() []Process {
	c.mu.Lock()
	names := slices.Clone(c.order)
	procs := make(map[string]*child, len(c.procs))
	for k, v := range c.procs {
		procs[k] = v
	}
	c.mu.Unlock()
	out := make([]Process, 0, len(names))
	for _, n := range names {
		if n == "redis" {
			out = append(out, Process{Name: n, Role: RoleRedis, PID: c.redis.PID(), Running: c.redis.Running(), Log: filepath.Join(c.logDir, "redis.log")})
			continue
		}
		ch := procs[n]
		out = append(out, Process{Name: n, Role: ch.role, PID: ch.pid, Running: !ch.ended.Load(), Log: filepath.Join(c.logDir, n+".log")})
	}
	return out
}

// processesFile lists every pid the cluster ever started (for tests and operators: a
// supervisor killed with -9 leaves it behind).
const processesFile = "processes.json"

// writeProcesses records every incarnation's pid in processes.json: all pids ever started,
// so that a check after a crash of the supervisor sees them all.
func (c *Cluster) writeProcesses() {
	ps := c.Processes()
	c.mu.Lock()
	defer c.mu.Unlock()
	path := filepath.Join(c.dir, processesFile)
	var all []Process
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &all)
	}
	for _, p := range ps {
		i := slices.IndexFunc(all, func(q Process) bool { return q.Name == p.Name && q.PID == p.PID })
		if i >= 0 {
			all[i] = p
		} else if p.PID != 0 {
			all = append(all, p)
		}
	}
	for i := range all {
		if !slices.ContainsFunc(ps, func(q Process) bool { return q.Name == all[i].Name && q.PID == all[i].PID }) {
			all[i].Running = false
		}
	}
	b, _ := json.MarshalIndent(all, "", " ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		_ = os.Rename(tmp, path)
	}
}

// ReadProcesses reads the processes.json of the cluster folder dir: every incarnation of every
// process the cluster started, with its pid.
func ReadProcesses(dir string) ([]Process, error) {
	b, err := os.ReadFile(filepath.Join(dir, processesFile))
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	var ps []Process
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", processesFile, err)
	}
	return ps, nil
}

// Kill SIGKILLs process name's group (redis: the server) and waits until it is reaped: a crash.
// Killing a process that is not running does nothing. Its exit is not a failure.
func (c *Cluster) Kill(name string) error {
	if name == "redis" {
		return c.redis.Kill()
	}
	ch := c.current(name)
	if ch == nil {
		return fmt.Errorf("cluster: no process %q", name)
	}
	c.log.Debug("kill", "process", name, "pid", ch.pid)
	return ch.kill()
}

// Stop stops process name (SIGTERM, SIGKILL after Config.StopGrace; redis: its own Stop) and
// waits until it is reaped. Its exit is not a failure.
func (c *Cluster) Stop(name string) error {
	if name == "redis" {
		return c.redis.Stop()
	}
	ch := c.current(name)
	if ch == nil {
		return fmt.Errorf("cluster: no process %q", name)
	}
	return ch.stop(c.cfg.StopGrace)
}

// RestartProcess starts process name again after Kill or Stop (or after it died), as it was:
// a coordinator from its data folder on its addresses (it returns once the node listens), a
// worker process with the same worker ids, a learner with the same id, redis on its port and
// append-only file.
func (c *Cluster) RestartProcess(ctx context.Context, name string) error {
	if name == "redis" {
		return c.spawn.do(func() error { return c.redis.Restart(ctx) })
	}
	ch := c.current(name)
	if ch == nil {
		return fmt.Errorf("cluster: no process %q", name)
	}
	if !ch.exited() {
		return fmt.Errorf("cluster: %s is running (pid %d)", name, ch.pid)
	}
	if ch.role == RoleCoordinator {
		return c.startCoordinator(ctx, name)
	}
	c.mu.Lock()
	args := c.argv[name]
	c.mu.Unlock()
	return c.start(name, ch.role, args, c.watchMetrics(name))
}

// Leader returns the name of the coordinator that leads (a running node the cluster names as
// leader), waiting for one until ctx ends.
func (c *Cluster) Leader(ctx context.Context) (string, error) {
	cl, err := c.newClient(api.ClientConfig{MaxAttempts: 1})
	if err != nil {
		return "", err
	}
	for {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cl.Status(sctx)
		cancel()
		if err == nil && st.Leader.ID != "" {
			if ch := c.current(st.Leader.ID); ch != nil && ch.role == RoleCoordinator && !ch.exited() {
				return st.Leader.ID, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("cluster: no leader: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Submit submits an experiment file (YAML) and returns the experiment's id.
func (c *Cluster) Submit(ctx context.Context, yaml []byte) (string, error) {
	id, err := c.Client().Submit(ctx, yaml)
	if err != nil {
		return "", fmt.Errorf("cluster: submit: %w", err)
	}
	return id, nil
}

// Wait polls experiment id (every 250 ms), calling progress (when not nil) with every view,
// until it is done or failed, a process of the cluster exits without being asked to, or ctx
// ends. It returns the last view; a failed experiment is an error naming its reason.
func (c *Cluster) Wait(ctx context.Context, id string, progress func(api.ExperimentView)) (api.ExperimentView, error) {
	var last api.ExperimentView
	var since time.Time // first of a run of failed reads
	for {
		v, err := c.Client().Experiment(ctx, id)
		switch {
		case err == nil:
			since, last = time.Time{}, v
			if progress != nil {
				progress(v)
			}
			if !v.Experiment.Running() {
				if v.Experiment.Status == plan.StatusFailed {
					return v, fmt.Errorf("cluster: experiment %s failed: %s", id, v.Experiment.Reason)
				}
				return v, nil
			}
		case ctx.Err() != nil:
			return last, ctx.Err()
		case errors.Is(err, api.ErrNotFound):
			return last, fmt.Errorf("cluster: experiment %s: %w", id, err)
		case since.IsZero():
			since = time.Now()
		case time.Since(since) > time.Minute:
			return last, fmt.Errorf("cluster: experiment %s: no answer for a minute: %w", id, err)
		}
		if f := c.fault(); f != nil {
			return last, f
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-c.faultc:
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Export writes the run folder of experiment id into dir by running `optoloop experiment
// export` against the cluster (its output goes to logs/export.log).
func (c *Cluster) Export(ctx context.Context, id, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("cluster: export %s: %w", id, err)
	}
	args := []string{"experiment", "export", id, "--out", dir, "--coordinator", strings.Join(c.Endpoints(), ","),
		"--token-file", c.tokenFile, "--redis", c.redis.URL(), "--redis-password-file", c.passFile}
	args = append(args, c.tlsArgs(supervisorCert)...)
	if err := c.start("export", RoleTool, args, nil); err != nil {
		return err
	}
	ch := c.current("export")
	select {
	case <-ch.done:
	case <-ctx.Done():
		_ = ch.kill()
		return fmt.Errorf("cluster: export %s: %w", id, ctx.Err())
	}
	if ch.err != nil {
		return fmt.Errorf("cluster: export %s: %v; its last lines:\n%s", id, ch.err, ch.log.tail())
	}
	return nil
}

// Close stops every process: workers, learners and tools first (SIGTERM; SIGKILL after
// Config.StopGrace), then the coordinators, then redis-server, and reaps them all. It returns
// the first error met; calling it again returns the same.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Cluster) close() error {
	c.startMu.Lock()
	c.mu.Lock()
	c.closing = true
	var first, coords []*child
	for _, n := range c.order {
		ch := c.procs[n]
		switch {
		case ch == nil:
		case ch.role == RoleCoordinator:
			coords = append(coords, ch)
		default:
			first = append(first, ch)
		}
	}
	c.mu.Unlock()
	c.startMu.Unlock()

	var errs []error
	var emu sync.Mutex
	stopAll := func(chs []*child) {
		var wg sync.WaitGroup
		for _, ch := range chs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := ch.stop(c.cfg.StopGrace); err != nil {
					emu.Lock()
					errs = append(errs, err)
					emu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	stopAll(first)
	stopAll(coords)
	if c.redis != nil {
		if err := c.redis.Stop(); err != nil {
			c.log.Warn("redis stop", "err", err)
			if err := c.redis.Kill(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if c.redisLog != nil {
		_ = c.redisLog.Close()
	}
	if c.spawn != nil {
		c.spawn.close()
	}
	c.writeProcesses()
	c.log.Info("cluster down", "dir", c.dir)
	return errors.Join(errs...)
}
