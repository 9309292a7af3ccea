package report

import (
	"github.com/optoloop/optoloop/agentlib/policy"
	"github.com/optoloop/optoloop/results"
)

// EnsemblePolicyMap loads the ensemble saved in dir (results.LoadEnsemble) and computes its
// policy map on the reference grid (policy.DefaultMapConfig).
func EnsemblePolicyMap(dir string) (*policy.Map, error) {
	e, err := results.LoadEnsemble(dir)
	if err != nil {
		return nil, err
	}
	return policy.ComputeMap(e, policy.DefaultMapConfig())
}
