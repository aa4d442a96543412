// Package hedge is bulwark's one hedging primitive: when an attempt has not
// answered after a delay, it starts another, takes the first success, and
// cancels the rest. The HTTP and gRPC adapters' hedging and fan-out's
// first-wins race all run on it.
//
// A Hedge is a bulwark.Wrapper, so it sits where retries sit in the
// composition order, inside the total deadline and outside the guards: each
// hedged attempt passes the breaker and the bulkhead on its own, and a
// cancelled loser is released as Ignored, never as a failure of its
// endpoint.
//
//	fallback → total deadline → hedge → balancer pick → breaker → bulkhead → attempt deadline → call
//
// Hedged attempts are extra load: each one draws on a retry.Budget, which
// retries and fan-out share, so that a slow dependency cannot double its own
// traffic. The delay is fixed or follows a quantile of observed latency:
//
//	lat, _ := retry.NewLatency(retry.LatencyConfig{})
//	h, _ := hedge.New(hedge.Config{Latency: lat, Quantile: 0.95, Budget: budget})
//	stack, _ := bulwark.New(bulwark.Config{Retry: h, Idempotent: true, Guards: guards})
//
// Only idempotent calls are hedged (bulwark.Call.Idempotent).
package hedge
