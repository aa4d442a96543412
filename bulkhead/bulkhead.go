package bulkhead

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwarkrpc/bulwark"
)

// Bulkhead is one concurrency limit: at most Config.Limit attempts run at
// once, whatever their key, or, with Config.Adaptive, at most the limit it
// has learned. It is a bulwark.Guard and is safe for concurrent use. Build
// it with New; the zero Bulkhead is not usable.
type Bulkhead struct {
	l   *limiter
	reg metric.Registration
}

var _ bulwark.WaitingGuard = (*Bulkhead)(nil)

// New validates cfg and returns its Bulkhead. A negative field, MaxWait
// without MaxQueue, or an Adaptive field out of its range, is an error
// naming the field.
func New(cfg Config) (*Bulkhead, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	m, err := newInstruments(cfg.MeterProvider)
	if err != nil {
		return nil, err
	}
	b := &Bulkhead{l: newLimiter(cfg.Name, cfg, m)}
	if b.reg, err = m.register(func(o metric.Observer) { b.l.observe(o, m) }); err != nil {
		return nil, err
	}
	return b, nil
}

// Close unregisters the Bulkhead's gauges from its MeterProvider, which
// otherwise keeps the Bulkhead alive as long as itself. Attempts still
// admitted may run to their end; the Bulkhead remains usable, unobserved.
func (b *Bulkhead) Close() error { return b.reg.Unregister() }

// Enter admits one attempt, whatever key says (errors and metrics carry
// Config.Name instead). On admission the returned Permit's Done must be
// called exactly once, when the attempt ends.
//
// A ctx already done gets ctx.Err() and leaves the Bulkhead unchanged.
// When every slot is busy, Enter waits in the queue if one is configured
// and has room, until a slot frees, Config.MaxWait passes (a *FullError
// with ReasonMaxWait) or ctx is done (ctx.Err(), holding nothing);
// otherwise it returns a *FullError at once. A *FullError matches ErrFull
// and bulwark.ErrRejected.
//
// Admission when a slot is free allocates nothing and never blocks for
// longer than a mutex; waiting in the queue allocates.
func (b *Bulkhead) Enter(ctx context.Context, key string) (bulwark.Permit, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Permit{}, err
	}
	return b.l.enter(ctx, b, time.Time{})
}

// EnterUntil is Enter with the wait in the queue ended at until too, with
// context.DeadlineExceeded (bulwark.WaitingGuard): a bulwark.Stack calls
// it with a call's total deadline. Zero until is Enter.
func (b *Bulkhead) EnterUntil(ctx context.Context, key string, until time.Time) (bulwark.Permit, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Permit{}, err
	}
	return b.l.enter(ctx, b, until)
}

// Release frees the slot of the attempt p admitted; callers call p.Done,
// which calls it. A fixed limit ignores the outcome; an adaptive one
// learns from a Success or a Failure (see AdaptiveConfig) and ignores an
// Ignored outcome.
func (b *Bulkhead) Release(p bulwark.Permit, o bulwark.Outcome) { release(p, o) }

// InFlight returns how many admitted attempts have not been released yet.
func (b *Bulkhead) InFlight() int { return int(b.l.inFlight.Load()) }

// Queued returns how many attempts are waiting for a slot.
func (b *Bulkhead) Queued() int { return int(b.l.queued.Load()) }

// Limit returns how many attempts may run at once: Config.Limit, or the
// adaptive limit in force now. Just after an adaptive limit shrinks,
// InFlight may exceed it until the attempts admitted before end.
func (b *Bulkhead) Limit() int { return int(b.l.current()) }
