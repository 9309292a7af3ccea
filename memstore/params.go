package memstore

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/optoloop/optoloop/fleet"
)

// paramLine is one experiment and line's parameter versions.
type paramLine struct {
	blobs  map[uint64][]byte
	traces map[uint64]string
	latest uint64
}

// Params is an in-memory fleet.Params: one ensemble blob per experiment, line and version. A
// waiter learns of new versions without polling: Wait blocks until a line has a version at
// least as new as it asks for, and Published returns a channel closed at the next publish.
type Params struct {
	mu    sync.Mutex
	lines map[name]*paramLine
	pub   notifier
}

// NewParams returns an empty parameter store.
func NewParams() *Params { return &Params{lines: map[name]*paramLine{}} }

// Publish stores a copy of blob as the line's version. Versions number from 1 (0 is the
// version of a fixed light schedule, never a parameter version). Publishing a stored version
// again with the same bytes changes nothing; with other bytes it is an error and changes
// nothing.
func (p *Params) Publish(ctx context.Context, experiment, line string, version uint64, blob []byte) error {
	return p.PublishTraced(ctx, experiment, line, version, blob, "")
}

// PublishTraced is Publish that keeps traceParent (the publishing span's W3C traceparent)
// beside a new version; publishing a version again keeps its first traceparent.
func (p *Params) PublishTraced(ctx context.Context, experiment, line string, version uint64, blob []byte, traceParent string) error {
	if err := errCtx(ctx, "publish"); err != nil {
		return err
	}
	if err := fleet.CheckPublish(experiment, line, version, blob); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := name{experiment, line}
	l := p.lines[n]
	if l == nil {
		l = &paramLine{blobs: map[uint64][]byte{}, traces: map[uint64]string{}}
		p.lines[n] = l
	}
	if old, ok := l.blobs[version]; ok {
		if bytes.Equal(old, blob) {
			return nil
		}
		return fmt.Errorf("memstore: publish %s/%s: version %d is already stored with other bytes", experiment, line, version)
	}
	l.blobs[version] = cloneBytes(blob)
	if traceParent != "" {
		l.traces[version] = traceParent
	}
	l.latest = max(l.latest, version)
	p.pub.signal()
	return nil
}

// Fetch returns a copy of a version's blob (fleet.ErrNotFound when absent).
func (p *Params) Fetch(ctx context.Context, experiment, line string, version uint64) ([]byte, error) {
	if err := errCtx(ctx, "fetch"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.lines[name{experiment, line}]; l != nil {
		if b, ok := l.blobs[version]; ok {
			return cloneBytes(b), nil
		}
	}
	return nil, fmt.Errorf("memstore: parameters %s/%s version %d: %w", experiment, line, version, fleet.ErrNotFound)
}

// TraceParent returns the traceparent kept with a version ("" when none; fleet.ErrNotFound
// when the version is absent).
func (p *Params) TraceParent(ctx context.Context, experiment, line string, version uint64) (string, error) {
	if err := errCtx(ctx, "traceparent"); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.lines[name{experiment, line}]; l != nil {
		if _, ok := l.blobs[version]; ok {
			return l.traces[version], nil
		}
	}
	return "", fmt.Errorf("memstore: parameters %s/%s version %d: %w", experiment, line, version, fleet.ErrNotFound)
}

// Latest returns the newest version published for the line (fleet.ErrNotFound when none).
func (p *Params) Latest(ctx context.Context, experiment, line string) (uint64, error) {
	if err := errCtx(ctx, "latest"); err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.lines[name{experiment, line}]; l != nil {
		return l.latest, nil
	}
	return 0, fmt.Errorf("memstore: parameters %s/%s: no version: %w", experiment, line, fleet.ErrNotFound)
}

// Published returns a channel that is closed when the next version of any line is published.
// Take the channel before reading the state it is to announce changes of (Latest), so that a
// publish in between is not missed.
func (p *Params) Published() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pub.wait()
}

// Wait blocks until the line has a version at least atLeast (1: any version) and returns the
// newest; it returns the context's error, wrapped, when ctx ends first.
func (p *Params) Wait(ctx context.Context, experiment, line string, atLeast uint64) (uint64, error) {
	for {
		p.mu.Lock()
		var v uint64
		if l := p.lines[name{experiment, line}]; l != nil {
			v = l.latest
		}
		ch := p.pub.wait()
		p.mu.Unlock()
		if v > 0 && v >= atLeast {
			return v, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("memstore: wait for %s/%s version %d: %w", experiment, line, atLeast, ctx.Err())
		}
	}
}
