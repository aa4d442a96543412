// Package etcd is bulwark's etcd registry: a [discovery.Registrar] that
// keeps the running process registered under a lease, and a
// [discovery.Resolver] that reads and watches the instances of a service,
// riding out etcd outages on the last set it knew. It lives in a module of
// its own so that etcd's dependency tree stays out of the core module.
//
// A [Registry] wraps an etcd client (go.etcd.io/etcd/client/v3), not the
// gRPC resolver that etcd ships: that one drops an instance's metadata and
// stops for good on a watch error, where a registry must keep watching.
//
//	reg, err := etcd.NewRegistry(etcd.Config{Endpoints: []string{"etcd-1:2379", "etcd-2:2379"}})
//	...
//	defer reg.Close()
//	// A server registers itself for as long as it runs:
//	deregister, err := reg.Register(ctx, "users", discovery.Instance{Addr: "10.0.0.7:8080", Version: "1.4.2"})
//	...
//	defer deregister(context.Background())
//	// A client follows the service (Watch returns when ctx ends):
//	go reg.Watch(ctx, "users", func(set []discovery.Instance) { /* hand set to a balancer */ })
//
// An instance of service s at address a is the key Config.Prefix+s+"/"+a
// holding the instance as JSON: {"addr", "version", "weight", "meta"}. Its
// lease has a TTL of Config.LeaseTTL and a goroutine keeps it alive, so
// that the key goes LeaseTTL after the process dies; deregister and Close
// revoke it at once; a lease lost while the process lives (etcd restarted
// without it, or it expired while the process was cut off) is replaced as
// soon as etcd answers again. Values that are not such JSON are skipped,
// and counted.
//
// Watch reads the keys, then watches them from that revision on. Every
// Config.ProgressInterval it asks etcd to confirm that the watch is
// current, which is what the staleness metric measures. It starts over
// (with backoff) whenever the watch ends: on an error, a compaction, a
// closed channel, or when etcd stops confirming it. While etcd is
// unreachable the last set stands; Resolve returns it too.
//
// The registry feeds the balancer, which sits inside the retry in the
// composition order; it takes no part in an attempt itself:
//
//	fallback → total deadline → retry/hedge → balancer pick → breaker → bulkhead → attempt deadline → transport
//
// Metrics, each with the attribute bulwark.key (the service): the gauges
// bulwark.discovery.etcd.staleness (seconds since etcd last confirmed a
// watched set) and bulwark.discovery.etcd.instances, for services being
// watched; the counters bulwark.discovery.etcd.invalid_values (stored
// values skipped), bulwark.discovery.etcd.rewatches (with
// bulwark.discovery.reason: "compacted", "error", "closed" or
// "silent") and bulwark.discovery.etcd.reregistrations (leases lost and
// replaced). The gauges' callback is unregistered by Close.
package etcd
