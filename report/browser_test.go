package report

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkScript is appended to a copy of the report (the report itself has no script): after the
// page loaded it lists every image with its figure's id and decoded width, and every image that
// did not decode, in an element that --dump-dom prints.
const checkScript = `<script>
window.addEventListener('load', function () {
  var imgs = document.images, seen = [], bad = [];
  for (var i = 0; i < imgs.length; i++) {
    var fig = imgs[i].closest('figure');
    var id = fig ? fig.id : '?';
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) { bad.push(id); }
    seen.push(id + ':' + imgs[i].naturalWidth + 'x' + imgs[i].naturalHeight);
  }
  var d = document.createElement('div');
  d.id = 'optoloop-check';
  d.setAttribute('data-images', String(imgs.length));
  d.setAttribute('data-broken', bad.join(' '));
  d.setAttribute('data-sizes', seen.join(' '));
  d.setAttribute('data-failed', String(document.querySelectorAll('.failed').length));
  document.body.appendChild(d);
});
</script>
`

var checkRE = regexp.MustCompile(`<div id="optoloop-check" data-images="(\d+)" data-broken="([^"]*)" data-sizes="([^"]*)" data-failed="(\d+)">`)

// TestReportOpensInChromium loads a report in headless Chromium and checks that every image
// decodes, at the size of its PNG, and that no figure is marked failed.
func TestReportOpensInChromium(t *testing.T) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("chromium is not installed (Debian: apt-get install --no-install-recommends chromium, or make deps); the browser check of report.html is skipped")
	}
	t.Parallel()
	dir := t.TempDir()
	synth{lines: []string{"301"}, episodes: 3, frames: 300, members: 2, curvePts: 4, cross: []string{"301", "446"}, report: true, experiment: true, maps: true, saveEns: true}.write(t, dir)
	path, err := Write(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Expected figure sizes, from the embedded PNGs themselves.
	want := map[string]string{}
	for _, m := range figureRE.FindAllSubmatch(html, -1) {
		b, err := base64.StdEncoding.DecodeString(string(m[3]))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		want["fig-"+string(m[1])] = fmt.Sprintf("%dx%d", cfg.Width, cfg.Height)
	}
	if len(want) < len(expectedFigures([]string{"301"}, true)) {
		t.Fatalf("only %d figures in the report", len(want))
	}
	page := filepath.Join(t.TempDir(), "check.html")
	withScript := bytes.Replace(html, []byte("</body>"), []byte(checkScript+"</body>"), 1)
	if err := os.WriteFile(page, withScript, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000", "--dump-dom", "file://"+page)
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, tail(stderr.String(), 2000))
	}
	m := checkRE.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("the check did not run; dumped DOM ends with %q; stderr %s", tail(stdout.String(), 500), tail(stderr.String(), 1000))
	}
	n, _ := strconv.Atoi(m[1])
	if n != len(want) {
		t.Errorf("browser sees %d images, the report embeds %d", n, len(want))
	}
	if m[2] != "" {
		t.Errorf("images that did not decode: %s", m[2])
	}
	if m[4] != "0" {
		t.Errorf("%s figures marked failed", m[4])
	}
	got := map[string]string{}
	for _, s := range strings.Fields(m[3]) {
		id, size, _ := strings.Cut(s, ":")
		got[id] = size
	}
	for id, size := range want {
		if got[id] != size {
			t.Errorf("%s decoded as %q in the browser, the PNG is %s", id, got[id], size)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
