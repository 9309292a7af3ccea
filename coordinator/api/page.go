package api

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/optoloop/optoloop/experiment/plan"
)

// Paged reads. A read that returns a list (an experiment's items, the experiments, the workers,
// the learners) answers one page of at most ?limit=N entries (DefaultPageSize when absent, at
// most MaxPageSize) starting after the ?after=CURSOR of the previous page; when more remain the
// response carries the cursor of the next page in HeaderNextPage (and an experiment view also in
// ExperimentView.Next). No single response holds an unbounded list, so a node's memory per read
// is bounded. The client pages transparently (Client.Experiment, Experiments, Workers,
// Learners) or one page at a time (Client.ExperimentPage).
const (
	DefaultPageSize = 500
	MaxPageSize     = 1000
	// MaxPageFileBytes bounds the experiment files (Experiment.File) of one page of the
	// experiments list: a page ends early once its files reach it (a page holds at least one).
	MaxPageFileBytes = 8 << 20
	// HeaderNextPage carries the cursor of the next page ("" or absent: this was the last).
	HeaderNextPage = "X-Optoloop-Next"
)

// PageQuery reads ?after and ?limit of a paged read; a limit outside 1..MaxPageSize or that is
// not a number is refused with an error naming it.
func PageQuery(q url.Values) (after string, limit int, err error) {
	after, limit = q.Get("after"), DefaultPageSize
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			return "", 0, fmt.Errorf("%w: limit %q must be a number in 1..%d", ErrBadRequest, s, MaxPageSize)
		}
		limit = n
	}
	if len(after) > MaxIDLength {
		return "", 0, fmt.Errorf("%w: after longer than %d bytes", ErrBadRequest, MaxIDLength)
	}
	return after, limit, nil
}

// pagePath adds ?after and ?limit to path.
func pagePath(path, after string, limit int) string {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// CountItems counts items by type and state (ExperimentView.Counts).
func CountItems(items []Item) Counts {
	c := Counts{Episodes: map[ItemState]int{}, Tasks: map[ItemState]int{}}
	for i := range items {
		if items[i].Type == plan.TypeTrain {
			c.Tasks[items[i].State]++
		} else {
			c.Episodes[items[i].State]++
		}
	}
	return c
}
