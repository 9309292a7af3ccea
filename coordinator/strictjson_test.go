package coordinator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// postRaw sends a write with the credential its path needs (worker w1's for a worker's call,
// learner l1's for a learner's, the admin token otherwise) and returns its status and error body.
func postRaw(t *testing.T, ctx context.Context, u, contentType, body string) (int, api.ErrorBody) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	tok := coordinatortest.Token
	switch {
	case strings.HasSuffix(u, "/v1/learners"):
		tok = coordinatortest.LearnerToken("l1")
	case strings.HasSuffix(u, "/v1/workers"), strings.HasSuffix(u, "/v1/lease"), strings.HasSuffix(u, "/v1/report"),
		strings.HasSuffix(u, "/v1/heartbeat"), strings.HasSuffix(u, "/v1/fail"), strings.HasSuffix(u, "/v1/deregister"):
		tok = coordinatortest.WorkerToken("w1")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", contentType)
	return readErrBody(t, req)
}

// readErrBody sends req and returns its status and error body (the raw body when it is none).
func readErrBody(t *testing.T, req *http.Request) (int, api.ErrorBody) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.ErrorBody
	_ = json.Unmarshal(b, &e)
	if e.Error == "" {
		e.Error = string(b)
	}
	return resp.StatusCode, e
}

// TestJSONBodiesWithTrailingDataOrDuplicateKeysAreRefused pins issue 13's "JSON accepts
// trailing garbage and duplicate keys": every JSON body of the API (registrations, reports,
// cancel, drain, join) with data after the value, or with a key repeated in any object at any
// depth, is refused 400 with one line naming the problem (and the key and where), and nothing
// changes; the same key in different objects is fine.
func TestJSONBodiesWithTrailingDataOrDuplicateKeysAreRefused(t *testing.T) {
	c := coordinatortest.New(t, 1, coordinatortest.Plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := c.Client(t)
	id, err := cl.Submit(ctx, []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	base := c.Leader().URL()
	for _, tc := range []struct{ name, path, body, want string }{
		{"trailing garbage", "/v1/workers", `{"id":"w1","arena_id":"a","line":"301"} garbage`, "trailing data after the JSON value"},
		{"a second value", "/v1/workers", `{"id":"w1","arena_id":"a","line":"301"}{"id":"w2"}`, "trailing data after the JSON value"},
		{"a stray brace", "/v1/workers", `{"id":"w1","arena_id":"a","line":"301"}}`, "trailing data after the JSON value"},
		{"duplicate key", "/v1/workers", `{"id":"w1","arena_id":"a","line":"301","id":"w2"}`, `duplicate key "id" in the JSON object at $`},
		{"duplicate nested key", "/v1/workers", `{"id":"w1","arena_id":"a","line":"301","calibration":{"scale":1,"scale":2}}`, `duplicate key "scale" in the JSON object at $.calibration`},
		{"duplicate key in an array", "/v1/report", `{"holder":"w1","item_id":"x.1","token":1,"output":[{"a":1},{"b":1,"b":2}]}`, `duplicate key "b" in the JSON object at $.output[1]`},
		{"learner", "/v1/learners", `{"id":"l1","id":"l2"}`, `duplicate key "id"`},
		{"duplicate key in another case", "/v1/learners", `{"id":"l1","ID":"l2"}`, `duplicate key "ID" in the JSON object at $ (the same as "id"`},
		{"lease", "/v1/lease", `{"holder":"w1","type":"episode"} 1`, "trailing data"},
		{"cancel", "/v1/experiments/" + id + "/cancel", `{"reason":"a","reason":"b"}`, `duplicate key "reason"`},
		{"drain", "/v1/workers/w1/drain", `{"drain":true} {"drain":false}`, "trailing data"},
		{"join", "/v1/cluster/join", `{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","id":"n8"}`, `duplicate key "id"`},
		{"remove", "/v1/cluster/remove", `{"id":"n9"} x`, "trailing data"},
	} {
		code, e := postRaw(t, ctx, base+tc.path, "application/json", tc.body)
		if code != http.StatusBadRequest || !strings.Contains(e.Error, tc.want) || strings.Contains(e.Error, "\n") {
			t.Errorf("%s: %d %q, want 400 naming %q on one line", tc.name, code, e.Error, tc.want)
		}
	}
	if ws, ls := c.Leader().FSM().Workers(), c.Leader().FSM().Learners(); len(ws) != 0 || len(ls) != 0 {
		t.Errorf("refused bodies changed the state: workers %+v learners %+v", ws, ls)
	}
	if exp, _, _ := c.Leader().FSM().Experiment(id); exp.Reason != "" {
		t.Errorf("a refused cancel cancelled: %q", exp.Reason)
	}
	// The same key in different objects, and white space after the value, are fine.
	if code, e := postRaw(t, ctx, base+"/v1/workers", "application/json",
		`{"id":"w1","arena_id":"a","line":"301","calibration":{"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}]}}`+" \n\t"); code != http.StatusOK {
		t.Fatalf("valid body: %d %s", code, e.Error)
	}
}

// TestSubmitRefusesDuplicateYAMLKeys pins what the submit path does with a YAML experiment file
// that repeats a key: package experiment's decoder refuses it at any depth, naming the field
// ("collect.hours_per_line: appears twice"), so the submission is 400 and no experiment is
// created (a pin: this already held before issue 13).
func TestSubmitRefusesDuplicateYAMLKeys(t *testing.T) {
	c := coordinatortest.New(t, 1, coordinatortest.Plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct{ name, body, want string }{
		{"top level", "name: a\nlines: [\"301\"]\nname: b\n", "name: appears twice"},
		{"nested", "name: a\nlines: [\"301\"]\ncollect:\n  hours_per_line: 1\n  hours_per_line: 2\n", "collect.hours_per_line: appears twice"},
		{"flow mapping", "name: a\nlines: [\"301\"]\ncollect: {episode_seconds: 60, episode_seconds: 30}\n", "collect.episode_seconds: appears twice"},
		{"as JSON", `{"name":"a","lines":["301"],"name":"b"}`, "name: appears twice"},
	} {
		code, e := postRaw(t, ctx, c.Leader().URL()+"/v1/experiments", "application/yaml", tc.body)
		if code != http.StatusBadRequest || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %d %q, want 400 %q", tc.name, code, e.Error, tc.want)
		}
	}
	if exps := c.Leader().FSM().Experiments(); len(exps) != 0 {
		t.Errorf("%d experiments created from refused files", len(exps))
	}
}
