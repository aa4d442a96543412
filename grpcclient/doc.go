// Package grpcclient gives a gRPC client connection bulwark's resilience,
// as unary and stream client interceptors built on the one composition of
// the root package, in its order:
//
//	fallback (unary) → total deadline → hedge (unary, opt-in per method)
//	  → breaker (per method) → bulkhead (per method) → attempt deadline
//	  → grpc-go (its own retries, by service config) → transport
//
// Start from the Standard preset; DialOptions is the whole integration:
//
//	opts, err := grpcclient.DialOptions(grpcclient.Standard())
//	if err != nil { ... }
//	conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(creds))...)
//
// The attempt deadline is a deadline on the context handed to grpc-go, so
// the server receives it (grpc-timeout) and stops working for a caller that
// stopped waiting; it is never later than the caller's own. A stream holds
// its bulkhead slot until it ends (read to io.EOF or an error, its context
// ended, the ClientConn closed), so a bulkhead bounds open streams, and a
// stream the caller abandons is released when its context ends. The
// breaker judges a stream by its start: its first message or header, or
// its end, whichever comes first, so that long-lived healthy streams
// neither hold a half-open breaker's trials nor count against it.
//
// Retries are grpc-go's: a ServiceConfig with a RetryPolicy per method, and
// RetryThrottling as their budget, is validated here and handed to grpc-go
// (grpc.WithDefaultServiceConfig). They happen below the interceptors,
// which see one call whatever the number of attempts grpc-go makes for it;
// server pushback (grpc-retry-pushback-ms) and transparent retries are
// grpc-go's too. Hedging, which grpc-go does not do, is this package's: a
// method opts in (Method.Hedge, which declares it safe to repeat), each
// hedged attempt passes the breaker and the bulkhead on its own, decodes
// into a reply message of its own, and only the winner's reply (and what
// the call options ask for: header, trailer, peer) is copied into the
// caller's; a cancelled loser counts as Ignored, never as a failure, and
// the call returns once its losers have. Hedges draw on a retry.Budget
// that may be shared with other clients, HTTP ones included.
//
// Client-side discovery and balancing (DiscoveryDialOptions) work below the
// interceptors, on every attempt grpc-go makes: a discovery.Balancer picks
// the instance (peak-EWMA power of two choices, outlier ejection), retries
// and hedges go elsewhere than the attempt before them, and, with
// DiscoveryConfig.Bulkhead, each instance has a limit of its own (adaptive,
// for a service that sheds load): an instance at its limit is passed over,
// and a call that finds every instance at its limit is refused at once.
//
// Errors keep both their gRPC meaning and their Go one: an open breaker is
// Unavailable, a full bulkhead ResourceExhausted and a deadline of ours
// DeadlineExceeded for status.Code, while errors.Is still matches
// breaker.ErrOpen, bulkhead.ErrFull, timeout.ErrTimeout and
// bulwark.ErrRejected. Outcomes follow Classify: Unavailable,
// DeadlineExceeded (ours), ResourceExhausted, Internal and Unknown are
// failures of the endpoint; the caller's own cancellation or deadline never
// is.
//
// OpenTelemetry: each policy reports its metrics (bulwark.breaker.*,
// bulwark.bulkhead.*, bulwark.hedge.*, bulwark.retry.budget.*,
// bulwark.timeout.*, bulwark.fallback.*). When the caller's context carries
// a recording span, every attempt (every hedge, every stream) gets a child
// span, bulwark.grpc.attempt, with rpc.system, rpc.service, rpc.method,
// bulwark.attempt (for hedges), rpc.grpc.status_code, bulwark.outcome and
// error.type. It works alongside otelgrpc's stats handler
// (grpc.WithStatsHandler(otelgrpc.NewClientHandler())), whose client span of
// each RPC is then a child of bulwark's attempt span.
package grpcclient
