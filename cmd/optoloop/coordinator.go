package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"

	"github.com/optoloop/optoloop/arenas/sim"
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
	restrictPeers                   bool
	allowedPeers                    []string
	linesFile                       string
	leaseTTL                        time.Duration
	maxAttempts                     int
	maxItemsPerExperiment           int64
	maxLiveItems                    int64
	logLevel                        string
	tel                             telemetryOptions
}

func newCoordinatorCmd() *cobra.Command {
	var o coordinatorOptions
	d := coordinator.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run one node of the Raft-replicated coordinator (experiments, episodes, leases, results)",
		Long: "coordinator runs one node of the coordinator cluster: a hashicorp/raft member holding experiments,\n" +
			"workers, episodes, training tasks and results, with the HTTP API on --http-addr. Start the first\n" +
			"node with --bootstrap and the others with --join URL-of-any-node. Every mutating call needs the\n" +
			"bearer token read from --token-file (or OPTOLOOP_TOKEN). SIGINT/SIGTERM leave cleanly: a leader\n" +
			"hands leadership over first.",
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
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token (default: $OPTOLOOP_TOKEN)")
	f.StringVar(&o.operatorTokenFile, "operator-token-file", "", "file holding the operator's token (submit, cancel, drain, read); none: no operator credential")
	f.StringVar(&o.viewerTokenFile, "viewer-token-file", "", "file holding the viewer's token (read only, e.g. a dashboard); none: no viewer credential")
	f.BoolVar(&o.restrictPeers, "restrict-raft-peers", false, "drop Raft connections from addresses outside the configuration and --raft-allowed-peers")
	f.StringSliceVar(&o.allowedPeers, "raft-allowed-peers", nil, "extra hosts accepted by --restrict-raft-peers (e.g. the nodes about to join)")
	f.StringVar(&o.linesFile, "lines-file", "", "lines catalogue merged over the embedded one (submitted lines must be in it)")
	f.DurationVar(&o.leaseTTL, "lease-ttl", d.LeaseTTL, "lease length when a worker asks for none")
	f.IntVar(&o.maxAttempts, "max-attempts", d.MaxAttempts, "attempts per item before it is marked failed")
	f.Int64Var(&o.maxItemsPerExperiment, "max-items-per-experiment", 0, fmt.Sprintf("refuse experiments of more items than this (0: the cluster's hard bound, %d)", api.MaxItemsPerExperiment))
	f.Int64Var(&o.maxLiveItems, "max-live-items", 0, fmt.Sprintf("refuse experiments that would make the items of experiments not archived more than this (0: the hard bound, %d)", api.MaxLiveItems))
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	o.tel.register(cmd, false)
	return cmd
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
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		if roleTokens[i] = strings.TrimSpace(string(b)); roleTokens[i] == "" {
			return fmt.Errorf("token file %s is empty", path)
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
	cfg.OperatorToken, cfg.ViewerToken = roleTokens[0], roleTokens[1]
	cfg.RestrictRaftPeers, cfg.RaftAllowedPeers = o.restrictPeers, o.allowedPeers
	cfg.LeaseTTL, cfg.MaxAttempts = o.leaseTTL, o.maxAttempts
	cfg.MaxItemsPerExperiment, cfg.MaxLiveItems = o.maxItemsPerExperiment, o.maxLiveItems
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
	n, err := coordinator.New(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "coordinator %s: http %s raft %s data %s\n", o.id, n.URL(), n.RaftAddr(), o.dataDir)
	return n.Run(cmd.Context())
}

// readToken reads the bearer token from path, or from OPTOLOOP_TOKEN when path is empty. It
// never prints the token.
func readToken(path string) (string, error) {
	var tok string
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	} else {
		tok = strings.TrimSpace(os.Getenv("OPTOLOOP_TOKEN"))
	}
	if tok == "" {
		return "", errors.New("no token: pass --token-file or set OPTOLOOP_TOKEN")
	}
	return tok, nil
}

// clientOptions are the flags of the commands that talk to a coordinator.
type clientOptions struct {
	endpoints string
	tokenFile string
	timeout   time.Duration
	// tracer, when set, traces the calls made inside spans (the command's own, not a flag).
	tracer trace.TracerProvider
}

func (o *clientOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.endpoints, "coordinator", "", "coordinator URL(s), comma separated (default: $OPTOLOOP_COORDINATOR)")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token (default: $OPTOLOOP_TOKEN)")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long")
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
	if needToken || o.tokenFile != "" || os.Getenv("OPTOLOOP_TOKEN") != "" {
		tok, err := readToken(o.tokenFile)
		if err != nil {
			return nil, err
		}
		cfg.Token = tok
	}
	return api.NewClient(cfg)
}
