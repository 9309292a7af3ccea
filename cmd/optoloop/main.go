// Command optoloop runs deep reinforcement learning agents against optogenetic worm arenas.
// main is a wiring script: each command lives in its own file and turns flags into a Config.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/optoloop/optoloop/redisstore"
)

func main() {
	// go-redis has one logger per process, not per client, and by default prints its own
	// messages (failed dials, reconnects) to stderr; the stores report those failures as errors,
	// so its messages are dropped. The one process-wide setting, made here in the wiring only.
	redis.SetLogger(redisstore.ClientLogger{Logger: slog.New(slog.DiscardHandler)})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "optoloop:", err)
		os.Exit(1)
	}
}
