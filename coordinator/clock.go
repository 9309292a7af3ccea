package coordinator

import "time"

// The FSM's clock. Commands carry the leader's time, but the FSM's now must not depend on the
// wall clock of whichever leader was ahead: under the old rule (now = the largest time
// applied), a leader whose clock ran an hour ahead froze lease expiry for an hour under every
// later leader. So time is rebased per Raft term (the entry's term, the same on every node):
// the first command of a new term fixes that term's offset so that now carries on from where
// the last term left it, and the term's commands move now by their own leader's clock from
// there, while the offset slews back to zero (ClockSlew). Leases are thereby extended by the
// election gap (as etcd's lessor extends them on a change of leader), never frozen and never
// cut short by another leader's clock.

// ClockSlew is how fast a term's offset returns to zero: by 1/ClockSlew of the time the term's
// leader counts (1 %), so that the FSM's now comes back to the leader's clock (the election gaps
// and a skewed leader's hour are absorbed over time) while a lease runs at most 1 % shorter or
// longer than its TTL on the current leader's clock.
const ClockSlew = 100

// advanceClock moves now for a command stamped t by the leader of term f.term.
func (f *FSM) advanceClock(t time.Time) {
	st := f.st
	if f.term != st.Term {
		st.Term = f.term
		st.TermTime = t
		st.ClockOffset = 0
		if !st.Now.IsZero() {
			st.ClockOffset = st.Now.Sub(t)
		}
	} else if dt := t.Sub(st.TermTime); dt > 0 && st.ClockOffset != 0 {
		step := dt / ClockSlew
		if st.ClockOffset > 0 {
			st.ClockOffset -= min(step, st.ClockOffset)
		} else {
			st.ClockOffset += min(step, -st.ClockOffset)
		}
	}
	if t.After(st.TermTime) {
		st.TermTime = t
	}
	if now := t.Add(st.ClockOffset); now.After(st.Now) {
		st.Now = now
	}
}

// monotonicClock returns a clock that reads the wall time once and then counts the monotonic
// clock from it, so that a step of the wall clock (NTP, an operator) does not move a leader's
// commands' times.
func monotonicClock() func() time.Time {
	start := time.Now()
	return func() time.Time { return start.Add(time.Since(start)) }
}
