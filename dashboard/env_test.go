package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/fleet"
	"github.com/optoloop/optoloop/live"
	"github.com/optoloop/optoloop/memstore"
	"github.com/optoloop/optoloop/results"
)

// tinyYAML is an experiment small enough to drive to its end by hand: 3 collect episodes, one
// training task, 3 evaluation episodes (agent, none, random) of one line.
const tinyYAML = `
name: dash
seed: 7
lines: ["446"]
arenas_per_line: 1
collect: { hours_per_line: 0.1, episode_seconds: 120, light_probability: 0.2 }
train: { ensemble_size: 1, updates: 20, checkpoint_every: 10 }
evaluate: { episodes_per_condition: 1, episode_seconds: 60 }
`

// env is a dashboard in front of a real in-process coordinator cluster and memory stores.
type env struct {
	t       testing.TB
	cluster *coordinatortest.Cluster
	cl      *api.Client // the cluster credential: what workers and learners use
	live    *memstore.Live
	tracks  *memstore.Tracks
	params  *memstore.Params
	checks  *memstore.Checkpoints
	srv     *Server
	http    *httptest.Server
	// offset moves the dashboard's clock ahead of the cluster's.
	offset atomic.Int64
}

type envOpts struct {
	nodes int
	tune  func(*Config)
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	if o.nodes == 0 {
		o.nodes = 1
	}
	e := &env{t: t, cluster: coordinatortest.New(t, o.nodes, nil), live: memstore.NewLive(), tracks: memstore.NewTracks(),
		params: memstore.NewParams(), checks: memstore.NewCheckpoints()}
	e.cl = e.cluster.Client(t)
	ccfg := e.cluster.ClientConfig()
	ccfg.Token = coordinatortest.ViewerToken
	ccfg.MaxAttempts = 6
	dcl, err := api.NewClient(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Coordinator = dcl
	cfg.Live = e.live
	cfg.Stores = fleet.Stores{Tracks: e.tracks, Params: e.params, Checkpoints: e.checks}
	cfg.WorkDir = t.TempDir()
	cfg.TraceURL = "http://jaeger.invalid/trace/{trace_id}"
	cfg.Poll = 50 * time.Millisecond
	cfg.Now = func() time.Time { return e.cluster.Clock().Now().Add(time.Duration(e.offset.Load())) }
	if o.tune != nil {
		o.tune(&cfg)
	}
	e.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx) }()
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		e.http.Close()
	})
	return e
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// browser is an HTTP client with a cookie jar, signed in (or not) to the dashboard.
type browser struct {
	e    *env
	hc   *http.Client
	csrf string
	role string
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &browser{e: e, hc: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// login signs in with token and learns the session's CSRF token; it fails the test unless
// the dashboard accepts the token.
func (e *env) login(token string) *browser {
	e.t.Helper()
	b := e.browser()
	resp := b.postForm("/ui/login", url.Values{TokenField: {token}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		e.t.Fatalf("login: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	var s sessionInfo
	b.getJSON("/ui/api/session", http.StatusOK, &s)
	b.csrf, b.role = s.CSRF, string(s.Role)
	return b
}

func (b *browser) do(req *http.Request) *http.Response {
	b.e.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	b.e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (b *browser) get(path string) *http.Response {
	b.e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.e.http.URL+path, nil)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) postForm(path string, v url.Values) *http.Response {
	b.e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.e.http.URL+path, strings.NewReader(v.Encode()))
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// postJSON posts v with the session's CSRF token (csrf false: without it).
func (b *browser) postJSON(path string, v any, csrf bool) *http.Response {
	b.e.t.Helper()
	body, _ := json.Marshal(v)
	req, err := http.NewRequest(http.MethodPost, b.e.http.URL+path, bytes.NewReader(body))
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if csrf {
		req.Header.Set(CSRFHeader, b.csrf)
	}
	return b.do(req)
}

func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (b *browser) getJSON(path string, code int, v any) {
	b.e.t.Helper()
	resp := b.get(path)
	body := readAll(b.e.t, resp.Body)
	if resp.StatusCode != code {
		b.e.t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			b.e.t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
}

func (b *browser) snapshot() Snapshot {
	b.e.t.Helper()
	var s Snapshot
	b.getJSON("/ui/api/snapshot", http.StatusOK, &s)
	return s
}

// waitSnapshot polls the snapshot until cond holds (the dashboard rebuilds it every Poll).
func (b *browser) waitSnapshot(what string, cond func(Snapshot) bool) Snapshot {
	b.e.t.Helper()
	var s Snapshot
	coordinatortest.WaitFor(b.e.t, 30*time.Second, what, func() bool {
		s = b.snapshot()
		return cond(s)
	})
	return s
}

func arenaOf(s Snapshot, id string) (Arena, bool) {
	for _, a := range s.Arenas {
		if a.ID == id {
			return a, true
		}
	}
	return Arena{}, false
}

func experimentOf(s Snapshot, id string) (Experiment, bool) {
	for _, x := range s.Experiments {
		if x.ID == id {
			return x, true
		}
	}
	return Experiment{}, false
}

// stream is an open GET /ui/events.
type stream struct {
	t    testing.TB
	resp *http.Response
	rd   *bufio.Reader
}

func (b *browser) events() *stream {
	b.e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.e.http.URL+"/ui/events", nil)
	if err != nil {
		b.e.t.Fatal(err)
	}
	hc := *b.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	b.e.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b.e.t.Fatalf("events: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	return &stream{t: b.e.t, resp: resp, rd: bufio.NewReaderSize(resp.Body, 1<<20)}
}

// next returns the next event's name and data, or a comment as ("comment", text); io.EOF
// when the stream ended.
func (s *stream) next() (string, string, error) {
	name, data := "", ""
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if name != "" || data != "" {
				return name, data, nil
			}
		case strings.HasPrefix(line, ":"):
			return "comment", strings.TrimSpace(line[1:]), nil
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data += line[len("data: "):]
		}
	}
}

// snapshot reads events until a snapshot for which cond holds (failing after timeout).
func (s *stream) snapshot(what string, timeout time.Duration, cond func(Snapshot) bool) Snapshot {
	s.t.Helper()
	type got struct {
		snap Snapshot
		err  error
	}
	ch := make(chan got, 1)
	go func() {
		for {
			name, data, err := s.next()
			if err != nil {
				ch <- got{err: err}
				return
			}
			if name != "snapshot" {
				continue
			}
			var snap Snapshot
			if err := json.Unmarshal([]byte(data), &snap); err != nil {
				ch <- got{err: err}
				return
			}
			if cond(snap) {
				ch <- got{snap: snap}
				return
			}
		}
	}()
	select {
	case g := <-ch:
		if g.err != nil {
			s.t.Fatalf("events, waiting for %s: %v", what, g.err)
		}
		return g.snap
	case <-time.After(timeout):
		s.resp.Body.Close()
		s.t.Fatalf("events: no snapshot with %s within %v", what, timeout)
	}
	return Snapshot{}
}

// registerWorker registers worker id on arena arena (line 446).
func (e *env) registerWorker(id, arena string) {
	e.t.Helper()
	if err := e.cl.RegisterWorker(e.ctx(), api.RegisterWorkerCmd{ID: id, ArenaID: arena, Line: "446", Calibration: []byte(`{"px_per_cm":100}`)}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) submit(yaml string) string {
	e.t.Helper()
	id, err := e.cl.Submit(e.ctx(), []byte(yaml))
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// jpegOf encodes a w x h JPEG of one colour.
func jpegOf(t testing.TB, w, h int, c color.RGBA) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (e *env) putTile(tile live.Tile, jpg []byte, ttl time.Duration) {
	e.t.Helper()
	if tile.At.IsZero() {
		tile.At = time.Now()
	}
	if tile.State == "" {
		tile.State = live.StateRunning
	}
	if err := e.live.PutTile(e.ctx(), tile, jpg, ttl); err != nil {
		e.t.Fatal(err)
	}
}

// trackFor is a track of frames along a spiral towards the target, the light on in every
// third frame and the worm lost for two frames.
func trackFor(id string, frames int) results.Episode {
	e := results.Episode{ID: id, Condition: episode.KindAgent, Line: "446", Seconds: float64(frames) / 3, PxPerCM: 100,
		PlateCenter: [2]float64{500, 500}, PlateRadius: 450, Target: [2]float64{650, 500}, ClosestCM: 0.4, LightFraction: 0.33,
		FinalDistanceCM: 0.4}
	for i := range frames {
		a := float64(i) / 10
		r := 300 * (1 - float64(i)/float64(frames+1))
		e.Frames = append(e.Frames, results.Frame{T: float64(i) / 3, X: 650 - r*math.Cos(a), Y: 500 + r*math.Sin(a), Light: i%3 == 0,
			OK: i != 5 && i != 6, Body: a, Head: a / 2})
	}
	return e
}

// drive runs every item of experiment id to done by hand, as a worker (w-drive on arena
// a-drive) and a learner (l-drive) would, storing each episode's track: the experiment ends
// done.
func (e *env) drive(id string) {
	e.t.Helper()
	ctx := e.ctx()
	e.registerWorker("w-drive", "a-drive")
	if err := e.cl.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l-drive"}); err != nil {
		e.t.Fatal(err)
	}
	coordinatortest.WaitFor(e.t, 60*time.Second, "experiment "+id+" done", func() bool {
		it, err := e.cl.Lease(ctx, api.LeaseRequest{Holder: "w-drive", Type: plan.TypeEpisode})
		if err != nil {
			e.t.Fatal(err)
		}
		if it != nil {
			tr := trackFor(it.ID, 40)
			if err := e.tracks.Put(ctx, it.ExperimentID, it.Token, tr); err != nil {
				e.t.Fatal(err)
			}
			t05 := 3.5
			out := episode.Outcome{Seconds: 13, ClosestCM: 0.4 + float64(it.N)/10, TimeTo05cmS: &t05, FinalDistanceCM: 0.5, MeanSpeedMMs: 0.1,
				LightFraction: 0.3, Frames: 40, PolicyVersion: it.PolicyVersion}
			if _, err := e.cl.Report(ctx, api.ReportCmd{Holder: "w-drive", ItemID: it.ID, Token: it.Token, Outcome: &out}); err != nil {
				e.t.Fatal(err)
			}
			return false
		}
		task, err := e.cl.Lease(ctx, api.LeaseRequest{Holder: "l-drive", Type: plan.TypeTrain})
		if err != nil {
			e.t.Fatal(err)
		}
		if task != nil {
			if _, err := e.cl.Report(ctx, api.ReportCmd{Holder: "l-drive", ItemID: task.ID, Token: task.Token, PolicyVersion: 1}); err != nil {
				e.t.Fatal(err)
			}
			return false
		}
		v, err := e.cl.Experiment(ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if v.Experiment.Status == plan.StatusFailed {
			e.t.Fatalf("experiment failed: %s", v.Experiment.Reason)
		}
		return v.Experiment.Status == plan.StatusDone
	})
}
