package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// TestExperimentSubmitAgainAndArchive: submitting the same file twice is refused naming the
// first experiment, --again submits it; archive refuses a running experiment, and archives a
// cancelled one, whose read then says it is archived.
func TestExperimentSubmitAgainAndArchive(t *testing.T) {
	c := coordinatortest.New(t, 1, nil)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(coordinatortest.OperatorToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPTOLOOP_TOKEN", "")
	t.Setenv("OPTOLOOP_COORDINATOR", c.Leader().URL())
	t.Setenv("OPTOLOOP_TLS_DIR", c.TLSDir())
	demo := filepath.Join("..", "..", "experiments", "demo.yaml")
	out, err := runCoordCmd(t, "experiment", "submit", demo, "--token-file", tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	if _, err := runCoordCmd(t, "experiment", "submit", demo, "--token-file", tokenFile); err == nil || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "--again") {
		t.Fatalf("second submit of the same file: %v", err)
	}
	again, err := runCoordCmd(t, "experiment", "submit", demo, "--again", "--token-file", tokenFile)
	if err != nil || strings.TrimSpace(again) == id {
		t.Fatalf("submit --again: %q %v", again, err)
	}
	if _, err := runCoordCmd(t, "experiment", "archive", id, "--token-file", tokenFile); err == nil || !strings.Contains(err.Error(), "is running") {
		t.Fatalf("archive of a running experiment: %v", err)
	}
	if _, err := runCoordCmd(t, "experiment", "cancel", id, "--token-file", tokenFile); err != nil {
		t.Fatal(err)
	}
	out, err = runCoordCmd(t, "experiment", "archive", id, "--token-file", tokenFile)
	if err != nil || !strings.Contains(out, "archived") {
		t.Fatalf("archive: %q %v", out, err)
	}
	if text, err := runCoordCmd(t, "experiment", "get", id, "--token-file", tokenFile); err != nil || !strings.Contains(text, "archived") {
		t.Fatalf("experiment get of an archived experiment: %v\n%s", err, text)
	}
	if text, err := runCoordCmd(t, "experiment", "list", "--token-file", tokenFile); err != nil || !strings.Contains(text, "failed (archived)") {
		t.Fatalf("experiment list: %v\n%s", err, text)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.Client(t).Experiment(ctx, id)
	if err != nil || v.Experiment.ArchivedAt.IsZero() || len(v.Items) != 0 {
		t.Fatalf("archived experiment reads %+v, %v", v.Experiment, err)
	}
}
