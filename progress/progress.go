// Package progress shows how far a long-running experiment is, for a person watching: per
// phase the episodes done out of the phase's total, the training updates done out of theirs,
// the arenas busy, a rate and an estimated time to the end of the phase, and the items that
// failed for good with the last reason.
//
// It reads nothing but api.ExperimentView values, the same wherever they come from (the local
// run's coordinator.Local or a cluster's api.Client). Items of a phase are created only when
// the phase opens, so a phase not open yet shows as pending: its totals are not known and none
// are made up.
//
// Rates. The episode rate comes from the result times of the phase's done episodes (the
// coordinator's clock), over the phase so far or its last ten minutes, so that one view is
// enough. The update rate (training tasks report their updates in heartbeats) comes from the
// views a Display has been given, over a sliding window of five minutes: a one-off Print shows
// none. The estimated time left (ETA) is unknown until a rate exists, and counts down between
// changes.
//
// On a terminal a Display redraws a small block in place (ANSI cursor up and clear line), one
// line per phase with a text bar, at most four times a second. Elsewhere (a file, a pipe, a
// CI log) it writes plain lines without escape codes, one when the phase or the counts
// change, at most one every five seconds unless the phase changed.
package progress

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

const (
	// minRedraw is the shortest time between two redraws on a terminal.
	minRedraw = 250 * time.Millisecond
	// minLog is the shortest time between two log lines of the same phase.
	minLog = 5 * time.Second
	// updateWindow is how far back the update rate looks.
	updateWindow = 5 * time.Minute
	// barWidth is the number of cells of a phase's bar.
	barWidth = 10
)

// IsTerminal reports whether f is a terminal (then a Display on it should redraw in place).
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// Display shows an experiment's progress on w as views of it arrive. Safe for concurrent use.
type Display struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	closed bool

	cur     *state // the newest view
	written bool   // cur is on screen (terminal) or logged

	// On a terminal: the block's height on screen, when and at which phase it was drawn.
	lines     int
	drawnAt   time.Time
	drawnStep string

	// Not on a terminal: what the last line said and when.
	loggedAt     time.Time
	loggedKey    string
	loggedPhase  plan.Phase
	loggedStep   string
	loggedFailed int

	// Rates: the training updates seen in the current phase, and when its counts last moved.
	samples   []sample
	moved     string
	movedAt   time.Time
	movedSeen bool
}

// sample is the training updates of a phase at one Update.
type sample struct {
	t       time.Time
	phase   plan.Phase
	updates int64
}

// state is one view as the Display shows it.
type state struct {
	s   summary
	now time.Time
	eta map[plan.Phase]time.Duration // the running phase's, when known
	ups float64                      // updates per second of the running phase (0: unknown)
}

// New returns a Display writing to w: in place when tty is set (see IsTerminal), plain lines
// otherwise.
func New(w io.Writer, tty bool) *Display { return &Display{w: w, tty: tty} }

// Update shows v as of now (the watcher's clock, used for rates and for pacing the output).
// Calls after Close do nothing.
func (d *Display) Update(v api.ExperimentView, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	st := d.observe(v, now)
	d.cur, d.written = st, false
	if d.tty {
		if d.drawnStep == "" || step(st.s) != d.drawnStep || now.Sub(d.drawnAt) >= minRedraw {
			d.draw()
		}
		return
	}
	d.log(false)
}

// Close writes the last view if it was not shown yet and leaves it on screen, the cursor on
// the line below. Later Updates do nothing.
func (d *Display) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	if d.cur == nil || d.written {
		return
	}
	if d.tty {
		d.draw()
	} else {
		d.log(true)
	}
}

// Write writes p, log output, to the Display's writer: on a terminal above the block, which
// is drawn again below it (so that log lines and the display do not overwrite each other), as
// is otherwise and after Close. A logger of a run that shows a Display writes through it.
func (d *Display) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.tty || d.closed || d.lines == 0 {
		return d.w.Write(p)
	}
	// Up to the block's first line, clear to the end of the screen, the log, the block again.
	if _, err := fmt.Fprintf(d.w, "\x1b[%dA\r\x1b[J", d.lines); err != nil {
		return 0, err
	}
	d.lines = 0
	n, err := d.w.Write(p)
	if err == nil && len(p) > 0 && p[len(p)-1] != '\n' {
		_, err = io.WriteString(d.w, "\n")
	}
	d.draw()
	return n, err
}

// Print writes v's progress once as a block of plain lines (no escape codes): the episode
// rates and ETAs one view gives, no update rate.
func Print(w io.Writer, v api.ExperimentView) error {
	s := summarize(v)
	st := &state{s: s, eta: etas(s, v.Items, 0, 0)}
	_, err := io.WriteString(w, strings.Join(st.block(0), "\n")+"\n")
	return err
}

// observe summarizes v and works out the running phase's rates from the views seen so far.
func (d *Display) observe(v api.ExperimentView, now time.Time) *state {
	s := summarize(v)
	st := &state{s: s, now: now}
	r := s.row(s.Phase)
	if r == nil || r.State != rowRunning {
		d.samples = nil
		st.eta = map[plan.Phase]time.Duration{}
		return st
	}
	if r.Tasks > 0 {
		d.samples = slices.DeleteFunc(d.samples, func(x sample) bool { return x.phase != r.Phase || !x.t.Before(now) })
		// A count that stands still keeps only the first and the last sample of its run.
		if n := len(d.samples); n >= 2 && d.samples[n-2].updates == r.Updates && d.samples[n-1].updates == r.Updates {
			d.samples = d.samples[:n-1]
		}
		d.samples = append(d.samples, sample{t: now, phase: r.Phase, updates: r.Updates})
		for len(d.samples) > 2 && !d.samples[1].t.After(now.Add(-updateWindow)) {
			d.samples = d.samples[1:]
		}
		// From the oldest sample to the newest change: tasks report at their checkpoints, so
		// the count stands still between changes without the rate having dropped.
		first := d.samples[0]
		for i := len(d.samples) - 1; i > 0; i-- {
			if last := d.samples[i]; last.updates != d.samples[i-1].updates {
				if span := last.t.Sub(first.t); span >= time.Second && last.updates > first.updates {
					st.ups = float64(last.updates-first.updates) / span.Seconds()
				}
				break
			}
		}
	}
	// The ETA counts down from the last time the phase's counts moved.
	moved := fmt.Sprintf("%s %d %d %d", r.Phase, r.EpisodesDone+r.EpisodesFailed, r.TasksDone, r.Updates)
	if !d.movedSeen || moved != d.moved {
		d.moved, d.movedAt, d.movedSeen = moved, now, true
	}
	st.eta = etas(s, v.Items, st.ups, now.Sub(d.movedAt))
	return st
}

// etas estimates the time left in the running phase from its rates, less since (the time since
// its counts last moved); the map is empty while no rate exists.
func etas(s summary, items []api.Item, ups float64, since time.Duration) map[plan.Phase]time.Duration {
	out := map[plan.Phase]time.Duration{}
	r := s.row(s.Phase)
	if r == nil || r.State != rowRunning {
		return out
	}
	var left time.Duration
	if r.Episodes > 0 {
		rem := r.Episodes - r.EpisodesDone - r.EpisodesFailed
		switch {
		case rem <= 0:
		case r.EpisodesPerMin > 0:
			left += time.Duration(float64(rem) / r.EpisodesPerMin * float64(time.Minute))
		default:
			return out
		}
	}
	if r.Tasks > 0 {
		rem, ok := r.remainingUpdates(items)
		switch {
		case ok && rem <= 0:
		case ok && ups > 0:
			left += time.Duration(rem / ups * float64(time.Second))
		default:
			return out
		}
	}
	out[r.Phase] = max(left-since, 0)
	return out
}

// step names the experiment's phase and status: a change of either is always shown at once.
func step(s summary) string { return string(s.Phase) + " " + string(s.Status) }

// draw redraws the block in place: up to the block's first line, each line cleared and
// written, lines left over from a taller block cleared.
func (d *Display) draw() {
	width := 0
	if f, ok := d.w.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil {
			width = w
		}
	}
	lines := d.cur.block(width)
	var b strings.Builder
	if d.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", d.lines)
	}
	for _, l := range lines {
		b.WriteString("\r\x1b[2K")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if extra := d.lines - len(lines); extra > 0 {
		b.WriteString(strings.Repeat("\r\x1b[2K\n", extra))
		fmt.Fprintf(&b, "\x1b[%dA", extra)
	}
	_, _ = io.WriteString(d.w, b.String())
	d.lines, d.drawnAt, d.drawnStep, d.written = len(lines), d.cur.now, step(d.cur.s), true
}

// log writes plain lines for what changed since the last ones: the phases that ended, the
// running phase (at most every minLog unless the phase changed or force), new failures and the
// experiment's end.
func (d *Display) log(force bool) {
	st := d.cur
	s := st.s
	key := st.logKey()
	if key == d.loggedKey {
		d.written = true
		return
	}
	if !force && step(s) == d.loggedStep && st.now.Sub(d.loggedAt) < minLog {
		return
	}
	stamp := st.now.Format("15:04:05") + " " + s.ID
	var b strings.Builder
	line := func(text string) { b.WriteString(stamp + " " + text + "\n") }
	// Every phase from the one last logged up to the current one has ended; a first line about
	// an experiment that has ended names all its phases.
	if from := slices.IndexFunc(s.Rows, func(r row) bool { return r.Phase == d.loggedPhase }); from >= 0 || (d.loggedPhase == "" && s.Status != plan.StatusRunning) {
		for i := max(from, 0); i < len(s.Rows) && s.Rows[i].Phase != s.Phase; i++ {
			if r := s.Rows[i]; r.State == rowDone {
				line(string(r.Phase) + ": " + strings.Join(st.details(r), ", "))
			}
		}
	}
	if r := s.row(s.Phase); r != nil && (r.State == rowRunning || r.State == rowFailed) {
		line(string(r.Phase) + ": " + strings.Join(st.details(*r), ", "))
	}
	if s.Failed > d.loggedFailed {
		line(fmt.Sprintf("%d failed for good; last: %s", s.Failed, s.LastFailure))
	}
	switch s.Status {
	case plan.StatusDone:
		line("experiment done")
	case plan.StatusFailed:
		line("experiment failed: " + s.Reason)
	}
	_, _ = io.WriteString(d.w, b.String())
	d.loggedAt, d.loggedKey, d.loggedPhase, d.loggedStep, d.loggedFailed, d.written = st.now, key, s.Phase, step(s), s.Failed, true
}

// logKey is what a log line reports: the phase, the status and the counts (not the arenas busy
// or the rate, which move all the time).
func (st *state) logKey() string {
	s := st.s
	k := fmt.Sprintf("%s|%d", step(s), s.Failed)
	if r := s.row(s.Phase); r != nil {
		k += fmt.Sprintf("|%d/%d/%d %d/%d/%d %d/%d/%d", r.EpisodesDone, r.EpisodesFailed, r.Episodes,
			r.TasksDone, r.TasksFailed, r.Tasks, r.Updates, r.UpdatesTotal, r.Reporting)
	}
	return k
}

// block is the lines a terminal shows: a header, one line per phase, the failures; each cut
// to width-1 columns when width is known, so that no line wraps and the redraw stays in
// place.
func (st *state) block(width int) []string {
	s := st.s
	head := "experiment " + s.ID
	if s.Name != "" {
		head += " (" + s.Name + ")"
	}
	head += ": " + string(s.Status)
	if s.Status == plan.StatusFailed && s.Reason != "" {
		head += ": " + s.Reason
	}
	out := []string{head}
	for _, r := range s.Rows {
		bar := strings.Repeat(" ", barWidth+2)
		if r.State != rowPending && r.State != rowNotRun {
			full := int(r.fraction()*barWidth + 0.5)
			bar = "[" + strings.Repeat("#", full) + strings.Repeat(".", barWidth-full) + "]"
		}
		out = append(out, fmt.Sprintf("  %-14s %s %s", r.Phase, bar, strings.Join(st.details(r), ", ")))
	}
	if s.Failed > 0 {
		out = append(out, fmt.Sprintf("  failed for good: %d; last: %s", s.Failed, s.LastFailure))
	}
	if width > 1 {
		for i, l := range out {
			out[i] = cut(l, width-1)
		}
	}
	return out
}

// details are the parts of a phase's line.
func (st *state) details(r row) []string {
	switch r.State {
	case rowPending, rowNotRun:
		return []string{string(r.State)}
	}
	var out []string
	if r.Episodes > 0 {
		c := fmt.Sprintf("%d/%d episodes", r.EpisodesDone, r.Episodes)
		if r.EpisodesFailed > 0 {
			c += fmt.Sprintf(" (%d failed)", r.EpisodesFailed)
		}
		out = append(out, c)
	}
	if r.Tasks > 0 {
		if r.Reporting == r.Tasks {
			out = append(out, fmt.Sprintf("%d/%d updates", r.Updates, r.UpdatesTotal))
		} else {
			c := fmt.Sprintf("%d/%d tasks", r.TasksDone, r.Tasks)
			if r.Reporting > 0 {
				c += fmt.Sprintf(", %d updates so far", r.Updates)
			}
			out = append(out, c)
		}
		if r.TasksFailed > 0 {
			out[len(out)-1] += fmt.Sprintf(" (%d failed)", r.TasksFailed)
		}
	}
	if r.Episodes == 0 && r.Tasks == 0 {
		out = append(out, "no items")
	}
	switch r.State {
	case rowDone:
		c := "done"
		if r.Took > 0 {
			c += " in " + duration(r.Took)
		}
		return append(out, c)
	case rowFailed:
		return append(out, "failed")
	}
	if r.Leased > 0 {
		arenas := "arenas"
		if r.Leased == 1 {
			arenas = "arena"
		}
		out = append(out, fmt.Sprintf("%d %s busy", r.Leased, arenas))
	}
	if r.Episodes > 0 && r.EpisodesPerMin > 0 {
		out = append(out, fmt.Sprintf("%.1f episodes/min", r.EpisodesPerMin))
	}
	if r.Tasks > 0 && st.ups > 0 {
		out = append(out, fmt.Sprintf("%.0f updates/s", st.ups))
	}
	if eta, ok := st.eta[r.Phase]; ok {
		out = append(out, "ETA "+duration(eta))
	} else {
		out = append(out, "ETA unknown")
	}
	return out
}

// duration is d for people: 45s, 18m45s, 2h05m.
func duration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// cut shortens s to at most n runes.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}
