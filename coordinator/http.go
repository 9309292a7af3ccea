package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/optoloop/optoloop/coordinator/api"
)

func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/experiments", n.write(api.RoleOperator, n.decodeSubmit))
	mux.HandleFunc("GET /v1/experiments", n.read(n.getExperimentsPage))
	mux.HandleFunc("GET /v1/experiments/{id}", n.read(n.getExperimentPage))
	mux.HandleFunc("GET /v1/experiments/{id}/progress", n.read(n.getProgress))
	mux.HandleFunc("POST /v1/experiments/{id}/cancel", n.write(api.RoleOperator, decodeCancel))
	mux.HandleFunc("POST /v1/experiments/{id}/archive", n.write(api.RoleOperator, decodeArchive))
	mux.HandleFunc("GET /v1/items/{id}", n.read(n.getItem))
	mux.HandleFunc("POST /v1/workers", n.write(api.RoleWorker, decodeJSON(CmdRegisterWorker, func(c *Command, v *api.RegisterWorkerCmd) { c.RegisterWorker = v })))
	mux.HandleFunc("GET /v1/workers", n.read(n.getWorkersPage))
	mux.HandleFunc("POST /v1/workers/{id}/drain", n.write(api.RoleOperator, decodeDrain))
	mux.HandleFunc("POST /v1/learners", n.write(api.RoleLearner, decodeJSON(CmdRegisterLearner, func(c *Command, v *api.RegisterLearnerCmd) { c.RegisterLearner = v })))
	mux.HandleFunc("GET /v1/learners", n.read(n.getLearnersPage))
	mux.HandleFunc("POST /v1/lease", n.write(api.RoleHolder, n.decodeLease))
	mux.HandleFunc("POST /v1/heartbeat", n.write(api.RoleHolder, n.decodeHeartbeat))
	mux.HandleFunc("POST /v1/report", n.write(api.RoleHolder, decodeJSON(CmdReport, func(c *Command, v *api.ReportCmd) { c.Report = v })))
	mux.HandleFunc("POST /v1/fail", n.write(api.RoleHolder, decodeJSON(CmdFail, func(c *Command, v *api.FailCmd) { c.Fail = v })))
	mux.HandleFunc("POST /v1/deregister", n.write(api.RoleHolder, decodeJSON(CmdDeregister, func(c *Command, v *api.DeregisterRequest) { c.Deregister = v })))
	mux.HandleFunc("GET /v1/status", n.read(n.getStatus))
	mux.HandleFunc("GET /v1/node", n.read(func(r *http.Request) (any, error) { return n.localStatus(), nil }))
	mux.HandleFunc("GET /v1/cluster", n.read(n.getCluster))
	mux.HandleFunc("GET /v1/whoami", n.whoami)
	mux.HandleFunc("POST /v1/cluster/join", n.admin(n.join))
	mux.HandleFunc("POST /v1/cluster/remove", n.admin(n.remove))
	mux.HandleFunc("GET /healthz", n.healthz)
	mux.HandleFunc("GET /metrics", n.metrics)
	return n.serverHandler(n.count(mux))
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (n *Node) count(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.freshness(w.Header())
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		v, _ := n.httpCodes.LoadOrStore(rec.code, new(atomic.Uint64))
		v.(*atomic.Uint64).Add(1)
	})
}

func (n *Node) freshness(h http.Header) {
	r := n.Raft()
	h.Set(api.HeaderNode, n.cfg.ID)
	h.Set(api.HeaderRaftState, r.State().String())
	h.Set(api.HeaderAppliedIndex, strconv.FormatUint(r.AppliedIndex(), 10))
	id, addr := n.leader()
	if id != "" {
		h.Set(api.HeaderLeader, id)
	}
	if addr != "" {
		h.Set(api.HeaderLeaderURL, n.scheme()+addr)
	}
	h.Set(api.HeaderLastContact, strconv.FormatInt(n.lastContactMs(), 10))
}

// lastContactMs is 0 on the leader, -1 when this node never heard from a leader.
func (n *Node) lastContactMs() int64 {
	r := n.Raft()
	if r.State() == raft.Leader {
		return 0
	}
	lc := r.LastContact()
	if lc.IsZero() {
		return -1
	}
	return time.Since(lc).Milliseconds()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, kind string, err error) {
	writeJSON(w, code, api.ErrorBody{Code: kind, Error: err.Error()})
}

// allow identifies the request's credential (caller) and checks that it may do what need may;
// it answers 401 (no known credential) or 403 (a credential of a lesser role) when it may not.
func (n *Node) allow(w http.ResponseWriter, r *http.Request, need api.Role) (caller, bool) {
	c := n.caller(r)
	switch {
	case c.role == "":
		writeErr(w, http.StatusUnauthorized, "unauthorized", api.ErrUnauthorized)
		return c, false
	case !c.role.Allows(need):
		writeErr(w, http.StatusForbidden, "forbidden", fmt.Errorf("%w: a %s credential may not %s %s", api.ErrForbidden, c.role, r.Method, r.URL.Path))
		return c, false
	}
	return c, true
}

// whoami answers the role of the caller's credential.
func (n *Node) whoami(w http.ResponseWriter, r *http.Request) {
	c := n.caller(r)
	if c.role == "" {
		writeErr(w, http.StatusUnauthorized, "unauthorized", api.ErrUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, api.WhoAmI{Role: c.role, Holder: c.holder})
}

func httpStatus(c api.Code) int {
	switch c {
	case api.CodeOK:
		return http.StatusOK
	case api.CodeBadRequest:
		return http.StatusBadRequest
	case api.CodeNotFound:
		return http.StatusNotFound
	case api.CodeNotRegistered:
		return http.StatusPreconditionFailed
	case api.CodeStaleLease, api.CodeDuplicate, api.CodeExists:
		return http.StatusConflict
	case api.CodeKeyReused:
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

type decoder func(r *http.Request, body []byte) (Command, error)

func decodeJSON[T any](t CommandType, set func(*Command, *T)) decoder {
	return func(_ *http.Request, body []byte) (Command, error) {
		v := new(T)
		if err := checkJSON(body); err != nil {
			return Command{}, err
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return Command{}, fmt.Errorf("%w: %w", api.ErrBadRequest, err)
		}
		c := Command{Type: t}
		set(&c, v)
		return c, nil
	}
}

func (n *Node) decodeLease(r *http.Request, body []byte) (Command, error) {
	var req api.LeaseRequest
	c, err := decodeJSON(CmdLease, func(_ *Command, v *api.LeaseRequest) { req = *v })(r, body)
	if err != nil {
		return c, err
	}
	return leaseCommand(req, n.cfg.LeaseTTL)
}

func (n *Node) decodeHeartbeat(r *http.Request, body []byte) (Command, error) {
	var req api.HeartbeatRequest
	c, err := decodeJSON(CmdHeartbeat, func(_ *Command, v *api.HeartbeatRequest) { req = *v })(r, body)
	if err != nil {
		return c, err
	}
	return heartbeatCommand(req, n.cfg.LeaseTTL)
}

func (n *Node) decodeSubmit(r *http.Request, body []byte) (Command, error) {
	c, err := submitCommand(body, n.cfg.KnownLine, n.cfg.MaxAttempts)
	if err == nil {
		c.Submit.Again, err = submitAgain(r)
	}
	return c, err
}

// readBody reads at most MaxCommandBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxCommandBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: body: %w", api.ErrBadRequest, err)
	}
	return b, nil
}

// onLeader is the common start of a mutating call: it checks the token's role, reads the body and,
// on a follower, forwards the call to the leader. It reports whether this node should go on
// handling the call (it is the leader), with the caller its credential names; otherwise the
// response has been written.
func (n *Node) onLeader(w http.ResponseWriter, r *http.Request, need api.Role) (body []byte, who caller, ok bool) {
	who, ok = n.allow(w, r, need)
	if !ok {
		return nil, who, false
	}
	body, err := readBody(w, r)
	if err != nil {
		writeErr(w, http.StatusBadRequest, string(api.CodeBadRequest), err)
		return nil, who, false
	}
	if !n.IsLeader() {
		n.forward(w, r, body)
		return nil, who, false
	}
	return body, who, true
}

// write handles a mutating call: a credential of role need, forwarding to the leader,
// decoding, replication.
func (n *Node) write(need api.Role, dec decoder) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, who, ok := n.onLeader(w, r, need)
		if !ok {
			return
		}
		c, err := dec(r, body)
		if err != nil {
			writeErr(w, http.StatusBadRequest, string(api.CodeBadRequest), err)
			return
		}
		// A malformed command (an id outside the safe set, a payload missing) is 400 whoever
		// sends it; then the holder it names must be the credential's.
		syntax := c
		syntax.Time = time.Unix(1, 0)
		if err := syntax.validate(); err != nil {
			writeErr(w, http.StatusBadRequest, string(api.CodeBadRequest), fmt.Errorf("%w: %w", api.ErrBadRequest, err))
			return
		}
		if err := who.authorize(c, n.fsm); err != nil {
			writeErr(w, http.StatusForbidden, "forbidden", err)
			return
		}
		c.Key = r.Header.Get(api.HeaderIdempotencyKey)
		if c.Key != "" {
			if err := api.ValidID("idempotency key", c.Key); err != nil {
				writeErr(w, http.StatusBadRequest, string(api.CodeBadRequest), fmt.Errorf("%w: %w", api.ErrBadRequest, err))
				return
			}
			c.KeyHash = RequestHash(r.Method, r.URL.Path, body)
		}
		resp, err := n.proposeTraced(r, c)
		if err != nil {
			n.writeProposeErr(w, err)
			return
		}
		writeJSON(w, httpStatus(resp.Code), resp)
	}
}

func (n *Node) writeProposeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, api.ErrBadRequest):
		writeErr(w, http.StatusBadRequest, string(api.CodeBadRequest), err)
	case errors.Is(err, ErrNotLeader):
		writeErr(w, http.StatusServiceUnavailable, "not_leader", err)
	default:
		writeErr(w, http.StatusServiceUnavailable, "unavailable", err)
	}
}

// forward sends a write to the leader, once: a forwarded request that lands on a non-leader
// (leadership moved) is answered 503 so that the client retries.
func (n *Node) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Header.Get(api.HeaderForwarded) != "" {
		writeErr(w, http.StatusServiceUnavailable, "not_leader", fmt.Errorf("%w: forwarded by %s to %s, which no longer leads", api.ErrUnavailable, r.Header.Get(api.HeaderForwarded), n.cfg.ID))
		return
	}
	id, addr := n.leader()
	if addr == "" || id == n.cfg.ID {
		writeErr(w, http.StatusServiceUnavailable, "no_leader", fmt.Errorf("%w: no leader known to %s", api.ErrUnavailable, n.cfg.ID))
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, n.scheme()+addr+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "internal", err)
		return
	}
	for _, h := range []string{"Authorization", api.HeaderIdempotencyKey, "Content-Type"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(api.HeaderForwarded, n.cfg.ID)
	n.forwarded.Add(1)
	resp, err := n.fwd.Do(req)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, "unavailable", fmt.Errorf("%w: forward to leader %s: %w", api.ErrUnavailable, id, err))
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// minIndexWait bounds how long a read waits for ?min_index.
const minIndexWait = 5 * time.Second

// read answers from the local FSM, to a credential of any role (at least a viewer's).
// ?min_index=N first waits (up to minIndexWait) until this node has applied index N, for reads
// that must see a given write.
func (n *Node) read(h func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := n.allow(w, r, api.RoleViewer); !ok {
			return
		}
		if s := r.URL.Query().Get("min_index"); s != "" {
			idx, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				writeErr(w, http.StatusBadRequest, string(api.CodeBadRequest), fmt.Errorf("%w: min_index: %w", api.ErrBadRequest, err))
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), minIndexWait)
			err = n.fsm.WaitApplied(ctx, idx)
			cancel()
			if err != nil {
				writeErr(w, http.StatusServiceUnavailable, "stale", fmt.Errorf("%w: %w", api.ErrUnavailable, err))
				return
			}
			n.freshness(w.Header())
		}
		v, err := h(r)
		if err != nil {
			if errors.Is(err, api.ErrNotFound) {
				writeErr(w, http.StatusNotFound, string(api.CodeNotFound), err)
				return
			}
			if errors.Is(err, api.ErrBadRequest) {
				writeErr(w, http.StatusBadRequest, string(api.CodeBadRequest), err)
				return
			}
			writeErr(w, http.StatusInternalServerError, "internal", err)
			return
		}
		if p, ok := v.(paged); ok {
			if p.next != "" {
				w.Header().Set(api.HeaderNextPage, p.next)
			}
			v = p.v
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (n *Node) getProgress(r *http.Request) (any, error) {
	id, err := pathID(r, "experiment id")
	if err != nil {
		return nil, err
	}
	p, ok := n.fsm.Progress(id)
	if !ok {
		return nil, fmt.Errorf("%w: experiment %q", api.ErrNotFound, id)
	}
	return p, nil
}

func decodeCancel(r *http.Request, body []byte) (Command, error) {
	var req api.CancelRequest
	if err := strictJSON(body, &req); err != nil {
		return Command{}, err
	}
	return Command{Type: CmdCancel, Cancel: &CancelCmd{Experiment: r.PathValue("id"), Reason: req.Reason}}, nil
}

func decodeDrain(r *http.Request, body []byte) (Command, error) {
	var req api.DrainRequest
	if err := strictJSON(body, &req); err != nil {
		return Command{}, err
	}
	return Command{Type: CmdDrain, Drain: &DrainCmd{Worker: r.PathValue("id"), Drain: req.Drain}}, nil
}

func (n *Node) getItem(r *http.Request) (any, error) {
	id, err := pathID(r, "item id")
	if err != nil {
		return nil, err
	}
	it, ok := n.fsm.Item(id)
	if !ok {
		return nil, fmt.Errorf("%w: item %q", api.ErrNotFound, id)
	}
	return it, nil
}

func (n *Node) localStatus() api.NodeStatus {
	r := n.Raft()
	lid, _ := n.leader()
	return api.NodeStatus{
		ID: n.cfg.ID, RaftAddr: n.RaftAddr(), HTTPAddr: n.HTTPAddr(), Reachable: true,
		State: r.State().String(), Term: r.CurrentTerm(), AppliedIndex: r.AppliedIndex(),
		CommitIndex: r.CommitIndex(), LastIndex: r.LastIndex(), Leader: lid, LastContactMs: n.lastContactMs(),
	}
}

func (n *Node) getCluster(*http.Request) (any, error) {
	fut := n.Raft().GetConfiguration()
	if err := fut.Error(); err != nil {
		return nil, err
	}
	type server struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
		HTTPAddr string `json:"http_addr,omitempty"`
		Suffrage string `json:"suffrage"`
	}
	var out []server
	for _, s := range fut.Configuration().Servers {
		info, _ := n.fsm.Node(string(s.ID))
		out = append(out, server{ID: string(s.ID), RaftAddr: string(s.Address), HTTPAddr: info.HTTPAddr, Suffrage: s.Suffrage.String()})
	}
	return out, nil
}

// getStatus asks every server of the Raft configuration for its own status (1 s each, in
// parallel) and adds this node's counts.
func (n *Node) getStatus(r *http.Request) (any, error) {
	fut := n.Raft().GetConfiguration()
	if err := fut.Error(); err != nil {
		return nil, err
	}
	servers := fut.Configuration().Servers
	nodes := make([]api.NodeStatus, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		id := string(s.ID)
		if id == n.cfg.ID {
			nodes[i] = n.localStatus()
			nodes[i].Voter = s.Suffrage == raft.Voter
			continue
		}
		info, _ := n.fsm.Node(id)
		nodes[i] = api.NodeStatus{ID: id, RaftAddr: string(s.Address), HTTPAddr: info.HTTPAddr, Voter: s.Suffrage == raft.Voter}
		if info.HTTPAddr == "" {
			nodes[i].Error = "http address unknown"
			continue
		}
		wg.Add(1)
		go func(ns *api.NodeStatus) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(r.Context(), time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.scheme()+ns.HTTPAddr+"/v1/node", nil)
			if err == nil {
				req.Header.Set("Authorization", r.Header.Get("Authorization")) // the caller's own credential: a read
				var resp *http.Response
				if resp, err = n.fwd.Do(req); err == nil {
					defer resp.Body.Close()
					var got api.NodeStatus
					if err = json.NewDecoder(resp.Body).Decode(&got); err == nil {
						voter := ns.Voter
						*ns = got
						ns.Voter = voter
						return
					}
				}
			}
			ns.Error = err.Error()
		}(&nodes[i])
	}
	wg.Wait()
	lid, laddr := n.leader()
	c := n.fsm.Counts()
	st := api.Status{
		AnsweredBy: n.cfg.ID, AppliedIndex: n.Raft().AppliedIndex(), Leader: api.LeaderInfo{ID: lid, HTTPAddr: laddr},
		Nodes: nodes, Episodes: c.Episodes, Tasks: c.Tasks, Workers: len(n.fsm.Workers()), Learners: len(n.fsm.Learners()),
		Stats: n.fsm.Stats(),
	}
	st.Experiments = n.fsm.ExperimentSummaries()
	return st, nil
}

// admin handles membership calls: the cluster credential, forwarding, then a leader-only Raft
// operation.
func (n *Node) admin(h func(ctx context.Context, body []byte) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _, ok := n.onLeader(w, r, api.RoleAdmin)
		if !ok {
			return
		}
		if err := h(r.Context(), body); err != nil {
			switch {
			case errors.Is(err, api.ErrBadRequest):
				writeErr(w, http.StatusBadRequest, string(api.CodeBadRequest), err)
			case errors.Is(err, api.ErrNotFound):
				writeErr(w, http.StatusNotFound, string(api.CodeNotFound), err)
			case errors.Is(err, api.ErrRefused):
				writeErr(w, http.StatusConflict, string(api.CodeRefused), err)
			default:
				n.writeProposeErr(w, err)
			}
			return
		}
		writeJSON(w, http.StatusOK, &api.Response{Index: n.Raft().AppliedIndex()})
	}
}

func strictJSON(body []byte, v any) error {
	if err := checkJSON(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	return nil
}

func (n *Node) join(ctx context.Context, body []byte) error {
	var req api.JoinRequest
	if err := strictJSON(body, &req); err != nil {
		return err
	}
	info := api.NodeInfo{ID: req.ID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr}
	if err := (Command{Type: CmdSetNode, Time: time.Unix(1, 0), SetNode: &info}).validate(); err != nil {
		return fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	n.ms.mu.Lock()
	defer n.ms.mu.Unlock()
	done, err := n.admitJoin(req)
	if err != nil || done {
		return err
	}
	r := n.Raft()
	if err := r.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("%w: add voter %s: %w", api.ErrUnavailable, req.ID, err)
	}
	n.ms.admit(req.ID, req.Nonce)
	resp, err := n.propose(ctx, Command{Type: CmdSetNode, SetNode: &info})
	if err != nil {
		return err
	}
	return resp.Err()
}

func (n *Node) remove(ctx context.Context, body []byte) error {
	var req api.RemoveRequest
	if err := strictJSON(body, &req); err != nil {
		return err
	}
	if req.ID == "" {
		return fmt.Errorf("%w: id is required", api.ErrBadRequest)
	}
	r := n.Raft()
	fut := r.GetConfiguration()
	if err := fut.Error(); err != nil {
		return fmt.Errorf("%w: %w", api.ErrUnavailable, err)
	}
	if !slices.ContainsFunc(fut.Configuration().Servers, func(s raft.Server) bool { return string(s.ID) == req.ID }) {
		return fmt.Errorf("%w: node %q is not in the configuration", api.ErrNotFound, req.ID)
	}
	n.ms.mu.Lock()
	defer n.ms.mu.Unlock()
	if err := n.checkRemoval(fut.Configuration(), req.ID, req.Force); err != nil {
		return err
	}
	delete(n.ms.admitted, req.ID)
	if err := r.RemoveServer(raft.ServerID(req.ID), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("%w: remove %s: %w", api.ErrUnavailable, req.ID, err)
	}
	if req.ID == n.cfg.ID {
		return nil // the leader removed itself and steps down: the next leader keeps the address record
	}
	resp, err := n.propose(ctx, Command{Type: CmdRemoveNode, RemoveNode: &RemoveNodeCmd{ID: req.ID}})
	if err != nil {
		return err
	}
	if err := resp.Err(); err != nil && !errors.Is(err, api.ErrNotFound) {
		return err
	}
	return nil
}
