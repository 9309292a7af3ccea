package coordinator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/experiment/plan"
)

// metricsScope is the instrumentation scope of the node's metrics and spans.
const metricsScope = "github.com/optoloop/optoloop/coordinator"

// nodeMetrics are the node's synchronous instruments; the rest are observed from the FSM and
// Raft at each collection.
type nodeMetrics struct {
	applies       metric.Int64Counter
	commit        metric.Float64Histogram
	leaderChanges metric.Int64Counter
	reg           metric.Registration
}

// commitBuckets bound the Raft commit time histogram (seconds): a LAN commit takes about a
// millisecond, a slow disk or an election far longer.
var commitBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// initMetrics registers the node's instruments with mp: the counts of the replicated state
// (items by type and state, experiments, workers, learners, the FSM's counters), Raft's state,
// and this node's applies, commit times, leader changes, forwards and HTTP codes.
func (n *Node) initMetrics(mp metric.MeterProvider) error {
	m := mp.Meter(metricsScope)
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	n.m.applies, err = m.Int64Counter("optoloop.coordinator.applies", metric.WithDescription("Log entries this node applied to Raft as leader (one command or a batch each)."))
	add(err)
	n.m.commit, err = m.Float64Histogram("optoloop.coordinator.raft_commit", metric.WithUnit("s"),
		metric.WithDescription("Time from Raft Apply to the entry's commit and application, on the leader."), metric.WithExplicitBucketBoundaries(commitBuckets...))
	add(err)
	n.m.leaderChanges, err = m.Int64Counter("optoloop.coordinator.leader_changes", metric.WithDescription("Changes of the leader this node observed."))
	add(err)

	gauge := func(name, unit, help string) metric.Float64ObservableGauge {
		opts := []metric.Float64ObservableGaugeOption{metric.WithDescription(help)}
		if unit != "" {
			opts = append(opts, metric.WithUnit(unit))
		}
		g, err := m.Float64ObservableGauge(name, opts...)
		add(err)
		return g
	}
	counter := func(name, help string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithDescription(help))
		add(err)
		return c
	}
	raftState := gauge("optoloop.coordinator.raft_state", "", "1 for the node's current Raft state.")
	term := gauge("optoloop.coordinator.raft_term", "", "Current Raft term.")
	applied := gauge("optoloop.coordinator.raft_applied_index", "", "Index of the last log entry applied to the FSM.")
	committed := gauge("optoloop.coordinator.raft_commit_index", "", "Index of the last committed log entry.")
	contact := gauge("optoloop.coordinator.raft_last_contact", "s", "Seconds since this node heard from the leader (0 on the leader, -1 never).")
	items := gauge("optoloop.coordinator.items", "", "Work items by type and state.")
	exps := gauge("optoloop.coordinator.experiments", "", "Experiments by state.")
	workers := gauge("optoloop.coordinator.workers", "", "Registered workers.")
	learners := gauge("optoloop.coordinator.learners", "", "Registered learners.")
	type stat struct {
		c metric.Int64ObservableCounter
		v func(api.Stats) uint64
	}
	stats := []stat{
		{counter("optoloop.coordinator.commands", "Commands applied (replicated)."), func(s api.Stats) uint64 { return s.Commands }},
		{counter("optoloop.coordinator.commands_refused", "Commands refused by the FSM."), func(s api.Stats) uint64 { return s.Refused }},
		{counter("optoloop.coordinator.commands_replayed", "Writes answered from the idempotency cache."), func(s api.Stats) uint64 { return s.Replayed }},
		{counter("optoloop.coordinator.leases_granted", "Leases granted."), func(s api.Stats) uint64 { return s.LeasesGranted }},
		{counter("optoloop.coordinator.leases_expired", "Leases that expired."), func(s api.Stats) uint64 { return s.LeasesExpired }},
		{counter("optoloop.coordinator.reports_accepted", "Reports accepted."), func(s api.Stats) uint64 { return s.ReportsAccepted }},
		{counter("optoloop.coordinator.reports_refused", "Reports refused (stale, duplicate, unknown)."), func(s api.Stats) uint64 { return s.ReportsRefused }},
		{counter("optoloop.coordinator.attempt_failures", "Failed attempts (reported or expired)."), func(s api.Stats) uint64 { return s.Failures }},
	}
	forwarded := counter("optoloop.coordinator.forwarded", "Writes this node forwarded to the leader.")
	refused := counter("optoloop.coordinator.raft_refused_connections", "Raft connections refused by the peer restriction.")
	httpReqs := counter("optoloop.coordinator.http_requests", "HTTP requests by status code.")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("coordinator: metrics: %w", err)
	}

	insts := []metric.Observable{raftState, term, applied, committed, contact, items, exps, workers, learners, forwarded, refused, httpReqs}
	for _, s := range stats {
		insts = append(insts, s.c)
	}
	states := []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		r := n.Raft()
		if r == nil {
			return nil
		}
		cur := r.State()
		for _, s := range states {
			v := 0.0
			if cur == s {
				v = 1
			}
			o.ObserveFloat64(raftState, v, metric.WithAttributes(attribute.String("state", s.String())))
		}
		o.ObserveFloat64(term, float64(r.CurrentTerm()))
		o.ObserveFloat64(applied, float64(r.AppliedIndex()))
		o.ObserveFloat64(committed, float64(r.CommitIndex()))
		o.ObserveFloat64(contact, float64(n.lastContactMs())/1000)
		c := n.fsm.Counts()
		for _, t := range []struct {
			typ string
			by  map[api.ItemState]int
		}{{"episode", c.Episodes}, {"train", c.Tasks}} {
			for _, s := range []api.ItemState{api.StatePending, api.StateLeased, api.StateDone, api.StateFailed} {
				o.ObserveFloat64(items, float64(t.by[s]), metric.WithAttributes(attribute.String("type", t.typ), attribute.String("state", string(s))))
			}
		}
		byStatus := map[plan.Status]int{}
		for _, e := range n.fsm.Experiments() {
			byStatus[e.Status]++
		}
		for _, s := range []plan.Status{plan.StatusRunning, plan.StatusDone, plan.StatusFailed} {
			o.ObserveFloat64(exps, float64(byStatus[s]), metric.WithAttributes(attribute.String("state", string(s))))
		}
		o.ObserveFloat64(workers, float64(len(n.fsm.Workers())))
		o.ObserveFloat64(learners, float64(len(n.fsm.Learners())))
		st := n.fsm.Stats()
		for _, s := range stats {
			o.ObserveInt64(s.c, int64(s.v(st)))
		}
		o.ObserveInt64(forwarded, int64(n.forwarded.Load()))
		if n.stream != nil {
			o.ObserveInt64(refused, int64(n.stream.refused.Load()))
		}
		codes := map[int]uint64{}
		n.httpCodes.Range(func(k, v any) bool {
			codes[k.(int)] = v.(*atomic.Uint64).Load()
			return true
		})
		for _, code := range slices.Sorted(maps.Keys(codes)) {
			o.ObserveInt64(httpReqs, int64(codes[code]), metric.WithAttributes(attribute.String("code", strconv.Itoa(code))))
		}
		return nil
	}, insts...)
	if err != nil {
		return fmt.Errorf("coordinator: metrics: %w", err)
	}
	n.m.reg = reg
	return nil
}

// metrics serves /metrics: the Prometheus exposition of the node's meter provider.
func (n *Node) metrics(w http.ResponseWriter, r *http.Request) {
	n.metricsHandler.ServeHTTP(w, r)
}
