package dashboard

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
)

// Names of the session cookie, the CSRF header and the login form's field.
const (
	CookieName = "optoloop_session"
	CSRFHeader = "X-CSRF-Token"
	TokenField = "token"
)

// maxLoginBytes bounds a login form; maxActionBytes an action's JSON body.
const (
	maxLoginBytes  = 8 << 10
	maxActionBytes = 16 << 10
)

// session is a signed-in user: the role the coordinator gave their token, the token itself
// (forwarded with their actions; never logged, never sent to the page) and the CSRF token the
// page sends with every state-changing call.
type session struct {
	id    string
	role  api.Role
	token string
	csrf  string
	used  time.Time
	elem  *list.Element
}

// String and LogValue keep a session's secrets out of anything that prints it.
func (s *session) String() string { return "session(" + string(s.role) + ")" }

// LogValue implements slog.LogValuer.
func (s *session) LogValue() slog.Value { return slog.StringValue(s.String()) }

// sessions are kept in memory: a restarted dashboard asks everyone to sign in again. The
// least recently used goes first when MaxSessions are kept; one idle for SessionIdle ends.
type sessions struct {
	max  int
	idle time.Duration
	now  func() time.Time

	mu  sync.Mutex
	m   map[string]*session
	lru *list.List // front: most recently used
}

func newSessions(max int, idle time.Duration, now func() time.Time) *sessions {
	return &sessions{max: max, idle: idle, now: now, m: map[string]*session{}, lru: list.New()}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (ss *sessions) create(role api.Role, token string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for ss.lru.Len() >= ss.max {
		ss.removeLocked(ss.lru.Back().Value.(*session))
	}
	s := &session{id: randomHex(32), role: role, token: token, csrf: randomHex(32), used: ss.now()}
	s.elem = ss.lru.PushFront(s)
	ss.m[s.id] = s
	return s
}

func (ss *sessions) removeLocked(s *session) {
	if cur, ok := ss.m[s.id]; ok && cur == s {
		delete(ss.m, s.id)
		ss.lru.Remove(s.elem)
	}
}

// get returns the live session of id, marking it used.
func (ss *sessions) get(id string) (*session, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[id]
	if !ok {
		return nil, false
	}
	now := ss.now()
	if now.Sub(s.used) > ss.idle {
		ss.removeLocked(s)
		return nil, false
	}
	s.used = now
	ss.lru.MoveToFront(s.elem)
	return s, true
}

// alive reports whether s has not ended (signed out, replaced or idle too long).
func (ss *sessions) alive(s *session) bool {
	cur, ok := ss.get(s.id)
	return ok && cur == s
}

func (ss *sessions) remove(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.removeLocked(s)
}

func (ss *sessions) len() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.m)
}

// fromRequest returns the request's session, if its cookie names a live one.
func (s *Server) fromRequest(r *http.Request) (*session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return nil, false
	}
	return s.sessions.get(c.Value)
}

// page wraps a page handler: without a session the browser goes to the login form.
func (s *Server) page(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.fromRequest(r)
		if !ok {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		h(w, r, sess)
	}
}

// api wraps a read of the page's API: without a session it is refused with 401.
func (s *Server) api(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.fromRequest(r)
		if !ok {
			writeErr(w, http.StatusUnauthorized, "not signed in")
			return
		}
		h(w, r, sess)
	}
}

// action wraps a state-changing call: it needs a session, the session's CSRF token in the
// X-CSRF-Token header and an operator's (or the cluster's) role. The coordinator checks the
// role again: the call carries the user's own token.
func (s *Server) action(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return s.api(func(w http.ResponseWriter, r *http.Request, sess *session) {
		if !validCSRF(sess, r.Header.Get(CSRFHeader)) {
			writeErr(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
			return
		}
		if !sess.role.Allows(api.RoleOperator) {
			writeErr(w, http.StatusForbidden, "a "+string(sess.role)+" may only watch: sign in with an operator token to act")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxActionBytes)
		h(w, r, sess)
	})
}

func validCSRF(sess *session, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) == 1
}

type loginData struct {
	Error string
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.fromRequest(r); ok {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "login.html", loginData{})
}

// login signs a user in with a coordinator token: the coordinator says whose it is (WhoAmI
// with that token), and any role gets a session. A wrong token gets the form again, with 401.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBytes)
	if err := r.ParseForm(); err != nil {
		s.render(w, http.StatusBadRequest, "login.html", loginData{Error: "the form could not be read"})
		return
	}
	token := strings.TrimSpace(r.PostForm.Get(TokenField))
	if token == "" {
		s.render(w, http.StatusUnauthorized, "login.html", loginData{Error: "enter a token"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	who, err := s.cfg.Coordinator.WhoAmI(api.WithToken(ctx, token))
	switch {
	case errors.Is(err, api.ErrUnauthorized) || errors.Is(err, api.ErrForbidden):
		s.render(w, http.StatusUnauthorized, "login.html", loginData{Error: "the coordinator does not know that token"})
		return
	case err != nil:
		s.cfg.Logger.Warn("dashboard: login: coordinator", "err", err)
		s.render(w, http.StatusServiceUnavailable, "login.html", loginData{Error: "the coordinator could not be asked: " + err.Error()})
		return
	case !who.Role.Allows(api.RoleViewer):
		s.render(w, http.StatusUnauthorized, "login.html", loginData{Error: "the coordinator gave that token no known role"})
		return
	}
	if old, ok := s.fromRequest(r); ok {
		s.sessions.remove(old)
	}
	sess := s.sessions.create(who.Role, token)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: sess.id, Path: "/ui/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode})
	s.cfg.Logger.Info("dashboard: signed in", "role", who.Role)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// logout ends the session (its CSRF token in the header or the form's csrf field) and goes
// to the login form.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBytes)
	sess, ok := s.fromRequest(r)
	if ok {
		got := r.Header.Get(CSRFHeader)
		if got == "" {
			_ = r.ParseForm()
			got = r.PostForm.Get("csrf")
		}
		if !validCSRF(sess, got) {
			writeErr(w, http.StatusForbidden, "missing or wrong CSRF token")
			return
		}
		s.sessions.remove(sess)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/ui/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// sessionInfo is what the page learns of its session.
type sessionInfo struct {
	Role     api.Role `json:"role"`
	Operator bool     `json:"operator"`
	CSRF     string   `json:"csrf"`
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request, sess *session) {
	writeJSON(w, http.StatusOK, sessionInfo{Role: sess.role, Operator: sess.role.Allows(api.RoleOperator), CSRF: sess.csrf})
}
