package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/certs"
	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
)

type coordinatorOptions struct {
	id, raftAddr, httpAddr, dataDir string
	bootstrap                       bool
	join                            string
	tokenFile                       string
	operatorTokenFile               string
	viewerTokenFile                 string
	credentialKeyFile               string
	restrictPeers                   bool
	allowedPeers                    []string
	linesFile                       string
	leaseTTL                        time.Duration
	maxAttempts                     int
	maxItemsPerExperiment           int64
	maxConnsPerClient, maxConns     int
	maxLiveItems                    int64
	logLevel                        string
	tel                             telemetryOptions
	raft                            raftTimeoutOptions
	tlsDir                          string
	insecure                        bool
}

func newCoordinatorCmd() *cobra.Command {
	var o coordinatorOptions
	d := coordinator.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run one node of the Raft-replicated coordinator (experiments, episodes, leases, results)",
		Long: "coordinator runs one node of the coordinator cluster: a hashicorp/raft member holding experiments,\n" +
			"workers, episodes, training tasks and results, with the HTTP API on --http-addr. Start the first\n" +
			"node with --bootstrap and the others with --join URL-of-any-node. Every call but /healthz and\n" +
			"/metrics needs a credential: the admin token of --token-file (or OPTOLOOP_TOKEN; membership and\n" +
			"all an operator may), the operator's and viewer's token files, or one signed with the key of\n" +
			"--credential-key-file (optoloop cluster credential: workers and learners acting as the holder\n" +
			"it names). Token files hold one line of at least 32 bytes. Raft (mutual TLS: node certificates\n" +
			"of the cluster's CA only) and HTTP (HTTPS) use the certificate in --tls-dir (what `optoloop\n" +
			"cluster certs` wrote for this node); --insecure runs both in plaintext. SIGINT/SIGTERM leave\n" +
			"cleanly: a leader hands leadership over first.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCoordinator(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.id, "id", "", "node id, unique and stable across restarts (required)")
	f.StringVar(&o.raftAddr, "raft-addr", "127.0.0.1:7000", "host:port of the Raft transport (listen and advertise)")
	f.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:8080", "host:port of the HTTP API")
	f.StringVar(&o.dataDir, "data-dir", "", "directory of the Raft log, stable store and snapshots (required)")
	f.BoolVar(&o.bootstrap, "bootstrap", false, "start a new cluster with this node as its first member")
	f.StringVar(&o.join, "join", "", "HTTP URL of any node of the cluster to join")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the admin token: membership, and all an operator may (default: $OPTOLOOP_TOKEN)")
	f.StringVar(&o.operatorTokenFile, "operator-token-file", "", "file holding the operator's token (submit, cancel, drain, read); none: no operator credential")
	f.StringVar(&o.viewerTokenFile, "viewer-token-file", "", "file holding the viewer's token (read only, e.g. a dashboard); none: no viewer credential")
	f.StringVar(&o.credentialKeyFile, "credential-key-file", "", "file (mode 0600) holding the cluster's credential key: signed credentials of every role are accepted (optoloop cluster credential); none: no worker or learner can lease")
	f.BoolVar(&o.restrictPeers, "restrict-raft-peers", false, "drop Raft connections from addresses outside the configuration and --raft-allowed-peers")
	f.StringSliceVar(&o.allowedPeers, "raft-allowed-peers", nil, "extra hosts accepted by --restrict-raft-peers (e.g. the nodes about to join)")
	f.StringVar(&o.linesFile, "lines-file", "", "lines catalogue merged over the embedded one (submitted lines must be in it)")
	f.DurationVar(&o.leaseTTL, "lease-ttl", d.LeaseTTL, "lease length when a worker asks for none")
	f.IntVar(&o.maxAttempts, "max-attempts", d.MaxAttempts, "attempts per item before it is marked failed")
	f.IntVar(&o.maxConnsPerClient, "max-conns-per-client", d.MaxConnsPerClient, "HTTP connections one remote IP may hold open (more are closed at once; raise it for clients behind one NAT)")
	f.IntVar(&o.maxConns, "max-conns", d.MaxConns, "HTTP connections the node holds open in all")
	f.Int64Var(&o.maxItemsPerExperiment, "max-items-per-experiment", 0, fmt.Sprintf("refuse experiments of more items than this (0: the cluster's hard bound, %d)", api.MaxItemsPerExperiment))
	f.Int64Var(&o.maxLiveItems, "max-live-items", 0, fmt.Sprintf("refuse experiments that would make the items of experiments not archived more than this (0: the hard bound, %d)", api.MaxLiveItems))
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	o.raft.register(cmd, d)
	f.StringVar(&o.tlsDir, "tls-dir", "", "this node's folder of `optoloop cluster certs` (ca.pem, cert.pem, key.pem; default: $OPTOLOOP_TLS_DIR)")
	f.BoolVar(&o.insecure, "insecure", false, "run Raft and HTTP in plaintext (anyone who reaches the Raft port can write to the log)")
	o.tel.register(cmd, false)
	return cmd
}

// tlsDirOrInsecure resolves --tls-dir (default $OPTOLOOP_TLS_DIR) and --insecure: the TLS
// material to use, or nil for plaintext. --insecure wins over the environment variable, not
// over the flag.
func tlsDirOrInsecure(dir string, insecure bool) (*certs.Identity, error) {
	switch {
	case dir != "" && insecure:
		return nil, errors.New("--tls-dir and --insecure are exclusive")
	case insecure:
		return nil, nil
	case dir == "":
		dir = os.Getenv("OPTOLOOP_TLS_DIR")
	}
	if dir == "" {
		return nil, errors.New("no TLS: pass --tls-dir DIR (see optoloop cluster certs; or set OPTOLOOP_TLS_DIR) or --insecure")
	}
	return certs.Load(dir)
}

func runCoordinator(cmd *cobra.Command, o coordinatorOptions) error {
	token, err := readToken(o.tokenFile)
	if err != nil {
		return err
	}
	var roleTokens [2]string
	for i, path := range []string{o.operatorTokenFile, o.viewerTokenFile} {
		if path == "" {
			continue
		}
		if roleTokens[i], err = api.ReadTokenFile(path); err != nil {
			return err
		}
	}
	var key string
	if o.credentialKeyFile != "" {
		if key, err = readKeyFile(o.credentialKeyFile); err != nil {
			return err
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cat, err := sim.LoadCatalogue(o.linesFile)
	if err != nil {
		return err
	}
	cfg := coordinator.DefaultConfig()
	cfg.ID, cfg.RaftAddr, cfg.HTTPAddr, cfg.DataDir = o.id, o.raftAddr, o.httpAddr, o.dataDir
	cfg.Bootstrap, cfg.Join, cfg.Token = o.bootstrap, o.join, token
	if cfg.TLS, err = tlsDirOrInsecure(o.tlsDir, o.insecure); err != nil {
		return err
	}
	cfg.Insecure = cfg.TLS == nil
	cfg.OperatorToken, cfg.ViewerToken = roleTokens[0], roleTokens[1]
	if key != "" {
		cfg.CredentialKey = []byte(key)
	}
	cfg.RestrictRaftPeers, cfg.RaftAllowedPeers = o.restrictPeers, o.allowedPeers
	cfg.LeaseTTL, cfg.MaxAttempts = o.leaseTTL, o.maxAttempts
	if err := o.raft.apply(&cfg); err != nil {
		return err
	}
	cfg.MaxItemsPerExperiment, cfg.MaxLiveItems = o.maxItemsPerExperiment, o.maxLiveItems
	cfg.MaxConnsPerClient, cfg.MaxConns = o.maxConnsPerClient, o.maxConns
	cfg.KnownLine = func(code string) bool { _, err := cat.Line(code); return err == nil }
	cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	if o.id == "" || o.dataDir == "" {
		return errors.New("--id and --data-dir are required")
	}
	tel, shutdown, err := o.tel.open(cmd.Context(), "coordinator", o.id, cfg.Logger)
	if err != nil {
		return err
	}
	defer shutdown()
	if tel.Tracing() {
		cfg.TracerProvider = tel.TracerProvider()
	}
	cfg.MeterProvider, cfg.MetricsHandler = tel.MeterProvider(), tel.MetricsHandler()
	n, err := openNode(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "coordinator %s: http %s raft %s data %s\n", o.id, n.URL(), n.RaftAddr(), o.dataDir)
	return n.Run(cmd.Context())
}

// readToken reads the bearer token (or signed credential) from path, or from OPTOLOOP_TOKEN
// when path is empty: one line, at least 32 bytes, no whitespace inside (api.ParseToken). It
// never prints the token.
func readToken(path string) (string, error) {
	if path != "" {
		return api.ReadTokenFile(path)
	}
	env := os.Getenv("OPTOLOOP_TOKEN")
	if strings.TrimSpace(env) == "" {
		return "", errors.New("no token: pass --token-file or set OPTOLOOP_TOKEN")
	}
	tok, err := api.ParseToken(env)
	if err != nil {
		return "", fmt.Errorf("OPTOLOOP_TOKEN: %w", err)
	}
	return tok, nil
}

// readKeyFile reads the credential key file: a strong one-line token (api.ReadTokenFile) in a
// file nobody but its owner may read or write.
func readKeyFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("credential key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("credential key file %s: mode %04o lets others read it; chmod 600 it", path, fi.Mode().Perm())
	}
	key, err := api.ReadTokenFile(path)
	if err != nil {
		return "", fmt.Errorf("credential key: %w", err)
	}
	return key, nil
}

// clientOptions are the flags of the commands that talk to a coordinator.
type clientOptions struct {
	endpoints string
	tokenFile string
	timeout   time.Duration
	tlsDir    string
	insecure  bool
	// tracer, when set, traces the calls made inside spans (the command's own, not a flag).
	tracer trace.TracerProvider
}

func (o *clientOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.endpoints, "coordinator", "", "coordinator URL(s), comma separated (default: $OPTOLOOP_COORDINATOR)")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the coordinator credential (a worker's or learner's names its holder; default: $OPTOLOOP_TOKEN)")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long")
	f.StringVar(&o.tlsDir, "tls-dir", "", "folder of the cluster's CA and this client's certificate (what `optoloop cluster certs` wrote; default: $OPTOLOOP_TLS_DIR)")
	f.BoolVar(&o.insecure, "insecure", false, "talk to coordinators that run without TLS (--insecure)")
}

// tls is the TLS configuration of the client's calls (nil with --insecure).
func (o *clientOptions) tls() (*tls.Config, error) {
	id, err := tlsDirOrInsecure(o.tlsDir, o.insecure)
	if err != nil || id == nil {
		return nil, err
	}
	return id.ClientConfig(), nil
}

// holder is the holder the credential of --token-file (or $OPTOLOOP_TOKEN) names, "" when it
// names none (a static token, or no readable one): a worker's or learner's default id.
func (o *clientOptions) holder() string {
	tok, err := readToken(o.tokenFile)
	if err != nil {
		return ""
	}
	role, holder, ok := api.ParseCredential(tok)
	if !ok || !role.NamesHolder() {
		return ""
	}
	return holder
}

func (o *clientOptions) client(needToken bool) (*api.Client, error) {
	eps := o.endpoints
	if eps == "" {
		eps = os.Getenv("OPTOLOOP_COORDINATOR")
	}
	if eps == "" {
		return nil, errors.New("no coordinator: pass --coordinator URL or set OPTOLOOP_COORDINATOR")
	}
	cfg := api.DefaultClientConfig(strings.Split(eps, ",")...)
	cfg.TracerProvider = o.tracer
	var err error
	if cfg.TLS, err = o.tls(); err != nil {
		return nil, err
	}
	if needToken || o.tokenFile != "" || os.Getenv("OPTOLOOP_TOKEN") != "" {
		tok, err := readToken(o.tokenFile)
		if err != nil {
			return nil, err
		}
		cfg.Token = tok
	}
	return api.NewClient(cfg)
}
