package dashboard

import (
	"encoding/json"
	"fmt"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/live"
	"github.com/optoloop/optoloop/memstore"
	"github.com/optoloop/optoloop/telemetry"
)

func TestConfigValidate(t *testing.T) {
	cl, err := api.NewClient(api.DefaultClientConfig("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	good := func() Config {
		c := DefaultConfig()
		c.Coordinator, c.Live, c.WorkDir = cl, memstore.NewLive(), t.TempDir()
		c.Stores.Tracks = memstore.NewTracks()
		return c
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tt := range []struct {
		name string
		edit func(*Config)
	}{
		{"no coordinator", func(c *Config) { c.Coordinator = nil }},
		{"no live reader", func(c *Config) { c.Live = nil }},
		{"no tracks", func(c *Config) { c.Stores.Tracks = nil }},
		{"no work dir", func(c *Config) { c.WorkDir = "" }},
		{"trace url without placeholder", func(c *Config) { c.TraceURL = "http://jaeger/trace/" }},
		{"poll too short", func(c *Config) { c.Poll = time.Millisecond }},
		{"lost after zero", func(c *Config) { c.LostAfter = -time.Second }},
		{"one curve point", func(c *Config) { c.CurvePoints = 1 }},
		{"no sessions", func(c *Config) { c.MaxSessions = 0 }},
		{"no logger", func(c *Config) { c.Logger = nil }},
		{"no clock", func(c *Config) { c.Now = nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.edit(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestLoginAndLogout(t *testing.T) {
	e := newEnv(t, envOpts{})
	anon := e.browser()
	// Without a session: pages go to the form, the API answers 401.
	if resp := anon.get("/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("/: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	if resp := anon.get("/ui/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("/ui/ signed out: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/ui/api/snapshot", "/ui/api/session", "/ui/events", "/ui/thumb/a1"} {
		if resp := anon.get(p); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s signed out: %s", p, resp.Status)
		}
	}
	if resp := anon.get("/ui/login"); resp.StatusCode != http.StatusOK || !strings.Contains(readAll(t, resp.Body), `name="token"`) {
		t.Fatalf("login form: %s", resp.Status)
	}
	// Wrong tokens: the form again, one line saying so, 401, no cookie.
	for _, tok := range []string{"not-a-token", ""} {
		resp := anon.postForm("/ui/login", url.Values{TokenField: {tok}})
		body := readAll(t, resp.Body)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `id="login-error"`) || len(resp.Cookies()) != 0 {
			t.Fatalf("token %q: %s, cookies %v: %s", tok, resp.Status, resp.Cookies(), body)
		}
		if tok != "" && strings.Contains(body, tok) {
			t.Fatal("the refused token is echoed in the page")
		}
	}
	for _, tt := range []struct {
		token string
		role  api.Role
	}{{coordinatortest.ViewerToken, api.RoleViewer}, {coordinatortest.OperatorToken, api.RoleOperator}, {coordinatortest.Token, api.RoleAdmin}} {
		t.Run(string(tt.role), func(t *testing.T) {
			b := e.browser()
			resp := b.postForm("/ui/login", url.Values{TokenField: {tt.token}})
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("login: %s", resp.Status)
			}
			var c *http.Cookie
			for _, k := range resp.Cookies() {
				if k.Name == CookieName {
					c = k
				}
			}
			if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || len(c.Value) != 64 || strings.Contains(c.Value, tt.token) {
				t.Fatalf("session cookie %+v", c)
			}
			var s sessionInfo
			b.getJSON("/ui/api/session", http.StatusOK, &s)
			if s.Role != tt.role || s.Operator != tt.role.Allows(api.RoleOperator) || len(s.CSRF) != 64 {
				t.Fatalf("session %+v", s)
			}
			b.csrf = s.CSRF
			page := b.get("/ui/")
			body := readAll(t, page.Body)
			if page.StatusCode != http.StatusOK || !strings.Contains(body, `id="arenas"`) || strings.Contains(body, tt.token) {
				t.Fatalf("page: %s", page.Status)
			}
			if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Fatalf("page CSP %q", csp)
			}
			// The session never shows the token.
			raw := readAll(t, b.get("/ui/api/session").Body)
			if strings.Contains(raw, tt.token) {
				t.Fatal("the session's JSON holds the token")
			}
			// Logging out needs the CSRF token.
			if resp := b.postForm("/ui/logout", nil); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("logout without csrf: %s", resp.Status)
			}
			b.getJSON("/ui/api/session", http.StatusOK, nil)
			if resp := b.postJSON("/ui/logout", struct{}{}, true); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
				t.Fatalf("logout: %s", resp.Status)
			}
			b.getJSON("/ui/api/session", http.StatusUnauthorized, nil)
			// The old cookie is dead even when sent again by hand.
			req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/ui/api/snapshot", nil)
			req.AddCookie(&http.Cookie{Name: CookieName, Value: c.Value})
			if resp := anon.do(req); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("old cookie after logout: %s", resp.Status)
			}
		})
	}
}

func TestSessionsExpireAndAreBounded(t *testing.T) {
	e := newEnv(t, envOpts{tune: func(c *Config) { c.MaxSessions = 2; c.SessionIdle = time.Hour }})
	a := e.login(coordinatortest.ViewerToken)
	b := e.login(coordinatortest.ViewerToken)
	a.getJSON("/ui/api/session", http.StatusOK, nil) // a is now the most recently used
	c := e.login(coordinatortest.ViewerToken)
	b.getJSON("/ui/api/session", http.StatusUnauthorized, nil)
	a.getJSON("/ui/api/session", http.StatusOK, nil)
	c.getJSON("/ui/api/session", http.StatusOK, nil)
	if n := e.srv.sessions.len(); n != 2 {
		t.Fatalf("%d sessions kept, want 2", n)
	}
	e.offset.Add(int64(2 * time.Hour))
	a.getJSON("/ui/api/session", http.StatusUnauthorized, nil)
}

func TestViewerCannotActOperatorCan(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.submit(tinyYAML)
	e.registerWorker("w1", "a1")
	viewer := e.login(coordinatortest.ViewerToken)
	op := e.login(coordinatortest.OperatorToken)
	cancelPath := "/ui/api/experiments/" + url.PathEscape(id) + "/cancel"
	drainPath := "/ui/api/workers/w1/drain"

	running := func() bool {
		v, err := e.cl.Experiment(e.ctx(), id)
		if err != nil {
			t.Fatal(err)
		}
		return v.Experiment.Status == plan.StatusRunning
	}
	draining := func() bool {
		ws, err := e.cl.Workers(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if w.ID == "w1" {
				return w.Draining
			}
		}
		t.Fatal("worker w1 is not registered")
		return false
	}
	for _, tt := range []struct {
		name string
		b    *browser
		path string
		body any
		csrf bool
		want int
		// msg is in the refusal: the dashboard refuses a viewer itself, before the
		// coordinator would.
		msg string
	}{
		{"viewer cancels", viewer, cancelPath, cancelRequest{Reason: "viewer"}, true, http.StatusForbidden, "may only watch"},
		{"viewer drains", viewer, drainPath, drainRequest{Drain: true}, true, http.StatusForbidden, "may only watch"},
		{"operator cancels without csrf", op, cancelPath, cancelRequest{Reason: "no csrf"}, false, http.StatusForbidden, "CSRF"},
		{"operator drains without csrf", op, drainPath, drainRequest{Drain: true}, false, http.StatusForbidden, "CSRF"},
		{"operator sends an unknown field", op, cancelPath, map[string]string{"why": "x"}, true, http.StatusBadRequest, "unknown field"},
		{"operator cancels an unknown experiment", op, "/ui/api/experiments/nope-9/cancel", cancelRequest{}, true, http.StatusNotFound, "not found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := tt.b.postJSON(tt.path, tt.body, tt.csrf)
			var eb errorBody
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || resp.StatusCode != tt.want || !strings.Contains(eb.Error, tt.msg) {
				t.Fatalf("%s, %+v (%v), want %d saying %q", resp.Status, eb, err, tt.want, tt.msg)
			}
			if !running() || draining() {
				t.Fatal("a refused action changed the cluster")
			}
		})
	}
	// A cross-site form post is refused before anything else looks at it.
	req, _ := http.NewRequest(http.MethodPost, e.http.URL+cancelPath, strings.NewReader(`{}`))
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set(CSRFHeader, op.csrf)
	if resp := op.do(req); resp.StatusCode != http.StatusForbidden || !running() {
		t.Fatalf("cross-site post: %s", resp.Status)
	}

	// The operator drains, resumes, then cancels.
	if resp := op.postJSON(drainPath, drainRequest{Drain: true}, true); resp.StatusCode != http.StatusOK || !draining() {
		t.Fatalf("drain: %s", resp.Status)
	}
	snap := viewer.waitSnapshot("w1 draining", func(s Snapshot) bool { a, ok := arenaOf(s, "a1"); return ok && a.Draining })
	if a, _ := arenaOf(snap, "a1"); a.State != live.StateDraining || a.Worker != "w1" {
		t.Fatalf("drained arena %+v", a)
	}
	if resp := op.postJSON(drainPath, drainRequest{Drain: false}, true); resp.StatusCode != http.StatusOK || draining() {
		t.Fatalf("resume: %s", resp.Status)
	}
	if resp := op.postJSON(cancelPath, cancelRequest{Reason: "wrong seed"}, true); resp.StatusCode != http.StatusOK {
		t.Fatalf("cancel: %s %s", resp.Status, readAll(t, resp.Body))
	}
	v, err := e.cl.Experiment(e.ctx(), id)
	if err != nil {
		t.Fatal(err)
	}
	if v.Experiment.Status != plan.StatusFailed || !strings.Contains(v.Experiment.Reason, "wrong seed") {
		t.Fatalf("cancelled experiment: %s %q", v.Experiment.Status, v.Experiment.Reason)
	}
	snap = viewer.waitSnapshot("the cancel shown", func(s Snapshot) bool { x, ok := experimentOf(s, id); return ok && x.Status == "failed" })
	if x, _ := experimentOf(snap, id); x.Report != "" || x.PartialReport == "" || !strings.Contains(x.Reason, "wrong seed") {
		t.Fatalf("cancelled experiment in the snapshot: %+v", x)
	}
}

func TestSnapshotMergesWorkersAndTiles(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.submit(tinyYAML)
	// w-old registers, then the cluster's clock moves past LostAfter before the others do.
	e.registerWorker("w-old", "a-old")
	e.cluster.Clock().Advance(20 * time.Second)
	e.registerWorker("w1", "a1")
	e.registerWorker("w2", "a2")
	e.registerWorker("w3", "a3")
	it, err := e.cl.Lease(e.ctx(), api.LeaseRequest{Holder: "w1", Type: plan.TypeEpisode})
	if err != nil || it == nil {
		t.Fatalf("lease: %v %v", it, err)
	}
	if err := e.cl.Drain(e.ctx(), "w3", true); err != nil {
		t.Fatal(err)
	}
	jpg := jpegOf(t, 64, 48, color.RGBA{200, 40, 40, 255})
	e.putTile(live.Tile{Arena: "a1", Worker: "proc-1", Line: "446", Experiment: id, Episode: it.ID, Kind: "collect", Token: it.Token,
		Step: 12, Steps: 360, DistanceCM: 1.25, Confidence: 0.9, Light: true, LatencyMS: 14.5, Seq: 3}, jpg, time.Minute)
	e.putTile(live.Tile{Arena: "a-old", Line: "446", State: live.StateIdle, Seq: 1}, nil, time.Minute)
	e.putTile(live.Tile{Arena: "stray", Worker: "proc-9", Line: "73", State: live.StateFailed, Error: "camera gone", DistanceCM: -1, Seq: 8}, nil, time.Minute)
	b := e.login(coordinatortest.ViewerToken)
	snap := b.waitSnapshot("every arena", func(s Snapshot) bool { return len(s.Arenas) == 5 })
	if !snap.Cluster.Reachable || snap.Cluster.Stale || snap.Cluster.Leader == "" || len(snap.Cluster.Nodes) != 1 || snap.LiveError != "" {
		t.Fatalf("cluster %+v, live error %q", snap.Cluster, snap.LiveError)
	}
	want := []struct {
		id, worker, state                 string
		registered, stale, lost, draining bool
	}{
		{"a-old", "w-old", StateLost, true, false, true, false},
		{"a1", "w1", live.StateRunning, true, false, false, false},
		{"a2", "w2", live.StateIdle, true, true, false, false},
		{"a3", "w3", live.StateDraining, true, true, false, true},
		{"stray", "proc-9", StateUnregistered, false, false, false, false},
	}
	for i, w := range want {
		a := snap.Arenas[i]
		if a.ID != w.id || a.Worker != w.worker || a.State != w.state || a.Registered != w.registered || a.Stale != w.stale ||
			a.Lost != w.lost || a.Draining != w.draining {
			t.Errorf("arena %d: %+v, want %+v", i, a, w)
		}
	}
	a1 := snap.Arenas[1]
	if a1.Holding != it.ID || a1.Episode != it.ID || a1.Step != 12 || a1.Steps != 360 || float64(a1.DistanceCM) != 1.25 ||
		!a1.Light || float64(a1.LatencyMS) != 14.5 || a1.Seq != 3 || a1.Line != "446" {
		t.Errorf("running arena %+v", a1)
	}
	if s := snap.Arenas[4]; s.Error != "camera gone" || s.Line != "73" {
		t.Errorf("stray tile %+v", s)
	}
	x, ok := experimentOf(snap, id)
	if !ok || x.Status != "running" || x.Phase != "collect" || len(x.Phases) == 0 || x.Phases[0].Phase != plan.PhaseCollect ||
		x.Phases[0].Episodes != 3 || x.Phases[0].EpisodesLeased != 1 || x.PartialReport == "" || x.Report != "" {
		t.Fatalf("experiment %+v", x)
	}
}

func TestNumEncodesNonFiniteAsNull(t *testing.T) {
	b, err := json.Marshal([]Num{1.5, Num(math.NaN()), Num(math.Inf(1)), -0.25})
	if err != nil || string(b) != "[1.5,null,null,-0.25]" {
		t.Fatalf("%s %v", b, err)
	}
	var back []Num
	if err := json.Unmarshal(b, &back); err != nil || back[0] != 1.5 || !math.IsNaN(float64(back[1])) || back[3] != -0.25 {
		t.Fatalf("%v %v", back, err)
	}
}

func TestLearnerCurvesAreDownsampled(t *testing.T) {
	e := newEnv(t, envOpts{tune: func(c *Config) { c.CurvePoints = 50 }})
	id := e.submit(tinyYAML)
	// Collect done: the training task opens.
	e.registerWorker("w1", "a1")
	for range 3 {
		it, err := e.cl.Lease(e.ctx(), api.LeaseRequest{Holder: "w1", Type: plan.TypeEpisode})
		if err != nil || it == nil {
			t.Fatalf("lease: %v %v", it, err)
		}
		out := e.outcome()
		if _, err := e.cl.Report(e.ctx(), api.ReportCmd{Holder: "w1", ItemID: it.ID, Token: it.Token, Outcome: &out}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.cl.RegisterLearner(e.ctx(), api.RegisterLearnerCmd{ID: "l1"}); err != nil {
		t.Fatal(err)
	}
	task, err := e.cl.Lease(e.ctx(), api.LeaseRequest{Holder: "l1", Type: plan.TypeTrain})
	if err != nil || task == nil {
		t.Fatalf("lease task: %v %v", task, err)
	}
	if _, err := e.cl.Heartbeat(e.ctx(), api.HeartbeatRequest{Holder: "l1", ItemID: task.ID, Token: task.Token, Progress: &api.Progress{Done: 500, Total: 1000}}); err != nil {
		t.Fatal(err)
	}
	var pts []live.CurvePoint
	for i := 1; i <= 1000; i++ {
		pts = append(pts, live.CurvePoint{Update: int64(i), Critic: 1 / float64(i), Entropy: 0.5, Alpha: 0.2, Version: uint64(i/400 + 1), At: time.Now()})
	}
	if err := e.live.AppendCurve(e.ctx(), id, task.ID, "446", pts); err != nil {
		t.Fatal(err)
	}
	b := e.login(coordinatortest.ViewerToken)
	snap := b.waitSnapshot("the task's curve", func(s Snapshot) bool {
		return len(s.Tasks) == 1 && s.Tasks[0].Points == 1000 && s.Tasks[0].Holder == "l1"
	})
	tk := snap.Tasks[0]
	if tk.ID != task.ID || tk.Line != "446" || tk.State != string(api.StateLeased) || tk.Updates == nil || tk.Updates.Done != 500 {
		t.Fatalf("task %+v", tk)
	}
	c := tk.Curve
	if len(c.Update) != 50 || len(c.Critic) != 50 || len(c.Entropy) != 50 || len(c.Alpha) != 50 || c.Update[0] != 1 || c.Update[49] != 1000 {
		t.Fatalf("curve of %d points, updates %d..%d", len(c.Update), c.Update[0], c.Update[len(c.Update)-1])
	}
	if fmt.Sprint(tk.Versions) != "[1 2 3]" {
		t.Fatalf("versions %v", tk.Versions)
	}
	if len(snap.Learners) != 1 || snap.Learners[0].ID != "l1" || snap.Learners[0].Lost {
		t.Fatalf("learners %+v", snap.Learners)
	}
	// Reported done after that heartbeat: the task shows all its updates done.
	if _, err := e.cl.Report(e.ctx(), api.ReportCmd{Holder: "l1", ItemID: task.ID, Token: task.Token, PolicyVersion: 3}); err != nil {
		t.Fatal(err)
	}
	snap = b.waitSnapshot("the task done", func(s Snapshot) bool {
		return len(s.Tasks) == 1 && s.Tasks[0].State == string(api.StateDone)
	})
	if tk := snap.Tasks[0]; tk.Updates == nil || tk.Updates.Done != 1000 || tk.Updates.Total != 1000 || tk.FinalVersion != 3 {
		t.Fatalf("done task %+v", tk)
	}
}

func (e *env) outcome() episode.Outcome {
	t05 := 2.0
	return episode.Outcome{Seconds: 10, ClosestCM: 0.3, TimeTo05cmS: &t05, FinalDistanceCM: 0.4, LightFraction: 0.25, Frames: 30}
}

func TestThumbnails(t *testing.T) {
	e := newEnv(t, envOpts{})
	b := e.login(coordinatortest.ViewerToken)
	jpg := jpegOf(t, 80, 60, color.RGBA{20, 200, 40, 255})
	e.putTile(live.Tile{Arena: "a1", Seq: 1}, jpg, 300*time.Millisecond)
	resp := b.get("/ui/thumb/a1")
	body := readAll(t, resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("thumbnail: %s %v", resp.Status, resp.Header)
	}
	img, err := jpeg.Decode(strings.NewReader(body))
	if err != nil || img.Bounds().Dx() != 80 || img.Bounds().Dy() != 60 {
		t.Fatalf("thumbnail does not decode to 80x60: %v", err)
	}
	coordinatortest.WaitFor(t, 10*time.Second, "the thumbnail expiring", func() bool {
		return b.get("/ui/thumb/a1").StatusCode == http.StatusNotFound
	})
	if resp := b.get("/ui/thumb/a1?soft=1"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("soft missing thumbnail: %s", resp.Status)
	}
	// A tile without a thumbnail has none to serve.
	e.putTile(live.Tile{Arena: "a2", Seq: 1}, nil, time.Minute)
	if resp := b.get("/ui/thumb/a2"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("tile without thumbnail: %s", resp.Status)
	}
	if resp := b.get("/ui/thumb/" + strings.Repeat("x", 300)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("long arena id: %s", resp.Status)
	}
}

func TestEventsStreamSnapshots(t *testing.T) {
	e := newEnv(t, envOpts{tune: func(c *Config) { c.Heartbeat = 100 * time.Millisecond }})
	e.registerWorker("w1", "a1")
	e.putTile(live.Tile{Arena: "a1", Step: 1, Steps: 100, Seq: 1}, nil, time.Minute)
	b := e.login(coordinatortest.ViewerToken)
	st := b.events()
	first := st.snapshot("arena a1 at step 1", 10*time.Second, func(s Snapshot) bool { a, ok := arenaOf(s, "a1"); return ok && a.Step == 1 })
	e.putTile(live.Tile{Arena: "a1", Step: 2, Steps: 100, Seq: 2}, nil, time.Minute)
	next := st.snapshot("arena a1 at step 2", 10*time.Second, func(s Snapshot) bool { a, ok := arenaOf(s, "a1"); return ok && a.Step == 2 })
	if next.Seq <= first.Seq {
		t.Fatalf("snapshot seq %d after %d", next.Seq, first.Seq)
	}
	// Nothing new for a while still sends comments.
	deadline := time.Now().Add(10 * time.Second)
	for {
		name, _, err := st.next()
		if err != nil {
			t.Fatal(err)
		}
		if name == "comment" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no keep-alive comment")
		}
	}
	// Signing out ends the stream.
	if resp := b.postJSON("/ui/logout", struct{}{}, true); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	done := make(chan error, 1)
	go func() {
		for {
			if _, _, err := st.next(); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != io.EOF && !strings.Contains(err.Error(), "EOF") {
			t.Logf("stream ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its session")
	}
	if n := e.srv.streams(); n != 0 {
		t.Fatalf("%d streams still subscribed", n)
	}
}

func TestEventStreamsAreBounded(t *testing.T) {
	e := newEnv(t, envOpts{tune: func(c *Config) { c.MaxStreams = 1 }})
	b := e.login(coordinatortest.ViewerToken)
	b.events()
	if resp := b.get("/ui/events"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second stream: %s", resp.Status)
	}
}

func TestSlowStreamSkipsSnapshots(t *testing.T) {
	e := newEnv(t, envOpts{})
	sub, ok := e.srv.subscribe()
	if !ok {
		t.Fatal("subscribe refused")
	}
	defer e.srv.unsubscribe(sub)
	ctx := e.ctx()
	for range 5 {
		e.srv.current(ctx, 0)
	}
	if n := len(sub.ch); n != 1 {
		t.Fatalf("a subscriber that reads nothing holds %d snapshots, want the newest only", n)
	}
	var s Snapshot
	if err := json.Unmarshal(<-sub.ch, &s); err != nil {
		t.Fatal(err)
	}
	e.srv.mu.Lock()
	last := e.srv.snap.Seq
	e.srv.mu.Unlock()
	if s.Seq != last {
		t.Fatalf("held snapshot %d, newest %d", s.Seq, last)
	}
}

func TestEpisodePage(t *testing.T) {
	e := newEnv(t, envOpts{tune: func(c *Config) { c.FrameRows = 25 }})
	id := e.submit(tinyYAML)
	e.registerWorker("w1", "a1")
	it, err := e.cl.Lease(e.ctx(), api.LeaseRequest{Holder: "w1", Type: plan.TypeEpisode})
	if err != nil || it == nil {
		t.Fatalf("lease: %v %v", it, err)
	}
	b := e.login(coordinatortest.ViewerToken)
	page := func(id string) (int, string) {
		resp := b.get("/ui/episodes/" + url.PathEscape(id))
		return resp.StatusCode, readAll(t, resp.Body)
	}
	// Running: no track yet.
	if code, body := page(it.ID); code != http.StatusOK || !strings.Contains(body, `id="track-note"`) || !strings.Contains(body, "running attempt") {
		t.Fatalf("running episode page: %d", code)
	}
	tr := trackFor(it.ID, 60)
	if err := e.tracks.Put(e.ctx(), id, it.Token, tr); err != nil {
		t.Fatal(err)
	}
	out := e.outcome()
	if _, err := e.cl.Report(e.ctx(), api.ReportCmd{Holder: "w1", ItemID: it.ID, Token: it.Token, Outcome: &out}); err != nil {
		t.Fatal(err)
	}
	code, body := page(it.ID)
	if code != http.StatusOK {
		t.Fatalf("episode page: %d %s", code, body)
	}
	trace := telemetry.EpisodeTraceID(it.ID).String()
	for _, want := range []string{
		`<svg class="plate"`, `class="plate-edge"`, `class="target-zone"`, `<polyline class="path"`, `<polyline class="lit"`,
		"optoloop trace " + it.ID, `href="http://jaeger.invalid/trace/` + trace + `"`, `data-trace-id="` + trace + `"`,
		"closest approach (cm)", "0.300", `class="track-json"`, "60 frames stored, the first 25 listed",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("episode page lacks %q", want)
		}
	}
	// The frame lost at 5 and 6 breaks the path in two.
	if n := strings.Count(body, `<polyline class="path"`); n != 2 {
		t.Errorf("%d path segments, want 2", n)
	}
	if n := regexp.MustCompile(`<tr><td>`).FindAllStringIndex(body, -1); len(n) != 25 {
		t.Errorf("%d frame rows, want 25", len(n))
	}
	var got struct {
		ID     string            `json:"id"`
		Frames []json.RawMessage `json:"frames"`
	}
	b.getJSON("/ui/api/episodes/"+url.PathEscape(it.ID)+"/track.json", http.StatusOK, &got)
	if got.ID != it.ID || len(got.Frames) != 60 {
		t.Fatalf("track.json: %s with %d frames", got.ID, len(got.Frames))
	}
	if code, _ := page("nope.1"); code != http.StatusNotFound {
		t.Fatalf("unknown item: %d", code)
	}
	b.getJSON("/ui/api/episodes/nope.1/track.json", http.StatusNotFound, nil)
}

func TestReportOfAFinishedExperiment(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.submit(tinyYAML)
	b := e.login(coordinatortest.ViewerToken)
	e.drive(id)
	snap := b.waitSnapshot("the experiment done", func(s Snapshot) bool { x, ok := experimentOf(s, id); return ok && x.Status == "done" })
	x, _ := experimentOf(snap, id)
	if x.Report != reportURL(id) || x.PartialReport != "" {
		t.Fatalf("report links %q %q", x.Report, x.PartialReport)
	}
	for _, p := range x.Phases {
		done, total := p.EpisodesDone, p.Episodes
		if p.Phase == plan.PhaseTrain {
			done, total = p.TasksDone, p.Tasks
		}
		if done != total || total == 0 {
			t.Errorf("phase %s: %d of %d done", p.Phase, done, total)
		}
	}
	if len(x.Lines) == 0 {
		t.Error("no per-line table")
	}
	resp := b.get(x.Report)
	body := readAll(t, resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "<html") {
		t.Fatalf("report: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Fatalf("report CSP %q", csp)
	}
	dir := e.srv.reports.folder(id)
	st1, err := os.Stat(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	// The same state is not exported again.
	if resp := b.get(x.Report); resp.StatusCode != http.StatusOK {
		t.Fatalf("report again: %s", resp.Status)
	}
	st2, err := os.Stat(filepath.Join(dir, "report.html"))
	if err != nil || !st2.ModTime().Equal(st1.ModTime()) {
		t.Fatalf("the report was written again for the same state (%v)", err)
	}
	// Files of the run folder, and nothing outside it.
	var rep struct {
		Status string `json:"status"`
	}
	b.getJSON(x.Report+"report.json", http.StatusOK, &rep)
	if rep.Status != "done" {
		t.Fatalf("report.json status %q", rep.Status)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "secret.txt"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../secret.txt", "..%2fsecret.txt", "%2e%2e/secret.txt", "episodes/../../secret.txt"} {
		req, _ := http.NewRequest(http.MethodGet, e.http.URL+x.Report+p, nil)
		req.URL.Opaque = "//" + req.URL.Host + x.Report + p
		resp := b.do(req)
		if got := readAll(t, resp.Body); resp.StatusCode == http.StatusOK || strings.Contains(got, "secret") && !strings.Contains(got, "secret.txt") {
			t.Errorf("%s served a file outside the run folder: %s", p, resp.Status)
		}
	}
	if resp := b.get("/ui/experiments/nope-1/report/"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("report of an unknown experiment: %s", resp.Status)
	}
}

func TestPartialReportWhileRunning(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.submit(tinyYAML)
	b := e.login(coordinatortest.ViewerToken)
	resp := b.get(reportURL(id))
	if body := readAll(t, resp.Body); resp.StatusCode != http.StatusOK || !strings.Contains(body, "<html") {
		t.Fatalf("partial report: %s", resp.Status)
	}
	before, err := os.Stat(filepath.Join(e.srv.reports.folder(id), "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	// The experiment moves on: the report is made again.
	e.registerWorker("w1", "a1")
	it, err := e.cl.Lease(e.ctx(), api.LeaseRequest{Holder: "w1", Type: plan.TypeEpisode})
	if err != nil || it == nil {
		t.Fatalf("lease: %v %v", it, err)
	}
	out := e.outcome()
	if _, err := e.cl.Report(e.ctx(), api.ReportCmd{Holder: "w1", ItemID: it.ID, Token: it.Token, Outcome: &out}); err != nil {
		t.Fatal(err)
	}
	if resp := b.get(reportURL(id)); resp.StatusCode != http.StatusOK {
		t.Fatalf("partial report again: %s", resp.Status)
	}
	var rep struct {
		Items struct {
			Done int `json:"done"`
		} `json:"items"`
	}
	b.getJSON(reportURL(id)+"report.json", http.StatusOK, &rep)
	if rep.Items.Done != 1 {
		t.Fatalf("the report after one episode counts %d done", rep.Items.Done)
	}
	after, err := os.Stat(filepath.Join(e.srv.reports.folder(id), "report.html"))
	if err != nil || !after.ModTime().After(before.ModTime()) {
		t.Fatalf("report not written again (%v)", err)
	}
}

func TestCoordinatorUnreachableKeepsTheLastData(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.submit(tinyYAML)
	e.registerWorker("w1", "a1")
	b := e.login(coordinatortest.ViewerToken)
	b.waitSnapshot("the experiment", func(s Snapshot) bool { _, ok := experimentOf(s, id); return ok })
	e.cluster.Kill("n0")
	e.putTile(live.Tile{Arena: "a1", Step: 7, Steps: 10, Seq: 4}, nil, time.Minute)
	snap := b.waitSnapshot("the coordinator unreachable", func(s Snapshot) bool { return !s.Cluster.Reachable })
	if !snap.Cluster.Stale || snap.Cluster.Error == "" || snap.Cluster.LastOK.IsZero() {
		t.Fatalf("cluster %+v", snap.Cluster)
	}
	if _, ok := experimentOf(snap, id); !ok {
		t.Fatal("the experiment vanished with the coordinator")
	}
	// The tiles still move, and the worker is not called lost for the coordinator's silence.
	snap = b.waitSnapshot("a1 at step 7", func(s Snapshot) bool { a, ok := arenaOf(s, "a1"); return ok && a.Step == 7 })
	e.offset.Add(int64(time.Minute))
	snap = b.waitSnapshot("a newer snapshot", func(s Snapshot) bool { return s.At.After(snap.At.Add(30 * time.Second)) })
	if a, _ := arenaOf(snap, "a1"); a.Lost || !a.Registered {
		t.Fatalf("arena while the coordinator is away: %+v", a)
	}
}

func TestSnapshotSurvivesLeaderFailover(t *testing.T) {
	e := newEnv(t, envOpts{nodes: 3})
	id := e.submit(tinyYAML)
	b := e.login(coordinatortest.ViewerToken)
	st := b.events()
	st.snapshot("the experiment", 20*time.Second, func(s Snapshot) bool { _, ok := experimentOf(s, id); return ok && s.Cluster.Reachable })
	old := e.cluster.Leader().ID()
	e.cluster.Kill(old)
	e.registerWorker("w-after", "a-after") // waits for the new leader
	snap := st.snapshot("a new leader and the new worker", 30*time.Second, func(s Snapshot) bool {
		_, ok := arenaOf(s, "a-after")
		return ok && s.Cluster.Leader != "" && s.Cluster.Leader != old
	})
	if !snap.Cluster.Reachable {
		t.Fatalf("cluster after failover %+v", snap.Cluster)
	}
}

func TestDownsample(t *testing.T) {
	for _, tt := range []struct{ n, limit, want int }{{0, 300, 0}, {1, 300, 1}, {300, 300, 300}, {301, 300, 300}, {4096, 300, 300}, {10, 2, 2}} {
		idx := downsample(tt.n, tt.limit)
		if len(idx) != tt.want {
			t.Fatalf("downsample(%d, %d): %d indices", tt.n, tt.limit, len(idx))
		}
		for i := 1; i < len(idx); i++ {
			if idx[i] <= idx[i-1] {
				t.Fatalf("downsample(%d, %d) not increasing: %v", tt.n, tt.limit, idx)
			}
		}
		if tt.n > 0 && (idx[0] != 0 || idx[len(idx)-1] != tt.n-1) {
			t.Fatalf("downsample(%d, %d) misses an end: %v", tt.n, tt.limit, idx)
		}
	}
}

func TestSafeName(t *testing.T) {
	seen := map[string]string{}
	for _, id := range []string{"dash-1", "dash/1", "dash_1", "..", "../x", strings.Repeat("é", 100)} {
		n := safeName(id)
		if strings.ContainsAny(n, `/\`) || n == "." || n == ".." || !strings.HasPrefix(n, "exp-") || len(n) > 90 {
			t.Errorf("safeName(%q) = %q", id, n)
		}
		if other, ok := seen[n]; ok {
			t.Errorf("safeName(%q) = safeName(%q)", id, other)
		}
		seen[n] = id
	}
}
