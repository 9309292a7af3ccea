package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/redisstore"
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

// newLogger is a text logger on the command's stderr at level ("debug", "info", "warn",
// "error").
func newLogger(cmd *cobra.Command, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: l})), nil
}
