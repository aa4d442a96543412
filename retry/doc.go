// Package retry re-runs failed attempts of idempotent calls, and provides
// what retries and hedges share: a retry Budget, a Latency tracker,
// backoffs with jitter, and parsers of server pushback.
//
// A [Retry] is a bulwark.Wrapper. It sits inside the total deadline and
// outside the guards, so that a retry passes the balancer, the breaker and
// the bulkhead again (and may go to another endpoint), and an open breaker
// fails fast instead of burning an attempt:
//
//	fallback → total deadline → retry/hedge → balancer pick → breaker → bulkhead → attempt deadline → transport
//
// A retry starts only when every rule allows it:
//
//   - the call is idempotent (bulwark.Call.Idempotent): adapters mark safe
//     methods, and calls carrying an Idempotency-Key ([NewIdempotencyKey],
//     one per logical call, the same on every attempt);
//   - the attempt failed (Config.RetryOn), its Result is not Final, and the
//     server did not ask not to be called again (a negative Pushback);
//   - Config.MaxAttempts is not reached;
//   - the wait — the larger of the [Backoff] and the server's pushback
//     ([ParseRetryAfter], [ParsePushback]) capped by Config.MaxPushback —
//     plus the expected latency of one attempt ([Latency] or
//     Config.ExpectedLatency) fits in the remaining deadline;
//   - the shared [Budget] allows one more attempt.
//
// Otherwise the caller gets the last attempt's result at once.
//
//	budget, _ := retry.NewBudget(retry.BudgetConfig{Name: "users"}) // shared
//	r, _ := retry.New(retry.Config{MaxAttempts: 3, Budget: budget})
//	stack, _ := bulwark.New(bulwark.Config{Timeout: total, Retry: r, Guards: guards})
//	user, err := bulwark.Do(bulwark.Idempotent(ctx), stack, "users", fetchUser)
//
// The attempt number reaches the attempt (bulwark.Call.Attempt's n;
// bulwark.AttemptNumber under bulwark.Do), for http.request.resend_count
// and gRPC's grpc-previous-rpc-attempts.
//
// Metrics, all with the attribute bulwark.key (Config.Name): the counters
// bulwark.retry.retries (bulwark.retry.reason "failure" or "pushback") and
// bulwark.retry.given_up (bulwark.retry.reason "attempts", "budget",
// "deadline", "canceled", "pushback", "not_idempotent" or "final": a
// failed attempt worth a retry that was not started), the histogram
// bulwark.retry.backoff of waits in seconds, and, on the Budget,
// bulwark.retry.budget.exhausted. A call that needs no retry records
// nothing. The instruments live as long as the MeterProvider.
package retry
