package progress

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// view builds an experiment view at phase ph (status running unless set later).
func view(ph plan.Phase, cross bool, items ...api.Item) api.ExperimentView {
	spec := experiment.Spec{Name: "demo", Lines: []string{"446"}, Evaluate: experiment.Evaluate{EpisodesPerCondition: 2}}
	if cross {
		spec.CrossEvaluate = &experiment.CrossEvaluate{Lines: []string{"446"}, Episodes: 1}
	}
	e := api.Experiment{ID: "demo-1", Plan: plan.Plan{Spec: spec, Phase: ph, Status: plan.StatusRunning}}
	for i := range items {
		items[i].ID = fmt.Sprintf("demo-1-%04d", i)
		items[i].N = i
		items[i].Line = "446"
		if items[i].Created.IsZero() {
			items[i].Created = t0
		}
		e.Items = append(e.Items, items[i].ID)
	}
	return api.ExperimentView{Experiment: e, Items: items}
}

// ep is an episode of phase ph in state st; a done one has its result at t0 + at.
func ep(ph plan.Phase, st api.ItemState, at time.Duration) api.Item {
	it := api.Item{State: st}
	it.Type, it.Phase, it.Kind = plan.TypeEpisode, ph, episode.KindCollect
	if st == api.StateDone {
		it.Result = &api.Result{At: t0.Add(at)}
	}
	if st == api.StateLeased {
		it.Holder = "worker-0"
	}
	return it
}

// task is a training task in state st with progress p (nil: none reported).
func task(st api.ItemState, p *api.Progress) api.Item {
	it := api.Item{State: st, Progress: p}
	it.Type, it.Phase, it.Kind = plan.TypeTrain, plan.PhaseTrain, episode.KindTrain
	if st == api.StateDone {
		it.Result = &api.Result{At: t0.Add(time.Minute)}
	}
	return it
}

func failed(it api.Item, reasons ...string) api.Item {
	it.State, it.Failures = api.StateFailed, reasons
	return it
}

func repeat(n int, it api.Item) []api.Item {
	out := make([]api.Item, n)
	for i := range out {
		out[i] = it
	}
	return out
}

func cat(parts ...[]api.Item) []api.Item {
	var out []api.Item
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestProgressPrint(t *testing.T) {
	collectDone := func(n int) []api.Item {
		var out []api.Item
		for i := range n {
			out = append(out, ep(plan.PhaseCollect, api.StateDone, time.Duration(i+1)*time.Minute))
		}
		return out
	}
	tests := []struct {
		name  string
		v     func() api.ExperimentView
		want  []string // substrings of the output, in order
		avoid []string
	}{
		{
			name: "collect running",
			v: func() api.ExperimentView {
				// 4 done over 4 minutes, 2 leased, 1 failed, 3 pending: 1 episode/min, 5 left.
				return view(plan.PhaseCollect, false, cat(collectDone(4), repeat(2, ep(plan.PhaseCollect, api.StateLeased, 0)),
					[]api.Item{failed(ep(plan.PhaseCollect, api.StatePending, 0), "arena lost", "tracker lost")},
					repeat(3, ep(plan.PhaseCollect, api.StatePending, 0)))...)
			},
			want: []string{"experiment demo-1 (demo): running", "collect", "[#####.....] 4/10 episodes (1 failed)", "2 arenas busy", "1.0 episodes/min", "ETA 5m00s",
				"train", "pending", "evaluate", "pending", "failed for good: 1; last: demo-1-0006 (collect, line 446): tracker lost"},
			avoid: []string{"cross_evaluate", "0/", "updates"},
		},
		{
			name: "no rate yet",
			v: func() api.ExperimentView {
				return view(plan.PhaseCollect, true, cat(repeat(2, ep(plan.PhaseCollect, api.StateLeased, 0)), repeat(2, ep(plan.PhaseCollect, api.StatePending, 0)))...)
			},
			want:  []string{"0/4 episodes", "2 arenas busy", "ETA unknown", "train", "pending", "evaluate", "pending", "cross_evaluate", "pending"},
			avoid: []string{"episodes/min", "failed"},
		},
		{
			name: "training, some tasks not reporting: tasks counted",
			v: func() api.ExperimentView {
				return view(plan.PhaseTrain, false, cat(collectDone(2),
					[]api.Item{task(api.StateDone, &api.Progress{Done: 150, Total: 200}), task(api.StateLeased, &api.Progress{Done: 50, Total: 200}), task(api.StatePending, nil)})...)
			},
			want:  []string{"collect", "2/2 episodes, done in 2m00s", "train", "1/3 tasks, 250 updates so far", "ETA unknown", "evaluate", "pending"},
			avoid: []string{"updates/s"},
		},
		{
			name: "training, every task reporting",
			v: func() api.ExperimentView {
				return view(plan.PhaseTrain, false, task(api.StateDone, &api.Progress{Done: 150, Total: 200}), task(api.StateLeased, &api.Progress{Done: 50, Total: 200}))
			},
			want: []string{"train", "[######....] 250/400 updates", "ETA unknown"},
		},
		{
			name: "evaluate counts the random-light episodes not created yet",
			v: func() api.ExperimentView {
				v := view(plan.PhaseEvaluate, false, cat(repeat(2, ep(plan.PhaseEvaluate, api.StateLeased, 0)), repeat(2, ep(plan.PhaseEvaluate, api.StatePending, 0)))...)
				v.Experiment.RandomFirst = map[string]int{"446": 4}
				return v
			},
			want: []string{"collect", "done", "train", "done", "evaluate", "0/6 episodes", "2 arenas busy"},
		},
		{
			name: "failed experiment",
			v: func() api.ExperimentView {
				v := view(plan.PhaseTrain, true, failed(task(api.StateLeased, &api.Progress{Done: 10, Total: 200}), "learner died"))
				v.Experiment.Status, v.Experiment.Reason = plan.StatusFailed, "training task 0 of line 446 failed: learner died"
				return v
			},
			want:  []string{"failed: training task 0 of line 446 failed: learner died", "train", "10/200 updates (1 failed), failed", "evaluate", "not run", "cross_evaluate", "not run", "failed for good: 1; last: demo-1-0000 (train, line 446): learner died"},
			avoid: []string{"ETA"},
		},
		{
			name: "done experiment",
			v: func() api.ExperimentView {
				v := view(plan.PhaseDone, false, cat(collectDone(3), []api.Item{task(api.StateDone, nil)})...)
				v.Experiment.Status = plan.StatusDone
				return v
			},
			want:  []string{"demo-1 (demo): done", "collect", "[##########] 3/3 episodes, done in 3m00s", "train", "1/1 tasks, done", "evaluate", "no items, done"},
			avoid: []string{"pending", "ETA"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Print(&b, tt.v()); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if strings.Contains(out, "\x1b") {
				t.Fatalf("escape codes in a printed block:\n%q", out)
			}
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			for _, a := range tt.avoid {
				if strings.Contains(out, a) {
					t.Errorf("output holds %q:\n%s", a, out)
				}
			}
		})
	}
}

func TestProgressEpisodeRate(t *testing.T) {
	at := func(mins ...float64) []time.Time {
		var out []time.Time
		for _, m := range mins {
			out = append(out, t0.Add(time.Duration(m*float64(time.Minute))))
		}
		return out
	}
	tests := []struct {
		name string
		ts   []time.Time
		want float64
	}{
		{"over the phase", at(1, 2, 4), 0.75},
		{"no time spanned", at(0, 0), 0},
		{"last ten minutes of a long phase", at(1, 2, 3, 21, 22, 25, 29), 0.4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := episodeRate(tt.ts, t0); got != tt.want {
				t.Fatalf("rate %v, want %v", got, tt.want)
			}
		})
	}
}

// trainView is the train phase with one reporting task at done of 10000 updates.
func trainView(done int64) api.ExperimentView {
	return view(plan.PhaseTrain, false, task(api.StateLeased, &api.Progress{Done: done, Total: 10000}))
}

func TestProgressDisplayUpdateRate(t *testing.T) {
	var b bytes.Buffer
	d := New(&b, false)
	d.Update(trainView(0), t0)
	if !strings.Contains(b.String(), "ETA unknown") {
		t.Fatalf("first view: %q", b.String())
	}
	d.Update(trainView(1000), t0.Add(10*time.Second))
	d.Update(trainView(2000), t0.Add(20*time.Second))
	last := lastLine(b.String())
	// 2000 updates in 20 s: 100/s, 8000 left.
	for _, w := range []string{"2000/10000 updates", "100 updates/s", "ETA 1m20s"} {
		if !strings.Contains(last, w) {
			t.Fatalf("line lacks %q: %q", w, last)
		}
	}
	// Nothing moved for 5 s more: the ETA counts down (a terminal shows it).
	var tb bytes.Buffer
	td := New(&tb, true)
	td.Update(trainView(0), t0)
	td.Update(trainView(2000), t0.Add(20*time.Second))
	td.Update(trainView(2000), t0.Add(25*time.Second))
	if s := screen(t, tb.String()); !strings.Contains(strings.Join(s, "\n"), "ETA 1m15s") {
		t.Fatalf("screen:\n%s", strings.Join(s, "\n"))
	}
	// Samples older than the window drop out: a task that stalled has no rate.
	td.Update(trainView(2000), t0.Add(20*time.Second+updateWindow+time.Second))
	if s := screen(t, tb.String()); !strings.Contains(strings.Join(s, "\n"), "ETA unknown") {
		t.Fatalf("stalled task still has a rate:\n%s", strings.Join(s, "\n"))
	}
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return ls[len(ls)-1]
}

// collecting is collect with done of 10 episodes done (the k-th at minute k) and 2 leased.
func collecting(done int) api.ExperimentView {
	var items []api.Item
	for i := range 10 {
		switch {
		case i < done:
			items = append(items, ep(plan.PhaseCollect, api.StateDone, time.Duration(i+1)*time.Minute))
		case i < done+2:
			items = append(items, ep(plan.PhaseCollect, api.StateLeased, 0))
		default:
			items = append(items, ep(plan.PhaseCollect, api.StatePending, 0))
		}
	}
	return view(plan.PhaseCollect, false, items...)
}

func TestProgressDisplayLogLines(t *testing.T) {
	var b bytes.Buffer
	d := New(&b, false)
	lines := func() []string { return strings.Split(strings.TrimRight(b.String(), "\n"), "\n") }

	d.Update(collecting(1), t0)
	if n := len(lines()); n != 1 {
		t.Fatalf("first view: %d lines\n%s", n, b.String())
	}
	d.Update(collecting(2), t0.Add(3*time.Second)) // changed, but within 5 s of the last line
	if n := len(lines()); n != 1 {
		t.Fatalf("a line within 5 s of the last:\n%s", b.String())
	}
	d.Update(collecting(2), t0.Add(6*time.Second)) // 6 s after the last line: now logged
	if n := len(lines()); n != 2 || !strings.Contains(lines()[1], "collect: 2/10 episodes") {
		t.Fatalf("lines:\n%s", b.String())
	}
	d.Update(collecting(2), t0.Add(20*time.Second)) // nothing changed: no line
	if n := len(lines()); n != 2 {
		t.Fatalf("a line without a change:\n%s", b.String())
	}
	// The phase changes 1 s later: logged at once, with the phase that ended.
	tr := view(plan.PhaseTrain, false, cat(collectingDone(), []api.Item{task(api.StatePending, nil)})...)
	d.Update(tr, t0.Add(11*time.Second))
	ls := lines()
	if len(ls) != 4 || !strings.Contains(ls[2], "collect: 10/10 episodes, done in 10m00s") || !strings.Contains(ls[3], "train: 0/1 tasks") {
		t.Fatalf("phase change:\n%s", b.String())
	}
	// A failure and the end, 1 s later: logged at once (the status changed).
	f := view(plan.PhaseTrain, false, cat(collectingDone(), []api.Item{failed(task(api.StateLeased, nil), "out of memory")})...)
	f.Experiment.Status, f.Experiment.Reason = plan.StatusFailed, "training failed"
	d.Update(f, t0.Add(12*time.Second))
	out := b.String()
	for _, w := range []string{"1 failed for good; last: demo-1-0010 (train, line 446): out of memory", "experiment failed: training failed"} {
		if !strings.Contains(out, w) {
			t.Fatalf("log lacks %q:\n%s", w, out)
		}
	}
	if !strings.HasPrefix(ls[0], "12:00:00 demo-1 collect: ") {
		t.Fatalf("line %q", ls[0])
	}
	d.Close()
	if strings.Contains(b.String(), "\x1b") {
		t.Fatalf("escape codes in log lines:\n%q", b.String())
	}
}

func TestProgressDisplayCloseLogsTheLastChange(t *testing.T) {
	var b bytes.Buffer
	d := New(&b, false)
	d.Update(collecting(1), t0)
	d.Update(collecting(3), t0.Add(time.Second))
	d.Close()
	d.Update(collecting(5), t0.Add(time.Minute)) // after Close: nothing
	ls := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(ls) != 2 || !strings.Contains(ls[1], "3/10 episodes") {
		t.Fatalf("lines:\n%s", b.String())
	}
}

func collectingDone() []api.Item {
	var out []api.Item
	for i := range 10 {
		out = append(out, ep(plan.PhaseCollect, api.StateDone, time.Duration(i+1)*time.Minute))
	}
	return out
}

func TestProgressDisplayTerminal(t *testing.T) {
	var b bytes.Buffer
	d := New(&b, true)
	d.Update(collecting(1), t0)
	if regexp.MustCompile(`\x1b\[\d+A`).MatchString(b.String()) {
		t.Fatalf("first draw moves the cursor up: %q", b.String())
	}
	if got := screen(t, b.String()); len(got) != 4 || !strings.Contains(got[1], "1/10 episodes") {
		t.Fatalf("screen:\n%s", strings.Join(got, "\n"))
	}
	n := b.Len()
	d.Update(collecting(2), t0.Add(100*time.Millisecond)) // within 250 ms: not drawn
	if b.Len() != n {
		t.Fatalf("redrawn within 250 ms: %q", b.String()[n:])
	}
	d.Update(collecting(3), t0.Add(300*time.Millisecond))
	redraw := b.String()[n:]
	if !strings.HasPrefix(redraw, "\x1b[4A") || strings.Count(redraw, "\x1b[2K") != 4 {
		t.Fatalf("redraw %q", redraw)
	}
	got := screen(t, b.String())
	if len(got) != 4 || !strings.Contains(got[1], "3/10 episodes") {
		t.Fatalf("screen after the redraw:\n%s", strings.Join(got, "\n"))
	}
	// A phase change is drawn at once; a shorter block clears the lines left over.
	f := view(plan.PhaseCollect, false, collectingDone()[:9]...)
	f.Items = append(f.Items, failed(ep(plan.PhaseCollect, api.StateLeased, 0), "camera gone"))
	f.Experiment.Status, f.Experiment.Reason = plan.StatusFailed, "cancelled"
	d.Update(f, t0.Add(350*time.Millisecond))
	if got := screen(t, b.String()); len(got) != 5 || !strings.Contains(got[0], "failed: cancelled") || !strings.Contains(got[4], "camera gone") {
		t.Fatalf("screen after the failure:\n%s", strings.Join(got, "\n"))
	}
	d.Update(collecting(4), t0.Add(700*time.Millisecond)) // running again: drawn at once
	d.Update(collecting(5), t0.Add(750*time.Millisecond)) // throttled; Close draws it
	d.Close()
	got = screen(t, b.String())
	if len(got) != 4 || !strings.Contains(got[1], "5/10 episodes") || strings.Contains(strings.Join(got, "\n"), "camera gone") {
		t.Fatalf("final screen:\n%s", strings.Join(got, "\n"))
	}
	if !strings.HasSuffix(b.String(), "\n") {
		t.Fatal("the cursor is not left on a new line")
	}
}

// screen plays out what a terminal shows for out (text, \n, \r, ESC[nA, ESC[2K), starting on
// an empty screen, and returns its non-empty lines.
func screen(t *testing.T, out string) []string {
	t.Helper()
	var lines []string
	row, col := 0, 0
	set := func(s string) {
		for len(lines) <= row {
			lines = append(lines, "")
		}
		l := []rune(lines[row])
		for len(l) < col {
			l = append(l, ' ')
		}
		r := []rune(s)
		if col+len(r) > len(l) {
			l = append(l[:col], r...)
		} else {
			copy(l[col:], r)
		}
		lines[row] = string(l)
		col += len(r)
	}
	for i := 0; i < len(out); {
		switch {
		case out[i] == '\n':
			row, col = row+1, 0
			i++
		case out[i] == '\r':
			col = 0
			i++
		case strings.HasPrefix(out[i:], "\x1b[2K"):
			for len(lines) <= row {
				lines = append(lines, "")
			}
			lines[row] = ""
			i += 4
		case strings.HasPrefix(out[i:], "\x1b[J"):
			if row < len(lines) {
				lines = lines[:row]
			}
			i += 3
		case out[i] == '\x1b':
			j := strings.IndexByte(out[i:], 'A')
			n, err := strconv.Atoi(out[i+2 : i+j])
			if !strings.HasPrefix(out[i:], "\x1b[") || err != nil {
				t.Fatalf("unexpected escape at %d: %q", i, out[i:])
			}
			row = max(row-n, 0)
			i += j + 1
		default:
			j := strings.IndexAny(out[i:], "\n\r\x1b")
			if j < 0 {
				j = len(out) - i
			}
			set(out[i : i+j])
			i += j
		}
	}
	var nonEmpty []string
	for _, l := range lines {
		if l != "" {
			nonEmpty = append(nonEmpty, l)
		}
	}
	return nonEmpty
}

func TestProgressIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Fatal("a regular file is a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(w) {
		t.Fatal("a pipe is a terminal")
	}
}

func TestProgressDisplayWriteLogsAboveTheBlock(t *testing.T) {
	var b bytes.Buffer
	d := New(&b, true)
	if _, err := d.Write([]byte("before any view\n")); err != nil {
		t.Fatal(err)
	}
	d.Update(collecting(1), t0)
	if _, err := d.Write([]byte("level=INFO msg=\"phase start\"\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write([]byte("no newline")); err != nil {
		t.Fatal(err)
	}
	d.Update(collecting(2), t0.Add(time.Second))
	got := screen(t, b.String())
	if len(got) != 7 || got[0] != "before any view" || got[1] != `level=INFO msg="phase start"` || got[2] != "no newline" ||
		!strings.HasPrefix(got[3], "experiment demo-1") || !strings.Contains(got[4], "2/10 episodes") {
		t.Fatalf("screen:\n%s", strings.Join(got, "\n"))
	}
	d.Close()
	if _, err := d.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	if got := screen(t, b.String()); len(got) != 8 || got[7] != "after" || !strings.Contains(got[4], "2/10 episodes") {
		t.Fatalf("screen after Close:\n%s", strings.Join(got, "\n"))
	}
	// Not on a terminal, log output passes through as is.
	var p bytes.Buffer
	pd := New(&p, false)
	pd.Update(collecting(1), t0)
	if _, err := pd.Write([]byte("x\n")); err != nil || !strings.HasSuffix(p.String(), "ETA 9m00s\nx\n") {
		t.Fatalf("plain: %v %q", err, p.String())
	}
}
