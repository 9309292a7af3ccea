package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment/plan"
)

// statusSpec has 2 collection episodes, 1 training task and 3 evaluation episodes.
const statusSpec = `name: status
lines: ["446"]
collect: {hours_per_line: 0.02, episode_seconds: 36}
train: {ensemble_size: 2, updates: 10, checkpoint_every: 5}
evaluate: {episodes_per_condition: 1, episode_seconds: 30}
`

// drive works experiment id on the cluster as one worker and one learner would, until it has
// ended: every episode is reported, the training task reports progress and is reported too, or
// with failTraining fails at every attempt (which fails the experiment).
func drive(ctx context.Context, cl *api.Client, id string, failTraining bool) error {
	if err := cl.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w-" + id, ArenaID: "a-" + id, Line: "446", Calibration: []byte(`{"px_per_cm":540}`)}); err != nil {
		return err
	}
	if err := cl.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l-" + id}); err != nil {
		return err
	}
	for {
		v, err := cl.Experiment(ctx, id)
		if err != nil {
			return err
		}
		if !v.Experiment.Running() {
			return nil
		}
		worked := false
		if it, err := cl.Lease(ctx, api.LeaseRequest{Holder: "w-" + id, Type: plan.TypeEpisode}); err != nil {
			return err
		} else if it != nil {
			worked = true
			out := &episode.Outcome{Seconds: it.Seconds, ClosestCM: 0.5, LightFraction: 0.2, Frames: 3}
			if _, err := cl.Report(ctx, api.ReportCmd{Holder: "w-" + id, ItemID: it.ID, Token: it.Token, Outcome: out}); err != nil {
				return err
			}
		}
		if it, err := cl.Lease(ctx, api.LeaseRequest{Holder: "l-" + id, Type: plan.TypeTrain}); err != nil {
			return err
		} else if it != nil {
			worked = true
			holder := "l-" + id
			if _, err := cl.Heartbeat(ctx, api.HeartbeatRequest{Holder: holder, ItemID: it.ID, Token: it.Token, Progress: &api.Progress{Done: 10, Total: 20}}); err != nil {
				return err
			}
			if failTraining {
				_, err = cl.Fail(ctx, api.FailCmd{Holder: holder, ItemID: it.ID, Token: it.Token, Reason: "learner out of memory"})
			} else {
				_, err = cl.Report(ctx, api.ReportCmd{Holder: holder, ItemID: it.ID, Token: it.Token, PolicyVersion: 3})
			}
			if err != nil {
				return err
			}
		}
		if !worked {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// watchCmd runs experiment status --watch in the background; wait returns its error and
// output.
func watchCmd(ctx context.Context, args ...string) (out *lockedBuffer, wait func() error) {
	out = &lockedBuffer{}
	root := newRootCmd()
	root.SetOut(out)
	root.SetErr(&lockedBuffer{})
	root.SetArgs(append([]string{"experiment", "status", "--watch", "--interval", "100ms"}, args...))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	return out, func() error { return <-done }
}

func TestExperimentStatus(t *testing.T) {
	t.Setenv("OPTOLOOP_COORDINATOR", "")
	t.Setenv("OPTOLOOP_TOKEN", coordinatortest.ViewerToken) // reads need a viewer's credential
	c := coordinatortest.New(t, 3, nil)
	t.Setenv("OPTOLOOP_TLS_DIR", c.TLSDir())
	cl := c.Client(t)
	urls := strings.Join(c.URLs(), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	submit := func() string {
		t.Helper()
		id, err := cl.SubmitAgain(ctx, []byte(statusSpec)) // the same file, deliberately, once per case
		if err != nil {
			t.Fatal(err)
		}
		return id
	}

	// Once: the collection episodes are pending, the later phases not open yet.
	id := submit()
	out, err := runCoordCmd(t, "experiment", "status", id, "--coordinator", urls)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"experiment " + id + " (status): running", "collect", "0/2 episodes", "ETA unknown", "train", "pending", "evaluate", "pending"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
		out = out[strings.Index(out, want)+len(want):]
	}

	// Bad input: one line naming the problem, non-zero exit.
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no coordinator", []string{id}, "no coordinator"},
		{"unknown experiment", []string{"nope-1", "--coordinator", urls}, `experiment nope-1: `},
		{"interval too short", []string{id, "--watch", "--interval", "1ms", "--coordinator", urls}, "--interval 1ms must be within"},
		{"no id", []string{"--coordinator", urls}, "accepts 1 arg"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCoordCmd(t, append([]string{"experiment", "status"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line containing %q", err, tt.wantErr)
			}
			if tt.name == "unknown experiment" && !errors.Is(err, api.ErrNotFound) {
				t.Fatalf("error %v does not wrap api.ErrNotFound", err)
			}
		})
	}

	// --watch follows the experiment to its end: exit 0, plain lines (not a terminal).
	log, wait := watchCmd(ctx, id, "--coordinator", urls)
	coordinatortest.WaitFor(t, 20*time.Second, "the first progress line", func() bool { return strings.Contains(log.String(), "collect: 0/2 episodes") })
	if err := drive(ctx, cl, id, false); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("watch of a done experiment: %v\n%s", err, log.String())
	}
	text := log.String()
	for _, want := range []string{"collect: 2/2 episodes, done", "train: 20/20 updates, done", "evaluate: 3/3 episodes, done", "experiment done"} {
		if !strings.Contains(text, want) {
			t.Fatalf("watch output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\x1b") {
		t.Fatalf("escape codes in plain output:\n%q", text)
	}
	// Once more on the done experiment: every phase done.
	if out, err := runCoordCmd(t, "experiment", "status", id, "--coordinator", urls); err != nil || strings.Count(out, ", done") != 3 {
		t.Fatalf("status of a done experiment: %v\n%s", err, out)
	}

	// A failed experiment: non-zero exit with the reason.
	failing := submit()
	log, wait = watchCmd(ctx, failing, "--coordinator", urls)
	if err := drive(ctx, cl, failing, true); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err == nil || !strings.Contains(err.Error(), "experiment "+failing+" failed: ") || !strings.Contains(err.Error(), "learner out of memory") {
		t.Fatalf("watch of a failed experiment: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "experiment failed: ") {
		t.Fatalf("watch output:\n%s", log.String())
	}

	// Ctrl-C ends the watch of an experiment nobody works on, exit 0.
	stalled := submit()
	wctx, stop := context.WithCancel(ctx)
	log, wait = watchCmd(wctx, stalled, "--coordinator", urls)
	coordinatortest.WaitFor(t, 20*time.Second, "the first progress line", func() bool { return strings.Contains(log.String(), "collect: 0/2 episodes") })
	stop()
	if err := wait(); err != nil {
		t.Fatalf("watch ended by Ctrl-C: %v", err)
	}
}

// TestExperimentRunShowsProgress: experiment run writes progress lines (stderr is not a
// terminal here: plain lines, no escape codes) beside its usual output.
func TestExperimentRunShowsProgress(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "exp.yaml")
	spec := `name: progress
lines: ["73"]
collect: {hours_per_line: 0.05, episode_seconds: 180}
train: {ensemble_size: 2, updates: 20, checkpoint_every: 10}
evaluate: {episodes_per_condition: 1, episode_seconds: 30}
`
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	root := newRootCmd()
	var stdout, stderr lockedBuffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs([]string{"experiment", "run", file, "--out", filepath.Join(dir, "run"), "--no-render"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	errText := stderr.String()
	for _, want := range []string{"msg=\"run folder\"", "collect: ", "episodes", "experiment done"} {
		if !strings.Contains(errText, want) {
			t.Fatalf("stderr lacks %q:\n%s", want, errText)
		}
	}
	if strings.Contains(errText, "\x1b") {
		t.Fatalf("escape codes on a stderr that is not a terminal:\n%q", errText)
	}
	if !strings.Contains(stdout.String(), "LINE") || strings.Contains(stdout.String(), "experiment done") {
		t.Fatalf("stdout:\n%s", stdout.String())
	}
}
