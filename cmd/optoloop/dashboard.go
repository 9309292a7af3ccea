package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/dashboard"
)

type dashboardOptions struct {
	client          clientOptions
	redis           redisOptions
	addr            string
	workDir         string
	traceURL        string
	poll            time.Duration
	lostAfter       time.Duration
	tlsCert, tlsKey string
	logLevel        string
}

func newDashboardCmd() *cobra.Command {
	var o dashboardOptions
	d := dashboard.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the live dashboard of a cluster: arenas, experiments, learners, episodes (browser, read-only for viewers)",
		Long: "dashboard serves one live page of the cluster at http://ADDR/ui/: a tile per arena (its latest\n" +
			"camera frame with the tracked midline, head, target and light drawn; line, state, episode and its\n" +
			"progress, distance to target, tracking confidence, frame-to-light latency), every experiment's phases\n" +
			"with progress bars, failures, the per-line table as it fills and the report when done, the learners'\n" +
			"curves and parameter versions, and a page per episode. It reads the coordinators with --token-file (a\n" +
			"viewer's credential is enough) and the arenas' tiles, tracks and curves from Redis, and updates the\n" +
			"page by server-sent events, through a coordinator failover too. People sign in with a coordinator\n" +
			"token: a viewer's watches, an operator's may also cancel experiments and drain workers (the\n" +
			"coordinator checks the role). Plain HTML, CSS and JavaScript from the binary: no CDN, no build step.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDashboard(cmd, o) },
	}
	o.client.register(cmd)
	o.redis.register(cmd)
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:8090", "host:port to serve on (port 0 picks a free one; printed: dashboard URL)")
	f.StringVar(&o.workDir, "work-dir", "", "folder of the report cache (default: a new temporary folder, removed on exit)")
	f.StringVar(&o.traceURL, "trace-url", "", "link episode pages to a trace viewer: a URL with {trace_id} (e.g. http://127.0.0.1:16686/trace/{trace_id})")
	f.DurationVar(&o.poll, "poll", d.Poll, "how often the page's data is refreshed while a page is open")
	f.DurationVar(&o.lostAfter, "lost-after", d.LostAfter, "a worker the coordinator has not heard from for this long shows as lost heartbeat")
	f.StringVar(&o.tlsCert, "tls-cert-file", "", "serve HTTPS with this PEM certificate (with --tls-key-file)")
	f.StringVar(&o.tlsKey, "tls-key-file", "", "PEM private key of --tls-cert-file")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func runDashboard(cmd *cobra.Command, o dashboardOptions) error {
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("--tls-cert-file and --tls-key-file go together")
	}
	var tlsCfg *tls.Config
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert-file: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	log, err := newLogger(cmd, o.logLevel)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	// A short per-call timeout: a coordinator node that hangs (rather than refuses) is left for
	// another after 3 s, so the page keeps updating through a failover.
	eps := o.client.endpoints
	if eps == "" {
		eps = os.Getenv("OPTOLOOP_COORDINATOR")
	}
	if eps == "" {
		return errors.New("no coordinator: pass --coordinator URL or set OPTOLOOP_COORDINATOR")
	}
	token, err := readToken(o.client.tokenFile)
	if err != nil {
		return err
	}
	ccfg := api.DefaultClientConfig(strings.Split(eps, ",")...)
	ccfg.Token, ccfg.MaxAttempts = token, 3
	coordTLS, err := o.client.tls()
	if err != nil {
		return err
	}
	tr := api.NewTransport()
	tr.TLSClientConfig = coordTLS
	ccfg.HTTPClient = &http.Client{Timeout: 3 * time.Second, Transport: tr}
	cl, err := api.NewClient(ccfg)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, o.client.timeout)
	who, err := cl.WhoAmI(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	store, stores, err := o.redis.open(ctx, log)
	if err != nil {
		return err
	}
	defer store.Close()
	dir := o.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "optoloop-dashboard-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if dir, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("--work-dir: %w", err)
	}
	cfg := dashboard.DefaultConfig()
	cfg.Coordinator, cfg.Live, cfg.Stores, cfg.WorkDir = cl, store, stores, dir
	cfg.TraceURL, cfg.Poll, cfg.LostAfter, cfg.Logger = o.traceURL, o.poll, o.lostAfter, log
	srv, err := dashboard.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	hs := &http.Server{Handler: srv.Handler(), TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(runCtx) }()
	served := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			served <- hs.ServeTLS(ln, "", "")
			return
		}
		served <- hs.Serve(ln)
	}()
	log.Info("dashboard reading the coordinators", "as", who.Role, "coordinators", eps, "redis", o.redis.url)
	fmt.Fprintf(cmd.OutOrStdout(), "dashboard %s://%s/ui/\n", scheme, ln.Addr())
	select {
	case <-ctx.Done():
	case err = <-served:
		stop()
		return fmt.Errorf("dashboard: %w", err)
	case err = <-runErr:
		return fmt.Errorf("dashboard: %w", err)
	}
	// Event streams end with Run's context; then the server shuts down.
	stop()
	<-runErr
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
