package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/experiment"
	"github.com/optoloop/optoloop/experiment/plan"
)

// lockedBuffer is a bytes.Buffer safe for a command writing while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func runCoordCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestCoordinatorCommands(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	const token = "cli-secret-0123456789abcdef0123456789"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPTOLOOP_TOKEN", "")
	t.Setenv("OPTOLOOP_COORDINATOR", "")
	t.Setenv("OPTOLOOP_TLS_DIR", "")

	// The node and the client commands speak TLS with what `cluster certs` makes.
	tlsDir := filepath.Join(dir, "tls")
	if _, err := runCoordCmd(t, "cluster", "certs", "--out", tlsDir, "--nodes", "c1", "--clients", "ops"); err != nil {
		t.Fatal(err)
	}
	// Without --tls-dir or --insecure a node is refused.
	if _, err := runCoordCmd(t, "coordinator", "--id", "c1", "--raft-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, "refused"), "--bootstrap", "--token-file", tokenFile); err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("coordinator without TLS: %v", err)
	}

	// One bootstrapped node, run by the coordinator command until the test cancels it.
	out := &lockedBuffer{}
	root := newRootCmd()
	root.SetOut(out)
	root.SetErr(&lockedBuffer{})
	root.SetArgs([]string{"coordinator", "--id", "c1", "--raft-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, "data"), "--bootstrap", "--token-file", tokenFile, "--log-level", "error",
		"--tls-dir", filepath.Join(tlsDir, "c1")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("coordinator exited with %v", err)
		}
	}()
	re := regexp.MustCompile(`http (https://127\.0\.0\.1:\d+)`)
	var url string
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for url == "" {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("coordinator did not start: %q", out.String())
		} else {
			<-tick.C
		}
	}
	demo := filepath.Join("..", "..", "experiments", "demo.yaml")
	// A client without TLS flags is refused before it calls; one with --insecure fails the
	// handshake; from here on the client's folder comes from OPTOLOOP_TLS_DIR.
	if _, err := runCoordCmd(t, "status", "--coordinator", url); err == nil || !strings.Contains(err.Error(), "--tls-dir") {
		t.Fatalf("status without TLS flags: %v", err)
	}
	if _, err := runCoordCmd(t, "status", "--coordinator", url, "--token-file", tokenFile, "--insecure", "--timeout", "2s"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("status without the CA: %v", err)
	}
	t.Setenv("OPTOLOOP_TLS_DIR", filepath.Join(tlsDir, "ops"))

	// Without a token the submission is refused before anything is sent.
	if _, err := runCoordCmd(t, "experiment", "submit", demo, "--coordinator", url); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("submit without a token: %v", err)
	}
	// A wrong token: 401.
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("nope-not-this-clusters-token-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCoordCmd(t, "experiment", "submit", demo, "--coordinator", url, "--token-file", bad); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("submit with a wrong token: %v", err)
	}
	// A malformed file names the field.
	malformed := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(malformed, []byte("name: x\nlines: [\"301\"]\ntrain: {updates: -5}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCoordCmd(t, "experiment", "submit", malformed, "--coordinator", url, "--token-file", tokenFile); err == nil || !strings.Contains(err.Error(), "train.updates") {
		t.Fatalf("malformed submit: %v", err)
	}
	// An unknown line is refused by the coordinator's catalogue check.
	unknown := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("name: x\nlines: [\"99999\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCoordCmd(t, "experiment", "submit", unknown, "--coordinator", url, "--token-file", tokenFile); err == nil || !strings.Contains(err.Error(), "lines[0]") {
		t.Fatalf("unknown line: %v", err)
	}

	t.Setenv("OPTOLOOP_COORDINATOR", url)
	idOut, err := runCoordCmd(t, "experiment", "submit", demo, "--token-file", tokenFile)
	// Reads need a credential too: refused before anything is sent without one, then the
	// token comes from $OPTOLOOP_TOKEN.
	if _, err := runCoordCmd(t, "status"); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("status without a token: %v", err)
	}
	t.Setenv("OPTOLOOP_TOKEN", token)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(idOut)
	if !strings.HasPrefix(id, "demo-") {
		t.Fatalf("experiment id %q", id)
	}

	// The leader records its own HTTP address through the log shortly after its election: wait
	// for that entry to be applied.
	var st api.Status
	for {
		js, err := runCoordCmd(t, "status", "--json")
		if err != nil {
			t.Fatal(err)
		}
		st = api.Status{}
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, js)
		}
		if st.Leader.HTTPAddr != "" || time.Now().After(deadline) {
			break
		}
		<-tick.C
	}
	// Every collection episode of demo.yaml is pending.
	spec, err := experiment.ParseFile(demo, experiment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantPending := len(spec.Lines) * spec.CollectEpisodesPerLine()
	if st.Leader.ID != "c1" || st.Leader.HTTPAddr == "" || len(st.Nodes) != 1 || st.Nodes[0].State != "Leader" || st.Nodes[0].AppliedIndex == 0 || st.Episodes[api.StatePending] != wantPending {
		t.Fatalf("status: %+v", st)
	}
	text, err := runCoordCmd(t, "status")
	if err != nil || !strings.Contains(text, "leader") || !strings.Contains(text, id) {
		t.Fatalf("status: %v\n%s", err, text)
	}

	js, err := runCoordCmd(t, "experiment", "get", id, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v api.ExperimentView
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		t.Fatal(err)
	}
	if v.Experiment.ID != id || v.Experiment.Phase != plan.PhaseCollect || len(v.Items) != wantPending || v.Items[0].Kind != episode.KindCollect {
		t.Fatalf("experiment: %+v", v.Experiment)
	}
	text, err = runCoordCmd(t, "experiment", "get", id)
	if err != nil || !strings.Contains(text, "collect") {
		t.Fatalf("experiments get: %v\n%s", err, text)
	}
	if _, err := runCoordCmd(t, "experiment", "get", "nope-1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("experiments get of an unknown id: %v", err)
	}
	list, err := runCoordCmd(t, "experiment", "list")
	if err != nil || !strings.Contains(list, id) {
		t.Fatalf("experiments list: %v\n%s", err, list)
	}
}

// TestCoordinatorRefusesWeakTokenFiles pins the finding "weak or multi-line token files are
// accepted": the coordinator command refuses, before it listens, a token file that is short,
// holds whitespace inside or more than one line, and a credential key file others may read,
// each with one line naming the file and never the token.
func TestCoordinatorRefusesWeakTokenFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("OPTOLOOP_TOKEN", "")
	strong := strings.Repeat("5e", 16)
	write := func(name, s string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", strong+"\n", 0o600)
	for _, tc := range []struct {
		name string
		args []string
		file string
		want string
	}{
		{"short", []string{"--token-file"}, write("short", "cli-secret\n", 0o600), "too short"},
		{"inner space", []string{"--token-file"}, write("space", strong+" "+strong+"\n", 0o600), "whitespace"},
		{"two lines", []string{"--token-file"}, write("two", strong+"\n"+strong+"\n", 0o600), "2 non-empty lines"},
		{"weak operator token", []string{"--token-file", good, "--operator-token-file"}, write("op", "operator\n", 0o600), "too short"},
		{"multi-line viewer token", []string{"--token-file", good, "--viewer-token-file"}, write("viewer", strong+"a\n"+strong+"b\n", 0o600), "2 non-empty lines"},
		{"short key", []string{"--token-file", good, "--credential-key-file"}, write("key-short", "k3y\n", 0o600), "too short"},
		{"key readable by others", []string{"--token-file", good, "--credential-key-file"}, write("key-open", strong+"\n", 0o644), "chmod 600"},
	} {
		args := append([]string{"coordinator", "--id", "c1", "--raft-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--data-dir", filepath.Join(dir, "data-"+strings.ReplaceAll(tc.name, " ", "-")), "--bootstrap", "--log-level", "error"}, tc.args...)
		out, err := runCoordCmd(t, append(args, tc.file)...)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.file) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q; want one line naming %s and %q", tc.name, msg, tc.file, tc.want)
		}
		if strings.Contains(msg, strong) || strings.Contains(msg, "cli-secret") || strings.Contains(out, strong) {
			t.Errorf("%s: the token is shown: %q %q", tc.name, msg, out)
		}
		if strings.Contains(out, "http://") {
			t.Errorf("%s: the coordinator listened: %q", tc.name, out)
		}
	}
}

// TestClusterCredentialCommand: cluster credential makes a key (0600) and issues credentials
// from it into new 0600 files, printed only with --out -; they verify under the key with their
// role and holder; bad input is a one-line error.
func TestClusterCredentialCommand(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if _, err := runClusterCmd(t, "credential", "--key-file", key, "--new-key"); err != nil {
		t.Fatal(err)
	}
	w1 := filepath.Join(dir, "w1")
	out, err := runClusterCmd(t, "credential", "--key-file", key, "--role", "worker", "--holder", "w1", "--out", w1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{key, w1} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", p, err, fi.Mode().Perm())
		}
	}
	k, err := api.ReadTokenFile(key)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.ReadTokenFile(w1)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, tok) || strings.Contains(out, k) {
		t.Fatalf("a secret is printed: %q", out)
	}
	if role, holder, ok := api.VerifyCredential([]byte(k), tok); !ok || role != api.RoleWorker || holder != "w1" {
		t.Fatalf("issued credential: %v %q %v", role, holder, ok)
	}
	printed, err := runClusterCmd(t, "credential", "--key-file", key, "--role", "viewer", "--holder", "screen", "--out", "-")
	if role, holder, ok := api.VerifyCredential([]byte(k), strings.TrimSpace(printed)); err != nil || !ok || role != api.RoleViewer || holder != "screen" {
		t.Fatalf("--out -: %v %q %v (%v)", role, holder, ok, err)
	}
	if err := os.Chmod(key, 0o640); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"key readable by others": {"--key-file", key, "--role", "worker", "--holder", "w2", "--out", filepath.Join(dir, "w2")},
		"existing key":           {"--key-file", key, "--new-key"},
		"existing out":           {"--key-file", key, "--role", "worker", "--holder", "w1", "--out", w1},
		"unknown role":           {"--key-file", key, "--role", "root", "--holder", "w1", "--out", filepath.Join(dir, "r")},
		"no holder":              {"--key-file", key, "--role", "worker", "--out", filepath.Join(dir, "h")},
		"no key":                 {"--role", "worker", "--holder", "w1", "--out", filepath.Join(dir, "n")},
	} {
		if name != "key readable by others" {
			if err := os.Chmod(key, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, err := runClusterCmd(t, append([]string{"credential"}, args...)...)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want a one-line error", name, err)
		}
		if err := os.Chmod(key, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}
