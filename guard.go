package bulwark

import "context"

// A Guard admits or refuses attempts, one at a time, in two steps: Enter
// before the attempt starts, then, through the returned Permit, report how
// the attempt ended, exactly once, when it really ends. Bulkheads, breakers
// and balancer picks are Guards. A Guard must be safe for concurrent use.
type Guard interface {
	// Enter asks to start one attempt on key (an endpoint, a route). On
	// admission it returns a Permit whose Done must be called exactly once.
	// On refusal it returns an error and a zero Permit, and holds nothing
	// for the attempt. A refusal by the guard itself matches ErrRejected; a
	// context that is already done gets ctx.Err() and leaves the guard
	// unchanged.
	Enter(ctx context.Context, key string) (Permit, error)
	// Release ends the attempt that p admitted. Callers do not call it:
	// they call p.Done, which calls it.
	Release(p Permit, o Outcome)
}

// Permit is one guard's admission of one attempt. A Permit is a small value
// that is copied, never shared: the guard keeps what it needs to release the
// attempt in it, so that admitting an attempt allocates nothing. The zero
// Permit admits nothing and its Done does nothing.
type Permit struct {
	guard Guard
	ref   any
	start int64
}

// NewPermit returns a Permit of g carrying the guard's own ref (use a
// pointer, a func or a map, which fit in an interface without allocating)
// and start (a time, a count: anything the guard reads back in Release).
func NewPermit(g Guard, ref any, start int64) Permit {
	return Permit{guard: g, ref: ref, start: start}
}

// Ref returns the ref given to NewPermit.
func (p Permit) Ref() any { return p.ref }

// Start returns the start given to NewPermit.
func (p Permit) Start() int64 { return p.start }

// WithStart returns p with start in place of its own: what a Starter's
// Started returns for an attempt that starts later than it was admitted.
func (p Permit) WithStart(start int64) Permit {
	p.start = start
	return p
}

// Done reports how the attempt ended to the guard that admitted it. Call it
// exactly once per Permit; Permit alone cannot tell a second call (Attempt
// can, and makes a second Done a no-op).
func (p Permit) Done(o Outcome) {
	if p.guard != nil {
		p.guard.Release(p, o)
	}
}
