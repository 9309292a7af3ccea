package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
)

// cancelRequest is the body of POST /ui/api/experiments/{id}/cancel.
type cancelRequest struct {
	Reason string `json:"reason"`
}

// drainRequest is the body of POST /ui/api/workers/{id}/drain.
type drainRequest struct {
	Drain bool `json:"drain"`
}

// actionResult is the answer to an action that the coordinator took.
type actionResult struct {
	OK bool `json:"ok"`
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request, sess *session) {
	id := r.PathValue("id")
	var req cancelRequest
	if err := decodeBody(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, "the request could not be read: "+err.Error())
		return
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = "cancelled from the dashboard"
	}
	if len(reason) > api.MaxReasonLength {
		writeErr(w, http.StatusBadRequest, "the reason is too long")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	err := s.cfg.Coordinator.Cancel(api.WithToken(ctx, sess.token), id, reason)
	s.answer(w, sess, err, "experiment cancelled", "experiment", id)
}

func (s *Server) drain(w http.ResponseWriter, r *http.Request, sess *session) {
	id := r.PathValue("id")
	var req drainRequest
	if err := decodeBody(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, "the request could not be read: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	err := s.cfg.Coordinator.Drain(api.WithToken(ctx, sess.token), id, req.Drain)
	what := "worker drained"
	if !req.Drain {
		what = "worker resumed"
	}
	s.answer(w, sess, err, what, "worker", id)
}

// answer reports the coordinator's answer to an action: its refusal with the matching status,
// or success (and a new snapshot at once).
func (s *Server) answer(w http.ResponseWriter, sess *session, err error, what, key, id string) {
	if err == nil {
		s.cfg.Logger.Info("dashboard: "+what, key, id, "role", sess.role)
		s.poke()
		writeJSON(w, http.StatusOK, actionResult{OK: true})
		return
	}
	s.cfg.Logger.Info("dashboard: action refused", key, id, "role", sess.role, "err", err)
	code := http.StatusBadGateway
	switch {
	case errors.Is(err, api.ErrForbidden):
		code = http.StatusForbidden
	case errors.Is(err, api.ErrUnauthorized):
		// The token no longer works (rotated): the session ends with it.
		s.sessions.remove(sess)
		code = http.StatusUnauthorized
	case errors.Is(err, api.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, api.ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, api.ErrUnavailable):
		code = http.StatusServiceUnavailable
	}
	writeErr(w, code, err.Error())
}
