package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/coordinator"
	"github.com/optoloop/optoloop/coordinator/api"
)

// raftTimeoutOptions are the coordinator's Raft timeout flags.
type raftTimeoutOptions struct {
	heartbeat, election, lease, commit time.Duration
	allowShortLease                    bool
}

func (o *raftTimeoutOptions) register(cmd *cobra.Command, d coordinator.Config) {
	f := cmd.Flags()
	f.DurationVar(&o.heartbeat, "raft-heartbeat-timeout", d.HeartbeatTimeout, "Raft heartbeat timeout: a follower that hears nothing from the leader for this long calls an election")
	f.DurationVar(&o.election, "raft-election-timeout", d.ElectionTimeout, "Raft election timeout (>= the heartbeat timeout)")
	f.DurationVar(&o.lease, "raft-leader-lease-timeout", d.LeaderLeaseTimeout, "Raft leader lease: a leader that hears from no quorum for this long steps down (>= 500ms unless --raft-allow-short-lease; <= the heartbeat timeout)")
	f.DurationVar(&o.commit, "raft-commit-timeout", d.CommitTimeout, "Raft commit timeout: how long the leader waits without new entries before it tells followers the commit index")
	f.BoolVar(&o.allowShortLease, "raft-allow-short-lease", false, "accept a leader lease below 500ms (elections under CPU load: for tests on an idle LAN only)")
}

// apply checks the flags and sets them in cfg.
func (o *raftTimeoutOptions) apply(cfg *coordinator.Config) error {
	if o.lease < coordinator.MinLeaderLeaseTimeout && !o.allowShortLease {
		return fmt.Errorf("--raft-leader-lease-timeout %v is below %v: a short lease makes a CPU-loaded leader step down and call needless elections (pass --raft-allow-short-lease to accept it)", o.lease, coordinator.MinLeaderLeaseTimeout)
	}
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout, cfg.CommitTimeout = o.heartbeat, o.election, o.lease, o.commit
	return nil
}

// openNode opens the node, giving up when ctx ends (SIGINT, SIGTERM) while it waits for its
// data dir, which another process may hold (coordinator.Config.OpenTimeout).
func openNode(ctx context.Context, cfg coordinator.Config) (*coordinator.Node, error) {
	type opened struct {
		n   *coordinator.Node
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		n, err := coordinator.New(cfg)
		ch <- opened{n, err}
	}()
	select {
	case o := <-ch:
		return o.n, o.err
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.n != nil {
				_ = o.n.Close()
			}
		}()
		return nil, fmt.Errorf("coordinator %s: interrupted while opening data dir %s: %w", cfg.ID, cfg.DataDir, ctx.Err())
	}
}

func newClusterRemoveCmd() *cobra.Command {
	var o clientOptions
	var force bool
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a coordinator node from the Raft configuration (refused below a quorum unless --force)",
		Long: "remove takes coordinator node ID out of the cluster's Raft configuration. It is refused when the\n" +
			"voters left would be fewer than a quorum of the voters now, or when fewer of them are reachable\n" +
			"than their own quorum; --force removes the node anyway (e.g. to recover a cluster whose other\n" +
			"nodes are gone for good). A node whose data dir was lost must be removed before it is started\n" +
			"again with --join. Needs the cluster credential.",
		Args: cobra.ExactArgs(1),
		RunE: actOn(&o, "node", "removed from the cluster", func(ctx context.Context, cl *api.Client, id string) error {
			return cl.RemoveNode(ctx, api.RemoveRequest{ID: id, Force: force})
		}),
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "remove even below a quorum of the configured size or of reachable voters")
	return cmd
}
