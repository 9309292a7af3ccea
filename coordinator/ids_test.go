package coordinator_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// TestIDsOutsideTheSafeSetAreRefused pins issue 13's "IDs accept any bytes": a worker, learner,
// holder, arena, item or experiment id, in a body or in the path, and an idempotency key, with
// a control byte, a space, non-UTF-8 bytes or more than 128 bytes is refused 400 naming the
// field, and nothing is registered; the ids the project makes are accepted.
func TestIDsOutsideTheSafeSetAreRefused(t *testing.T) {
	c := coordinatortest.New(t, 3, coordinatortest.Plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := c.Followers()[0].URL()
	long := strings.Repeat("a", api.MaxIDLength+1)
	bad := map[string]string{"control byte": "w\x01", "space": "w 1", "non-UTF-8": "w\xff\xfe", "too long": long, "newline": "w\n1", "slash-free unicode": "wé"}
	for name, id := range bad {
		q := func(s string) string { b, _ := jsonString(s); return b }
		for _, tc := range []struct{ path, body, field string }{
			{"/v1/workers", `{"id":` + q(id) + `,"arena_id":"a","line":"301"}`, "worker id"},
			{"/v1/workers", `{"id":"w","arena_id":` + q(id) + `,"line":"301"}`, "arena id"},
			{"/v1/learners", `{"id":` + q(id) + `}`, "learner id"},
			{"/v1/lease", `{"holder":` + q(id) + `,"type":"episode"}`, "holder"},
			{"/v1/heartbeat", `{"holder":"w","item_id":` + q(id) + `,"token":1}`, "item id"},
			{"/v1/report", `{"holder":"w","item_id":` + q(id) + `,"token":1}`, "item id"},
			{"/v1/deregister", `{"holder":` + q(id) + `}`, "holder"},
		} {
			code, e := postRaw(t, ctx, base+tc.path, "application/json", tc.body)
			if code != http.StatusBadRequest || !strings.Contains(e.Error, tc.field) || strings.Contains(e.Error, "\n") {
				t.Errorf("%s %s: %d %q, want 400 naming %s on one line", name, tc.path, code, e.Error, tc.field)
			}
		}
		esc := url.PathEscape(id)
		for _, tc := range []struct{ method, path, body, field string }{
			{http.MethodGet, "/v1/experiments/" + esc, "", "experiment id"},
			{http.MethodGet, "/v1/experiments/" + esc + "/progress", "", "experiment id"},
			{http.MethodGet, "/v1/items/" + esc, "", "item id"},
			{http.MethodPost, "/v1/experiments/" + esc + "/cancel", `{"reason":"r"}`, "experiment id"},
			{http.MethodPost, "/v1/workers/" + esc + "/drain", `{"drain":true}`, "worker id"},
		} {
			code, e := doRaw(t, ctx, tc.method, base+tc.path, tc.body, "")
			if code != http.StatusBadRequest || !strings.Contains(e.Error, tc.field) {
				t.Errorf("%s %s %s: %d %q, want 400 naming %s", name, tc.method, tc.path, code, e.Error, tc.field)
			}
		}
	}
	for name, key := range map[string]string{"space": "k 1", "non-UTF-8": "k\xff", "tab": "k\t1", "too long": long} {
		code, e := doRaw(t, ctx, http.MethodPost, base+"/v1/workers/w1/drain", `{"drain":true}`, key)
		if code != http.StatusBadRequest || !strings.Contains(e.Error, "idempotency key") {
			t.Errorf("key with a %s: %d %q, want 400 naming the idempotency key", name, code, e.Error)
		}
	}
	c.WaitConverged()
	if ws, ls := c.Leader().FSM().Workers(), c.Leader().FSM().Learners(); len(ws) != 0 || len(ls) != 0 {
		t.Fatalf("refused ids registered: %+v %+v", ws, ls)
	}
	// The ids the project makes pass.
	cl := c.Client(t, base)
	for _, id := range []string{"sim-301-0", "lab-pc.example.org-301", "user@host:arena/0", "W_1", strings.Repeat("x", api.MaxIDLength)} {
		if err := cl.RegisterWorker(api.WithIdempotencyKey(ctx, "report/"+id[:min(len(id), 100)]+"/7"), api.RegisterWorkerCmd{ID: id, ArenaID: id, Line: "301"}); err != nil {
			t.Errorf("worker %q: %v", id, err)
		}
	}
	id, err := cl.Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	v, err := cl.ExperimentPage(ctx, id, "", 1)
	if err != nil || len(v.Items) != 1 {
		t.Fatalf("experiment %s: %v", id, err)
	}
	if _, err := cl.Item(ctx, v.Items[0].ID); err != nil {
		t.Errorf("item %s: %v", v.Items[0].ID, err)
	}
}

func jsonString(s string) (string, error) {
	// encoding/json would replace invalid UTF-8: spell the bytes out so the server sees them.
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[ch>>4])
			b.WriteByte("0123456789abcdef"[ch&15])
		case ch == '"' || ch == '\\':
			b.WriteByte('\\')
			b.WriteByte(ch)
		default:
			b.WriteByte(ch)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// doRaw sends a request with the cluster token (and an idempotency key when key is set).
func doRaw(t *testing.T, ctx context.Context, method, u, body, key string) (int, api.ErrorBody) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+coordinatortest.Token)
	if key != "" {
		req.Header["Idempotency-Key"] = []string{key}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return readErrBody(t, req)
}
