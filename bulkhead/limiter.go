package bulkhead

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/semaphore"

	"github.com/bulwarkrpc/bulwark"
)

const (
	keyAttr    = "bulwark.key"
	reasonAttr = "bulwark.bulkhead.reason"
)

// instruments are created once per Bulkhead or Set.
type instruments struct {
	meter    metric.Meter
	rejected metric.Int64Counter
	inFlight metric.Int64ObservableUpDownCounter
	queued   metric.Int64ObservableUpDownCounter
	limit    metric.Int64ObservableUpDownCounter
}

func newInstruments(mp metric.MeterProvider) (*instruments, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := &instruments{meter: mp.Meter("github.com/bulwarkrpc/bulwark/bulkhead")}
	var err error
	if m.rejected, err = m.meter.Int64Counter("bulwark.bulkhead.rejected",
		metric.WithDescription("Attempts a full bulkhead rejected."),
		metric.WithUnit("{attempt}")); err != nil {
		return nil, fmt.Errorf("bulkhead: creating instruments: %w", err)
	}
	if m.inFlight, err = m.meter.Int64ObservableUpDownCounter("bulwark.bulkhead.in_flight",
		metric.WithDescription("Attempts holding a bulkhead slot."),
		metric.WithUnit("{attempt}")); err != nil {
		return nil, fmt.Errorf("bulkhead: creating instruments: %w", err)
	}
	if m.queued, err = m.meter.Int64ObservableUpDownCounter("bulwark.bulkhead.queued",
		metric.WithDescription("Attempts waiting for a bulkhead slot."),
		metric.WithUnit("{attempt}")); err != nil {
		return nil, fmt.Errorf("bulkhead: creating instruments: %w", err)
	}
	if m.limit, err = m.meter.Int64ObservableUpDownCounter("bulwark.bulkhead.limit",
		metric.WithDescription("Attempts a bulkhead admits at once."),
		metric.WithUnit("{attempt}")); err != nil {
		return nil, fmt.Errorf("bulkhead: creating instruments: %w", err)
	}
	return m, nil
}

// register registers the callback reporting the gauges; observe reports
// the limits alive at collection time.
func (m *instruments) register(observe func(metric.Observer)) (metric.Registration, error) {
	reg, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		observe(o)
		return nil
	}, m.inFlight, m.queued, m.limit)
	if err != nil {
		return nil, fmt.Errorf("bulkhead: registering metric callback: %w", err)
	}
	return reg, nil
}

// limiter is one limit: a Bulkhead's only one, or one key's in a Set.
// Everything a call needs is built in newLimiter, so that admitting,
// releasing and rejecting allocate nothing.
type limiter struct {
	sem      *semaphore.Weighted
	limit    int64
	maxQueue int64
	maxWait  time.Duration

	rejected                   metric.Int64Counter
	noQueue, queueFull, waited FullError
	// The options are slices built once: a variadic argument to an
	// interface method escapes, so passing one option would allocate.
	noQueueOpts, queueFullOpts, waitedOpts []metric.AddOption
	observeOpt                             metric.ObserveOption

	// The counters are written by every attempt: keep them off the cache
	// lines of the read-only fields above, which every attempt reads.
	_        [64]byte
	inFlight atomic.Int64 // <= the slots the semaphore has handed out: counted after Acquire, uncounted before Release
	queued   atomic.Int64 // never above maxQueue: reserved by CompareAndSwap
}

func newLimiter(key string, c Config, m *instruments) *limiter {
	l := &limiter{
		sem:      semaphore.NewWeighted(int64(c.Limit)),
		limit:    int64(c.Limit),
		maxQueue: int64(c.MaxQueue),
		maxWait:  c.MaxWait,
		rejected: m.rejected,
	}
	l.noQueue = FullError{Key: key, Limit: c.Limit, Reason: ReasonNoQueue}
	l.queueFull = FullError{Key: key, Limit: c.Limit, Reason: ReasonQueueFull}
	l.waited = FullError{Key: key, Limit: c.Limit, Reason: ReasonMaxWait, maxWait: c.MaxWait}
	k := attribute.String(keyAttr, key)
	reason := func(r Reason) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(k, attribute.String(reasonAttr, r.String())))}
	}
	l.noQueueOpts, l.queueFullOpts, l.waitedOpts = reason(ReasonNoQueue), reason(ReasonQueueFull), reason(ReasonMaxWait)
	l.observeOpt = metric.WithAttributeSet(attribute.NewSet(k))
	return l
}

// enter admits one attempt for g, whose caller has checked ctx.Err().
func (l *limiter) enter(ctx context.Context, g bulwark.Guard) (bulwark.Permit, error) {
	if l.sem.TryAcquire(1) {
		l.inFlight.Add(1)
		return bulwark.NewPermit(g, l, 0), nil
	}
	if l.maxQueue == 0 {
		return bulwark.Permit{}, l.reject(ctx, &l.noQueue, l.noQueueOpts)
	}
	return l.wait(ctx, g)
}

// wait is enter's slow path: queue for a slot, if the queue has room.
func (l *limiter) wait(ctx context.Context, g bulwark.Guard) (bulwark.Permit, error) {
	for {
		q := l.queued.Load()
		if q >= l.maxQueue {
			return bulwark.Permit{}, l.reject(ctx, &l.queueFull, l.queueFullOpts)
		}
		if l.queued.CompareAndSwap(q, q+1) {
			break
		}
	}
	// Bound the wait by MaxWait only when the caller's deadline is later:
	// when both would end it at once, it is the caller's deadline.
	wctx := ctx
	if l.maxWait > 0 {
		at := time.Now().Add(l.maxWait)
		if dl, ok := ctx.Deadline(); !ok || dl.After(at) {
			var cancel context.CancelFunc
			wctx, cancel = context.WithDeadline(ctx, at)
			defer cancel()
		}
	}
	err := l.sem.Acquire(wctx, 1)
	if err == nil {
		l.inFlight.Add(1)
		l.queued.Add(-1)
		return bulwark.NewPermit(g, l, 0), nil
	}
	l.queued.Add(-1)
	// Acquire failed and left the semaphore unchanged. When the caller's
	// context is done, the end of the wait is the caller's doing, even if
	// MaxWait expired a moment before: report it as such.
	if err := ctx.Err(); err != nil {
		return bulwark.Permit{}, err
	}
	return bulwark.Permit{}, l.reject(ctx, &l.waited, l.waitedOpts)
}

func (l *limiter) reject(ctx context.Context, e *FullError, opts []metric.AddOption) error {
	l.rejected.Add(ctx, 1, opts...)
	return e
}

func (l *limiter) release() {
	// Uncount before releasing, so that InFlight never exceeds Limit.
	l.inFlight.Add(-1)
	l.sem.Release(1)
}

func (l *limiter) observe(o metric.Observer, m *instruments) {
	o.ObserveInt64(m.inFlight, l.inFlight.Load(), l.observeOpt)
	o.ObserveInt64(m.queued, l.queued.Load(), l.observeOpt)
	o.ObserveInt64(m.limit, l.limit, l.observeOpt)
}

// release ends the attempt p admitted. The Permit carries its limiter, so
// a Set releases the right one even after its key was evicted.
func release(p bulwark.Permit) {
	l, ok := p.Ref().(*limiter)
	if !ok {
		panic("bulkhead: Release of a Permit that no bulkhead issued")
	}
	l.release()
}
