package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas/sim"
	"github.com/optoloop/optoloop/cluster"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/results"
	"github.com/optoloop/optoloop/runner"
)

// The environment of a test binary re-executed as a supervisor (TestNothingOutlivesTheSupervisor).
const (
	supervisorDirEnv = "OPTOLOOP_CLUSTER_TEST_SUPERVISOR_DIR"
	supervisorBinEnv = "OPTOLOOP_CLUSTER_TEST_BINARY"
	// logEnv, when set, sends every child's output to the test's stderr.
	logEnv = "OPTOLOOP_TEST_LOG"
	// prebuiltEnv, when set, names an optoloop executable to run instead of building one.
	prebuiltEnv = "OPTOLOOP_TEST_OPTOLOOP"
)

var (
	// binary is the optoloop executable needCluster built, under tmpRoot.
	binary  string
	tmpRoot string
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(supervisorDirEnv); dir != "" {
		superviseAndDie(dir)
		return
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	tmpRoot, err = os.MkdirTemp("", "optoloop-cluster-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmpRoot)
	return m.Run()
}

var (
	buildOnce sync.Once
	buildErr  error
)

// needCluster skips a test that starts processes when redis-server is missing, and builds the
// optoloop binary the children run (once per test binary).
func needCluster(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not on PATH (install it: scripts/deps.sh): " + err.Error())
	}
	buildOnce.Do(func() {
		if b := os.Getenv(prebuiltEnv); b != "" {
			binary = b
			return
		}
		binary = filepath.Join(tmpRoot, "optoloop")
		t0 := time.Now()
		out, err := exec.Command("go", "build", "-o", binary, "github.com/optoloop/optoloop/cmd/optoloop").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build of cmd/optoloop: %v\n%s", err, out)
			return
		}
		t.Logf("built %s in %v", binary, time.Since(t0).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// smallYAML is the experiment of the equivalence and fault tests: 2 lines of 2 arenas, 10
// collect episodes per line (20 s each: 5 s at --pace 4), a training task per line long
// enough to be killed in the middle of (12000 updates, checkpoints every 1000), one episode per
// evaluation condition and one per cross pair.
const smallYAML = `
name: small
seed: 5
lines: ["446", "73"]
arenas_per_line: 2
collect: { hours_per_line: 0.0555, episode_seconds: 20, light_probability: 0.3 }
train: { ensemble_size: 1, updates: 12000, checkpoint_every: 1000, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
cross_evaluate: { lines: ["446", "73"], episodes: 1 }
`

// smallItems is the number of items of smallYAML: per line 10 collect, 1 training task, 3
// evaluation episodes; 4 cross episodes.
const smallItems = 2*(10+1+3) + 4

// localRunOnce is a local run made at most once per test binary.
type localRunOnce struct {
	once sync.Once
	dir  string
	err  error
}

var localSmall, localOnline localRunOnce

// localRun runs smallYAML once per test binary through the local run and returns its run
// folder.
func localRun(t *testing.T) string {
	t.Helper()
	return localSmall.run(t, "local-run", smallYAML)
}

// run runs experiment file yaml, the first time it is called, through the local run (package
// runner: the cluster in this process, memstore) into tmpRoot/name, and returns that run
// folder.
func (l *localRunOnce) run(t *testing.T, name, yaml string) string {
	t.Helper()
	l.once.Do(func() {
		l.dir, l.err = runLocal(t, filepath.Join(tmpRoot, name), yaml)
	})
	if l.err != nil {
		t.Fatalf("local run: %v", l.err)
	}
	return l.dir
}

// runLocal runs experiment file yaml through the local run into run folder dir.
func runLocal(t *testing.T, dir, yaml string) (string, error) {
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		return "", err
	}
	spec, err := experiment.Parse([]byte(yaml))
	if err != nil {
		return "", err
	}
	r, err := runner.New(runner.Config{Spec: spec, SpecYAML: []byte(yaml), Dir: dir, Catalogue: cat, NoRender: true, Parallel: 2})
	if err != nil {
		return "", err
	}
	t0 := time.Now()
	if _, err := r.Run(context.Background()); err != nil {
		return "", err
	}
	t.Logf("local run of %s: %v", spec.Name, time.Since(t0).Round(time.Millisecond))
	return dir, nil
}

// up starts a cluster for the test (Binary, Dir and Stderr filled in) and closes it when the
// test ends; on failure the last lines of every log are printed.
func up(t *testing.T, ctx context.Context, cfg cluster.Config) *cluster.Cluster {
	t.Helper()
	needCluster(t)
	cfg.Binary = binary
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "cluster")
	}
	if os.Getenv(logEnv) != "" {
		cfg.Stderr = os.Stderr
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, cfg.Dir)
		}
	})
	t0 := time.Now()
	c, err := cluster.Up(ctx, cfg)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	t.Logf("cluster up in %v: %d processes", time.Since(t0).Round(time.Millisecond), len(c.Processes()))
	return c
}

// dumpLogs prints the last lines of every log of a cluster folder.
func dumpLogs(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("--- %s (last %d lines)\n%s", filepath.Base(f), len(lines), strings.Join(lines, "\n"))
	}
}

// compareRuns fails the test unless run folder got holds the same per-episode results (the
// local run want has episodes of them), report.json numbers and trained ensembles as want.
func compareRuns(t *testing.T, want, got string, episodes int) {
	t.Helper()
	w, err := results.Load(want)
	if err != nil {
		t.Fatal(err)
	}
	g, err := results.Load(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Missing) != 0 {
		t.Errorf("cluster run folder misses %v", g.Missing)
	}
	ids := func(r *results.Run) []string {
		var out []string
		for _, e := range r.Episodes {
			out = append(out, e.ID)
		}
		return out
	}
	if n := len(w.Episodes); n != episodes {
		t.Fatalf("the local run has %d episodes, want %d", n, episodes)
	}
	if !slices.Equal(ids(w), ids(g)) {
		t.Fatalf("episodes differ:\nlocal   %v\ncluster %v", ids(w), ids(g))
	}
	for i := range w.Episodes {
		a, b := w.Episodes[i], g.Episodes[i]
		if !reflect.DeepEqual(a, b) {
			ja, _ := json.Marshal(episodeSummary(a))
			jb, _ := json.Marshal(episodeSummary(b))
			t.Errorf("episode %s differs (frames: %d vs %d):\nlocal   %s\ncluster %s", a.ID, len(a.Frames), len(b.Frames), ja, jb)
		}
	}
	rw, rg := reportNumbers(t, want), reportNumbers(t, got)
	for _, k := range sortedKeys(rw, rg) {
		if !reflect.DeepEqual(rw[k], rg[k]) {
			ja, _ := json.Marshal(rw[k])
			jb, _ := json.Marshal(rg[k])
			t.Errorf("report.json %q differs:\nlocal   %s\ncluster %s", k, ja, jb)
		}
	}
	if !slices.Equal(w.Lines, g.Lines) {
		t.Fatalf("line folders: local %v, cluster %v", w.Lines, g.Lines)
	}
	for _, l := range w.Lines {
		a, b := treeFiles(t, filepath.Join(results.LineDir(want, l), results.EnsembleDir)), treeFiles(t, filepath.Join(results.LineDir(got, l), results.EnsembleDir))
		if len(a) == 0 {
			t.Errorf("line %s: the local run has no ensemble", l)
		}
		for _, name := range sortedKeys(a, b) {
			if !bytes.Equal(a[name], b[name]) {
				t.Errorf("line %s: ensemble file %s differs (%d vs %d bytes)", l, name, len(a[name]), len(b[name]))
			}
		}
	}
}

func episodeSummary(e results.Episode) results.Episode {
	e.Frames = nil
	return e
}

// reportNumbers is report.json as JSON values without its wall-clock times.
func reportNumbers(t *testing.T, dir string) map[string]any {
	t.Helper()
	m, err := results.ReportNumbers(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// treeFiles reads every file under dir, keyed by its path relative to dir.
func treeFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func sortedKeys[V any](ms ...map[string]V) []string {
	var out []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// superviseAndDie is the test binary re-executed as a supervisor: it starts a small cluster in
// dir, says so on stdout and, once the parent has seen its processes run and says so on stdin,
// crashes with a panic in a goroutine of its own (no deferred call or cleanup runs, as when
// `go test -timeout` ends a test binary), unless the parent kills it first.
func superviseAndDie(dir string) {
	cfg := cluster.Config{Binary: os.Getenv(supervisorBinEnv), Dir: dir, Lines: []string{"73"}, ArenasPerLine: 1, Learners: 1, NoRender: true}
	c, err := cluster.Up(context.Background(), cfg)
	if err != nil {
		fmt.Println("up failed:", err)
		os.Exit(3)
	}
	fmt.Println("up", len(c.Processes()))
	if os.Getenv(supervisorDirEnv+"_PANIC") != "" {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		go panic("supervisor crashes")
	}
	select {}
}
