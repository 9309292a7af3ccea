package coordinator

import "time"

// The FSM's clock. Commands carry the leader's time, but the FSM's now must not depend on the
// wall clock of whichever leader was ahead: under the old rule (now = the largest time
// applied), a leader whose clock ran an hour ahead froze lease expiry for an hour under every
// later leader. So time is rebased per Raft term (the entry's term, the same on every node):
// the first command of a new term fixes that term's offset so that now carries on from where
// the last term left it, and the term's commands move now by their own leader's clock from
// there. Leases are thereby extended by the election gap (as etcd's lessor extends them on a
// change of leader), never frozen and never cut short by another leader's clock.

// advanceClock moves now for a command stamped t by the leader of term f.term.
func (f *FSM) advanceClock(t time.Time) {
	st := f.st
	if f.term != st.Term {
		st.Term = f.term
		st.ClockOffset = 0
		if !st.Now.IsZero() {
			st.ClockOffset = st.Now.Sub(t)
		}
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
