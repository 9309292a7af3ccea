// Command optoloop runs deep reinforcement learning agents against optogenetic worm arenas.
// main is a wiring script: each command lives in its own file and turns flags into a Config.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "optoloop:", err)
		os.Exit(1)
	}
}
