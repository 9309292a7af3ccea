package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/telemetry"
)

// maxPlotFrames bounds the frames drawn in an episode's plot (a longer track is thinned).
const maxPlotFrames = 20000

var templateFuncs = template.FuncMap{
	"f1":  func(v float64) string { return fmtNum(v, 1) },
	"f2":  func(v float64) string { return fmtNum(v, 2) },
	"f3":  func(v float64) string { return fmtNum(v, 3) },
	"esc": url.PathEscape,
}

func fmtNum(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// render executes a page template into a buffer first, so that a failing template never
// sends half a page.
func (s *Server) render(w http.ResponseWriter, code int, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.cfg.Logger.Error("dashboard: render", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// episodeData is the episode page's template data.
type episodeData struct {
	Item  api.Item
	Error string
	// Track is the stored track (nil: TrackNote says why there is none).
	Track     *results.Episode
	TrackNote string
	Plot      *plot
	Metrics   []metric
	// TraceID is the item's trace id (hex); TraceURL the link to it (empty without
	// Config.TraceURL).
	TraceID  string
	TraceURL string
	Frames   []results.Frame
	// FramesTotal is the track's frame count (Frames holds the first FrameRows).
	FramesTotal int
	JSONURL     string
}

type metric struct{ Name, Value string }

// plot is the SVG of an episode: the plate, the trajectory (broken where the worm was not
// tracked), the light-on stretches drawn over it, the target and its 0.5 cm circle.
type plot struct {
	ViewBox                  string
	PlateX, PlateY, PlateR   string
	TargetX, TargetY, HalfCM string
	Stroke                   string
	Path, Lit                []string
	StartX, StartY           string
	EndX, EndY               string
}

// trackOf reads the track of an item's accepted attempt, or else of its current (or last)
// lease. It returns the note to show when there is none.
func trackOf(ctx context.Context, tracks fleet.Tracks, it api.Item) (*results.Episode, string, error) {
	if it.Type == plan.TypeTrain {
		return nil, "a training task has no track: its learning curves are on the dashboard", nil
	}
	token := it.Token
	if it.Result != nil {
		token = it.Result.Token
	}
	if token == 0 {
		return nil, "the episode has not been leased yet", nil
	}
	e, err := tracks.Get(ctx, it.ExperimentID, it.ID, token)
	switch {
	case errors.Is(err, fleet.ErrNotFound):
		if it.State == api.StateLeased {
			return nil, "the track is stored when the running attempt ends", nil
		}
		return nil, "no track is stored for this attempt", nil
	case err != nil:
		return nil, "", err
	}
	return &e, "", nil
}

func (s *Server) episodePage(w http.ResponseWriter, r *http.Request, _ *session) {
	id := r.PathValue("item")
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	it, err := s.cfg.Coordinator.Item(ctx, id)
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, api.ErrNotFound) {
			code = http.StatusNotFound
		}
		s.render(w, code, "episode.html", episodeData{Item: api.Item{ID: id}, Error: err.Error()})
		return
	}
	d := episodeData{Item: it, TraceID: telemetry.EpisodeTraceID(it.ID).String(),
		JSONURL: "/ui/api/episodes/" + url.PathEscape(it.ID) + "/track.json"}
	if s.cfg.TraceURL != "" {
		d.TraceURL = strings.ReplaceAll(s.cfg.TraceURL, "{trace_id}", d.TraceID)
	}
	track, note, err := trackOf(ctx, s.cfg.Stores.Tracks, it)
	if err != nil {
		d.TrackNote = "the track could not be read: " + err.Error()
	} else {
		d.Track, d.TrackNote = track, note
	}
	d.Metrics = metrics(it, track)
	if track != nil {
		d.Plot = plotOf(track)
		d.FramesTotal = len(track.Frames)
		d.Frames = track.Frames[:min(len(track.Frames), s.cfg.FrameRows)]
	}
	s.render(w, http.StatusOK, "episode.html", d)
}

// metrics lists the accepted outcome's numbers, else the track's.
func metrics(it api.Item, e *results.Episode) []metric {
	var out []metric
	add := func(name, v string) { out = append(out, metric{name, v}) }
	// distances adds what the outcome and the track both hold.
	distances := func(closest float64, t05 *float64, final, light, lost float64) {
		add("closest approach (cm)", fmtNum(closest, 3))
		if t05 != nil {
			add("time to 0.5 cm (s)", fmtNum(*t05, 1))
		} else {
			add("time to 0.5 cm (s)", "never")
		}
		add("final distance (cm)", fmtNum(final, 3))
		add("light on (fraction of steps)", fmtNum(light, 3))
		add("not tracked (fraction of steps)", fmtNum(lost, 3))
	}
	if it.Result != nil && it.Result.Outcome != nil {
		o := it.Result.Outcome
		distances(o.ClosestCM, o.TimeTo05cmS, o.FinalDistanceCM, o.LightFraction, o.LostFraction)
		add("mean speed (mm/s)", fmtNum(o.MeanSpeedMMs, 3))
		add("tracked span (s)", fmtNum(o.Seconds, 1))
		add("control steps", strconv.Itoa(o.Frames))
		add("policy version", strconv.FormatUint(o.PolicyVersion, 10))
		return out
	}
	if e == nil {
		return nil
	}
	distances(e.ClosestCM, e.TimeTo05cmS, e.FinalDistanceCM, e.LightFraction, e.LostFraction)
	add("length (s)", fmtNum(e.Seconds, 1))
	return out
}

func plotOf(e *results.Episode) *plot {
	frames := e.Frames
	if len(frames) > maxPlotFrames {
		step := (len(frames) + maxPlotFrames - 1) / maxPlotFrames
		thin := make([]results.Frame, 0, maxPlotFrames+1)
		for i := 0; i < len(frames); i += step {
			thin = append(thin, frames[i])
		}
		frames = thin
	}
	cx, cy, r := e.PlateCenter[0], e.PlateCenter[1], e.PlateRadius
	if r <= 0 {
		// No plate geometry: frame the track and the target.
		minX, minY, maxX, maxY := e.Target[0], e.Target[1], e.Target[0], e.Target[1]
		for _, f := range frames {
			if f.OK {
				minX, minY, maxX, maxY = min(minX, f.X), min(minY, f.Y), max(maxX, f.X), max(maxY, f.Y)
			}
		}
		cx, cy, r = (minX+maxX)/2, (minY+maxY)/2, max(maxX-minX, maxY-minY, 1)/2
	}
	n := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	m := r * 1.05
	p := &plot{ViewBox: fmt.Sprintf("%s %s %s %s", n(cx-m), n(cy-m), n(2*m), n(2*m)),
		PlateX: n(cx), PlateY: n(cy), PlateR: n(r), TargetX: n(e.Target[0]), TargetY: n(e.Target[1]),
		HalfCM: n(0.5 * e.PxPerCM), Stroke: strconv.FormatFloat(max(r/150, 0.5), 'f', 2, 64)}
	var path, lit strings.Builder
	flush := func(b *strings.Builder, to *[]string) {
		if b.Len() > 0 {
			*to = append(*to, b.String())
			b.Reset()
		}
	}
	pt := func(b *strings.Builder, f results.Frame) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n(f.X) + "," + n(f.Y))
	}
	first := true
	for i, f := range frames {
		if !f.OK {
			flush(&path, &p.Path)
			flush(&lit, &p.Lit)
			continue
		}
		if first {
			p.StartX, p.StartY, first = n(f.X), n(f.Y), false
		}
		p.EndX, p.EndY = n(f.X), n(f.Y)
		pt(&path, f)
		// The light chosen after frame i is on until frame i+1.
		if f.Light && i+1 < len(frames) && frames[i+1].OK {
			if lit.Len() == 0 {
				pt(&lit, f)
			}
			pt(&lit, frames[i+1])
		} else {
			flush(&lit, &p.Lit)
		}
	}
	flush(&path, &p.Path)
	flush(&lit, &p.Lit)
	return p
}

func (s *Server) trackJSON(w http.ResponseWriter, r *http.Request, _ *session) {
	id := r.PathValue("item")
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	it, err := s.cfg.Coordinator.Item(ctx, id)
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, api.ErrNotFound) {
			code = http.StatusNotFound
		}
		writeErr(w, code, err.Error())
		return
	}
	track, note, err := trackOf(ctx, s.cfg.Stores.Tracks, it)
	switch {
	case err != nil:
		writeErr(w, http.StatusBadGateway, err.Error())
		return
	case track == nil:
		writeErr(w, http.StatusNotFound, note)
		return
	}
	b, err := json.Marshal(track)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}
