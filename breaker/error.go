package breaker

import (
	"strconv"
	"time"

	"github.com/bulwarkrpc/bulwark"
)

// ErrOpen matches (with errors.Is) every refusal by a breaker: open, or
// half-open with every trial slot taken. It matches bulwark.ErrRejected too,
// so the refused attempt classifies as Ignored and counts against nobody.
var ErrOpen = bulwark.RejectionError("breaker: open")

// OpenError is the error by which a breaker refuses an attempt. It matches
// ErrOpen and bulwark.ErrRejected with errors.Is. A breaker builds one per
// open (or half-open) period and hands the same pointer to every attempt it
// refuses in that period: do not modify it.
type OpenError struct {
	// Key is the key of the breaker in its Set; "" for a Breaker.
	Key string
	// State is Open, or HalfOpen when every trial slot is taken.
	State State
	// RetryAt is when the breaker will admit an attempt again, as far as
	// it can tell. Open: the end of the open period, after which the first
	// attempts are admitted as trials. HalfOpen: there is no such promise
	// (the trials in flight decide: all succeed and the breaker closes, one
	// fails and it opens again); RetryAt is the latest moment, when the
	// oldest trial in flight reaches Config.TrialTimeout and is given up as
	// failed (which opens the breaker again).
	RetryAt time.Time
}

// Error returns, for example,
// `breaker: open (key "users", retry at 2026-01-02T15:04:05Z)`.
func (e *OpenError) Error() string {
	msg := "breaker: open"
	if e.State == HalfOpen {
		msg = "breaker: half-open, every trial slot taken"
	}
	return msg + " (key " + strconv.Quote(e.Key) + ", retry at " + e.RetryAt.Format(time.RFC3339Nano) + ")"
}

// Is reports whether target is ErrOpen or bulwark.ErrRejected.
func (e *OpenError) Is(target error) bool {
	return target == ErrOpen || target == bulwark.ErrRejected
}
