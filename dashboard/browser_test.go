package dashboard

import (
	"context"
	"image/color"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/live"
)

// chromiumPath finds headless Chromium; the browser tests fail without it (make deps installs
// it, and make test runs make deps first).
func chromiumPath(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Fatal("chromium is not on PATH: `make deps` installs it (`make test` runs it first); the dashboard's browser test needs it")
	return ""
}

// tab is a headless Chromium tab that records every console error, uncaught exception and
// browser-log error of its pages.
type tab struct {
	tb  testing.TB
	ctx context.Context

	mu       sync.Mutex
	errors   []string
	warnings []string
}

func newTab(tb testing.TB) *tab {
	tb.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(tb)),
		// CI runs as root, where Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	tb.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("chromium: %v", err)
	}
	t := &tab{tb: tb, ctx: ctx}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			line := m.String()
			if m.URL != "" {
				line += " (" + m.URL + ")"
			}
			t.mu.Lock()
			switch {
			case m.IsException() || m.Type == chromedp.ConsoleError:
				t.errors = append(t.errors, line)
			case m.Type == chromedp.ConsoleWarning:
				t.warnings = append(t.warnings, line)
			}
			t.mu.Unlock()
		}
	}()
	return t
}

// do runs steps within timeout.
func (t *tab) do(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.tb.Fatalf("%s: %v (console errors: %v)", what, err, t.consoleErrors())
	}
}

// wait polls a JavaScript predicate until it is true.
func (t *tab) wait(what, predicate string) {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](predicate, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		t.tb.Fatalf("waiting for %s: %v (console errors: %v)", what, err, t.consoleErrors())
	}
}

func evaluate[T any](t *tab, expr string) T {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.tb.Fatalf("evaluate %.60q: %v", expr, err)
	}
	return v
}

func (t *tab) consoleErrors() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.errors...)
}

// login signs in through the login form, as a person does, and waits for the dashboard.
func (t *tab) login(base, token string) {
	t.tb.Helper()
	t.do("sign in", 30*time.Second,
		chromedp.Navigate(base+"/ui/login"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#arenas")),
	)
	t.wait("the session", `document.body.dataset.role !== ""`)
}

func sel(s string) string { return strconv.Quote(s) }

// TestPageInChromium loads the dashboard in headless Chromium against the in-process cluster:
// one tile per arena naming its arena id, a thumbnail that decodes, progress and distance that
// follow the tiles, the phase bars, the learning curves, the episode page, a viewer without
// the action buttons and an operator who cancels, and no console error throughout. It then
// measures how long the page takes to apply one snapshot of 64 arenas.
func TestPageInChromium(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.submit(tinyYAML)
	for _, a := range []string{"a1", "a2", "a3"} {
		e.registerWorker("w"+a[1:], a)
	}
	// The collect phase runs on w1; the training task opens and a learner holds it.
	var collected []string
	for range 3 {
		it, err := e.cl.Lease(e.ctx(), api.LeaseRequest{Holder: "w1", Type: plan.TypeEpisode})
		if err != nil || it == nil {
			t.Fatalf("lease: %v %v", it, err)
		}
		if err := e.tracks.Put(e.ctx(), id, it.Token, trackFor(it.ID, 90)); err != nil {
			t.Fatal(err)
		}
		out := e.outcome()
		if _, err := e.cl.Report(e.ctx(), api.ReportCmd{Holder: "w1", ItemID: it.ID, Token: it.Token, Outcome: &out}); err != nil {
			t.Fatal(err)
		}
		collected = append(collected, it.ID)
	}
	if err := e.cl.RegisterLearner(e.ctx(), api.RegisterLearnerCmd{ID: "l1"}); err != nil {
		t.Fatal(err)
	}
	task, err := e.cl.Lease(e.ctx(), api.LeaseRequest{Holder: "l1", Type: plan.TypeTrain})
	if err != nil || task == nil {
		t.Fatalf("lease task: %v %v", task, err)
	}
	var pts []live.CurvePoint
	for i := int64(1); i <= 40; i++ {
		pts = append(pts, live.CurvePoint{Update: i * 10, Critic: 2 / float64(i), Entropy: 1 - float64(i)/80, Alpha: 0.2 / float64(i), Version: uint64(i/10 + 1), At: time.Now()})
	}
	if err := e.live.AppendCurve(e.ctx(), id, task.ID, "446", pts); err != nil {
		t.Fatal(err)
	}
	tile := live.Tile{Arena: "a1", Worker: "w1", Line: "446", Experiment: id, Episode: collected[0], Kind: "collect", Step: 12, Steps: 360,
		DistanceCM: 1.5, Confidence: 0.93, Light: true, LatencyMS: 11, Seq: 1}
	e.putTile(tile, jpegOf(t, 64, 48, color.RGBA{220, 60, 60, 255}), time.Minute)
	e.putTile(live.Tile{Arena: "a2", Worker: "w2", Line: "446", State: live.StateIdle, Seq: 1}, jpegOf(t, 64, 48, color.RGBA{60, 60, 220, 255}), time.Minute)

	p := newTab(t)
	base := e.http.URL
	p.login(base, coordinatortest.ViewerToken)
	a1 := `document.querySelector('[data-arena="a1"]')`
	p.wait("three tiles", `document.querySelectorAll('#arenas [data-arena]').length === 3`)
	for _, a := range []string{"a1", "a2", "a3"} {
		if got := evaluate[string](p, `document.querySelector('[data-arena=`+sel(a)+`] .arena-id').textContent`); got != a {
			t.Errorf("tile %s names %q", a, got)
		}
	}
	p.wait("a1's thumbnail decoded", `(() => { const i = `+a1+`.querySelector('img.thumb'); return !i.hidden && i.complete && i.naturalWidth === 64; })()`)
	p.wait("a3 stale with a placeholder", `(() => { const n = document.querySelector('[data-arena="a3"]'); return n.dataset.stale === 'true' && !n.querySelector('.placeholder').hidden && n.querySelector('img.thumb').hidden; })()`)
	if got := evaluate[string](p, a1+`.querySelector('.progress').dataset.step + '/' + `+a1+`.querySelector('.progress').dataset.steps + ' ' + `+a1+`.querySelector('[data-distance]').dataset.distance`); got != "12/360 1.500" {
		t.Errorf("a1 shows %q", got)
	}
	// The tile moves on: progress, distance and the thumbnail follow.
	tile.Step, tile.DistanceCM, tile.Seq = 13, 1.25, 2
	e.putTile(tile, jpegOf(t, 96, 72, color.RGBA{60, 200, 60, 255}), time.Minute)
	p.wait("a1 at step 13", a1+`.querySelector('.progress').dataset.step === '13' && `+a1+`.querySelector('[data-distance]').dataset.distance === '1.250'`)
	p.wait("a1's new thumbnail", a1+`.querySelector('img.thumb').naturalWidth === 96`)
	// The experiment: the collect bar full, the train phase, the task's curves.
	xp := `document.querySelector('[data-experiment=` + sel(id) + `]')`
	p.wait("the collect bar", xp+` && `+xp+`.querySelector('[data-phase="collect"] .bar.items[data-done="3"][data-total="3"]') !== null`)
	p.wait("the task's charts", `(() => { const n = document.querySelector('[data-task=`+sel(task.ID)+`]'); return n && ['critic_loss', 'entropy', 'alpha'].every(s => Number(n.querySelector('svg.chart[data-series="' + s + '"]').dataset.points) === 40); })()`)
	if got := evaluate[string](p, `document.querySelector('[data-task=`+sel(task.ID)+`] .versions').dataset.versions`); got != "1 2 3 4 5" {
		t.Errorf("versions %q", got)
	}
	// A viewer sees no action button.
	for _, b := range []string{"button.cancel", "button.drain"} {
		if vis := evaluate[bool](p, `getComputedStyle(document.querySelector(`+sel(b)+`)).display !== 'none'`); vis {
			t.Errorf("a viewer sees %s", b)
		}
	}
	// The episode page of a1's episode.
	href := evaluate[string](p, a1+`.querySelector('a.episode-link').getAttribute('href')`)
	p.do("the episode page", 30*time.Second, chromedp.Navigate(base+href), chromedp.WaitVisible(chromedp.CSS("svg.plate")))
	if n := evaluate[int](p, `document.querySelectorAll('svg.plate polyline.lit').length`); n == 0 {
		t.Error("the episode page draws no light-on stretch")
	}
	// Sign out, sign in as an operator, cancel the experiment from the page.
	p.do("back", 30*time.Second, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#logout")))
	p.do("sign out", 30*time.Second, chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	p.login(base, coordinatortest.OperatorToken)
	p.wait("the cancel button", xp+` && getComputedStyle(`+xp+`.querySelector('button.cancel')).display !== 'none'`)
	p.do("cancel", 30*time.Second,
		chromedp.Click(chromedp.CSS(`[data-experiment=`+sel(id)+`] button.cancel`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-experiment=`+sel(id)+`] input.cancel-reason`)),
		chromedp.SendKeys(chromedp.CSS(`[data-experiment=`+sel(id)+`] input.cancel-reason`), "browser test"),
		chromedp.Click(chromedp.CSS(`[data-experiment=`+sel(id)+`] button.cancel-confirm`)),
	)
	p.wait("the experiment failed", xp+`.dataset.status === 'failed' && !`+xp+`.querySelector('a.partial-report').hidden`)
	v, err := e.cl.Experiment(e.ctx(), id)
	if err != nil || v.Experiment.Status != plan.StatusFailed || !strings.Contains(v.Experiment.Reason, "browser test") {
		t.Fatalf("after the page's cancel: %s %q %v", v.Experiment.Status, v.Experiment.Reason, err)
	}
	m := measure(p, 30)
	t.Logf("64 arenas: first apply %.2f ms; then per snapshot: JSON.parse %.2f ms, apply %.2f ms, style+layout %.2f ms (mean of %d)",
		m.First, m.Parse, m.Apply, m.Layout, m.N)
	if errs := p.consoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(errs, "\n"))
	}
	p.mu.Lock()
	if len(p.warnings) > 0 {
		t.Logf("console warnings:\n%s", strings.Join(p.warnings, "\n"))
	}
	p.mu.Unlock()
}

// updateTimes are the page's times to apply a snapshot of 64 arenas, in ms.
type updateTimes struct {
	N                    int
	First                float64
	Parse, Apply, Layout float64
}

// measureJS closes the event stream and applies n snapshots of 64 running arenas whose numbers
// and thumbnails change in each, after one that creates the tiles. It returns the first apply
// and the means of JSON.parse, apply (window.optoloop.update) and the style and layout that
// reading offsetHeight forces.
const measureJS = `(async (n) => {
  window.optoloop.stop();
  const base = await (await fetch('/ui/api/snapshot', { cache: 'no-store' })).json();
  const lines = ['446', '73', '301', '575'];
  const arenas = [];
  for (let i = 0; i < 64; i++) {
    arenas.push({ id: 'bench-' + String(i).padStart(2, '0'), worker: 'bench-w' + i, line: lines[i % 4], state: 'running',
      tile_state: 'running', registered: true, stale: false, lost: false, draining: false, experiment: 'bench-1',
      episode: 'bench-1.' + i, kind: 'agent', step: 0, steps: 360, distance_cm: 2, confidence: 0.9, light: false,
      latency_ms: 10, seq: 1 });
  }
  const make = (k) => {
    arenas.forEach((a, i) => {
      a.step = k % 361; a.distance_cm = 2 - (k % 100) / 60 + i / 1000; a.light = (k + i) % 3 === 0;
      a.latency_ms = 8 + (k % 7); a.confidence = 0.8 + (k % 5) / 50; a.seq = k + 1;
    });
    return JSON.stringify(Object.assign({}, base, { seq: 1000000 + k, arenas: arenas }));
  };
  let t0 = performance.now();
  window.optoloop.update(JSON.parse(make(0)));
  void document.body.offsetHeight;
  const first = performance.now() - t0;
  let parse = 0, apply = 0, layout = 0;
  for (let k = 1; k <= n; k++) {
    const s = make(k);
    t0 = performance.now();
    const snap = JSON.parse(s);
    const t1 = performance.now();
    window.optoloop.update(snap);
    const t2 = performance.now();
    void document.body.offsetHeight;
    const t3 = performance.now();
    parse += t1 - t0; apply += t2 - t1; layout += t3 - t2;
  }
  if (document.querySelectorAll('#arenas [data-arena^="bench-"]').length !== 64) throw new Error('not 64 tiles');
  return { N: n, First: first, Parse: parse / n, Apply: apply / n, Layout: layout / n };
})(N_SNAPSHOTS)`

func measure(p *tab, n int) updateTimes {
	p.tb.Helper()
	return evaluate[updateTimes](p, strings.Replace(measureJS, "N_SNAPSHOTS", strconv.Itoa(n), 1))
}

// BenchmarkPageUpdate64Arenas reports the page's time to apply one snapshot of 64 arenas
// (window.optoloop.update) and the style and layout it causes, in headless Chromium.
func BenchmarkPageUpdate64Arenas(b *testing.B) {
	e := newEnv(b, envOpts{})
	e.submit(tinyYAML)
	p := newTab(b)
	p.login(e.http.URL, coordinatortest.ViewerToken)
	b.ResetTimer()
	m := measure(p, b.N)
	b.StopTimer()
	b.ReportMetric(m.Apply, "ms/apply")
	b.ReportMetric(m.Layout, "ms/layout")
	b.ReportMetric(m.Parse, "ms/parse")
	b.ReportMetric(m.First, "ms/first-apply")
	if errs := p.consoleErrors(); len(errs) > 0 {
		b.Fatalf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestReportOpensInChromium follows a done experiment's report link from the page: the report
// opens (sandboxed, its figures inline) with no console error.
func TestReportOpensInChromium(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.submit(tinyYAML)
	e.drive(id)
	p := newTab(t)
	p.login(e.http.URL, coordinatortest.ViewerToken)
	link := `[data-experiment=` + sel(id) + `][data-status="done"] a.report-link`
	p.do("the report", 2*time.Minute,
		chromedp.WaitVisible(chromedp.CSS(link)),
		chromedp.Click(chromedp.CSS(link)),
		chromedp.WaitVisible(chromedp.CSS("nav#contents")),
	)
	if loc := evaluate[string](p, `location.pathname`); loc != reportURL(id) {
		t.Fatalf("the link opened %s", loc)
	}
	if n := evaluate[int](p, `[...document.images].filter(i => i.complete && i.naturalWidth > 0).length`); n == 0 {
		t.Error("the report shows no figure")
	}
	if errs := p.consoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}
