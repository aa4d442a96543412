// Package timeout gives a call a total deadline and each attempt its own,
// tells our deadlines apart from the caller's, and answers how much time is
// left.
//
// In the composition order the total deadline sits just inside fallback, so
// retries and hedges share it, and the attempt deadline is innermost, so a
// slow endpoint is recorded as a failure of that endpoint:
//
//	fallback → total deadline → retry/hedge → pick → breaker → bulkhead → attempt deadline → call
//
// A deadline set here is a context deadline with a cause (see
// context.WithDeadlineCause): when it fires, context.Cause of the context is
// a *Error, and [Fired] finds it. A deadline the caller set has some other
// cause, so the two are never confused. Neither WithTotal nor WithAttempt
// creates a context when the caller's deadline is already earlier.
//
//	t, err := timeout.New(timeout.Config{Total: 2 * time.Second, Attempt: 500 * time.Millisecond})
//	ctx, cancel := t.WithTotal(ctx)
//	defer cancel()
//	if !timeout.Enough(ctx, expected) { ... } // not worth starting an attempt
package timeout
