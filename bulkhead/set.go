package bulkhead

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/internal/keyed"
)

// Set keeps one concurrency limit per key (an endpoint, a route): at most
// Config.Limit attempts run at once on each key, each with its own queue.
// With Config.Adaptive each key learns its own limit, starting from
// AdaptiveConfig.InitialLimit; an evicted key that comes back starts
// again from there.
// It holds at most Config.MaxKeys keys, evicting keys not used lately (CLOCK,
// an approximation of least-recently-used), so that hostile or unbounded
// keys cannot grow memory without limit.
//
// A key with attempts running or queued is not evicted, unless every key
// held is busy through two turns of the eviction hand: the bound on memory
// wins then, and the evicted key comes back on its next use with a fresh
// limit beside the old one's still-running attempts, each eviction adding
// up to another Limit. Size MaxKeys well above the number of keys busy at
// once so that this never happens. Evicted keys disappear from the metrics.
//
// A Set is a bulwark.Guard and is safe for concurrent use. Build it with
// NewSet; the zero Set is not usable.
type Set struct {
	limit, initial int
	keys           *keyed.Set[*limiter]
	reg            metric.Registration
}

var _ bulwark.WaitingGuard = (*Set)(nil)

// NewSet validates cfg and returns its Set; it ignores cfg.Name. A negative
// field, MaxWait without MaxQueue, or an Adaptive field out of its range,
// is an error naming the field.
func NewSet(cfg Config) (*Set, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	m, err := newInstruments(cfg.MeterProvider)
	if err != nil {
		return nil, err
	}
	keys, err := keyed.New(cfg.MaxKeys, func(key string) *limiter { return newLimiter(key, cfg, m) }, nil,
		func(l *limiter) bool { return l.inFlight.Load()+l.queued.Load() > 0 })
	if err != nil {
		return nil, err
	}
	s := &Set{limit: cfg.Limit, initial: cfg.Limit, keys: keys}
	if cfg.Adaptive != nil {
		s.initial = cfg.Adaptive.InitialLimit
	}
	if s.reg, err = m.register(func(o metric.Observer) {
		s.keys.Range(func(_ string, l *limiter) { l.observe(o, m) })
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// Close unregisters the Set's gauges from its MeterProvider, which
// otherwise keeps the Set alive as long as itself. Attempts still admitted
// may run to their end; the Set remains usable, unobserved.
func (s *Set) Close() error { return s.reg.Unregister() }

// Enter admits one attempt on key, as Bulkhead.Enter does, against key's
// own limit and queue; the first use of a key creates them. A ctx already
// done gets ctx.Err() and leaves the Set unchanged (no key is created or
// refreshed).
//
// Admission on a known key when a slot is free allocates nothing.
func (s *Set) Enter(ctx context.Context, key string) (bulwark.Permit, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Permit{}, err
	}
	return s.keys.Get(key).enter(ctx, s, time.Time{})
}

// EnterUntil is Enter with the wait in key's queue ended at until too,
// with context.DeadlineExceeded (bulwark.WaitingGuard): a bulwark.Stack
// calls it with a call's total deadline. Zero until is Enter.
func (s *Set) EnterUntil(ctx context.Context, key string, until time.Time) (bulwark.Permit, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Permit{}, err
	}
	return s.keys.Get(key).enter(ctx, s, until)
}

// Release frees the slot of the attempt p admitted, even when p's key has
// been evicted since; callers call p.Done, which calls it. Fixed limits
// ignore the outcome; an adaptive key's limit learns from a Success or a
// Failure (see AdaptiveConfig) and ignores an Ignored outcome.
func (s *Set) Release(p bulwark.Permit, o bulwark.Outcome) { release(p, o) }

// InFlight returns how many admitted attempts on key have not been
// released yet; 0 when key is not held. It does not refresh key.
func (s *Set) InFlight(key string) int {
	if l, ok := s.keys.Peek(key); ok {
		return int(l.inFlight.Load())
	}
	return 0
}

// Queued returns how many attempts on key are waiting for a slot; 0 when
// key is not held. It does not refresh key.
func (s *Set) Queued(key string) int {
	if l, ok := s.keys.Peek(key); ok {
		return int(l.queued.Load())
	}
	return 0
}

// Len returns how many keys the Set holds; never more than Config.MaxKeys.
func (s *Set) Len() int { return s.keys.Len() }

// Limit returns Config.Limit: how many attempts may run at once on each
// key, or, with Config.Adaptive, the ceiling of each key's limit.
func (s *Set) Limit() int { return s.limit }

// KeyLimit returns how many attempts may run at once on key now: Limit,
// or key's adaptive limit in force, which may be below its InFlight just
// after it shrank. A key not held gets the limit it would start with. It
// does not refresh key.
func (s *Set) KeyLimit(key string) int {
	if l, ok := s.keys.Peek(key); ok {
		return int(l.current())
	}
	return s.initial
}
