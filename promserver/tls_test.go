package promserver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHTTPSTargetsAreScrapedWithTheCA: "https://host:port" targets go into a group labelled
// with the https scheme, and the job verifies them against CAFile.
func TestHTTPSTargetsAreScrapedWithTheCA(t *testing.T) {
	dir := t.TempDir()
	s, err := newServer(Config{Binary: "/bin/true", Dir: dir, CAFile: "/tls/ca.pem", Targets: []string{"127.0.0.1:9100", "https://127.0.0.1:8443"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.writeFiles(); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "ca_file: /tls/ca.pem") {
		t.Errorf("configuration without the CA:\n%s", conf)
	}
	b, err := os.ReadFile(filepath.Join(dir, TargetsFile))
	if err != nil {
		t.Fatal(err)
	}
	var groups []targetGroup
	if err := json.Unmarshal(b, &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].Targets[0] != "127.0.0.1:9100" || groups[1].Targets[0] != "127.0.0.1:8443" || groups[1].Labels["__scheme__"] != "https" {
		t.Errorf("target groups %+v", groups)
	}
	if _, err := cleanTargets([]string{"https://nope"}); err == nil {
		t.Error("an https target without a port was accepted")
	}
}
