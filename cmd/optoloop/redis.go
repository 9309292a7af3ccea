package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/redisstore"
	"github.com/optoloop/optoloop/telemetry"
)

// redisOptions are the flags of the commands that use the cluster's Redis (replay,
// parameters, tracks, checkpoints).
type redisOptions struct {
	url          string
	passwordFile string
	caFile       string
}

func (o *redisOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.url, "redis", "", "Redis URL, redis://host:port[/db] or rediss:// for TLS (default: $OPTOLOOP_REDIS)")
	f.StringVar(&o.passwordFile, "redis-password-file", "", "file holding the Redis password (default: $OPTOLOOP_REDIS_PASSWORD)")
	f.StringVar(&o.caFile, "redis-ca-file", "", "PEM file of a CA to trust for rediss:// beyond the system's")
}

// password reads the Redis password from the file or $OPTOLOOP_REDIS_PASSWORD; it never
// prints it.
func (o *redisOptions) password() (string, error) {
	var pw string
	if o.passwordFile != "" {
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return "", fmt.Errorf("redis password file: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	} else {
		pw = os.Getenv("OPTOLOOP_REDIS_PASSWORD")
	}
	if pw == "" {
		return "", errors.New("no Redis password: pass --redis-password-file or set OPTOLOOP_REDIS_PASSWORD (Redis AUTH is required)")
	}
	return pw, nil
}

// open connects to Redis and checks that it authenticates and keeps acknowledged writes.
func (o *redisOptions) open(ctx context.Context, log *slog.Logger) (*redisstore.Store, fleet.Stores, error) {
	url := o.url
	if url == "" {
		url = os.Getenv("OPTOLOOP_REDIS")
	}
	if url == "" {
		return nil, fleet.Stores{}, errors.New("no Redis: pass --redis URL or set OPTOLOOP_REDIS")
	}
	pw, err := o.password()
	if err != nil {
		return nil, fleet.Stores{}, err
	}
	st, err := redisstore.Open(ctx, redisstore.Config{URL: url, Password: pw, CAFile: o.caFile, Logger: log})
	if err != nil {
		return nil, fleet.Stores{}, err
	}
	return st, fleet.Stores{Replay: st, Params: st, Tracks: st, Checkpoints: st}, nil
}

// connect is what a worker or learner checks before it registers: Redis answers,
// authenticates and keeps acknowledged writes, and a coordinator answers. The client's calls
// are traced when tel traces. Close the store.
func connect(ctx context.Context, client clientOptions, redis redisOptions, tel *telemetry.Telemetry, log *slog.Logger) (*api.Client, *redisstore.Store, fleet.Stores, error) {
	if tel.Tracing() {
		client.tracer = tel.TracerProvider()
	}
	cl, err := client.client(true)
	if err != nil {
		return nil, nil, fleet.Stores{}, err
	}
	store, stores, err := redis.open(ctx, log)
	if err != nil {
		return nil, nil, fleet.Stores{}, err
	}
	if err := reachable(ctx, cl, client.timeout); err != nil {
		store.Close()
		return nil, nil, fleet.Stores{}, err
	}
	return cl, store, stores, nil
}

// defaultID is this host's name in lower case, a dash and suffix: a role's id when none is
// given.
func defaultID(suffix string) string {
	host, _ := os.Hostname()
	return strings.ToLower(host) + "-" + suffix
}

// newLogger is a text logger on the command's stderr at level ("debug", "info", "warn",
// "error").
func newLogger(cmd *cobra.Command, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: l})), nil
}
