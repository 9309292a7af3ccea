package coordinator

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

// metrics writes the Prometheus text exposition format (version 0.0.4) by hand: a dozen
// counters and gauges do not justify a client library the module does not already require.
func (n *Node) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	r := n.Raft()
	m := &promWriter{w: w}
	m.family("optoloop_coordinator_raft_state", "gauge", "1 for the node's current Raft state.")
	for _, s := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		v := 0.0
		if r.State() == s {
			v = 1
		}
		m.sample("optoloop_coordinator_raft_state", fmt.Sprintf(`{state=%q}`, s.String()), v)
	}
	m.gauge("optoloop_coordinator_raft_term", "Current Raft term.", float64(r.CurrentTerm()))
	m.gauge("optoloop_coordinator_raft_applied_index", "Index of the last log entry applied to the FSM.", float64(r.AppliedIndex()))
	m.gauge("optoloop_coordinator_raft_commit_index", "Index of the last committed log entry.", float64(r.CommitIndex()))
	m.gauge("optoloop_coordinator_raft_last_contact_seconds", "Seconds since this node heard from the leader (0 on the leader, -1 never).", float64(n.lastContactMs())/1000)
	c := n.fsm.Counts()
	m.family("optoloop_coordinator_items", "gauge", "Work items by type and state.")
	for _, t := range []struct {
		typ string
		by  map[api.ItemState]int
	}{{"episode", c.Episodes}, {"train", c.Tasks}} {
		for _, s := range []api.ItemState{api.StatePending, api.StateLeased, api.StateDone, api.StateFailed} {
			m.sample("optoloop_coordinator_items", fmt.Sprintf(`{type=%q,state=%q}`, t.typ, s), float64(t.by[s]))
		}
	}
	exp := map[plan.Status]int{}
	for _, e := range n.fsm.Experiments() {
		exp[e.Status]++
	}
	m.family("optoloop_coordinator_experiments", "gauge", "Experiments by state.")
	for _, s := range []plan.Status{plan.StatusRunning, plan.StatusDone, plan.StatusFailed} {
		m.sample("optoloop_coordinator_experiments", fmt.Sprintf(`{state=%q}`, s), float64(exp[s]))
	}
	m.gauge("optoloop_coordinator_workers", "Registered workers.", float64(len(n.fsm.Workers())))
	m.gauge("optoloop_coordinator_learners", "Registered learners.", float64(len(n.fsm.Learners())))
	st := n.fsm.Stats()
	for _, k := range []struct {
		name, help string
		v          uint64
	}{
		{"commands", "Commands applied (replicated).", st.Commands},
		{"commands_refused", "Commands refused by the FSM.", st.Refused},
		{"commands_replayed", "Writes answered from the idempotency cache.", st.Replayed},
		{"leases_granted", "Leases granted.", st.LeasesGranted},
		{"leases_expired", "Leases that expired.", st.LeasesExpired},
		{"reports_accepted", "Reports accepted.", st.ReportsAccepted},
		{"reports_refused", "Reports refused (stale, duplicate, unknown).", st.ReportsRefused},
		{"attempt_failures", "Failed attempts (reported or expired).", st.Failures},
	} {
		m.counter("optoloop_coordinator_"+k.name+"_total", k.help, float64(k.v))
	}
	m.counter("optoloop_coordinator_forwarded_total", "Writes this node forwarded to the leader.", float64(n.forwarded.Load()))
	m.counter("optoloop_coordinator_raft_refused_connections_total", "Raft connections refused by the peer restriction.", float64(n.stream.refused.Load()))
	codes := map[int]uint64{}
	n.httpCodes.Range(func(k, v any) bool {
		codes[k.(int)] = v.(*atomic.Uint64).Load()
		return true
	})
	m.family("optoloop_coordinator_http_requests_total", "counter", "HTTP requests by status code.")
	for _, code := range slices.Sorted(maps.Keys(codes)) {
		m.sample("optoloop_coordinator_http_requests_total", fmt.Sprintf(`{code="%d"}`, code), float64(codes[code]))
	}
}

type promWriter struct{ w io.Writer }

func (p *promWriter) family(name, typ, help string) {
	fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (p *promWriter) sample(name, labels string, v float64) {
	fmt.Fprintf(p.w, "%s%s %g\n", name, labels, v)
}

func (p *promWriter) gauge(name, help string, v float64) {
	p.family(name, "gauge", help)
	p.sample(name, "", v)
}

func (p *promWriter) counter(name, help string, v float64) {
	p.family(name, "counter", help)
	p.sample(name, "", v)
}
