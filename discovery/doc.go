// Package discovery finds the instances of a service and spreads attempts
// over them: registries (static, DNS SRV, etcd in its own module), a
// [Resolver] that lists and watches instances, a [Registrar] for
// self-registration, and a [Balancer] — power of two choices on peak-EWMA
// latency, or weighted round robin — with outlier ejection, a panic
// threshold and API-version filtering.
//
// A Balancer is a bulwark.Picker: in the composition order it sits inside
// the retry, so that a retry or a hedge picks again and avoids the instance
// that just failed, and outside the per-endpoint breaker and bulkhead,
// which then keep their state per instance address:
//
//	fallback → total deadline → retry/hedge → balancer pick → breaker → bulkhead → attempt deadline → transport
//
// For example:
//
//	dns, err := discovery.NewDNS(discovery.DNSConfig{Server: "127.0.0.1:8600"})
//	...
//	users, err := discovery.NewBalancer(ctx, dns, "_http._tcp.users.service.consul.",
//		discovery.BalancerConfig{RequireVersion: "2.1"})
//	...
//	defer users.Close()
//	stack, err := bulwark.New(bulwark.Config{Picker: users, Retry: r, Guards: guards})
//	...
//	user, err := bulwark.Do(ctx, stack, "users", func(ctx context.Context) (User, error) {
//		return fetchUser(ctx, bulwark.EndpointOf(ctx)) // the address picked
//	})
//
// With no instance to offer, a Balancer refuses at once with a
// [*NoInstanceError] — it matches [ErrNoInstance], bulwark.ErrNoEndpoint and
// bulwark.ErrRejected — rather than let the call wait for its deadline.
//
// Each attempt's outcome comes back through its Permit. Under [PeakEWMA] the
// latency feeds the instance's estimate, and a Failure (a 429 or a 503, a
// refused connection) counts as slower than a typical instance, so that an
// instance failing fast draws no traffic by its speed; an Ignored outcome (the caller cancelled, the caller's fault, a local
// rejection) is neither a latency nor a failure. Failures also drive
// outlier ejection ([Ejection]): an instance is ejected after consecutive
// failures, or when its success rate over an interval falls too far below
// the others' (or under a fixed threshold), for a time that grows with each
// ejection; a cap bounds how many are ejected at once, and below the panic
// threshold every instance is picked again.
//
// The package knows no transport: the HTTP and gRPC adapters send to the
// address it picks. It imports net only for the DNS resolver and [Self].
//
// Metrics, all with the attribute bulwark.key (the service): from a
// Balancer, bulwark.discovery.picks (attempts, counted when they end, by
// bulwark.outcome; per instance too, with bulwark.discovery.instance, when
// BalancerConfig.InstanceMetrics is set),
// bulwark.discovery.no_instance (refusals), bulwark.discovery.instances
// (by bulwark.discovery.state: eligible, incompatible, invalid),
// bulwark.discovery.ejected and bulwark.discovery.panic, all observed at
// collection time so that a pick makes no metric call, and the counter
// bulwark.discovery.ejections (by bulwark.discovery.reason:
// consecutive_failures, success_rate, failure_ratio); from a DNS resolver,
// bulwark.discovery.staleness (seconds since the last successful lookup of
// a name) and bulwark.discovery.refresh_errors (by error.type: malformed or
// lookup). A Balancer's and a DNS's callbacks keep them reachable from
// their MeterProvider until Close.
package discovery
