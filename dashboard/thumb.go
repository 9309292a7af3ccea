package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/optoloop/optoloop/live"
)

// thumbnail serves an arena's JPEG (Cache-Control: no-store) and 404 when it has none or it
// expired. With ?soft=1 a missing thumbnail is 204 No Content instead: the page fetches
// thumbnails that way, because a browser logs every 404 in its console.
func (s *Server) thumbnail(w http.ResponseWriter, r *http.Request, _ *session) {
	arena := r.PathValue("arena")
	soft := r.URL.Query().Get("soft") == "1"
	w.Header().Set("Cache-Control", "no-store")
	if arena == "" || len(arena) > 256 {
		writeErr(w, http.StatusBadRequest, "bad arena id")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	b, err := s.cfg.Live.Thumbnail(ctx, arena)
	if err == nil && len(b) == 0 {
		err = live.ErrNotFound
	}
	if err != nil {
		code := http.StatusNotFound
		if !errors.Is(err, live.ErrNotFound) {
			code = http.StatusBadGateway
			s.cfg.Logger.Debug("dashboard: thumbnail", "arena", arena, "err", err)
		}
		if soft {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeErr(w, code, "no thumbnail for arena "+arena)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}
