package cluster_test

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/certs"
	"github.com/optoloop/optoloop/cluster"
)

// checkClusterTLS: a cluster Up started by default speaks TLS: its endpoints are https, its
// certificates are in DIR/tls with 0600 keys, and a coordinator's Raft port refuses a worker's
// certificate although the cluster's CA signed it.
func checkClusterTLS(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	for _, e := range c.Endpoints() {
		if !strings.HasPrefix(e, "https://") {
			t.Errorf("endpoint %s is not https", e)
		}
	}
	dir := c.TLSDir()
	for _, f := range []string{certs.CAKeyFile, filepath.Join("c0", certs.KeyFile), filepath.Join("worker-0", certs.KeyFile)} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	st, err := c.Client().Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	w, err := certs.Load(filepath.Join(dir, "worker-0"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := w.ClientConfig()
	cfg.ServerName = "127.0.0.1"
	for _, n := range st.Nodes {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.RaftAddr, cfg)
		if err == nil {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Raft port of %s with a worker's certificate: %v, want a refused certificate", n.ID, err)
		}
	}
}
