package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/optoloop/optoloop/coordinator/api"
)

// openRaftStore opens the bbolt Raft store, waiting at most timeout for another process's
// lock on it.
func openRaftStore(path, dir string, timeout time.Duration) (*raftboltdb.BoltStore, error) {
	opts := *bbolt.DefaultOptions
	opts.Timeout = timeout
	s, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &opts})
	switch {
	case errors.Is(err, bbolt.ErrTimeout):
		return nil, errDataDirInUse(dir, timeout)
	case err != nil:
		return nil, fmt.Errorf("coordinator: raft store %s: %w", path, err)
	}
	return s, nil
}

// faultyLogStore is the Raft log store with fault injection: while full, writes fail with
// ENOSPC, as on a full disk. It remembers whether the last write failed, for /healthz.
type faultyLogStore struct {
	raft.LogStore
	full    atomic.Bool
	lastErr atomic.Pointer[error] // nil after a successful write
}

func (s *faultyLogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *faultyLogStore) StoreLogs(logs []*raft.Log) error {
	var err error
	if s.full.Load() {
		err = fmt.Errorf("raft log store: %w", syscall.ENOSPC)
	} else {
		err = s.LogStore.StoreLogs(logs)
	}
	if err != nil {
		s.lastErr.Store(&err)
	} else {
		s.lastErr.Store(nil)
	}
	return err
}

func (s *faultyLogStore) writeErr() error {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// SetDiskFull is fault injection for tests and drills: while true, the node's Raft log writes
// and the /healthz write probe fail with ENOSPC, as if its disk were full (a follower then
// falls behind; a leader steps down).
func (n *Node) SetDiskFull(full bool) { n.logs.full.Store(full) }

// probeWrite writes and fsyncs a small file in the data dir.
func (n *Node) probeWrite() error {
	if n.logs.full.Load() {
		return fmt.Errorf("cannot write data dir %s: %w", n.cfg.DataDir, syscall.ENOSPC)
	}
	path := filepath.Join(n.cfg.DataDir, "healthz.probe")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("cannot write data dir %s: %w", n.cfg.DataDir, err)
	}
	_, err = f.WriteString(time.Now().UTC().Format(time.RFC3339Nano))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write data dir %s: %w", n.cfg.DataDir, err)
	}
	return nil
}

// leaderCommitIndex asks the leader for its commit index (GET /v1/node, 1 s).
func (n *Node) leaderCommitIndex(ctx context.Context, httpAddr string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/v1/node", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+n.cfg.Token)
	resp, err := n.fwd.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /v1/node: %s", resp.Status)
	}
	var ns api.NodeStatus
	if err := json.NewDecoder(resp.Body).Decode(&ns); err != nil {
		return 0, err
	}
	return ns.CommitIndex, nil
}

// health checks this node: a leader is known, the data dir takes a write, the log store's
// last write did not fail, and a follower is within HealthMaxLag entries of the leader's
// commit index and heard from it within HealthMaxContact. It returns the body of a healthy
// answer, or the reasons it is not.
func (n *Node) health(ctx context.Context) (map[string]any, []string) {
	r := n.Raft()
	var reasons []string
	id, addr := n.leader()
	if id == "" {
		reasons = append(reasons, "no leader known")
	}
	if err := n.probeWrite(); err != nil {
		reasons = append(reasons, err.Error())
	}
	if err := n.logs.writeErr(); err != nil {
		reasons = append(reasons, "last raft log write failed: "+err.Error())
	}
	applied := r.AppliedIndex()
	body := map[string]any{"status": "ok", "node": n.cfg.ID, "leader": id, "state": r.State().String(), "applied_index": applied}
	if id != "" && id != n.cfg.ID && r.State() != raft.Leader {
		commit := r.CommitIndex()
		if addr != "" {
			if lc, err := n.leaderCommitIndex(ctx, addr); err == nil {
				commit = max(commit, lc)
			}
		}
		body["leader_commit_index"] = commit
		if commit > applied && commit-applied > n.cfg.HealthMaxLag {
			reasons = append(reasons, fmt.Sprintf("lags the leader by %d entries (applied %d, leader's commit %d; bound %d)", commit-applied, applied, commit, n.cfg.HealthMaxLag))
		}
		switch lc := r.LastContact(); {
		case lc.IsZero():
			reasons = append(reasons, "never heard from the leader")
		case time.Since(lc) > n.cfg.HealthMaxContact:
			reasons = append(reasons, fmt.Sprintf("last contact with the leader %s ago (bound %v)", time.Since(lc).Round(time.Millisecond), n.cfg.HealthMaxContact))
		}
	}
	return body, reasons
}

// healthz is 200 when health finds nothing wrong, else 503 with every reason on one line.
func (n *Node) healthz(w http.ResponseWriter, r *http.Request) {
	body, reasons := n.health(r.Context())
	if len(reasons) > 0 {
		code := "unhealthy"
		if len(reasons) == 1 && reasons[0] == "no leader known" {
			code = "no_leader"
		}
		writeErr(w, http.StatusServiceUnavailable, code, errors.New(strings.Join(reasons, "; ")))
		return
	}
	writeJSON(w, http.StatusOK, body)
}
