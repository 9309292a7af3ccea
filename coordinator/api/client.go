package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Endpoints are base URLs of any coordinator nodes ("https://host:port" or
	// "http://host:port"; a bare host:port means https with TLS set, http without). At least
	// one.
	Endpoints []string
	// TLS, when set, is the TLS configuration of the calls (certs.Identity.ClientConfig: the
	// cluster's CA to verify the nodes and, optionally, a client certificate). Without it
	// https endpoints are verified against the system's roots. Not with HTTPClient (set it on
	// that client's transport instead).
	TLS *tls.Config
	// Token is the bearer token sent with every call.
	Token string
	// HTTPClient performs the requests. Default: a client with a 15 s timeout and its own
	// transport keeping up to 256 idle connections per node.
	HTTPClient *http.Client
	// MaxAttempts is how many times a call is tried (over all endpoints) before it fails.
	// Default 10.
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the exponential backoff between attempts (with
	// jitter). Defaults 25 ms and 1 s.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Logger receives retries at debug level. Default: discard.
	Logger *slog.Logger
	// PageSize is how many entries a paged read (Experiment, Experiments, Workers, Learners)
	// asks for per page. Default (0) MaxPageSize.
	PageSize int
	// TracerProvider, when set, traces the calls made inside a span (otelhttp client spans)
	// and sends their W3C trace context to the coordinator; calls outside any span (polls
	// for work) are sent as they are. With HTTPClient set too, its transport is wrapped.
	TracerProvider trace.TracerProvider
}

// DefaultClientConfig returns the defaults for endpoints.
func DefaultClientConfig(endpoints ...string) ClientConfig {
	return ClientConfig{Endpoints: endpoints, MaxAttempts: 10, BaseBackoff: 25 * time.Millisecond, MaxBackoff: time.Second}
}

// Validate reports the first unusable field.
func (c ClientConfig) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("coordinator client: at least one endpoint is required")
	}
	if c.TLS != nil && c.HTTPClient != nil {
		return errors.New("coordinator client: TLS and HTTPClient are exclusive (give the HTTP client's transport the TLS configuration)")
	}
	for _, e := range c.Endpoints {
		if _, err := normalise(e, c.TLS != nil); err != nil {
			return err
		}
	}
	if c.PageSize < 0 || c.PageSize > MaxPageSize {
		return fmt.Errorf("coordinator client: page size %d must be in 0..%d", c.PageSize, MaxPageSize)
	}
	if c.MaxAttempts < 0 || c.BaseBackoff < 0 || c.MaxBackoff < 0 {
		return errors.New("coordinator client: attempts and backoffs must not be negative")
	}
	return nil
}

func normalise(e string, tlsOn bool) (string, error) {
	if !strings.Contains(e, "://") {
		if tlsOn {
			e = "https://" + e
		} else {
			e = "http://" + e
		}
	}
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("coordinator client: endpoint %q is not an http(s) URL", e)
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

// Client talks to a coordinator cluster through any of its nodes. It sends writes to the
// leader it last heard of (any node forwards to the leader anyway), retries failed calls on
// the other endpoints with exponential backoff, and gives every write an idempotency key that
// stays the same across its retries, so a retried write applies at most once. Reads carry the
// highest index of this client's writes, so they see them on any node. Safe for concurrent
// use.
type Client struct {
	cfg       ClientConfig
	endpoints []string
	hc        *http.Client
	log       *slog.Logger

	mu       sync.Mutex
	leader   string
	next     int
	maxIndex uint64
}

// NewClient returns a client; zero fields of cfg take DefaultClientConfig's values.
func NewClient(cfg ClientConfig) (*Client, error) {
	d := DefaultClientConfig()
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = d.MaxAttempts
	}
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff = d.BaseBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = d.MaxBackoff
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, hc: cfg.HTTPClient, log: cfg.Logger}
	for _, e := range cfg.Endpoints {
		u, _ := normalise(e, cfg.TLS != nil)
		c.endpoints = append(c.endpoints, u)
	}
	if c.hc == nil {
		t := NewTransport()
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS.Clone()
		}
		c.hc = &http.Client{Timeout: 15 * time.Second, Transport: t}
	}
	if cfg.TracerProvider != nil {
		hc := *c.hc
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		hc.Transport = otelhttp.NewTransport(base,
			otelhttp.WithTracerProvider(cfg.TracerProvider),
			otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
			otelhttp.WithPropagators(propagation.TraceContext{}),
			otelhttp.WithFilter(func(r *http.Request) bool { return trace.SpanContextFromContext(r.Context()).IsValid() }),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
		c.hc = &hc
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// NewTransport is the HTTP transport of the client and of a node forwarding writes: it keeps
// enough idle connections per node for concurrent callers (the default transport keeps 2, so
// concurrent calls would open a new connection each).
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	return t
}

type keyCtx struct{}

// WithIdempotencyKey returns a context whose writes carry key as their idempotency key, so
// that a caller retrying a write whose outcome it does not know (a report after a timeout)
// sends the same key again and the write applies at most once. Without it every call gets a
// new key (kept across the client's own retries of that call).
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

// IdempotencyKey returns the key WithIdempotencyKey set on ctx ("" when none).
func IdempotencyKey(ctx context.Context) string {
	k, _ := ctx.Value(keyCtx{}).(string)
	return k
}

type tokenCtx struct{}

// WithToken returns a context whose calls carry token instead of the client's own: a dashboard
// acts for the operator who signed in, with the operator's credential.
func WithToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, tokenCtx{}, token)
}

func (c *Client) token(ctx context.Context) string {
	if t, ok := ctx.Value(tokenCtx{}).(string); ok {
		return t
	}
	return c.cfg.Token
}

// NewIdempotencyKey returns a new random idempotency key (128 bits, hex).
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *Client) pick(write bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if write && c.leader != "" {
		return c.leader
	}
	return c.endpoints[c.next%len(c.endpoints)]
}

func (c *Client) failed(base string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == base {
		c.leader = ""
	}
	if c.endpoints[c.next%len(c.endpoints)] == base {
		c.next++
	}
}

func (c *Client) sawLeader(u string) {
	if u == "" {
		return
	}
	c.mu.Lock()
	c.leader = u
	c.mu.Unlock()
}

func (c *Client) sawIndex(i uint64) {
	c.mu.Lock()
	c.maxIndex = max(c.maxIndex, i)
	c.mu.Unlock()
}

func (c *Client) backoff(ctx context.Context, attempt int) error {
	d := c.cfg.BaseBackoff << min(attempt, 16)
	if d > c.cfg.MaxBackoff || d <= 0 {
		d = c.cfg.MaxBackoff
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	d = d/2 + time.Duration(binary.LittleEndian.Uint64(b[:])%uint64(d/2+1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func codeErr(code, msg string) error {
	switch code {
	case "unauthorized":
		return fmt.Errorf("%w: %s", ErrUnauthorized, msg)
	case "forbidden":
		return fmt.Errorf("%w: %s", ErrForbidden, msg)
	case "unavailable", "no_leader", "not_leader", "stale":
		return fmt.Errorf("%w: %s", ErrUnavailable, msg)
	}
	r := Response{Code: Code(code), Error: msg}
	return r.Err()
}

// do performs one call with retries. For writes, out receives the *Response.
func (c *Client) do(ctx context.Context, method, path string, body []byte, write bool, out any) error {
	return c.doType(ctx, method, path, "application/json", body, write, out)
}

func (c *Client) doType(ctx context.Context, method, path, contentType string, body []byte, write bool, out any) error {
	key := ""
	if write {
		if key = IdempotencyKey(ctx); key == "" {
			key = NewIdempotencyKey()
		}
	}
	var last error
	for attempt := 0; attempt < c.cfg.MaxAttempts; attempt++ {
		if attempt > 0 {
			if err := c.backoff(ctx, attempt-1); err != nil {
				return fmt.Errorf("coordinator client: %s %s: %w (last error: %w)", method, path, err, last)
			}
		}
		base := c.pick(write)
		u := base + path
		if !write {
			c.mu.Lock()
			if c.maxIndex > 0 {
				sep := "?"
				if strings.Contains(path, "?") {
					sep = "&"
				}
				u += sep + "min_index=" + strconv.FormatUint(c.maxIndex, 10)
			}
			c.mu.Unlock()
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, rd)
		if err != nil {
			return fmt.Errorf("coordinator client: %w", err)
		}
		if tok := c.token(ctx); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if key != "" {
			req.Header.Set(HeaderIdempotencyKey, key)
		}
		if body != nil {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("coordinator client: %s %s: %w", method, path, ctx.Err())
			}
			last = fmt.Errorf("%w: %w", ErrUnavailable, err)
			c.log.Debug("coordinator client: retry", "url", u, "err", err)
			c.failed(base)
			continue
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			last = fmt.Errorf("%w: %w", ErrUnavailable, err)
			c.failed(base)
			continue
		}
		if write {
			c.sawLeader(resp.Header.Get(HeaderLeaderURL))
		}
		if resp.StatusCode >= 500 {
			var e ErrorBody
			_ = json.Unmarshal(data, &e)
			last = fmt.Errorf("%w: %s: %s", ErrUnavailable, resp.Status, e.Error)
			c.log.Debug("coordinator client: retry", "url", u, "status", resp.Status, "err", e.Error)
			c.failed(base)
			continue
		}
		if write {
			var r Response
			if err := json.Unmarshal(data, &r); err != nil {
				return fmt.Errorf("coordinator client: %s %s: %s: %w", method, path, resp.Status, err)
			}
			c.sawIndex(r.Index)
			if resp.StatusCode >= 300 || r.Code != CodeOK {
				return codeErr(string(r.Code), r.Error)
			}
			if p, ok := out.(*Response); ok {
				*p = r
			}
			return nil
		}
		if resp.StatusCode >= 300 {
			var e ErrorBody
			_ = json.Unmarshal(data, &e)
			return codeErr(e.Code, e.Error)
		}
		// Reads are monotonic: a later read never sees an older state than this one did.
		if i, err := strconv.ParseUint(resp.Header.Get(HeaderAppliedIndex), 10, 64); err == nil {
			c.sawIndex(i)
		}
		if p, ok := out.(*pageOut); ok {
			p.next, out = resp.Header.Get(HeaderNextPage), p.v
		}
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("coordinator client: %s %s: %w", method, path, err)
			}
		}
		return nil
	}
	return fmt.Errorf("coordinator client: %s %s: %d attempts failed: %w", method, path, c.cfg.MaxAttempts, last)
}

func (c *Client) write(ctx context.Context, path string, v any) (*Response, error) {
	var body []byte
	ct := "application/json"
	switch b := v.(type) {
	case []byte:
		body, ct = b, "application/yaml"
	default:
		var err error
		if body, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("coordinator client: %w", err)
		}
	}
	var r Response
	if err := c.doType(ctx, http.MethodPost, path, ct, body, true, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Submit submits an experiment file (YAML) and returns the experiment's id.
func (c *Client) Submit(ctx context.Context, spec []byte) (string, error) {
	r, err := c.write(ctx, "/v1/experiments", spec)
	if err != nil {
		return "", err
	}
	return r.ExperimentID, nil
}

// RegisterWorker registers (or updates) a worker.
func (c *Client) RegisterWorker(ctx context.Context, w RegisterWorkerCmd) error {
	_, err := c.write(ctx, "/v1/workers", w)
	return err
}

// RegisterLearner registers (or updates) a learner.
func (c *Client) RegisterLearner(ctx context.Context, l RegisterLearnerCmd) error {
	_, err := c.write(ctx, "/v1/learners", l)
	return err
}

// Lease leases one item, or returns nil when there is none for the holder.
func (c *Client) Lease(ctx context.Context, req LeaseRequest) (*Item, error) {
	r, err := c.write(ctx, "/v1/lease", req)
	if err != nil {
		return nil, err
	}
	return r.Item, nil
}

// Heartbeat renews a lease; it fails with ErrStaleLease when the lease is no longer current.
func (c *Client) Heartbeat(ctx context.Context, req HeartbeatRequest) (*Item, error) {
	r, err := c.write(ctx, "/v1/heartbeat", req)
	if err != nil {
		return nil, err
	}
	return r.Item, nil
}

// Report reports an item done. ErrStaleLease: the lease is not current and the report did not
// count; ErrDuplicate: this lease's report was already accepted.
func (c *Client) Report(ctx context.Context, req ReportCmd) (*Item, error) {
	r, err := c.write(ctx, "/v1/report", req)
	if err != nil {
		return nil, err
	}
	return r.Item, nil
}

// Fail reports that an attempt failed.
func (c *Client) Fail(ctx context.Context, req FailCmd) (*Item, error) {
	r, err := c.write(ctx, "/v1/fail", req)
	if err != nil {
		return nil, err
	}
	return r.Item, nil
}

// Sync makes the client's later reads at least as fresh as the newest state any reachable
// node has applied, so that a client that has written nothing itself (an export, a status
// display) does not read a follower that lags behind what the leader has acknowledged.
func (c *Client) Sync(ctx context.Context) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	c.sawIndex(st.AppliedIndex)
	for _, n := range st.Nodes {
		c.sawIndex(n.AppliedIndex)
	}
	return nil
}

// Deregister removes a worker or learner that is leaving; a lease it holds is failed with the
// request's reason (ErrNotFound: it was not registered).
func (c *Client) Deregister(ctx context.Context, req DeregisterRequest) error {
	_, err := c.write(ctx, "/v1/deregister", req)
	return err
}

// Join asks the cluster to add a node as a voter.
func (c *Client) Join(ctx context.Context, req JoinRequest) error {
	_, err := c.write(ctx, "/v1/cluster/join", req)
	return err
}

// Remove asks the cluster to remove a node.
func (c *Client) Remove(ctx context.Context, id string) error {
	_, err := c.write(ctx, "/v1/cluster/remove", RemoveRequest{ID: id})
	return err
}

// Experiment returns an experiment with all its items, read page by page (see ExperimentPage):
// the experiment as the first page saw it, every item from that page on (a later page's items
// are at least as new), Experiment.Items and Counts rebuilt from the items.
func (c *Client) Experiment(ctx context.Context, id string) (ExperimentView, error) {
	first, err := c.ExperimentPage(ctx, id, "", c.pageSize())
	if err != nil {
		return first, err
	}
	items := first.Items
	for next := first.Next; next != ""; {
		p, err := c.ExperimentPage(ctx, id, next, c.pageSize())
		if err != nil {
			return ExperimentView{}, err
		}
		items = append(items, p.Items...)
		next = p.Next
	}
	v := ExperimentView{Experiment: first.Experiment, Items: items, Counts: CountItems(items), Total: len(items)}
	if !first.Experiment.ArchivedAt.IsZero() {
		v.Counts = first.Counts // an archived experiment keeps its counts, not its items
	}
	v.Experiment.Items = make([]string, len(items))
	for i := range items {
		v.Experiment.Items[i] = items[i].ID
	}
	return v, nil
}

// ExperimentPage returns one page of an experiment: at most limit items (0: the server's
// DefaultPageSize) from cursor after ("": the first; then the previous page's Next).
func (c *Client) ExperimentPage(ctx context.Context, id, after string, limit int) (ExperimentView, error) {
	var v ExperimentView
	err := c.do(ctx, http.MethodGet, pagePath("/v1/experiments/"+url.PathEscape(id), after, limit), nil, false, &v)
	return v, err
}

// Experiments lists the experiments (without their items), every page.
func (c *Client) Experiments(ctx context.Context) ([]Experiment, error) {
	return pageAll[Experiment](ctx, c, "/v1/experiments")
}

func (c *Client) pageSize() int {
	if c.cfg.PageSize > 0 {
		return c.cfg.PageSize
	}
	return MaxPageSize
}

// pageOut receives a page of a list read and the cursor of the next (HeaderNextPage).
type pageOut struct {
	v    any
	next string
}

// pageAll reads every page of the list at path.
func pageAll[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var all []T
	after := ""
	for {
		var page []T
		p := &pageOut{v: &page}
		if err := c.do(ctx, http.MethodGet, pagePath(path, after, c.pageSize()), nil, false, p); err != nil {
			return nil, err
		}
		all = append(all, page...)
		if p.next == "" || len(page) == 0 {
			return all, nil
		}
		after = p.next
	}
}

// Item returns one item.
func (c *Client) Item(ctx context.Context, id string) (Item, error) {
	var v Item
	err := c.do(ctx, http.MethodGet, "/v1/items/"+url.PathEscape(id), nil, false, &v)
	return v, err
}

// Status returns the cluster's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var v Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, false, &v)
	return v, err
}

// Cancel cancels a running experiment: it fails with reason, and its open items end (an
// episode running on an arena learns it at its next heartbeat). Operator or cluster credential.
func (c *Client) Cancel(ctx context.Context, id, reason string) error {
	_, err := c.write(ctx, "/v1/experiments/"+url.PathEscape(id)+"/cancel", CancelRequest{Reason: reason})
	return err
}

// Drain stops (drain true) or resumes (false) leasing episodes to a worker; the episode it runs
// finishes. Operator or cluster credential.
func (c *Client) Drain(ctx context.Context, worker string, drain bool) error {
	_, err := c.write(ctx, "/v1/workers/"+url.PathEscape(worker)+"/drain", DrainRequest{Drain: drain})
	return err
}

// WhoAmI returns the role of the client's credential (ErrUnauthorized when it has none).
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	var v WhoAmI
	err := c.do(ctx, http.MethodGet, "/v1/whoami", nil, false, &v)
	return v, err
}

// Workers lists the registered workers, each with the episode it holds.
func (c *Client) Workers(ctx context.Context) ([]Worker, error) {
	return pageAll[Worker](ctx, c, "/v1/workers")
}

// Learners lists the registered learners.
func (c *Client) Learners(ctx context.Context) ([]Learner, error) {
	return pageAll[Learner](ctx, c, "/v1/learners")
}

// Progress returns an experiment's progress: per phase, its failures, the per-line table.
func (c *Client) Progress(ctx context.Context, id string) (ExperimentProgress, error) {
	var v ExperimentProgress
	err := c.do(ctx, http.MethodGet, "/v1/experiments/"+url.PathEscape(id)+"/progress", nil, false, &v)
	return v, err
}

// SubmitAgain submits an experiment file although a live experiment was submitted from the
// very same bytes (Submit refuses that with ErrExists, naming the experiment).
func (c *Client) SubmitAgain(ctx context.Context, spec []byte) (string, error) {
	r, err := c.write(ctx, "/v1/experiments?"+QueryAgain+"=true", spec)
	if err != nil {
		return "", err
	}
	return r.ExperimentID, nil
}

// Archive drops a finished (done, failed or cancelled) experiment's items from the live state;
// reads then return its tombstone (Experiment.ArchivedAt set, counts kept, no items). A running
// experiment is refused (ErrBadRequest). Operator or cluster credential.
func (c *Client) Archive(ctx context.Context, id string) error {
	_, err := c.write(ctx, "/v1/experiments/"+url.PathEscape(id)+"/archive", struct{}{})
	return err
}
