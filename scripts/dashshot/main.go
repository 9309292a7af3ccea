// Command dashshot signs in to a running optoloop dashboard in headless Chromium, waits until
// the page shows the arenas it should (each tile's thumbnail decoded, some arenas running an
// episode) and writes a PNG screenshot of the whole page. scripts/dashboard-shot.sh runs it
// against `optoloop cluster up --dashboard` for the README's figure. With --hold it keeps the
// page open that long first and reports how long the page took to apply each live update
// (scripts/dashboard-cost.sh: is the page responsive with 64 arenas?).
//
//	go run ./scripts/dashshot --url http://127.0.0.1:8090 --token-file secrets/viewer-token --arenas 12 --out docs/dashboard.png
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dashshot:", err)
		os.Exit(1)
	}
}

func run() error {
	base := flag.String("url", "", "the dashboard's base URL (http://host:port)")
	tokenFile := flag.String("token-file", "", "file holding the token to sign in with (a viewer's)")
	out := flag.String("out", "docs/dashboard.png", "PNG to write (empty: none)")
	arenas := flag.Int("arenas", 12, "tiles to wait for, each with a decoded thumbnail")
	running := flag.Int("running", 2, "arenas that must be running an episode")
	minStep := flag.Int("min-step", 0, "steps those running episodes must have run")
	width := flag.Int("width", 1600, "window width in CSS pixels")
	height := flag.Int("height", 1200, "window height in CSS pixels")
	timeout := flag.Duration("timeout", 3*time.Minute, "give up after this long")
	hold := flag.Duration("hold", 0, "keep the page open this long once ready, sampling its update times every second")
	flag.Parse()
	if *base == "" || *tokenFile == "" {
		return errors.New("--url and --token-file are required")
	}
	b, err := os.ReadFile(*tokenFile)
	if err != nil {
		return err
	}
	token := strings.TrimSpace(string(b))
	bin, err := exec.LookPath("chromium")
	if err != nil {
		return fmt.Errorf("chromium not found (make deps installs it): %w", err)
	}
	dir, err := os.MkdirTemp("", "dashshot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.UserDataDir(dir), chromedp.DisableGPU, chromedp.WindowSize(*width, *height))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(strings.TrimRight(*base, "/")+"/ui/login"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#arenas")),
	); err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	ready := `(() => {
		const tiles = [...document.querySelectorAll('#arenas [data-arena]')];
		const decoded = tiles.filter(t => { const i = t.querySelector('img.thumb'); return i && !i.hidden && i.complete && i.naturalWidth > 0; });
		const running = tiles.filter(t => t.dataset.state === 'running' && +t.querySelector('.progress').dataset.step >= ` + strconv.Itoa(*minStep) + `);
		return tiles.length >= ` + strconv.Itoa(*arenas) + ` && decoded.length >= ` + strconv.Itoa(*arenas) + ` && running.length >= ` + strconv.Itoa(*running) + `;
	})()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](ready, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		return fmt.Errorf("waiting for %d tiles with thumbnails and %d running: %w", *arenas, *running, err)
	}
	if *hold > 0 {
		if err := sample(ctx, *hold); err != nil {
			return err
		}
	}
	if *out == "" {
		return nil
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	if err := os.WriteFile(*out, png, 0o644); err != nil {
		return err
	}
	fmt.Printf("dashshot: %s (%d bytes)\n", *out, len(png))
	return nil
}

// sample reads the page's update counter and the time its last update took (body[data-seq],
// body[data-apply-ms]) every second for d and prints the updates seen and their apply times.
func sample(ctx context.Context, d time.Duration) error {
	type state struct {
		Seq     int     `json:"seq"`
		ApplyMS float64 `json:"apply"`
	}
	read := func() (state, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[state](`({seq: +document.body.dataset.seq, apply: +document.body.dataset.applyMs})`))
	}
	first, err := read()
	if err != nil {
		return err
	}
	var times []float64
	last := first.Seq
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		s, err := read()
		if err != nil {
			return err
		}
		if s.Seq != last {
			times = append(times, s.ApplyMS)
			last = s.Seq
		}
	}
	if len(times) == 0 {
		return fmt.Errorf("the page got no update in %v", d)
	}
	var sum, worst float64
	for _, t := range times {
		sum += t
		worst = max(worst, t)
	}
	fmt.Printf("dashshot: %d updates in %v, apply %.2f ms mean, %.2f ms max (sampled once a second)\n", last-first.Seq, d, sum/float64(len(times)), worst)
	return nil
}
