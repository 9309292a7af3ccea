package cluster_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/optoloop/optoloop/childproc/childproctest"
	"github.com/optoloop/optoloop/cluster"
	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

func TestAssign(t *testing.T) {
	tests := []struct {
		lines   []string
		arenas  int
		workers int
		want    []cluster.WorkerProcess
	}{
		{[]string{"a", "b"}, 2, 4, []cluster.WorkerProcess{{"worker-0", "a", 1}, {"worker-1", "b", 1}, {"worker-2", "a", 1}, {"worker-3", "b", 1}}},
		{[]string{"a", "b"}, 4, 2, []cluster.WorkerProcess{{"worker-0", "a", 4}, {"worker-1", "b", 4}}},
		{[]string{"a", "b", "c"}, 4, 5, []cluster.WorkerProcess{{"worker-0", "a", 2}, {"worker-1", "b", 2}, {"worker-2", "c", 4}, {"worker-3", "a", 2}, {"worker-4", "b", 2}}},
		{[]string{"a"}, 5, 3, []cluster.WorkerProcess{{"worker-0", "a", 2}, {"worker-1", "a", 2}, {"worker-2", "a", 1}}},
	}
	for _, tt := range tests {
		got, err := cluster.Assign(tt.lines, tt.arenas, tt.workers)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Assign(%v, %d, %d) = %v, %v; want %v", tt.lines, tt.arenas, tt.workers, got, err, tt.want)
		}
	}
	for _, w := range []int{1, 5} {
		if _, err := cluster.Assign([]string{"a", "b"}, 2, w); err == nil {
			t.Errorf("%d processes for 2 lines of 2 arenas accepted", w)
		}
	}
}

func TestUpRefusesBadConfigAndStartsNothing(t *testing.T) {
	tests := []struct {
		name string
		cfg  cluster.Config
		want string
	}{
		{"no folder", cluster.Config{Lines: []string{"73"}, ArenasPerLine: 1}, "folder"},
		{"no lines", cluster.Config{ArenasPerLine: 1}, "no lines"},
		{"no arenas", cluster.Config{Lines: []string{"73"}}, "arenas per line"},
		{"fewer workers than lines", cluster.Config{Lines: []string{"73", "446"}, ArenasPerLine: 2, Workers: 1}, "at least one per line"},
		{"more workers than arenas", cluster.Config{Lines: []string{"73"}, ArenasPerLine: 2, Workers: 3}, "at most one per arena"},
		{"repeated line", cluster.Config{Lines: []string{"73", "73"}, ArenasPerLine: 1}, "repeated"},
		{"negative pace", cluster.Config{Lines: []string{"73"}, ArenasPerLine: 1, Pace: -1}, "pace"},
		{"no binary", cluster.Config{Lines: []string{"73"}, ArenasPerLine: 1, Binary: "/nonexistent/optoloop"}, "binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.name != "no folder" {
				tt.cfg.Dir = filepath.Join(dir, "c")
			}
			if tt.cfg.Binary == "" {
				tt.cfg.Binary = "/bin/true"
			}
			c, err := cluster.Up(t.Context(), tt.cfg)
			if err == nil {
				c.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line containing %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "c")); !os.IsNotExist(err) {
				t.Fatalf("a refused config created the cluster folder (%v)", err)
			}
		})
	}
}

// smallCluster is a cluster of one line: redis, 3 coordinators, a worker process and a learner.
func smallCluster(dir string) cluster.Config {
	return cluster.Config{Dir: dir, Lines: []string{"73"}, ArenasPerLine: 1, Learners: 1, NoRender: true, StopGrace: 5 * time.Second}
}

func pids(ps []cluster.Process) []int {
	var out []int
	for _, p := range ps {
		if p.PID != 0 {
			out = append(out, p.PID)
		}
	}
	return out
}

func TestCloseLeavesNoProcess(t *testing.T) {
	c := up(t, t.Context(), smallCluster(""))
	checkClusterTLS(t, c)
	ps := c.Processes()
	roles := map[cluster.Role]int{}
	for _, p := range ps {
		roles[p.Role]++
		if !p.Running || p.PID == 0 {
			t.Errorf("process %+v not running after Up", p)
		}
	}
	if want := map[cluster.Role]int{cluster.RoleRedis: 1, cluster.RoleCoordinator: 3, cluster.RoleWorker: 1, cluster.RoleLearner: 1}; !reflect.DeepEqual(roles, want) {
		t.Fatalf("roles %v, want %v", roles, want)
	}
	// A killed and restarted process is a new pid: both must be gone after Close.
	if err := c.Kill("worker-0"); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartProcess(t.Context(), "worker-0"); err != nil {
		t.Fatal(err)
	}
	all, err := cluster.ReadProcesses(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(ps)+1 {
		t.Fatalf("processes.json lists %d incarnations, want %d: %+v", len(all), len(ps)+1, all)
	}
	if f := c.Failures(); len(f) != 0 {
		t.Fatalf("failures: %v", f)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if left := childproctest.WaitGone(0, pids(all)...); len(left) != 0 {
		t.Fatalf("processes %v still exist after Close", left)
	}
	for _, p := range c.Processes() {
		if p.Running {
			t.Errorf("%s still running after Close", p.Name)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestUpFailureLeavesNoProcess: a coordinator that cannot start (its lines file is missing)
// fails Up with its own words, and what Up had started (redis-server) is gone.
func TestUpFailureLeavesNoProcess(t *testing.T) {
	needCluster(t)
	cfg := smallCluster(filepath.Join(t.TempDir(), "c"))
	cfg.Binary = binary
	cfg.LinesFile = filepath.Join(t.TempDir(), "missing-lines.yaml")
	c, err := cluster.Up(t.Context(), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Up with a missing lines file succeeded")
	}
	if !strings.Contains(err.Error(), "c0") || !strings.Contains(err.Error(), "missing-lines.yaml") {
		t.Errorf("error %q does not name the coordinator and its problem", err)
	}
	all, rerr := cluster.ReadProcesses(cfg.Dir)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if len(all) < 2 {
		t.Fatalf("processes.json lists %+v: want redis and c0", all)
	}
	if left := childproctest.WaitGone(0, pids(all)...); len(left) != 0 {
		t.Fatalf("processes %v still exist after a failed Up", left)
	}
}

// TestNothingOutlivesTheSupervisor re-executes this test binary as a supervisor of a small
// cluster and ends it without Close: by a panic (as a test timeout ends a test binary: no
// cleanup runs) and by SIGKILL. Every process it started must die with it.
func TestNothingOutlivesTheSupervisor(t *testing.T) {
	needCluster(t)
	for _, how := range []string{"panic", "sigkill"} {
		t.Run(how, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "c")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), supervisorDirEnv+"="+dir, supervisorBinEnv+"="+binary)
			if how == "panic" {
				cmd.Env = append(cmd.Env, supervisorDirEnv+"_PANIC=1")
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			in, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			line, _ := bufio.NewReader(out).ReadString('\n')
			if !strings.HasPrefix(line, "up ") {
				t.Fatalf("supervisor said %q", line)
			}
			all, err := cluster.ReadProcesses(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 6 {
				t.Fatalf("processes.json lists %+v, want 6 processes", all)
			}
			for _, p := range all {
				if childproctest.Gone(p.PID) {
					t.Fatalf("%s (pid %d) is not running while the supervisor is", p.Name, p.PID)
				}
			}
			if how == "sigkill" {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			} else if _, err := io.WriteString(in, "crash\n"); err != nil { // only now may it panic
				t.Fatal(err)
			}
			err = cmd.Wait()
			t.Logf("supervisor ended: %v", err)
			if left := childproctest.WaitGone(10*time.Second, pids(all)...); len(left) != 0 {
				for _, p := range left {
					b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
					t.Errorf("pid %d outlived the supervisor: %s", p, strings.ReplaceAll(string(b), "\x00", " "))
					_ = syscall.Kill(-p, syscall.SIGKILL)
				}
			}
		})
	}
}

// TestClusterMatchesLocalRun: the same experiment file through the local run and through a
// cluster of separate processes (3 coordinators, 4 worker processes, 2 learners, redis with a
// password and the append-only file) gives the same per-episode results, report.json numbers
// and ensembles.
func TestClusterMatchesLocalRun(t *testing.T) {
	needCluster(t)
	local := localRun(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	c := up(t, ctx, cluster.Config{Lines: []string{"446", "73"}, ArenasPerLine: 2, Workers: 4, Learners: 2, NoRender: true})
	checkSecrets(t, c)
	t0 := time.Now()
	id, err := c.Submit(ctx, []byte(smallYAML))
	if err != nil {
		t.Fatal(err)
	}
	view, err := c.Wait(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster run: %v", time.Since(t0).Round(time.Millisecond))
	checkDoneOnce(t, c, view, smallItems)
	run := filepath.Join(t.TempDir(), "run")
	if err := c.Export(ctx, id, run); err != nil {
		t.Fatal(err)
	}
	compareRuns(t, local, run, smallItems-2)
	if f := c.Failures(); len(f) != 0 {
		t.Fatalf("failures: %v", f)
	}
}

// checkDoneOnce fails unless the experiment has items items, every one done with one accepted
// report.
func checkDoneOnce(t *testing.T, c *cluster.Cluster, v api.ExperimentView, items int) {
	t.Helper()
	st, err := c.Client().Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Stats.ReportsAccepted != uint64(items) {
		t.Errorf("%d reports accepted, want %d (one per item)", st.Stats.ReportsAccepted, items)
	}
	if v.Experiment.Status != plan.StatusDone {
		t.Fatalf("experiment %s: %s (%s)", v.Experiment.ID, v.Experiment.Status, v.Experiment.Reason)
	}
	if len(v.Items) != items {
		t.Errorf("%d items, want %d", len(v.Items), items)
	}
	for _, it := range v.Items {
		if it.State != api.StateDone || it.Result == nil || it.Result.Token == 0 {
			t.Errorf("item %s: %s, result %+v", it.ID, it.State, it.Result)
		}
	}
}

// checkSecrets: redis needs its password, and neither the token nor the password is on any
// process's command line or in any log.
func checkSecrets(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(c.RedisURL(), "redis://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	l, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(l, "-NOAUTH") {
		t.Errorf("redis answered %q to a PING without AUTH", l)
	}
	var secrets []string
	files, _ := filepath.Glob(filepath.Join(c.Dir(), "secrets", "*"))
	// The admin token, the credential key, the operator's and viewer's credentials, one for
	// every worker and learner process, the Redis password.
	want := 5
	for _, p := range c.Processes() {
		if p.Role == cluster.RoleWorker || p.Role == cluster.RoleLearner {
			want++
		}
	}
	if len(files) != want {
		t.Errorf("secrets/ holds %d files, want %d: %v", len(files), want, files)
	}
	for _, w := range c.Workers() {
		cfg := api.DefaultClientConfig(c.Endpoints()...)
		tok, err := api.ReadTokenFile(c.CredentialFile(w.Name))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Token, cfg.TLS = tok, c.ClientTLS()
		cl, err := api.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if who, err := cl.WhoAmI(t.Context()); err != nil || who.Role != api.RoleWorker || who.Holder != w.Name {
			t.Errorf("the credential of %s: %+v, %v", w.Name, who, err)
		}
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(f)
		secrets = append(secrets, strings.TrimSpace(string(b)))
	}
	for _, p := range c.Processes() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
			continue
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("a secret is on the command line of %s", p.Name)
			}
		}
		if p.Role == cluster.RoleRedis {
			if _, err := os.Stat(filepath.Join(c.Redis().Dir(), "appendonlydir")); err != nil {
				t.Errorf("redis keeps no append-only file: %v", err)
			}
		}
	}
	t.Cleanup(func() {
		files, _ := filepath.Glob(filepath.Join(c.Dir(), "logs", "*.log"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			for _, s := range secrets {
				if strings.Contains(string(b), s) {
					t.Errorf("a secret is in %s", f)
				}
			}
		}
	})
}
