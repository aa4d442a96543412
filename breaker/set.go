package breaker

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/internal/keyed"
	"go.opentelemetry.io/otel/metric"
)

// Set is one breaker per key (an endpoint, a route), each configured by the
// same Config and each judging its key alone. It holds at most
// Config.MaxKeys keys: beyond that a key not used lately is forgotten
// (CLOCK eviction, an approximation of least-recently-used), and its breaker starts closed if the key comes back. It
// implements bulwark.Guard. A Set is safe for concurrent use. Build it with
// NewSet.
type Set struct {
	cfg          *shared
	keys         *keyed.Set[*Breaker]
	registration metric.Registration
}

// NewSet validates cfg and returns an empty Set. A field out of range is an
// error naming it. The MeterProvider observes the state and refusals of
// every key held (and so holds the Set) for as long as it lives, or until
// Close.
func NewSet(cfg Config) (*Set, error) {
	s, err := settle(cfg)
	if err != nil {
		return nil, err
	}
	keys, err := keyed.New(s.maxKeys, func(key string) *Breaker { return newBreaker(s, key) }, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("breaker: %w", err)
	}
	set := &Set{cfg: s, keys: keys}
	set.registration, err = s.meter.RegisterCallback(set.observe, s.state, s.rejections)
	if err != nil {
		return nil, fmt.Errorf("breaker: registering the state gauge: %w", err)
	}
	return set, nil
}

// Enter admits one attempt on key, or refuses it with an *OpenError (which
// matches ErrOpen and bulwark.ErrRejected) while key's breaker is open or
// every half-open trial slot is taken. A ctx already done gets ctx.Err() and
// leaves the Set as it was. The Permit's Done must be called exactly once,
// as for Breaker.Enter.
func (s *Set) Enter(ctx context.Context, key string) (bulwark.Permit, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Permit{}, err
	}
	return s.keys.Get(key).enter()
}

// Started restarts p's slow-call clock, as Breaker.Started does: the Set
// is a bulwark.Starter for the Permits of its breakers.
func (s *Set) Started(p bulwark.Permit) bulwark.Permit {
	if s.cfg.slow <= 0 {
		return p
	}
	return p.WithStart(s.cfg.since())
}

// Release reports how the attempt that p admitted ended, to the breaker of
// its key. Callers call p.Done instead; p must come from s.Enter.
func (s *Set) Release(p bulwark.Permit, o bulwark.Outcome) {
	p.Done(o) // the Permit's guard is the key's *Breaker
}

// State returns the state of key's breaker now; Closed for a key the Set
// does not hold (its breaker would start closed). It does not add the key.
func (s *Set) State(key string) State {
	if b, ok := s.keys.Peek(key); ok {
		return b.State()
	}
	return Closed
}

// Counts returns the Counts of key's breaker; zero Counts for a key the Set
// does not hold. It does not add the key.
func (s *Set) Counts(key string) Counts {
	if b, ok := s.keys.Peek(key); ok {
		return b.Counts()
	}
	return Counts{}
}

// Len returns the number of keys held.
func (s *Set) Len() int { return s.keys.Len() }

// Close unregisters the Set's states and refusals from the MeterProvider,
// which then no longer holds it. The Set keeps working;
// bulwark.breaker.transitions is still counted.
func (s *Set) Close() error { return s.registration.Unregister() }

func (s *Set) observe(_ context.Context, o metric.Observer) error {
	now := time.Now()
	s.keys.Range(func(_ string, b *Breaker) { b.observe(o, now) })
	return nil
}
