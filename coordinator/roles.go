package coordinator

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

// caller is who a request's credential says it is: its role ("" when the request carries no
// credential this node knows) and, for a worker or learner credential, the holder it names.
type caller struct {
	role   api.Role
	holder string
}

// caller identifies the request's bearer token: one of the static tokens (each compared in
// constant time, whatever matches) or a credential signed with the cluster's key.
func (n *Node) caller(r *http.Request) caller {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return caller{}
	}
	var c caller
	for _, s := range []struct {
		token string
		role  api.Role
	}{{n.cfg.Token, api.RoleAdmin}, {n.cfg.OperatorToken, api.RoleOperator}, {n.cfg.ViewerToken, api.RoleViewer}} {
		if s.token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) == 1 {
			c.role = s.role
		}
	}
	if role, holder, ok := api.VerifyCredential(n.cfg.CredentialKey, tok); ok {
		c = caller{role: role, holder: holder}
	}
	return c
}

// authorize checks a decoded command against its caller's credential: a worker or learner
// acts only for the holder its credential names (api.HolderCovers), a worker registers workers
// and leases, heartbeats, reports and fails episodes, a learner the same for learners and
// training tasks (f, the leader's state, says what a holder and an item are). Commands that
// name no holder pass (their role was checked before the body was read).
func (c caller) authorize(cmd Command, f *FSM) error {
	var holder, item string
	need := api.RoleHolder
	switch cmd.Type {
	case CmdRegisterWorker:
		holder, need = cmd.RegisterWorker.ID, api.RoleWorker
	case CmdRegisterLearner:
		holder, need = cmd.RegisterLearner.ID, api.RoleLearner
	case CmdLease:
		holder, need = cmd.Lease.Holder, api.RoleWorker
		if cmd.Lease.Type == plan.TypeTrain {
			need = api.RoleLearner
		}
	case CmdHeartbeat:
		holder, item = cmd.Heartbeat.Holder, cmd.Heartbeat.ItemID
	case CmdReport:
		holder, item = cmd.Report.Holder, cmd.Report.ItemID
	case CmdFail:
		holder, item = cmd.Fail.Holder, cmd.Fail.ItemID
	case CmdDeregister:
		holder = cmd.Deregister.Holder
	default:
		return nil
	}
	switch {
	case !c.role.Allows(need):
		return fmt.Errorf("%w: a %s credential may not %s", api.ErrForbidden, c.role, cmd.Type)
	case !api.HolderCovers(c.holder, holder):
		return fmt.Errorf("%w: the %s credential of %q may not act as holder %q", api.ErrForbidden, c.role, c.holder, holder)
	}
	if need != api.RoleHolder || f == nil {
		return nil
	}
	// Workers and learners are separate registries: a learner credential that happens to
	// name a worker's holder does not act for the worker, nor the other way round.
	worker, learner, typ := f.holderKind(holder, item)
	switch c.role {
	case api.RoleWorker:
		if (learner && !worker) || typ == plan.TypeTrain {
			return fmt.Errorf("%w: a worker credential may not act for learner %q or a training task", api.ErrForbidden, holder)
		}
	case api.RoleLearner:
		if (worker && !learner) || typ == plan.TypeEpisode {
			return fmt.Errorf("%w: a learner credential may not act for worker %q or an episode", api.ErrForbidden, holder)
		}
	}
	return nil
}

// holderKind reports whether holder is a registered worker and a registered learner, and the
// type of item ("" when item is empty or unknown).
func (f *FSM) holderKind(holder, item string) (worker, learner bool, typ plan.ItemType) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, worker = f.st.Workers[holder]
	_, learner = f.st.Learners[holder]
	if it, ok := f.st.Items[item]; ok && item != "" {
		typ = it.Type
	}
	return worker, learner, typ
}
