// Package bulkhead limits how many attempts run at once, so that one slow
// endpoint cannot take every goroutine, connection and byte of memory of
// the process with it. It is built on golang.org/x/sync/semaphore.
//
// A [Bulkhead] is one limit; a [Set] keeps one limit per key (an endpoint,
// a route) and bounds its number of keys by evicting keys not used lately (CLOCK, an
// approximation of least-recently-used).
// Both are [bulwark.Guard]s: Enter takes a slot, the returned Permit's Done
// gives it back. An attempt that finds every slot busy waits in a bounded
// queue, for at most [Config.MaxWait], when a queue is configured, and is
// otherwise rejected at once with a [*FullError] that matches [ErrFull] and
// [bulwark.ErrRejected]: a full bulkhead is a fact about this process, so
// [bulwark.ClassifyError] calls it Ignored, never a failure of the endpoint.
//
// In the composition order the bulkhead sits just inside the breaker, so
// that an open breaker takes no slot, and outside the attempt deadline, so
// that time spent queued is not charged to the endpoint:
//
//	fallback → total deadline → retry/hedge → balancer pick → breaker → bulkhead → attempt deadline → transport
//
// Use it directly or as one of a bulwark.Stack's Guards:
//
//	blk, err := bulkhead.New(bulkhead.Config{Name: "db", Limit: 16, MaxQueue: 32, MaxWait: 50 * time.Millisecond})
//	...
//	p, err := blk.Enter(ctx, "")
//	if err != nil {
//		return err // a *bulkhead.FullError, or ctx.Err()
//	}
//	defer p.Done(bulwark.Success) // the outcome does not matter to a fixed limit
//
// The limits are fixed: Release ignores the outcome of the attempt.
//
// Metrics, all with the attribute bulwark.key: bulwark.bulkhead.in_flight,
// bulwark.bulkhead.queued and bulwark.bulkhead.limit (observable, read at
// collection time, so that admission makes no metric call) and the counter
// bulwark.bulkhead.rejected, with bulwark.bulkhead.reason ("no_queue",
// "queue_full" or "max_wait"). The gauges' callback keeps a Bulkhead or Set
// reachable from its MeterProvider until Close unregisters it.
package bulkhead
