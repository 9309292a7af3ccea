package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
	"github.com/optoloop/optoloop/experiment/plan"
)

const spec = `name: client
lines: ["301"]
collect: {hours_per_line: 0.01, episode_seconds: 12}
`

// lossyProxy forwards requests to a node and, for the first request to dropPath, throws the
// node's answer away and answers 503: the write applied, but the client never heard.
type lossyProxy struct {
	target   string
	hc       *http.Client
	dropPath string
	mu       sync.Mutex
	keys     []string
	dropped  bool
}

func (p *lossyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := p.hc.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	p.mu.Lock()
	drop := false
	if r.URL.Path == p.dropPath {
		p.keys = append(p.keys, r.Header.Get(api.HeaderIdempotencyKey))
		drop = !p.dropped
		p.dropped = true
	}
	p.mu.Unlock()
	if drop {
		http.Error(w, `{"code":"unavailable","error":"response lost"}`, http.StatusServiceUnavailable)
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(data)
}

func TestClientRetryKeepsIdempotencyKey(t *testing.T) {
	c := coordinatortest.New(t, 1, nil)
	node := c.Leader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	direct := c.Client(t)
	if _, err := direct.Submit(ctx, []byte(spec)); err != nil {
		t.Fatal(err)
	}
	if err := direct.RegisterWorker(ctx, api.RegisterWorkerCmd{ID: "w", ArenaID: "a", Line: "301"}); err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{target: node.URL(), hc: c.HTTPClient(), dropPath: "/v1/lease"}
	srv := httptest.NewServer(p)
	defer srv.Close()
	cl := c.Client(t, srv.URL)
	it, err := cl.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode})
	if err != nil || it == nil {
		t.Fatalf("lease: %v %v", it, err)
	}
	if len(p.keys) != 2 || p.keys[0] == "" || p.keys[0] != p.keys[1] {
		t.Fatalf("idempotency keys of the two attempts: %q", p.keys)
	}
	// The lost first attempt and the retry are one lease.
	st := node.FSM().Stats()
	if st.LeasesGranted != 1 || st.Replayed != 1 {
		t.Fatalf("stats %+v: want 1 lease granted and 1 replay", st)
	}
	got, _ := node.FSM().Item(it.ID)
	if got.Token != it.Token || got.Holder != "w" {
		t.Fatalf("client holds %s/%d, coordinator %s/%d", it.ID, it.Token, got.ID, got.Token)
	}
	// The client learned the leader's URL from the answer: the next write goes to the leader
	// directly, not through the proxy; the worker gets its held episode, not a new one.
	again, err := cl.Lease(ctx, api.LeaseRequest{Holder: "w", Type: plan.TypeEpisode})
	if err != nil || again.ID != it.ID || len(p.keys) != 2 {
		t.Fatalf("second lease %v %v, keys through the proxy %q", again, err, p.keys)
	}
	if st := node.FSM().Stats(); st.LeasesGranted != 1 {
		t.Fatalf("leases granted %d after the repeated lease", st.LeasesGranted)
	}
}

func TestClientSkipsDeadEndpoints(t *testing.T) {
	c := coordinatortest.New(t, 1, nil)
	// A port with nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Client(t, dead, c.Leader().URL())
	for i := range 3 {
		if err := cl.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l"}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if _, err := cl.Status(ctx); err != nil {
		t.Fatal(err)
	}
	// With every endpoint dead the call fails with ErrUnavailable once its attempts are spent.
	only, err := api.NewClient(api.ClientConfig{Endpoints: []string{dead}, Token: coordinatortest.Token, MaxAttempts: 3, BaseBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := only.RegisterLearner(ctx, api.RegisterLearnerCmd{ID: "l"}); err == nil || !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("all endpoints dead: %v", err)
	}
	if _, err := api.NewClient(api.ClientConfig{Endpoints: []string{"ftp://x"}}); err == nil {
		t.Fatal("an ftp endpoint was accepted")
	}
}

// indexServer answers every read with the applied index it is told and records the min_index
// each read asked for.
type indexServer struct {
	mu      sync.Mutex
	applied string
	asked   []string
}

func (s *indexServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, r.URL.Query().Get("min_index"))
	w.Header().Set(api.HeaderAppliedIndex, s.applied)
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/v1/status" {
		_, _ = io.WriteString(w, `{"applied_index": 7, "nodes": [{"id": "a", "applied_index": 9}, {"id": "b", "applied_index": 0}]}`)
		return
	}
	_, _ = io.WriteString(w, `[]`)
}

func TestClientReadsAreMonotonic(t *testing.T) {
	// A read that saw index 40 makes every later read ask for at least 40, even after a node
	// answers with an older index; Sync raises the floor to the newest index any node applied.
	srv := &indexServer{applied: "40"}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cl, err := api.NewClient(api.DefaultClientConfig(ts.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cl.Experiments(ctx); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	srv.applied = "12"
	srv.mu.Unlock()
	for range 2 {
		if _, err := cl.Experiments(ctx); err != nil {
			t.Fatal(err)
		}
	}
	srv.mu.Lock()
	got := append([]string{}, srv.asked...)
	srv.mu.Unlock()
	if want := []string{"", "40", "40"}; !slices.Equal(got, want) {
		t.Errorf("min_index asked %q, want %q", got, want)
	}

	fresh, err := api.NewClient(api.DefaultClientConfig(ts.URL))
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	srv.applied, srv.asked = "", nil
	srv.mu.Unlock()
	if err := fresh.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Experiments(ctx); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if n := len(srv.asked); n != 2 || srv.asked[1] != "9" {
		t.Errorf("after Sync the read asked min_index %q, want 9 (the newest node's)", srv.asked)
	}
}
