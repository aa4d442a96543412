// Package breaker holds circuit breakers: guards that refuse attempts while
// an endpoint is failing, so that callers fail fast and the endpoint gets
// room to recover, then let a few trial attempts through to learn whether
// it did.
//
// The state machine is github.com/sony/gobreaker/v2's two-step breaker,
// with its rolling window. This package adds what it lacks: a failure-rate
// rule guarded by a minimum number of calls, next to a consecutive-failures
// rule; slow successes counted as failures; a refusal that allocates
// nothing and says when to come back ([OpenError]); state-change events
// delivered outside every lock, in order, so a callback may call back into
// the breaker; half-open trials that never report given up after
// Config.TrialTimeout, so a lost Permit cannot wedge the breaker; a
// [Set] of breakers, one per key, bounded in size; and OpenTelemetry
// metrics.
//
// A [Breaker] and a [Set] are bulwark.Guards. In the composition order the
// breaker sits inside retry and the balancer pick, outside the bulkhead, so
// that a retry can go elsewhere, an open breaker takes no bulkhead slot, and
// a full bulkhead never counts against the endpoint:
//
//	fallback → total deadline → retry/hedge → balancer pick → breaker → bulkhead → attempt deadline → transport
//
// Used alone:
//
//	brk, err := breaker.NewSet(breaker.Config{FailureRatio: 0.25, OpenDuration: 10 * time.Second})
//	...
//	p, err := brk.Enter(ctx, "users")
//	if err != nil {
//		return err // an *OpenError while "users" is open: errors.Is(err, breaker.ErrOpen)
//	}
//	resp, err := call(ctx)
//	p.Done(bulwark.ClassifyError(ctx, err))
//
// Outcomes: bulwark.Success and bulwark.Failure are judged; bulwark.Ignored
// (the caller cancelled, the caller's fault, a local rejection such as a
// full bulkhead) never moves a breaker.
//
// Metrics: bulwark.breaker.state, an observable gauge per key (0 closed, 1
// half-open, 2 open; attribute bulwark.key); bulwark.breaker.transitions, a
// counter (bulwark.key, bulwark.breaker.from, bulwark.breaker.to, with
// values closed, half_open, open); bulwark.breaker.rejections, a counter
// (bulwark.key, bulwark.breaker.reason: open or half_open_full). The gauge
// and the rejections are observed at collection time from atomics, so that
// neither an admitted nor a refused attempt makes a metric call; a key
// pushed out of a Set stops being reported, and starts again from zero if
// it comes back. A Breaker is reported with bulwark.key "".
package breaker
