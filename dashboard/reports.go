package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/report"
)

// reportTimeout bounds one export and report.
const reportTimeout = 10 * time.Minute

func reportURL(id string) string { return "/ui/experiments/" + url.PathEscape(id) + "/report/" }

// reports is the report cache: under WorkDir, one run folder per experiment (safeName). A
// request for the report exports the run folder again (fleet.Export, then report.Write) when
// the experiment changed since the last export (its UpdatedAt). Exports of one experiment are
// serialized and update the folder in place: results.Build keeps what an earlier build of the
// same experiment wrote (its policy maps take seconds to compute), and every file is replaced
// atomically, so the files served meanwhile are whole. The first export of an experiment in a
// process starts from an empty folder: what an earlier dashboard left there is of an unknown
// cluster and state.
type reports struct {
	dir string

	mu sync.Mutex
	m  map[string]*reportEntry
}

type reportEntry struct {
	// build serializes the exports of the experiment and guards the fields below.
	build   sync.Mutex
	updated time.Time // the state of the experiment last exported
	ready   bool      // a run folder with its report exists
}

func newReports(dir string) *reports { return &reports{dir: dir, m: map[string]*reportEntry{}} }

func (rs *reports) entry(id string) *reportEntry {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	e, ok := rs.m[id]
	if !ok {
		e = &reportEntry{}
		rs.m[id] = e
	}
	return e
}

// folder is experiment id's run folder in the cache.
func (rs *reports) folder(id string) string { return filepath.Join(rs.dir, safeName(id)) }

// safeName is the cache folder of experiment id: its id with every byte that is not a letter,
// digit, '.', '-' or '_' replaced by '_', and a hash of the id (so that two ids that map to
// the same text keep apart).
func safeName(id string) string {
	var b strings.Builder
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(id))
	name := b.String()
	if len(name) > 64 {
		name = name[:64]
	}
	return "exp-" + name + "-" + hex.EncodeToString(sum[:6])
}

// fresh makes sure the run folder of experiment id is of its state as of updated, exporting it
// when it is not.
func (rs *reports) fresh(ctx context.Context, id string, updated time.Time, export func(ctx context.Context, dir string) error) error {
	e := rs.entry(id)
	e.build.Lock()
	defer e.build.Unlock()
	if e.ready && e.updated.Equal(updated) {
		return nil
	}
	dir := rs.folder(id)
	if !e.ready {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("dashboard: report cache: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dashboard: report cache: %w", err)
	}
	if err := export(ctx, dir); err != nil {
		return err
	}
	e.ready, e.updated = true, updated
	return nil
}

// exists reports whether experiment id's run folder has been exported in this process.
func (rs *reports) exists(id string) bool {
	e := rs.entry(id)
	e.build.Lock()
	defer e.build.Unlock()
	return e.ready
}

// report serves GET /ui/experiments/{id}/report/{path...}: report.html for the folder itself
// (exported again when the experiment changed), any other file of the run folder as it is.
func (s *Server) report(w http.ResponseWriter, r *http.Request, _ *session) {
	id := r.PathValue("id")
	rest := r.PathValue("path")
	if rest == "" || rest == report.FileName || !s.reports.exists(id) {
		if err := s.freshReport(r.Context(), id); err != nil {
			code := http.StatusBadGateway
			if errors.Is(err, api.ErrNotFound) {
				code = http.StatusNotFound
			}
			http.Error(w, "the report could not be made: "+err.Error(), code)
			return
		}
	}
	if rest == "" {
		rest = report.FileName
	}
	root, err := os.OpenRoot(s.reports.folder(id))
	if err != nil {
		http.Error(w, "the report could not be read", http.StatusInternalServerError)
		return
	}
	defer root.Close()
	// The run folder is data, not part of the dashboard: it runs no script and reaches nothing.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	req := r.Clone(r.Context())
	req.URL.Path = path.Clean("/" + rest)
	req.URL.RawPath = ""
	http.FileServerFS(root.FS()).ServeHTTP(w, req)
}

// freshReport exports the experiment's run folder and writes its report if the experiment
// changed since the cached one (the export runs to its end even when the page is closed, so
// that the next request finds it).
func (s *Server) freshReport(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	v, err := s.cfg.Coordinator.Experiment(ctx, id)
	if err != nil {
		return err
	}
	return s.reports.fresh(ctx, id, v.Experiment.UpdatedAt, func(ctx context.Context, dir string) error {
		start := time.Now()
		if _, err := fleet.Export(ctx, dir, s.cfg.Coordinator, id, nil, exportStores(s.cfg.Stores)); err != nil {
			return err
		}
		if _, err := report.Write(ctx, dir); err != nil {
			return err
		}
		s.cfg.Logger.Info("dashboard: report written", "experiment", id, "status", v.Experiment.Status, "took", time.Since(start).Round(time.Millisecond))
		return nil
	})
}

// exportStores fills the stores a report reads but the dashboard was not given with empty
// ones: the report then says what it misses.
func exportStores(st fleet.Stores) fleet.Stores {
	if st.Params == nil {
		st.Params = noParams{}
	}
	if st.Checkpoints == nil {
		st.Checkpoints = noCheckpoints{}
	}
	return st
}

var errReadOnly = errors.New("dashboard: the dashboard stores nothing")

type noParams struct{}

func (noParams) Publish(context.Context, string, string, uint64, []byte) error { return errReadOnly }
func (noParams) Fetch(context.Context, string, string, uint64) ([]byte, error) {
	return nil, fleet.ErrNotFound
}
func (noParams) Latest(context.Context, string, string) (uint64, error) { return 0, fleet.ErrNotFound }

type noCheckpoints struct{}

func (noCheckpoints) Save(context.Context, string, string, map[string][]byte) error {
	return errReadOnly
}
func (noCheckpoints) Load(context.Context, string, string) (map[string][]byte, error) {
	return nil, fleet.ErrNotFound
}
