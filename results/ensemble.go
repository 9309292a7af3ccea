package results

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/optoloop/optoloop/agentlib/policy"
)

// ensembleManifest is the part of policy.SaveDir's manifest (ensemble.json) that names the
// architecture; policy.LoadDir checks every member against it.
type ensembleManifest struct {
	Arch policy.Arch `json:"arch"`
}

// LoadEnsemble loads the ensemble policy.SaveDir wrote in dir (a run folder's
// lines/<line>/ensemble, or any folder of that format), with the architecture its manifest
// records, so that an ensemble of any size loads. It is the one loader of saved ensembles:
// the report, the policy-map command and Build use it.
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
