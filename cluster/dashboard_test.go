package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/optoloop/optoloop/cluster"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/dashboard/dashboardtest"
	"github.com/optoloop/optoloop/experiment/plan"
)

// dashYAML is the dashboard test's experiment: 2 lines of 2 arenas, 4 collect episodes per
// line of 30 s (7.5 s at --pace 4), a short training task per line, one evaluation episode of
// 40 s per condition.
const dashYAML = `
name: dash
seed: 3
lines: ["446", "73"]
arenas_per_line: 2
collect: { hours_per_line: 0.0334, episode_seconds: 30, light_probability: 0.3 }
train: { ensemble_size: 1, updates: 2000, checkpoint_every: 500, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 40 }
`

// TestDashboardFollowsTheCluster opens the dashboard of a cluster of separate OS processes
// (redis-server, 3 coordinators, worker and learner processes, the dashboard process; rendered
// simulated arenas at --pace 4) in headless Chromium, signed in as a viewer: one tile per arena,
// naming its arena id, with a thumbnail that decodes; a viewer cannot cancel the experiment
// (through the dashboard or the coordinator) and sees no action buttons; with the Raft leader
// killed the page keeps updating; an evaluation tile's episode progress and distance change;
// the phase bars reach 100 % and the report link opens the report; no console error
// throughout.
func TestDashboardFollowsTheCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	c := up(t, ctx, cluster.Config{Lines: []string{"446", "73"}, ArenasPerLine: 2, Workers: 2, Learners: 1, Pace: 4,
		LeaseTTL: 3 * time.Second, Dashboard: "127.0.0.1:0"})
	base := c.DashboardURL()
	if base == "" {
		t.Fatal("no dashboard URL")
	}
	id, err := c.Submit(ctx, []byte(dashYAML))
	if err != nil {
		t.Fatal(err)
	}
	viewerToken := readSecret(t, c.ViewerTokenFile())
	ws, err := c.Client().Workers(ctx)
	if err != nil || len(ws) != 4 {
		t.Fatalf("workers: %v %v", ws, err)
	}

	p := dashboardtest.NewTab(t)
	p.Login(base, viewerToken)
	p.Wait("a tile per arena", `document.querySelectorAll('#arenas [data-arena]').length === 4`)
	for _, w := range ws {
		tile := `document.querySelector('[data-arena=` + strconv.Quote(w.ArenaID) + `]')`
		if got := dashboardtest.Evaluate[string](p, tile+`.querySelector('.arena-id').textContent`); got != w.ArenaID {
			t.Errorf("tile of %s names %q", w.ArenaID, got)
		}
		p.Wait(w.ArenaID+"'s thumbnail decoded", `(() => { const i = `+tile+`.querySelector('img.thumb'); return !i.hidden && i.complete && i.naturalWidth > 0; })()`)
	}

	// A viewer cannot cancel: no button on the page, 403 from the dashboard and from the
	// coordinator, and the experiment runs on.
	if n := dashboardtest.Evaluate[int](p, `[...document.querySelectorAll('button.cancel, button.drain')].filter(b => b.offsetParent !== null).length`); n != 0 {
		t.Errorf("a viewer's page shows %d action buttons", n)
	}
	if code := cancelThroughDashboard(t, ctx, base, viewerToken, id); code != http.StatusForbidden {
		t.Errorf("a viewer's cancel through the dashboard: HTTP %d, want 403", code)
	}
	vcfg := api.DefaultClientConfig(c.Endpoints()...)
	vcfg.Token, vcfg.TLS = viewerToken, c.ClientTLS()
	viewer, err := api.NewClient(vcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := viewer.Cancel(ctx, id, "a viewer tries"); !errors.Is(err, api.ErrForbidden) {
		t.Errorf("a viewer's cancel at the coordinator: %v, want forbidden", err)
	}
	if v, err := c.Client().Experiment(ctx, id); err != nil || v.Experiment.Status != plan.StatusRunning {
		t.Fatalf("after the viewer's cancels: %v %v", v.Experiment.Status, err)
	}

	// The leader killed (-9): the page goes on updating from the other nodes.
	doneJS := `[...document.querySelectorAll('[data-experiment=` + strconv.Quote(id) + `] .bar.items')].reduce((s, b) => s + +b.dataset.done, 0)`
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	seq := dashboardtest.Evaluate[int](p, `+document.body.dataset.seq`)
	done := dashboardtest.Evaluate[int](p, doneJS)
	t.Logf("killed leader %s at page seq %d, %d items done", leader, seq, done)
	p.Wait("another leader on the page", `(() => { const l = document.querySelector('#leader').dataset.leader; return l !== '' && l !== `+strconv.Quote(leader)+`; })()`)
	p.Wait("the page updating after the kill", `+document.body.dataset.seq > `+strconv.Itoa(seq+3)+` && `+doneJS+` > `+strconv.Itoa(done))

	// An evaluation episode's tile moves on: its step grows and the distance to its target
	// changes within the episode (collection episodes have no target).
	type tileNow struct {
		Arena, Episode, Distance string
		Step                     int
	}
	running := `(() => { const n = [...document.querySelectorAll('#arenas [data-arena][data-state="running"]')].find(n => n.querySelector('[data-distance]').dataset.distance !== '');
		if (!n) return null;
		return { Arena: n.dataset.arena, Episode: n.querySelector('a.episode-link').textContent, Distance: n.querySelector('[data-distance]').dataset.distance, Step: +n.querySelector('.progress').dataset.step }; })()`
	p.WaitFor("a running evaluation tile, tracked", running+` !== null`, 3*time.Minute)
	first := dashboardtest.Evaluate[tileNow](p, running)
	tile := `document.querySelector('[data-arena=` + strconv.Quote(first.Arena) + `]')`
	p.Wait(first.Arena+"'s episode moving on", `(() => { const n = `+tile+`;
		return n.querySelector('a.episode-link').textContent === `+strconv.Quote(first.Episode)+` &&
			+n.querySelector('.progress').dataset.step > `+strconv.Itoa(first.Step)+` &&
			n.querySelector('[data-distance]').dataset.distance !== `+strconv.Quote(first.Distance)+` &&
			n.querySelector('[data-distance]').dataset.distance !== ''; })()`)

	// The experiment ends: every phase bar full, and the report opens from its link.
	if _, err := c.Wait(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	exp := `document.querySelector('[data-experiment=` + strconv.Quote(id) + `]')`
	p.Wait("the experiment done on the page", exp+` !== null && `+exp+`.dataset.status === 'done'`)
	bars := dashboardtest.Evaluate[[][2]int](p, `[...`+exp+`.querySelectorAll('.bar')].map(b => [+b.dataset.done, +b.dataset.total])`)
	if len(bars) < 3 {
		t.Errorf("%d phase bars, want collect, train (tasks and updates) and evaluate", len(bars))
	}
	for _, b := range bars {
		if b[1] == 0 || b[0] != b[1] {
			t.Errorf("a phase bar of the done experiment at %d/%d", b[0], b[1])
		}
	}
	link := `[data-experiment=` + strconv.Quote(id) + `][data-status="done"] a.report-link`
	p.Do("the report", 2*time.Minute,
		chromedp.WaitVisible(chromedp.CSS(link)),
		chromedp.Click(chromedp.CSS(link)),
		chromedp.WaitVisible(chromedp.CSS("nav#contents")),
	)
	if loc := dashboardtest.Evaluate[string](p, `location.pathname`); !strings.HasPrefix(loc, "/ui/experiments/"+id+"/report/") {
		t.Errorf("the report link opened %s", loc)
	}
	if n := dashboardtest.Evaluate[int](p, `[...document.images].filter(i => i.complete && i.naturalWidth > 0).length`); n == 0 {
		t.Error("the report shows no figure")
	}
	if errs := p.ConsoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

func readSecret(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// cancelThroughDashboard signs in to the dashboard with token (as the login form does) and
// asks it to cancel experiment id; it returns the cancel's HTTP status.
func cancelThroughDashboard(t *testing.T, ctx context.Context, base, token, id string) int {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := hc.PostForm(base+"/ui/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = hc.Get(base + "/ui/api/session")
	if err != nil {
		t.Fatal(err)
	}
	var sess struct {
		Role string `json:"role"`
		CSRF string `json:"csrf"`
	}
	err = json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	if err != nil || sess.CSRF == "" {
		t.Fatalf("dashboard session: %+v, %v (HTTP %d)", sess, err, resp.StatusCode)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/ui/api/experiments/"+url.PathEscape(id)+"/cancel", strings.NewReader(`{"reason":"a viewer tries"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", sess.CSRF)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
