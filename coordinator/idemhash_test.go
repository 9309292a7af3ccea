package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// TestReusedKeyWithOtherBodyIs422 pins issue 13's "a reused idempotency key with a different
// body returns the first call's 200": on a 3-node cluster, through a follower (which forwards)
// and through the leader, the same key with the same body replays the first response (same
// index), while the same key with another body, or on another path, is refused 422
// (key_reused) and changes nothing; api.Client reports it as ErrKeyReused without retrying.
func TestReusedKeyWithOtherBodyIs422(t *testing.T) {
	c := coordinatortest.New(t, 3, coordinatortest.Plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	follower, leader := c.Followers()[0].URL(), c.Leader().URL()
	post := func(base, path, key, body string) (int, api.Response) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+coordinatortest.WorkerToken("w1"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(api.HeaderIdempotencyKey, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r api.Response
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("POST %s: %s: %s", path, resp.Status, b)
		}
		return resp.StatusCode, r
	}
	a := `{"id":"w1","arena_id":"arena-a","line":"301"}`
	b := `{"id":"w1","arena_id":"arena-b","line":"301"}`
	for _, base := range []string{follower, leader} {
		key := "key-via-" + strings.TrimPrefix(base, "http://")
		code1, first := post(base, "/v1/workers", key, a)
		code2, again := post(base, "/v1/workers", key, a)
		if code1 != http.StatusOK || code2 != http.StatusOK || again.Index != first.Index {
			t.Fatalf("%s: same key and body: %d index %d, then %d index %d; want the first response replayed", base, code1, first.Index, code2, again.Index)
		}
		refused := c.Leader().FSM().Stats().Refused
		code, r := post(base, "/v1/workers", key, b)
		if code != http.StatusUnprocessableEntity || r.Code != api.CodeKeyReused || !strings.Contains(r.Error, key) {
			t.Fatalf("%s: same key, other body: %d %+v; want 422 key_reused naming the key", base, code, r)
		}
		if code, r := post(base, "/v1/deregister", key, `{"holder":"w1"}`); code != http.StatusUnprocessableEntity {
			t.Fatalf("%s: same key, other path: %d %+v; want 422", base, code, r)
		}
		if got := c.Leader().FSM().Stats().Refused - refused; got != 2 {
			t.Errorf("%s: %d commands refused, want the 2 reuses", base, got)
		}
	}
	// Through the client: ErrKeyReused at once (one refusal, no retries).
	cl := c.Client(t, follower)
	refused := c.Leader().FSM().Stats().Refused
	kctx := api.WithIdempotencyKey(ctx, "client-key")
	if err := cl.RegisterWorker(kctx, api.RegisterWorkerCmd{ID: "w2", ArenaID: "arena-c", Line: "446"}); err != nil {
		t.Fatal(err)
	}
	if err := cl.RegisterWorker(kctx, api.RegisterWorkerCmd{ID: "w2", ArenaID: "arena-d", Line: "446"}); !errors.Is(err, api.ErrKeyReused) {
		t.Fatalf("client: same key, other body: %v, want ErrKeyReused", err)
	}
	if got := c.Leader().FSM().Stats().Refused - refused; got != 1 {
		t.Errorf("client: %d commands refused, want 1 (no retry)", got)
	}
	c.WaitConverged()
	for _, n := range c.Nodes() {
		ws := n.FSM().Workers()
		if len(ws) != 2 || ws[0].ArenaID != "arena-a" || ws[1].ArenaID != "arena-c" || len(n.FSM().Learners()) != 0 {
			t.Errorf("%s: workers %+v learners %d: a reused key changed the state", n.ID(), ws, len(n.FSM().Learners()))
		}
	}
}
