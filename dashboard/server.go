package dashboard

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed ui/index.html ui/app.css ui/app.js
var uiFiles embed.FS

//go:embed templates/*.html
var templateFiles embed.FS

// Server is the dashboard: its handler serves the page and its API, Run keeps the shared
// snapshot fresh while pages watch. Safe for concurrent use.
type Server struct {
	cfg      Config
	ui       fs.FS
	pages    *template.Template
	sessions *sessions
	reports  *reports

	// buildMu serializes builds; poller is used only under it.
	buildMu sync.Mutex
	poller  *poller

	mu       sync.Mutex
	snap     *Snapshot
	snapJSON []byte
	subs     map[*subscriber]struct{}

	wake    chan struct{}
	force   atomic.Bool
	done    chan struct{}
	running atomic.Bool
}

var errAlreadyRunning = errors.New("dashboard: server is already running")

type subscriber struct {
	// ch holds the newest snapshot not yet sent (one at most: a slow client skips snapshots
	// instead of buffering them).
	ch chan []byte
}

// New checks cfg and returns a server; zero fields of cfg take DefaultConfig's values.
func New(cfg Config) (*Server, error) {
	d := DefaultConfig()
	cfg.Poll, cfg.LostAfter, cfg.Heartbeat, cfg.SessionIdle = cmp.Or(cfg.Poll, d.Poll), cmp.Or(cfg.LostAfter, d.LostAfter),
		cmp.Or(cfg.Heartbeat, d.Heartbeat), cmp.Or(cfg.SessionIdle, d.SessionIdle)
	cfg.CurvePoints, cfg.FinishedExperiments, cfg.FrameRows = cmp.Or(cfg.CurvePoints, d.CurvePoints),
		cmp.Or(cfg.FinishedExperiments, d.FinishedExperiments), cmp.Or(cfg.FrameRows, d.FrameRows)
	cfg.MaxSessions, cfg.MaxStreams = cmp.Or(cfg.MaxSessions, d.MaxSessions), cmp.Or(cfg.MaxStreams, d.MaxStreams)
	if cfg.Logger == nil {
		cfg.Logger = d.Logger
	}
	if cfg.Now == nil {
		cfg.Now = d.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ui, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		return nil, err
	}
	pages, err := template.New("").Funcs(templateFuncs).ParseFS(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, ui: ui, pages: pages,
		sessions: newSessions(cfg.MaxSessions, cfg.SessionIdle, cfg.Now),
		reports:  newReports(cfg.WorkDir),
		poller:   newPoller(cfg), subs: map[*subscriber]struct{}{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// Run rebuilds the shared snapshot every Poll while at least one event stream is open, and
// pushes each to the streams. It returns nil when ctx ends, after which the open streams end
// too (an http.Server's Shutdown does not end them itself). It may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errAlreadyRunning
	}
	defer close(s.done)
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
		if s.streams() == 0 {
			continue
		}
		age := s.cfg.Poll / 2
		if s.force.Swap(false) {
			age = 0
		}
		s.rebuild(ctx, age)
	}
}

// poke asks Run for a new snapshot now (after an action changed the cluster).
func (s *Server) poke() {
	s.force.Store(true)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Server) streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// current returns the encoded snapshot, building a new one when the last is older than
// maxAge. Concurrent callers share one build. A build a request asked for is bounded by its
// own timeouts and is not ended by the request ending, so that a closed page never leaves a
// half-read snapshot to the others.
func (s *Server) current(ctx context.Context, maxAge time.Duration) []byte {
	return s.rebuild(context.WithoutCancel(ctx), maxAge)
}

// rebuild is current without detaching from ctx: Run's builds end with Run. A build that ctx
// ended is not kept.
func (s *Server) rebuild(ctx context.Context, maxAge time.Duration) []byte {
	if b := s.fresh(maxAge); b != nil {
		return b
	}
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	if b := s.fresh(maxAge); b != nil {
		return b
	}
	snap := s.poller.build(ctx)
	b, err := json.Marshal(snap)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		// Every number that may not be finite is a Num: an error here is a bug.
		s.cfg.Logger.Error("dashboard: encode snapshot", "err", err)
		return s.snapJSON
	case ctx.Err() != nil:
		return s.snapJSON
	}
	s.snap, s.snapJSON = snap, b
	for sub := range s.subs {
		select {
		case sub.ch <- b:
		default:
			// Only this (serialized) build sends: once the stale snapshot is taken out, the
			// new one fits.
			select {
			case <-sub.ch:
			default:
			}
			select {
			case sub.ch <- b:
			default:
			}
		}
	}
	return b
}

func (s *Server) fresh(maxAge time.Duration) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap != nil && maxAge > 0 && s.cfg.Now().Sub(s.snap.At) < maxAge {
		return s.snapJSON
	}
	return nil
}

// subscribe adds an event stream (false when MaxStreams are open).
func (s *Server) subscribe() (*subscriber, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.subs) >= s.cfg.MaxStreams {
		return nil, false
	}
	sub := &subscriber{ch: make(chan []byte, 1)}
	s.subs[sub] = struct{}{}
	return sub, true
}

func (s *Server) unsubscribe(sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, sub)
}

// Handler serves everything under /ui/ and redirects / to /ui/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", redirect("/ui/"))
	mux.HandleFunc("GET /ui", redirect("/ui/"))
	// The pages name no icon; a browser that asks anyway (the report's page) gets none
	// rather than a 404 in its console.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /ui/{$}", s.page(s.index))
	mux.HandleFunc("GET /ui/app.css", s.static("app.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET /ui/app.js", s.static("app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /ui/login", s.loginForm)
	mux.HandleFunc("POST /ui/login", s.login)
	mux.HandleFunc("POST /ui/logout", s.logout)
	mux.HandleFunc("GET /ui/api/session", s.api(s.getSession))
	mux.HandleFunc("GET /ui/api/snapshot", s.api(s.getSnapshot))
	mux.HandleFunc("GET /ui/events", s.api(s.events))
	mux.HandleFunc("GET /ui/thumb/{arena}", s.api(s.thumbnail))
	mux.HandleFunc("POST /ui/api/experiments/{id}/cancel", s.action(s.cancel))
	mux.HandleFunc("POST /ui/api/workers/{id}/drain", s.action(s.drain))
	mux.HandleFunc("GET /ui/episodes/{item}", s.page(s.episodePage))
	mux.HandleFunc("GET /ui/api/episodes/{item}/track.json", s.api(s.trackJSON))
	mux.HandleFunc("GET /ui/experiments/{id}/report", s.page(func(w http.ResponseWriter, r *http.Request, _ *session) {
		http.Redirect(w, r, reportURL(r.PathValue("id")), http.StatusMovedPermanently)
	}))
	mux.HandleFunc("GET /ui/experiments/{id}/report/{path...}", s.page(s.report))
	cop := http.NewCrossOriginProtection()
	return headers(cop.Handler(mux))
}

// headers sets the headers every response carries: no sniffing, no framing, no referrer,
// and a content security policy allowing only this origin's scripts, styles and images (and
// the thumbnails' blob: URLs).
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.ServeHTTP(w, r)
	})
}

func redirect(to string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusSeeOther) }
}

func (s *Server) static(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(s.ui, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	}
}

func (s *Server) index(w http.ResponseWriter, r *http.Request, _ *session) {
	b, err := fs.ReadFile(s.ui, "index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// errorBody is the JSON of a refused API call.
type errorBody struct {
	Error string `json:"error"`
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request, _ *session) {
	b := s.current(r.Context(), s.cfg.Poll)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// events streams snapshots as server-sent events: "snapshot" events whose data is the
// snapshot's JSON (the current one at once, then each new one), and a comment every
// Heartbeat. A client that reads slowly skips snapshots; one that stops reading for
// 2 x Heartbeat is dropped (the browser reconnects). The stream ends with the session.
func (s *Server) events(w http.ResponseWriter, r *http.Request, sess *session) {
	sub, ok := s.subscribe()
	if !ok {
		writeErr(w, http.StatusServiceUnavailable, "too many event streams are open")
		return
	}
	defer s.unsubscribe(sub)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(parts ...[]byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(2 * s.cfg.Heartbeat))
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	event := func(b []byte) bool {
		return send([]byte("event: snapshot\ndata: "), b, []byte("\n\n"))
	}
	if !send([]byte("retry: 2000\n\n")) || !event(s.current(r.Context(), s.cfg.Poll)) {
		return
	}
	hb := time.NewTicker(s.cfg.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case b := <-sub.ch:
			if !s.sessions.alive(sess) || !event(b) {
				return
			}
		case <-hb.C:
			if !s.sessions.alive(sess) || !send([]byte(": keep-alive\n\n")) {
				return
			}
		}
	}
}
