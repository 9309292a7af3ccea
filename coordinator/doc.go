// Package coordinator is the experiments' lease broker: a state machine (FSM) of experiments,
// workers, learners and work items (episodes and training tasks) that hands items out under
// leases (tokens, deadlines, heartbeats, attempts, idempotent keyed reports) and keeps what
// workers and learners report. Each experiment's plan (package experiment/plan) decides its
// phases, items and seeds; the FSM steps it and decides only leases.
//
// The FSM runs in two ways with the same rules and the same answers: replicated over a
// hashicorp/raft cluster (Node, serving the HTTP API that package coordinator/api's Client
// talks to), or applied in one process with a logical clock (Local). Package
// coordinator/coordinatortest starts a real cluster inside a test. DESIGN.md explains what is
// replicated, why Apply is deterministic, and how results stay exactly-once across retries and
// failovers.
package coordinator
