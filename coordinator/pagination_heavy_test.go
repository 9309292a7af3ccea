//go:build !race

package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optoloop/optoloop/coordinator/api"
	"github.com/optoloop/optoloop/coordinator/coordinatortest"
)

// millionSpec has 999,900 collect episodes (one line, 999.9 h of 3.6 s episodes) and 31 more
// items: just within the limit of 1,000,000 items per experiment.
const millionSpec = "name: million\nlines: [\"301\"]\ncollect: {hours_per_line: 999.9, episode_seconds: 3.6}\n"

// millionItems is how many items of millionSpec the experiment view lists (its collect phase).
const millionItems = 999900

// maxPageBody bounds the JSON of one page of at most api.MaxPageSize items (an episode item is
// about 500 bytes of JSON): a response beyond it is not paginated.
const maxPageBody = 4 << 20

// TestMillionItemExperimentReadIsPaged pins issue 13's "one anonymous read returns a whole
// experiment": on a one-node cluster holding a 999,900-item experiment, six concurrent reads
// of it (without a limit, with the largest limit, from the start, the middle and the end) each
// answer one bounded page with the next page's cursor, its progress and the cluster status
// answer less than 1 MB meanwhile, and the node's memory stays flat: the heap at its peak during
// the eight reads grows by less than 64 MB and they allocate less than 64 MB each (the old code
// answered the whole experiment: about 300 MB of JSON and 1.4 GB of memory per read).
func TestMillionItemExperimentReadIsPaged(t *testing.T) {
	c := coordinatortest.New(t, 1, coordinatortest.Plaintext)
	cfg := c.ClientConfig()
	cfg.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	cl, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	id, err := cl.Submit(ctx, []byte(millionSpec))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("submitted and applied %d items in %v", millionItems, time.Since(start).Round(time.Millisecond))
	base := c.Leader().URL() + "/v1/experiments/" + id

	// A lower GC target makes the heap track what is live, so that its peak measures what the
	// reads hold rather than when the collector last ran.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	reads := []struct {
		query     string
		from, max int
	}{
		{"", 0, api.DefaultPageSize},
		{"?limit=1000", 0, 1000},
		{"?after=500000&limit=1000", 500000, 1000},
		{"?after=999890", 999890, 10},
		{"?after=250000", 250000, api.DefaultPageSize},
		{"?limit=1000&after=1000", 1000, 1000},
	}
	// The other reads of the experiment answer bounded bodies too, copying no item list.
	others := []string{base + "/progress", c.Leader().URL() + "/v1/status"}
	errs := make([]error, len(reads)+len(others))
	var wg sync.WaitGroup
	for i, path := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[len(reads)+i] = readSmall(path)
		}()
	}
	for i, rd := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = readPage(base+rd.query, rd.from, rd.max)
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	for i, err := range errs {
		if err != nil && i < len(reads) {
			t.Errorf("GET %s: %v", reads[i].query, err)
		} else if err != nil {
			t.Errorf("GET %s: %v", others[i-len(reads)], err)
		}
	}
	growth := int64(peak.Load()) - int64(before.HeapAlloc)
	alloc := (after.TotalAlloc - before.TotalAlloc) / uint64(len(errs))
	t.Logf("heap %d MB before, peak growth %d MB during %d concurrent reads, %d MB allocated per read",
		before.HeapAlloc>>20, growth>>20, len(errs), alloc>>20)
	if growth > 64<<20 {
		t.Errorf("heap grew by %d MB during %d reads, want < 64 MB", growth>>20, len(errs))
	}
	if alloc > 64<<20 {
		t.Errorf("a read allocated %d MB, want < 64 MB", alloc>>20)
	}
}

// readPage GETs one page and checks it: at most max items, the ones from position from on, the
// total, and the next cursor in the body and the header.
func readPage(u string, from, max int) error {
	resp, body, err := viewerGet(u, maxPageBody+1)
	if err != nil {
		return err
	}
	if len(body) > maxPageBody {
		return fmt.Errorf("response larger than %d MB: not paginated", maxPageBody>>20)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	var v api.ExperimentView
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	if len(v.Items) != max {
		return fmt.Errorf("%d items, want %d", len(v.Items), max)
	}
	if want := fmt.Sprintf("%s.%d", v.Experiment.ID, from); v.Items[0].ID != want {
		return fmt.Errorf("first item %s, want %s", v.Items[0].ID, want)
	}
	if v.Total != millionItems {
		return fmt.Errorf("total %d, want %d", v.Total, millionItems)
	}
	next := ""
	if from+max < v.Total {
		next = strconv.Itoa(from + max)
	}
	if v.Next != next || resp.Header.Get(api.HeaderNextPage) != next {
		return fmt.Errorf("next %q (header %q), want %q", v.Next, resp.Header.Get(api.HeaderNextPage), next)
	}
	return nil
}

// readSmall GETs u and checks that it answers 200 with less than 1 MB.
func readSmall(u string) error {
	resp, body, err := viewerGet(u, 1<<20)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || len(body) >= 1<<20 {
		return fmt.Errorf("%s, %d bytes", resp.Status, len(body))
	}
	return nil
}

// viewerGet GETs u with the viewer's credential and reads at most limit bytes of its body.
func viewerGet(u string, limit int64) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+coordinatortest.ViewerToken)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	return resp, body, err
}
