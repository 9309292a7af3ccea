package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/experiment/plan"
	"github.com/optoloop/optoloop/redisserver"
)

const redisPassword = "test-redis-secret-4d1f"

// clusterForCmd is a one-node coordinator and a real redis-server (password, AOF), with the
// token and password in files.
type clusterForCmd struct {
	coord     *coordinatortest.Cluster
	redis     *redisserver.Server
	tokenFile string
	pwFile    string
	dir       string
}

func newClusterForCmd(t *testing.T) *clusterForCmd {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (make test installs it): ", err)
	}
	t.Setenv("OPTOLOOP_TOKEN", "")
	t.Setenv("OPTOLOOP_COORDINATOR", "")
	t.Setenv("OPTOLOOP_REDIS", "")
	t.Setenv("OPTOLOOP_REDIS_PASSWORD", "")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := redisserver.Start(ctx, redisserver.Config{Dir: filepath.Join(dir, "redis"), Password: redisPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Kill() })
	c := &clusterForCmd{coord: coordinatortest.New(t, 1, nil), redis: rs, dir: dir,
		tokenFile: filepath.Join(dir, "token"), pwFile: filepath.Join(dir, "redis-password")}
	// The role commands' credential: worker w's (its arenas are w-0, w-1, ...).
	for f, s := range map[string]string{c.tokenFile: coordinatortest.WorkerToken("w"), c.pwFile: redisPassword} {
		if err := os.WriteFile(f, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// credential writes tok to a new 0600 file and returns its path.
func (c *clusterForCmd) credential(t *testing.T, tok string) string {
	t.Helper()
	f, err := os.CreateTemp(c.dir, "credential-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(tok + "\n"); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// args are the connection flags of a role command.
func (c *clusterForCmd) args() []string {
	return []string{"--coordinator", strings.Join(c.coord.URLs(), ","), "--token-file", c.tokenFile,
		"--redis", c.redis.URL(), "--redis-password-file", c.pwFile, "--log-level", "warn", "--timeout", "5s",
		"--tls-dir", c.coord.TLSDir()}
}

// keys is the number of keys in Redis.
func (c *clusterForCmd) keys(t *testing.T) int64 {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: c.redis.Addr(), Password: redisPassword})
	defer rc.Close()
	n, err := rc.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRoleCommandsRefuseBadInput(t *testing.T) {
	c := newClusterForCmd(t)
	wrongPw := filepath.Join(c.dir, "wrong-pw")
	wrongTok := filepath.Join(c.dir, "wrong-token")
	for f, s := range map[string]string{wrongPw: "not-the-password", wrongTok: "not-the-token-0123456789abcdef0123456789"} {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// An address nothing listens on.
	closed := "127.0.0.1:1"
	with := func(base []string, flag, value string) []string {
		out := append([]string{}, base...)
		for i := range out {
			if out[i] == flag {
				out[i+1] = value
				return out
			}
		}
		return append(out, flag, value)
	}
	sim := func(extra ...string) []string {
		return append([]string{"worker", "--sim", "301", "--arenas", "2"}, extra...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown line", append([]string{"worker", "--sim", "99999"}, c.args()...), "99999"},
		{"sim and rig", append(sim("--rig", "rig.yaml", "--line", "301"), c.args()...), "exactly one of --sim"},
		{"neither sim nor rig", append([]string{"worker"}, c.args()...), "exactly one of --sim"},
		{"rig without line", append([]string{"worker", "--rig", "rig.yaml"}, c.args()...), "--rig needs --line"},
		{"negative pace", append(sim("--pace", "-1"), c.args()...), "--pace"},
		{"no redis password", with(append(sim(), c.args()...), "--redis-password-file", ""), "no Redis password"},
		{"wrong redis password", with(append(sim(), c.args()...), "--redis-password-file", wrongPw), "password"},
		{"learner wrong redis password", with(append([]string{"learner"}, c.args()...), "--redis-password-file", wrongPw), "password"},
		{"redis unreachable", with(append(sim(), c.args()...), "--redis", "redis://"+closed), "redis"},
		{"password in the redis url", with(append(sim(), c.args()...), "--redis", "redis://:hunter2@"+c.redis.Addr()), "password"},
		{"wrong token", with(append(sim(), c.args()...), "--token-file", wrongTok), "unauthorized"},
		{"learner wrong token", with(append([]string{"learner"}, c.args()...), "--token-file", wrongTok), "unauthorized"},
		{"another worker's credential", append(sim("--id", "x"), c.args()...), "pass --id NAME"},
		{"worker credential for a learner", append([]string{"learner", "--id", "w"}, c.args()...), "forbidden"},
		{"coordinator unreachable", with(with(append(sim(), c.args()...), "--coordinator", "http://"+closed), "--timeout", "2s"), "coordinator unreachable"},
		{"learner coordinator unreachable", with(with(append([]string{"learner"}, c.args()...), "--coordinator", "http://"+closed), "--timeout", "2s"), "coordinator unreachable"},
	}
	cl := c.coord.Client(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCmd(t, tc.args...)
			if err == nil {
				t.Fatalf("accepted; output %q", out)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q; want one line naming %q", msg, tc.want)
			}
			for _, secret := range []string{redisPassword, coordinatortest.Token, coordinatortest.WorkerToken("w"), "not-the-password", "not-the-token", "hunter2"} {
				if strings.Contains(msg, secret) || strings.Contains(out, secret) {
					t.Errorf("a secret is shown: %q / %q", msg, out)
				}
			}
			st, err := cl.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Workers != 0 || st.Learners != 0 {
				t.Errorf("%d workers and %d learners registered after a refused start", st.Workers, st.Learners)
			}
			if n := c.keys(t); n != 0 {
				t.Errorf("%d keys written to Redis", n)
			}
		})
	}
}

// TestWorkerDrainsOnSignal runs a worker command of two paced simulated arenas; when its
// context ends (as SIGTERM ends it) the episodes it runs finish and are reported, it leases no
// more, deregisters and exits 0.
func TestWorkerDrainsOnSignal(t *testing.T) {
	c := newClusterForCmd(t)
	cl := c.coord.Client(t)
	spec := []byte(`name: drain
seed: 3
lines: ["301"]
collect: { hours_per_line: 0.0333, episode_seconds: 20 }
train: { ensemble_size: 1, updates: 10, checkpoint_every: 10, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
`)
	ctx := context.Background()
	id, err := cl.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&lockedBuffer{})
	// 20 s episodes at 10x: 2 s each.
	root.SetArgs(append([]string{"worker", "--sim", "301", "--arenas", "2", "--no-render", "--pace", "10", "--id", "w", "--lease-ttl", "3s", "--grace", "30s"}, c.args()...))
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(wctx) }()
	leased := func() []api.Item {
		v, err := cl.Experiment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var out []api.Item
		for _, it := range v.Items {
			if it.State == api.StateLeased {
				out = append(out, it)
			}
		}
		return out
	}
	coordinatortest.WaitFor(t, 30*time.Second, "both arenas running an episode", func() bool { return len(leased()) == 2 })
	running := leased()
	stop() // SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exited with %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("worker did not exit after its grace period")
	}
	v, err := cl.Experiment(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]api.Item{}
	for _, it := range v.Items {
		byID[it.ID] = it
		if it.State == api.StateLeased {
			t.Errorf("item %s still leased after the worker left", it.ID)
		}
	}
	for _, r := range running {
		if got := byID[r.ID]; got.State != api.StateDone || got.Result.Token != r.Token {
			t.Errorf("episode %s running at the signal: %s (token %d); want done under its lease %d", r.ID, got.State, got.Token, r.Token)
		}
	}
	done2 := 0
	for _, it := range v.Items {
		if it.Type == plan.TypeEpisode && it.State == api.StateDone {
			done2++
		}
	}
	if done2 != len(running) {
		t.Errorf("%d episodes done; want only the %d running at the signal", done2, len(running))
	}
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Workers != 0 {
		t.Errorf("%d workers still registered after the drain", st.Workers)
	}
	if c.keys(t) == 0 {
		t.Error("nothing reached Redis")
	}
}

// TestWorkerOnRig serves a real rig (a video camera and a GPIO value file light) to the
// cluster: the worker runs its collection episode with random light, its records and track
// reach Redis, and the light is off when the worker has left.
func TestWorkerOnRig(t *testing.T) {
	c := newClusterForCmd(t)
	conf, value := rigFixture(t)
	cl := c.coord.Client(t)
	ctx := context.Background()
	id, err := cl.Submit(ctx, []byte(`name: rig
seed: 5
lines: ["446"]
collect: { hours_per_line: 0.00138, episode_seconds: 5, light_probability: 0.5 }
train: { ensemble_size: 1, updates: 10, checkpoint_every: 10, batch_size: 16 }
evaluate: { episodes_per_condition: 1, episode_seconds: 10 }
`))
	if err != nil {
		t.Fatal(err)
	}
	root := newRootCmd()
	root.SetOut(&lockedBuffer{})
	logs := &lockedBuffer{}
	root.SetErr(logs)
	root.SetArgs(append(append([]string{"worker", "--rig", conf, "--line", "446", "--id", "rig-1", "--lease-ttl", "3s"}, c.args()...),
		"--token-file", c.credential(t, coordinatortest.WorkerToken("rig-1"))))
	defer func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", logs)
		}
	}()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(wctx) }()
	var ep api.Item
	coordinatortest.WaitFor(t, 60*time.Second, "the rig's collection episode done", func() bool {
		v, err := cl.Experiment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range v.Items {
			if it.Type == plan.TypeEpisode && it.State == api.StateDone {
				ep = it
				return true
			}
		}
		return false
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("worker exited with %v", err)
	}
	if ep.Result.By != "rig-1" || ep.Result.Outcome.Frames != 15 || ep.Result.Outcome.LightFraction == 0 {
		t.Errorf("rig episode %+v", ep.Result.Outcome)
	}
	if b, _ := os.ReadFile(value); strings.TrimSpace(string(b)) != "0" {
		t.Errorf("light left %q after the worker left", b)
	}
	if c.keys(t) == 0 {
		t.Error("nothing reached Redis")
	}
}
