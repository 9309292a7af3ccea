// Package dashboardtest drives the dashboard in headless Chromium (chromedp) for tests: a tab
// that records every console error, signs in through the login form as a person does, waits
// for JavaScript predicates and evaluates expressions. The dashboard's own tests and the
// cluster's browser test use it.
package dashboardtest

import (
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium finds headless Chromium; the browser tests fail without it (make deps installs
// it, and make test runs make deps first).
func Chromium(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Fatal("chromium is not on PATH: `make deps` installs it (`make test` runs it first); the dashboard's browser test needs it")
	return ""
}

// Tab is a headless Chromium tab that records every console error, uncaught exception and
// browser-log error of its pages.
type Tab struct {
	tb  testing.TB
	ctx context.Context

	mu       sync.Mutex
	errors   []string
	warnings []string
}

func NewTab(tb testing.TB) *Tab {
	tb.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(tb)),
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
	t := &Tab{tb: tb, ctx: ctx}
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

// Do runs steps within timeout.
func (t *Tab) Do(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.tb.Fatalf("%s: %v (console errors: %v)", what, err, t.ConsoleErrors())
	}
}

// Wait polls a JavaScript predicate until it is true, for at most 30 s.
func (t *Tab) Wait(what, predicate string) {
	t.tb.Helper()
	t.WaitFor(what, predicate, 30*time.Second)
}

// WaitFor polls a JavaScript predicate until it is true, for at most timeout.
func (t *Tab) WaitFor(what, predicate string, timeout time.Duration) {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](predicate, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		t.tb.Fatalf("waiting for %s: %v (console errors: %v)", what, err, t.ConsoleErrors())
	}
}

// Evaluate evaluates a JavaScript expression (awaiting a promise) in the tab.
func Evaluate[T any](t *Tab, expr string) T {
	t.tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.tb.Fatalf("evaluate %.60q: %v", expr, err)
	}
	return v
}

// ConsoleWarnings returns the console warnings so far.
func (t *Tab) ConsoleWarnings() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.warnings...)
}

// Context is the tab's context, for chromedp calls of a test's own.
func (t *Tab) Context() context.Context { return t.ctx }

// ConsoleErrors returns the console errors, uncaught exceptions and browser-log errors so far.
func (t *Tab) ConsoleErrors() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.errors...)
}

// Login signs in through the login form, as a person does, and waits for the dashboard.
func (t *Tab) Login(base, token string) {
	t.tb.Helper()
	t.Do("sign in", 30*time.Second,
		chromedp.Navigate(base+"/ui/login"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#arenas")),
	)
	t.Wait("the session", `document.body.dataset.role !== ""`)
}
