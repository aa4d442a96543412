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
// A fixed limit must be guessed, and a guess high enough for a healthy
// endpoint lets an overloaded one queue every attempt it is sent: each
// waits behind the others there, and the caller sees the whole queue in
// its latency. With [Config.Adaptive] the limit learns instead how many
// attempts the endpoint serves at once without queueing, from the latency
// of successes and the share of failures that Done reports, and rejects
// the excess here, at once (see [AdaptiveConfig] for the algorithm).
// Config.Limit is then its ceiling; in a Set each key learns its own:
//
//	set, err := bulkhead.NewSet(bulkhead.Config{Limit: 256, Adaptive: &bulkhead.AdaptiveConfig{}})
//	...
//	p, err := set.Enter(ctx, endpoint)
//	if err != nil {
//		return err
//	}
//	err = call(ctx)
//	p.Done(bulwark.ClassifyError(ctx, err)) // the limit learns from Success and Failure
//
// The queue and MaxWait work the same with either kind of limit. An
// adaptive limit's semaphore has Config.Limit slots and holds back those
// above the limit in force. Its admissions and releases allocate nothing
// and take no lock beyond the semaphore's; once a window, the release that
// ends it updates the limit, under a lock no attempt waits for.
//
// Metrics, all with the attribute bulwark.key: bulwark.bulkhead.in_flight,
// bulwark.bulkhead.queued and bulwark.bulkhead.limit (the limit in force,
// as learned for an adaptive one; all three observable, read at collection
// time, so that admission makes no metric call) and the counter
// bulwark.bulkhead.rejected, with bulwark.bulkhead.reason ("no_queue",
// "queue_full" or "max_wait"). The gauges' callback keeps a Bulkhead or Set
// reachable from its MeterProvider until Close unregisters it.
package bulkhead
