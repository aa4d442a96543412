package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Static is a Resolver over sets of instances given in advance: a list
// from configuration, or a test's. Its sets change only through Set, which
// its watchers see at once. A Static is safe for concurrent use. Build it
// with NewStatic.
type Static struct {
	mu       sync.Mutex
	services map[string]*staticService
}

type staticService struct {
	instances []Instance
	watchers  map[chan struct{}]struct{}
}

// NewStatic validates each set of services (see Validate; an empty service
// name is refused too) and returns a Static serving them. An empty set is
// valid: a Balancer over it refuses every attempt with a NoInstanceError.
// The error names the service and the bad instance. NewStatic keeps copies
// of the sets, not services itself.
func NewStatic(services map[string][]Instance) (*Static, error) {
	s := &Static{services: make(map[string]*staticService, len(services))}
	for name, insts := range services {
		if err := s.Set(name, insts); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Set validates instances (see Validate) and makes them the set of
// service, adding the service if it is new; every Watch of service is told.
// On error the Static is left as it was.
func (s *Static) Set(service string, instances []Instance) error {
	if service == "" {
		return errors.New("discovery: static: empty service name")
	}
	if err := Validate(instances); err != nil {
		return fmt.Errorf("discovery: static: service %q: %w", service, err)
	}
	insts := slices.Clone(instances)
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[service]
	if svc == nil {
		svc = &staticService{watchers: map[chan struct{}]struct{}{}}
		s.services[service] = svc
	}
	svc.instances = insts
	for ch := range svc.watchers {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is pending already: it reads the latest set
		}
	}
	return nil
}

// Resolve returns a copy of the instances of service (their Meta maps are
// shared: do not modify them), or, for a service the Static does not know,
// an error matching ErrNoInstance.
func (s *Static) Resolve(ctx context.Context, service string) ([]Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[service]
	if svc == nil {
		return nil, s.unknown(service)
	}
	return slices.Clone(svc.instances), nil
}

func (*Static) unknown(service string) error {
	return fmt.Errorf("%w: static: unknown service %q", ErrNoInstance, service)
}

// Watch calls update with a copy of the instances of service now, and
// again after each Set of service, until ctx ends; then it returns nil. For
// a service the Static does not know it returns an error matching
// ErrNoInstance at once.
func (s *Static) Watch(ctx context.Context, service string, update func([]Instance)) error {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	svc := s.services[service]
	if svc == nil {
		s.mu.Unlock()
		return s.unknown(service)
	}
	svc.watchers[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(svc.watchers, ch)
		s.mu.Unlock()
	}()
	select {
	case ch <- struct{}{}: // the set as it is now
	default: // a Set since registering has already asked for it
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		}
		s.mu.Lock()
		insts := slices.Clone(svc.instances)
		s.mu.Unlock()
		update(insts)
	}
}
