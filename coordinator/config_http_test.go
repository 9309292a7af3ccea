package coordinator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator"
)

// TestConfigValidatesHTTPLimits: the HTTP server's timeouts and connection caps have sane
// defaults, and an unusable setting is refused with the setting named.
func TestConfigValidatesHTTPLimits(t *testing.T) {
	base := coordinator.DefaultConfig()
	base.ID, base.RaftAddr, base.HTTPAddr, base.DataDir, base.Token = "c1", "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), "token-0123456789abcdef0123456789ab"
	base.Insecure = true
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	if base.HTTPReadHeaderTimeout != 5*time.Second || base.HTTPReadTimeout != 30*time.Second || base.HTTPWriteTimeout != time.Minute ||
		base.HTTPIdleTimeout != time.Minute || base.MaxConnsPerClient != 256 || base.MaxConns != 8192 {
		t.Errorf("defaults %+v", base)
	}
	for _, tc := range []struct {
		name string
		set  func(*coordinator.Config)
		want string
	}{
		{"no read timeout", func(c *coordinator.Config) { c.HTTPReadTimeout = 0 }, "read"},
		{"no idle timeout", func(c *coordinator.Config) { c.HTTPIdleTimeout = 0 }, "idle"},
		{"header timeout beyond read", func(c *coordinator.Config) { c.HTTPReadHeaderTimeout = time.Minute }, "read header timeout"},
		{"write timeout within the min_index wait", func(c *coordinator.Config) { c.HTTPWriteTimeout = 5 * time.Second }, "write timeout"},
		{"write timeout within the forward timeout", func(c *coordinator.Config) { c.ForwardTimeout = 2 * time.Minute }, "forward timeout"},
		{"tiny header limit", func(c *coordinator.Config) { c.HTTPMaxHeaderBytes = 100 }, "max header bytes"},
		{"no connections per client", func(c *coordinator.Config) { c.MaxConnsPerClient = 0 }, "per client"},
		{"global cap below per client", func(c *coordinator.Config) { c.MaxConns = 10 }, "max connections"},
		{"node id with a space", func(c *coordinator.Config) { c.ID = "c 1" }, "node id"},
	} {
		cfg := base
		tc.set(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}
