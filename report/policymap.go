package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/optoloop/optoloop/agentlib/policy"
)

// ensembleManifest is the part of policy.SaveDir's manifest (ensemble.json) that names the
// architecture, so that an ensemble of any size can be loaded; policy.LoadDir checks every member
// against it.
type ensembleManifest struct {
	Arch policy.Arch `json:"arch"`
}

// LoadEnsemble loads the ensemble saved by policy.SaveDir in dir, with the architecture its
// manifest records.
func LoadEnsemble(dir string) (*policy.Ensemble, error) {
	b, err := os.ReadFile(filepath.Join(dir, "ensemble.json"))
	if err != nil {
		return nil, fmt.Errorf("ensemble: %w", err)
	}
	var man ensembleManifest
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, fmt.Errorf("ensemble: %s/ensemble.json: %w", dir, err)
	}
	if err := man.Arch.Validate(); err != nil {
		return nil, fmt.Errorf("ensemble: %s/ensemble.json: %w", dir, err)
	}
	e, err := policy.LoadDir(dir, man.Arch)
	if err != nil {
		return nil, fmt.Errorf("ensemble %s: %w", dir, err)
	}
	return e, nil
}

// EnsemblePolicyMap loads the ensemble in dir and computes its policy map on the reference grid
// (policy.DefaultMapConfig).
func EnsemblePolicyMap(dir string) (*policy.Map, error) {
	e, err := LoadEnsemble(dir)
	if err != nil {
		return nil, err
	}
	return policy.ComputeMap(e, policy.DefaultMapConfig())
}
