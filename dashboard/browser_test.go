package dashboard

import (
	"image/color"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/dashboard/dashboardtest"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/live"
)

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

	p := dashboardtest.NewTab(t)
	base := e.http.URL
	p.Login(base, coordinatortest.ViewerToken)
	a1 := `document.querySelector('[data-arena="a1"]')`
	p.Wait("three tiles", `document.querySelectorAll('#arenas [data-arena]').length === 3`)
	for _, a := range []string{"a1", "a2", "a3"} {
		if got := dashboardtest.Evaluate[string](p, `document.querySelector('[data-arena=`+sel(a)+`] .arena-id').textContent`); got != a {
			t.Errorf("tile %s names %q", a, got)
		}
	}
	p.Wait("a1's thumbnail decoded", `(() => { const i = `+a1+`.querySelector('img.thumb'); return !i.hidden && i.complete && i.naturalWidth === 64; })()`)
	p.Wait("a3 stale with a placeholder", `(() => { const n = document.querySelector('[data-arena="a3"]'); return n.dataset.stale === 'true' && !n.querySelector('.placeholder').hidden && n.querySelector('img.thumb').hidden; })()`)
	if got := dashboardtest.Evaluate[string](p, a1+`.querySelector('.progress').dataset.step + '/' + `+a1+`.querySelector('.progress').dataset.steps + ' ' + `+a1+`.querySelector('[data-distance]').dataset.distance`); got != "12/360 1.500" {
		t.Errorf("a1 shows %q", got)
	}
	// The tile moves on: progress, distance and the thumbnail follow.
	tile.Step, tile.DistanceCM, tile.Seq = 13, 1.25, 2
	e.putTile(tile, jpegOf(t, 96, 72, color.RGBA{60, 200, 60, 255}), time.Minute)
	p.Wait("a1 at step 13", a1+`.querySelector('.progress').dataset.step === '13' && `+a1+`.querySelector('[data-distance]').dataset.distance === '1.250'`)
	p.Wait("a1's new thumbnail", a1+`.querySelector('img.thumb').naturalWidth === 96`)
	// The experiment: the collect bar full, the train phase, the task's curves.
	xp := `document.querySelector('[data-experiment=` + sel(id) + `]')`
	p.Wait("the collect bar", xp+` && `+xp+`.querySelector('[data-phase="collect"] .bar.items[data-done="3"][data-total="3"]') !== null`)
	p.Wait("the task's charts", `(() => { const n = document.querySelector('[data-task=`+sel(task.ID)+`]'); return n && ['critic_loss', 'entropy', 'alpha'].every(s => Number(n.querySelector('svg.chart[data-series="' + s + '"]').dataset.points) === 40); })()`)
	if got := dashboardtest.Evaluate[string](p, `document.querySelector('[data-task=`+sel(task.ID)+`] .versions').dataset.versions`); got != "1 2 3 4 5" {
		t.Errorf("versions %q", got)
	}
	// A viewer sees no action button.
	for _, b := range []string{"button.cancel", "button.drain"} {
		if vis := dashboardtest.Evaluate[bool](p, `getComputedStyle(document.querySelector(`+sel(b)+`)).display !== 'none'`); vis {
			t.Errorf("a viewer sees %s", b)
		}
	}
	// The episode page of a1's episode.
	href := dashboardtest.Evaluate[string](p, a1+`.querySelector('a.episode-link').getAttribute('href')`)
	p.Do("the episode page", 30*time.Second, chromedp.Navigate(base+href), chromedp.WaitVisible(chromedp.CSS("svg.plate")))
	if n := dashboardtest.Evaluate[int](p, `document.querySelectorAll('svg.plate polyline.lit').length`); n == 0 {
		t.Error("the episode page draws no light-on stretch")
	}
	// Sign out, sign in as an operator, cancel the experiment from the page.
	p.Do("back", 30*time.Second, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#logout")))
	p.Do("sign out", 30*time.Second, chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	p.Login(base, coordinatortest.OperatorToken)
	p.Wait("the cancel button", xp+` && getComputedStyle(`+xp+`.querySelector('button.cancel')).display !== 'none'`)
	p.Do("cancel", 30*time.Second,
		chromedp.Click(chromedp.CSS(`[data-experiment=`+sel(id)+`] button.cancel`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-experiment=`+sel(id)+`] input.cancel-reason`)),
		chromedp.SendKeys(chromedp.CSS(`[data-experiment=`+sel(id)+`] input.cancel-reason`), "browser test"),
		chromedp.Click(chromedp.CSS(`[data-experiment=`+sel(id)+`] button.cancel-confirm`)),
	)
	p.Wait("the experiment failed", xp+`.dataset.status === 'failed' && !`+xp+`.querySelector('a.partial-report').hidden`)
	v, err := e.cl.Experiment(e.ctx(), id)
	if err != nil || v.Experiment.Status != plan.StatusFailed || !strings.Contains(v.Experiment.Reason, "browser test") {
		t.Fatalf("after the page's cancel: %s %q %v", v.Experiment.Status, v.Experiment.Reason, err)
	}
	m := measure(p, 30)
	t.Logf("64 arenas: first apply %.2f ms; then per snapshot: JSON.parse %.2f ms, apply %.2f ms, style+layout %.2f ms (mean of %d)",
		m.First, m.Parse, m.Apply, m.Layout, m.N)
	if errs := p.ConsoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(errs, "\n"))
	}
	if w := p.ConsoleWarnings(); len(w) > 0 {
		t.Logf("console warnings:\n%s", strings.Join(w, "\n"))
	}
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

func measure(p *dashboardtest.Tab, n int) updateTimes {
	return dashboardtest.Evaluate[updateTimes](p, strings.Replace(measureJS, "N_SNAPSHOTS", strconv.Itoa(n), 1))
}

// BenchmarkPageUpdate64Arenas reports the page's time to apply one snapshot of 64 arenas
// (window.optoloop.update) and the style and layout it causes, in headless Chromium.
func BenchmarkPageUpdate64Arenas(b *testing.B) {
	e := newEnv(b, envOpts{})
	e.submit(tinyYAML)
	p := dashboardtest.NewTab(b)
	p.Login(e.http.URL, coordinatortest.ViewerToken)
	b.ResetTimer()
	m := measure(p, b.N)
	b.StopTimer()
	b.ReportMetric(m.Apply, "ms/apply")
	b.ReportMetric(m.Layout, "ms/layout")
	b.ReportMetric(m.Parse, "ms/parse")
	b.ReportMetric(m.First, "ms/first-apply")
	if errs := p.ConsoleErrors(); len(errs) > 0 {
		b.Fatalf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestReportOpensInChromium follows a done experiment's report link from the page: the report
// opens (sandboxed, its figures inline) with no console error.
func TestReportOpensInChromium(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.submit(tinyYAML)
	e.drive(id)
	p := dashboardtest.NewTab(t)
	p.Login(e.http.URL, coordinatortest.ViewerToken)
	link := `[data-experiment=` + sel(id) + `][data-status="done"] a.report-link`
	p.Do("the report", 2*time.Minute,
		chromedp.WaitVisible(chromedp.CSS(link)),
		chromedp.Click(chromedp.CSS(link)),
		chromedp.WaitVisible(chromedp.CSS("nav#contents")),
	)
	if loc := dashboardtest.Evaluate[string](p, `location.pathname`); loc != reportURL(id) {
		t.Fatalf("the link opened %s", loc)
	}
	if n := dashboardtest.Evaluate[int](p, `[...document.images].filter(i => i.complete && i.naturalWidth > 0).length`); n == 0 {
		t.Error("the report shows no figure")
	}
	if errs := p.ConsoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}
