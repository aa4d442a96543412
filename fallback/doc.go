// Package fallback answers instead of a call that failed: with a default
// value ([Value]), with a function of the error ([Func]), or with the last
// good answer to the same question ([Cache]: stale-on-error, with a
// freshness TTL that answers without calling at all). Each is a
// bulwark.Fallback, given to a bulwark.Pipeline, which also coalesces
// concurrent identical calls.
//
// Fallback is the outermost policy, so it sees the final result of the
// call, whatever produced it:
//
//	fallback → total deadline → retry/hedge → balancer pick → breaker → bulkhead → attempt deadline → transport
//
// When to fall back is decided by Config.When, nil meaning [Default]: on an
// endpoint failure, on a local rejection (an open breaker, a full
// bulkhead) and on a deadline of ours; not on an error that is the
// caller's own (an Ignored outcome). Whatever When says, a fallback never
// answers a caller whose own context ended (it cancelled, or its own
// deadline passed): nobody is waiting for that answer, and serving it would
// hide the cancellation. A panic in the call is never recovered here.
//
//	cache, err := fallback.NewCache(fallback.CacheConfig[User]{FreshFor: 10 * time.Second})
//	...
//	users, err := bulwark.NewPipeline(bulwark.PipelineConfig[User]{Stack: stack, Key: "users", Fallback: cache, Coalesce: true})
//	...
//	var note fallback.Note
//	u, err := users.Do(fallback.WithNote(ctx, &note), id, func(ctx context.Context) (User, error) {
//		return fetchUser(ctx, id)
//	})
//	if note.Source == fallback.SourceCacheStale { ... } // u is note.Age old
//
// A [Note] tells a caller where its answer came from: the call itself, a
// fresh or a stale cached value, a default or a function, and how old a
// cached value is.
//
// Metrics: bulwark.fallback.used, a counter of failed calls answered by a
// fallback (attributes bulwark.key, the Config's Name, and
// bulwark.fallback.source: value, func or cache_stale); for a Cache,
// bulwark.fallback.cache.lookups, a counter (bulwark.key and
// bulwark.fallback.cache.result: hit, stale_hit or miss), and the gauges
// bulwark.fallback.cache.entries and bulwark.fallback.cache.bytes. The
// Cache's instruments are observed at collection time, so a call that
// succeeds makes no metric call at all.
package fallback
