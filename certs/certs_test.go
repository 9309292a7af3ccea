package certs_test

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/certs"
)

func TestWriteLaysOutCAAndHoldersWithPrivateKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	nodes, err := certs.ParseNodes([]string{"c1=10.0.0.5+c1.lab", "c2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.Write(dir, certs.Plan{Nodes: nodes, Hosts: []string{"coord.lab"}, Workers: []string{"w1"}, Learners: []string{"l1"}, Clients: []string{"ops"}}); err != nil {
		t.Fatal(err)
	}
	mode := func(p string) fs.FileMode {
		t.Helper()
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode()
	}
	if m := mode(filepath.Join(dir, certs.CAKeyFile)); m.Perm() != 0o600 {
		t.Errorf("ca-key.pem mode %v, want 0600", m)
	}
	mode(filepath.Join(dir, certs.CAFile))
	want := map[string]certs.Role{"c1": certs.RoleNode, "c2": certs.RoleNode, "w1": certs.RoleWorker, "l1": certs.RoleLearner, "ops": certs.RoleClient}
	for name, role := range want {
		d := filepath.Join(dir, name)
		if m := mode(d); !m.IsDir() || m.Perm() != 0o700 {
			t.Errorf("%s: mode %v, want a 0700 folder", d, m)
		}
		if m := mode(filepath.Join(d, certs.KeyFile)); m.Perm() != 0o600 {
			t.Errorf("%s/key.pem mode %v, want 0600", name, m)
		}
		id, err := certs.Load(d)
		if err != nil {
			t.Fatal(err)
		}
		if id.Name != name || id.Role != role {
			t.Errorf("%s: loaded %q role %q, want %q", d, id.Name, id.Role, role)
		}
	}
	c1, _ := certs.Load(filepath.Join(dir, "c1"))
	for _, h := range []string{"127.0.0.1", "::1", "localhost", "10.0.0.5", "c1.lab", "coord.lab"} {
		if err := c1.Cert.Leaf.VerifyHostname(h); err != nil {
			t.Errorf("c1's certificate does not hold %s: %v", h, err)
		}
	}
	if w1, _ := certs.Load(filepath.Join(dir, "w1")); len(w1.Hosts()) != 0 {
		t.Errorf("a worker's certificate holds hosts %v", w1.Hosts())
	}
	// The top folder holds the CA only: a client that verifies the nodes but shows nothing.
	top, err := certs.Load(dir)
	if err != nil || top.Cert != nil {
		t.Fatalf("Load(top) = %+v, %v; want the CA only", top, err)
	}
}

func TestWriteRefusesBadInputAndWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan certs.Plan
		want string
	}{
		{"empty", certs.Plan{}, "nothing to issue"},
		{"bad name", certs.Plan{Nodes: []certs.Node{{Name: "../c1"}}}, "name"},
		{"bad host", certs.Plan{Nodes: []certs.Node{{Name: "c1", Hosts: []string{"not a host"}}}}, "host"},
		{"bad shared host", certs.Plan{Nodes: []certs.Node{{Name: "c1"}}, Hosts: []string{"a_b"}}, "host"},
		{"twice", certs.Plan{Nodes: []certs.Node{{Name: "c1"}}, Workers: []string{"c1"}}, "twice"},
		{"a CA's file", certs.Plan{Workers: []string{"ca.pem"}}, "CA's files"},
		{"add without CA", certs.Plan{Workers: []string{"w1"}, AddToCA: true}, "no such file"},
		{"add and replace", certs.Plan{Workers: []string{"w1"}, AddToCA: true, ReplaceCA: true}, "exclusive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tls")
			err := certs.Write(dir, tc.plan)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line naming %q", err, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s written after a refused plan", dir)
			}
		})
	}
	if _, err := certs.ParseNodes([]string{"c1=10.0.0.5+bad host"}); err == nil {
		t.Error("ParseNodes accepted a bad host")
	}
}

func TestWriteKeepsAnExistingCAUnlessAsked(t *testing.T) {
	dir := t.TempDir()
	if err := certs.Write(dir, certs.Plan{Nodes: []certs.Node{{Name: "c1"}}}); err != nil {
		t.Fatal(err)
	}
	ca0, _ := os.ReadFile(filepath.Join(dir, certs.CAFile))
	err := certs.Write(dir, certs.Plan{Workers: []string{"w1"}})
	if err == nil || !strings.Contains(err.Error(), "already holds a CA") {
		t.Fatalf("second Write: %v, want a refusal naming the CA", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "w1")); !errors.Is(err, os.ErrNotExist) {
		t.Error("w1 written after the refusal")
	}
	if err := certs.Write(dir, certs.Plan{Workers: []string{"w1"}, AddToCA: true}); err != nil {
		t.Fatal(err)
	}
	if ca1, _ := os.ReadFile(filepath.Join(dir, certs.CAFile)); string(ca1) != string(ca0) {
		t.Error("adding certificates replaced the CA")
	}
	if err := certs.Write(dir, certs.Plan{Workers: []string{"w1"}, AddToCA: true}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("issuing w1 twice: %v, want a refusal", err)
	}
	// w1 (issued later) and c1 share the CA: c1 verifies w1's certificate.
	c1, _ := certs.Load(filepath.Join(dir, "c1"))
	w1, _ := certs.Load(filepath.Join(dir, "w1"))
	if err := handshake(c1.ServerConfig(), w1.ClientConfig()); err != nil {
		t.Errorf("w1 to c1's HTTPS: %v", err)
	}
	if err := certs.Write(dir, certs.Plan{Workers: []string{"w2"}, ReplaceCA: true}); err != nil {
		t.Fatal(err)
	}
	if ca2, _ := os.ReadFile(filepath.Join(dir, certs.CAFile)); string(ca2) == string(ca0) {
		t.Error("ReplaceCA kept the CA")
	}
}

func TestPeerConfigsAcceptOnlyNodes(t *testing.T) {
	dir := t.TempDir()
	if err := certs.Write(dir, certs.Plan{Nodes: []certs.Node{{Name: "c1"}, {Name: "c2"}}, Workers: []string{"w1"}}); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := certs.Write(other, certs.Plan{Nodes: []certs.Node{{Name: "c9"}}}); err != nil {
		t.Fatal(err)
	}
	load := func(d, n string) *certs.Identity {
		id, err := certs.Load(filepath.Join(d, n))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	c1, c2, w1, c9 := load(dir, "c1"), load(dir, "c2"), load(dir, "w1"), load(other, "c9")
	if err := handshake(c1.PeerServerConfig(), c2.PeerClientConfig()); err != nil {
		t.Errorf("node to node: %v", err)
	}
	if err := handshake(c1.PeerServerConfig(), w1.ClientConfig()); err == nil {
		t.Error("a worker's certificate passed the Raft port")
	}
	if err := handshake(c1.PeerServerConfig(), c9.PeerClientConfig()); err == nil {
		t.Error("another CA's node passed the Raft port")
	}
	if err := handshake(c1.PeerServerConfig(), &tls.Config{InsecureSkipVerify: true}); err == nil {
		t.Error("a client without a certificate passed the Raft port")
	}
	if err := handshake(c1.ServerConfig(), &tls.Config{RootCAs: c1.CAs}); err != nil {
		t.Errorf("HTTPS without a client certificate: %v", err)
	}
}

// handshake runs one TLS handshake over a loopback TCP connection and returns the server's
// error (or else the client's).
func handshake(server, client *tls.Config) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	serr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serr <- err
			return
		}
		defer c.Close()
		sc := tls.Server(c, server)
		err = sc.Handshake()
		if err == nil {
			_, err = sc.Write([]byte{1})
		}
		serr <- err
	}()
	cfg := client.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = "127.0.0.1"
	}
	c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	var cerr error
	if err != nil {
		cerr = err
	} else {
		var b [1]byte
		_, cerr = c.Read(b[:])
		c.Close()
	}
	if err := <-serr; err != nil {
		return err
	}
	return cerr
}

func TestDefaultHostsAreLoopback(t *testing.T) {
	if h := certs.DefaultHosts(); !slices.Equal(h, []string{"127.0.0.1", "::1", "localhost"}) {
		t.Errorf("DefaultHosts = %v", h)
	}
}
