package coordinator

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// privateSnapshots is hashicorp/raft's file snapshot store under DataDir/snapshots with its
// directories 0700 and its files 0600: the store itself creates them 0755 and 0644, and a
// snapshot holds the whole state (lease tokens, calibrations, results). A snapshot being
// written is inside a 0700 directory, so nobody else can read it before Close makes its files
// 0600.
type privateSnapshots struct {
	*raft.FileSnapshotStore
	dir string // where the store keeps its snapshots (DataDir/snapshots/snapshots)
}

// newSnapshotStore opens the snapshot store of dataDir, making the data directory, the store's
// directories and every snapshot already there private.
func newSnapshotStore(dataDir string, retain int, logger hclog.Logger) (raft.SnapshotStore, error) {
	base := filepath.Join(dataDir, "snapshots")
	store, err := raft.NewFileSnapshotStoreWithLogger(base, retain, logger)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{dataDir, base} {
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("snapshot store: %w", err)
		}
	}
	s := &privateSnapshots{FileSnapshotStore: store, dir: filepath.Join(base, "snapshots")}
	if err := makePrivate(s.dir); err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	return s, nil
}

// Create starts a snapshot whose files are made 0600 when it closes.
func (s *privateSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &privateSink{SnapshotSink: sink, dir: s.dir}, nil
}

type privateSink struct {
	raft.SnapshotSink
	dir string
}

// Close completes the snapshot (the store moves it to its final directory) and makes it
// private.
func (s *privateSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	path := filepath.Join(s.dir, s.ID())
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("snapshot %s: %w", s.ID(), err)
	}
	return makePrivate(path)
}

// makePrivate makes every directory under root (root too) 0700 and every file 0600.
func makePrivate(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o600)
		if d.IsDir() {
			mode = 0o700
		}
		return os.Chmod(path, mode)
	})
}
