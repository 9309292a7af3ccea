package rig

import "time"

// Clock is the time source of a rig: frame timestamps, pacing and timeouts.
type Clock interface {
	Now() time.Time
	// After sends the time on the returned channel once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the machine's clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
