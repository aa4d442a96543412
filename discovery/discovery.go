package discovery

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/bulwarkrpc/bulwark"
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
	// tries again; if it knows none when its first attempt fails, update
	// gets an empty set at once, so that a watcher never waits on the
	// registry for a first answer. It returns an error only for a bad
	// argument.
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

// ErrInvalidInstance matches every error that reports an instance that
// cannot be used: an empty or duplicate address, a negative weight, a
// version that does not parse (see Validate).
var ErrInvalidInstance = errors.New("discovery: invalid instance")

// ErrIncompatible matches the error that reports an instance whose API
// version does not meet a Balancer's BalancerConfig.RequireVersion.
var ErrIncompatible = errors.New("discovery: incompatible API version")

// Validate checks a set of instances: every Addr non-empty and unique,
// every Weight >= 0, every non-empty Version parsable (ParseVersion). It
// returns nil, or an error matching ErrInvalidInstance that names the first
// bad instance by its index and address. Resolvers use it on sets they are
// given; a Balancer applies the same rules to each set it receives and
// leaves out (rather than refuses) the instances that break them.
func Validate(instances []Instance) error {
	seen := make(map[string]int, len(instances))
	for i, inst := range instances {
		if err := check(inst); err != nil {
			return fmt.Errorf("%w: [%d] %w", ErrInvalidInstance, i, err)
		}
		if j, dup := seen[inst.Addr]; dup {
			return fmt.Errorf("%w: [%d] %q: duplicate address (also [%d])", ErrInvalidInstance, i, inst.Addr, j)
		}
		seen[inst.Addr] = i
	}
	return nil
}

// check validates one instance on its own: everything but duplicates.
func check(inst Instance) error {
	switch {
	case inst.Addr == "":
		return errors.New("empty address")
	case inst.Weight < 0:
		return fmt.Errorf("%q: weight %d, want >= 0", inst.Addr, inst.Weight)
	}
	if inst.Version != "" {
		if _, err := ParseVersion(inst.Version); err != nil {
			return fmt.Errorf("%q: %w", inst.Addr, err)
		}
	}
	return nil
}

// NoInstanceError is the refusal of a Balancer that has no instance to
// offer. It matches ErrNoInstance, bulwark.ErrNoEndpoint and
// bulwark.ErrRejected with errors.Is, so that the attempt it refuses
// classifies as Ignored. A Balancer builds one per set of instances and
// hands the same pointer to every refusal: do not modify it.
type NoInstanceError struct {
	// Service is the service the Balancer serves.
	Service string
	// Known is how many instances the last set held.
	Known int
	// Incompatible is how many of them have an API version that does not
	// meet the requirement, or none at all while one is required.
	Incompatible int
	// Invalid is how many of them cannot be used (see Validate).
	Invalid int
	// Ejected is how many of them are ejected (only when
	// Ejection.PanicThreshold is negative can every one be).
	Ejected int
}

// Error returns, for example,
// `discovery: no instance of "users" (3 known: 2 incompatible, 1 invalid)`.
func (e *NoInstanceError) Error() string {
	msg := "discovery: no instance of " + strconv.Quote(e.Service)
	if e.Known == 0 {
		return msg + " (none known)"
	}
	msg += " (" + strconv.Itoa(e.Known) + " known:"
	sep := " "
	for _, part := range [...]struct {
		n    int
		what string
	}{{e.Incompatible, "incompatible"}, {e.Invalid, "invalid"}, {e.Ejected, "ejected"}} {
		if part.n > 0 {
			msg += sep + strconv.Itoa(part.n) + " " + part.what
			sep = ", "
		}
	}
	return msg + ")"
}

// Is reports whether target is ErrNoInstance, bulwark.ErrNoEndpoint or
// bulwark.ErrRejected.
func (e *NoInstanceError) Is(target error) bool {
	return target == ErrNoInstance || target == bulwark.ErrNoEndpoint || target == bulwark.ErrRejected
}
