// Package discovery finds the instances of a service and spreads attempts
// over them: registries (static, DNS SRV, etcd in its own module), a
// Resolver that lists and watches instances, a Registrar for
// self-registration, and balancers — round robin, and power of two choices
// on peak-EWMA latency — with outlier ejection and API-version filtering.
//
// A balancer is a bulwark.Picker: in the composition order it sits inside
// the retry, so that a retry picks again (and avoids the instance that just
// failed), and outside the per-endpoint breaker and bulkhead:
//
//	fallback → total deadline → retry/hedge → balancer pick → breaker → bulkhead → attempt deadline → transport
//
// The package knows no transport: the HTTP and gRPC adapters send to the
// address it picks.
package discovery

import (
	"context"
	"errors"
)

// Instance is one instance of a service.
type Instance struct {
	// Addr is where it listens, host:port. It identifies the instance.
	Addr string
	// Version is its API version, semantic ("1.4.2"; a leading "v" is
	// accepted). Empty means unknown: it matches no version requirement.
	Version string
	// Weight is its relative share of traffic. Zero means 1.
	Weight int
	// Meta is free metadata (zone, canary flag); nil means none.
	Meta map[string]string
}

// A Resolver lists the instances of services and watches them change. It
// must be safe for concurrent use.
type Resolver interface {
	// Resolve returns the current instances of service. When the registry
	// cannot be reached it returns the last set it knew, with a nil
	// error, if it knew one; an error otherwise.
	Resolve(ctx context.Context, service string) ([]Instance, error)
	// Watch calls update with the instances of service now and after
	// every change, until ctx ends; then it returns. update is called from
	// one goroutine at a time, never with a lock of the Resolver held.
	// While the registry cannot be reached, Watch keeps the last set and
	// tries again; it returns an error only for a bad argument.
	Watch(ctx context.Context, service string, update func([]Instance)) error
}

// A Registrar registers the running process as an instance of a service,
// for as long as it lives.
type Registrar interface {
	// Register publishes inst under service and keeps it published (a
	// lease kept alive) until the returned deregister is called or the
	// process dies, whichever comes first. deregister removes it at once
	// and stops every goroutine Register started.
	Register(ctx context.Context, service string, inst Instance) (deregister func(context.Context) error, err error)
}

// ErrNoInstance reports that a service has no instance that may be picked:
// none registered, none of a compatible version, or none resolvable.
var ErrNoInstance = errors.New("discovery: no instance")
