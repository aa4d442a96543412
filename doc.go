// Package bulwark is the shared vocabulary of the bulwark toolkit and its one
// composition mechanism.
//
// Every attempt ends in one [Outcome]: [Success], [Failure] of the endpoint,
// or [Ignored] (the caller cancelled, the caller's own fault, a local
// rejection). Breakers, adaptive limits and outlier ejection learn only from
// Success and Failure. Whether an attempt may be retried is a separate
// question, answered by the retry policies.
//
// There are two kinds of policy. Admission guards ([Guard]: bulkhead,
// breaker, balancer pick) are two-step: Enter before the attempt, report the
// outcome through the [Permit] exactly once when the attempt really ends —
// for HTTP when the response body is closed, for a gRPC stream when it
// finishes. Call wrappers ([Wrapper]: retry, hedge) re-run the whole call and
// take it as a function.
//
// A [Stack] composes them in one fixed order, outermost first:
//
//	fallback → total deadline → wrapper (retry or hedge) → guards, in the
//	order given (breaker, then bulkhead) → attempt deadline → the call
//
// (fallback and coalescing belong to a Pipeline, which is generic in the
// call's result type).
//
// [Do] runs any function through a Stack. Transport adapters use
// [Stack.Enter] and [Attempt.Done] directly, so that a guard is released when
// a response body is closed rather than when the call returns.
//
//	brk, _ := breaker.NewSet(breaker.Config{})
//	blk, _ := bulkhead.NewSet(bulkhead.Config{Limit: 64})
//	to, _ := timeout.New(timeout.Config{Total: 2 * time.Second, Attempt: 500 * time.Millisecond})
//	stack, _ := bulwark.New(bulwark.Config{Timeout: to, Guards: []bulwark.Guard{brk, blk}})
//	user, err := bulwark.Do(ctx, stack, "users", func(ctx context.Context) (User, error) {
//		return fetchUser(ctx, id)
//	})
package bulwark
