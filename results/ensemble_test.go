package results

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/agentlib/nn"
	"github.com/optoloop/optoloop/agentlib/policy"
)

func saveEnsemble(t *testing.T, dir string, sizes ...int) *policy.Ensemble {
	t.Helper()
	arch := policy.Arch{Spec: policy.ReferenceSpec(), Sizes: sizes}
	m := nn.New(sizes...)
	m.InitXavier(rand.New(rand.NewPCG(1, 2)))
	e, err := policy.NewEnsemble(arch, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.SaveDir(dir, e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestLoadEnsemble(t *testing.T) {
	manifest := func(dir string) string { return filepath.Join(dir, "ensemble.json") }
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		ok    bool
	}{
		{name: "reference architecture", setup: func(t *testing.T, dir string) { saveEnsemble(t, dir, 90, 64, 64, 2) }, ok: true},
		{name: "another size, from the manifest", setup: func(t *testing.T, dir string) { saveEnsemble(t, dir, 90, 16, 2) }, ok: true},
		{name: "no ensemble", setup: func(t *testing.T, dir string) {}},
		{name: "member missing", setup: func(t *testing.T, dir string) {
			os.WriteFile(manifest(dir), []byte(`{"format_version":1,"arch":{"obs":{"frames":15,"features":6,"pos_scale_px":900},"sizes":[90,64,2]},"members":["member-000.olp"]}`), 0o644)
		}},
		{name: "member of another shape than the manifest says", setup: func(t *testing.T, dir string) {
			saveEnsemble(t, dir, 90, 64, 64, 2)
			b, _ := os.ReadFile(manifest(dir))
			os.WriteFile(manifest(dir), []byte(strings.Replace(string(b), "64", "32", 1)), 0o644)
		}},
		{name: "unusable architecture", setup: func(t *testing.T, dir string) {
			os.WriteFile(manifest(dir), []byte(`{"format_version":1,"arch":{"obs":{"frames":15,"features":6,"pos_scale_px":900},"sizes":[3]},"members":["m"]}`), 0o644)
		}},
		{name: "corrupt manifest", setup: func(t *testing.T, dir string) { os.WriteFile(manifest(dir), []byte(`{"arch":`), 0o644) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ensemble")
			os.MkdirAll(dir, 0o755)
			tc.setup(t, dir)
			e, err := LoadEnsemble(dir)
			if (err == nil) != tc.ok {
				t.Fatalf("error %v", err)
			}
			if tc.ok && e.Len() != 1 {
				t.Errorf("%d members", e.Len())
			}
		})
	}
}
