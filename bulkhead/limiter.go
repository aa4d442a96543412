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
	limit    int64     // fixed: the limit; adaptive: the ceiling, the semaphore's size
	ad       *adaptive // nil for a fixed limit
	key      string
	maxQueue int64
	maxWait  time.Duration

	rejected metric.Int64Counter
	// The options are slices built once: a variadic argument to an
	// interface method escapes, so passing one option would allocate.
	noQueueOpts, queueFullOpts, waitedOpts []metric.AddOption
	observeOpt                             metric.ObserveOption

	// The counters are written by every attempt: keep them off the cache
	// lines of the read-only fields above, which every attempt reads.
	_        [64]byte
	inFlight atomic.Int64 // <= the slots the semaphore has handed out: counted after Acquire, uncounted before Release
	queued   atomic.Int64 // never above maxQueue: reserved by CompareAndSwap
	// errs are the FullErrors of the limit in force, rebuilt when an
	// adaptive limit has changed since the last rejection.
	errs atomic.Pointer[fullErrors]
}

type fullErrors struct{ noQueue, queueFull, waited FullError }

func newFullErrors(key string, limit int, maxWait time.Duration) *fullErrors {
	return &fullErrors{
		noQueue:   FullError{Key: key, Limit: limit, Reason: ReasonNoQueue},
		queueFull: FullError{Key: key, Limit: limit, Reason: ReasonQueueFull},
		waited:    FullError{Key: key, Limit: limit, Reason: ReasonMaxWait, maxWait: maxWait},
	}
}

func newLimiter(key string, c Config, m *instruments) *limiter {
	l := &limiter{
		sem:      semaphore.NewWeighted(int64(c.Limit)),
		limit:    int64(c.Limit),
		key:      key,
		maxQueue: int64(c.MaxQueue),
		maxWait:  c.MaxWait,
		rejected: m.rejected,
	}
	if c.Adaptive != nil {
		l.ad = newAdaptive(*c.Adaptive, c.Limit)
		// Hold back the slots above the initial limit.
		if held := int64(c.Limit - c.Adaptive.InitialLimit); held > 0 {
			l.sem.TryAcquire(held) // a new semaphore has them all free
		}
	}
	l.errs.Store(newFullErrors(key, int(l.current()), c.MaxWait))
	k := attribute.String(keyAttr, key)
	reason := func(r Reason) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(k, attribute.String(reasonAttr, r.String())))}
	}
	l.noQueueOpts, l.queueFullOpts, l.waitedOpts = reason(ReasonNoQueue), reason(ReasonQueueFull), reason(ReasonMaxWait)
	l.observeOpt = metric.WithAttributeSet(attribute.NewSet(k))
	return l
}

// current returns the limit in force.
func (l *limiter) current() int64 {
	if l.ad != nil {
		return l.ad.limit.Load()
	}
	return l.limit
}

// enter admits one attempt for g, whose caller has checked ctx.Err().
func (l *limiter) enter(ctx context.Context, g bulwark.Guard, until time.Time) (bulwark.Permit, error) {
	if l.sem.TryAcquire(1) {
		// admit, written out: the fixed limit's fast path saves a call.
		n := l.inFlight.Add(1)
		if l.ad == nil {
			return bulwark.NewPermit(g, l, 0), nil
		}
		return bulwark.NewPermit(g, l, l.ad.admitted(n)), nil
	}
	if l.maxQueue == 0 {
		return bulwark.Permit{}, l.reject(ctx, ReasonNoQueue, l.noQueueOpts)
	}
	return l.wait(ctx, g, until)
}

// wait is enter's slow path: queue for a slot, if the queue has room, until
// MaxWait has passed or until (zero: no bound), whichever comes first.
func (l *limiter) wait(ctx context.Context, g bulwark.Guard, until time.Time) (bulwark.Permit, error) {
	for {
		q := l.queued.Load()
		if q >= l.maxQueue {
			return bulwark.Permit{}, l.reject(ctx, ReasonQueueFull, l.queueFullOpts)
		}
		if l.queued.CompareAndSwap(q, q+1) {
			break
		}
	}
	// Bound the wait by MaxWait and until only when the caller's deadline
	// is later: when both would end it at once, it is the caller's
	// deadline. When until comes first, the call's deadline ends the wait.
	wctx, at, byUntil := ctx, time.Time{}, false
	if l.maxWait > 0 {
		at = time.Now().Add(l.maxWait)
	}
	if !until.IsZero() && (at.IsZero() || until.Before(at)) {
		at, byUntil = until, true
	}
	if !at.IsZero() {
		if dl, ok := ctx.Deadline(); !ok || dl.After(at) {
			var cancel context.CancelFunc
			wctx, cancel = context.WithDeadline(ctx, at)
			defer cancel()
		}
	}
	err := l.sem.Acquire(wctx, 1)
	if err == nil {
		p := l.admit(g)
		l.queued.Add(-1)
		return p, nil
	}
	l.queued.Add(-1)
	// Acquire failed and left the semaphore unchanged. When the caller's
	// context is done, the end of the wait is the caller's doing, even if
	// MaxWait expired a moment before: report it as such.
	if err := ctx.Err(); err != nil {
		return bulwark.Permit{}, err
	}
	if byUntil {
		return bulwark.Permit{}, context.DeadlineExceeded // the call's, not the bulkhead's
	}
	return bulwark.Permit{}, l.reject(ctx, ReasonMaxWait, l.waitedOpts)
}

// admit counts an attempt that holds a slot and returns its Permit; an
// adaptive limit keeps the admission time in it.
func (l *limiter) admit(g bulwark.Guard) bulwark.Permit {
	n := l.inFlight.Add(1)
	var start int64
	if l.ad != nil {
		start = l.ad.admitted(n)
	}
	return bulwark.NewPermit(g, l, start)
}

func (l *limiter) reject(ctx context.Context, r Reason, opts []metric.AddOption) error {
	l.rejected.Add(ctx, 1, opts...)
	e := l.errs.Load()
	if l.ad != nil {
		if lim := int(l.ad.limit.Load()); e.noQueue.Limit != lim {
			// The limit changed: allocate once per change, not per
			// rejection. Racing rejections may each build one; any will do.
			e = newFullErrors(l.key, lim, l.maxWait)
			l.errs.Store(e)
		}
	}
	switch r {
	case ReasonNoQueue:
		return &e.noQueue
	case ReasonQueueFull:
		return &e.queueFull
	}
	return &e.waited
}

// release ends an attempt of a fixed limit. It is small enough to inline.
func (l *limiter) release() {
	// Uncount before releasing, so that InFlight never exceeds Limit.
	l.inFlight.Add(-1)
	l.sem.Release(1)
}

// releaseAdaptive ends an attempt of an adaptive limit, admitted at start,
// with outcome o.
func (l *limiter) releaseAdaptive(o bulwark.Outcome, start int64) {
	// As for a fixed limit, uncount first; but the limit may fall below
	// InFlight: the attempts admitted before a cut run to their end.
	l.inFlight.Add(-1)
	if now, due := l.ad.done(o, start); due {
		l.closeWindow(now)
	}
	if l.ad.debt.Load() > 0 && l.ad.pay(1) == 1 {
		return // the limit shrank: the slot goes back to the held ones
	}
	l.sem.Release(1)
}

// closeWindow ends the adaptive limit's window, unless another attempt is
// ending it, and puts the new limit in force.
func (l *limiter) closeWindow(now int64) {
	a := l.ad
	if !a.mu.TryLock() {
		return // another attempt is ending the window: never wait for it
	}
	defer a.mu.Unlock()
	if to, ok := a.closeWindow(now, l.inFlight.Load()); ok {
		l.setLimit(to)
	}
}

// setLimit puts limit to in force, giving held slots back to the semaphore
// or taking free ones; slots in use are taken as their attempts end. The
// caller holds l.ad.mu.
func (l *limiter) setLimit(to int64) {
	a := l.ad
	from := a.limit.Load()
	if to == from {
		return
	}
	a.limit.Store(to)
	if to > from {
		// Forgive the debt first: those slots are still in use.
		if back := to - from - a.pay(to-from); back > 0 {
			l.sem.Release(back)
		}
		return
	}
	a.debt.Add(from - to)
	// Take the free slots now. TryAcquire fails while attempts queue, and
	// for more slots than are free: halve the grab until it succeeds.
	for n := a.debt.Load(); n > 0; {
		if !l.sem.TryAcquire(n) {
			n /= 2
			continue
		}
		if paid := a.pay(n); paid < n {
			l.sem.Release(n - paid) // releases settled the rest meanwhile
			return
		}
		n = min(n, a.debt.Load())
	}
}

func (l *limiter) observe(o metric.Observer, m *instruments) {
	o.ObserveInt64(m.inFlight, l.inFlight.Load(), l.observeOpt)
	o.ObserveInt64(m.queued, l.queued.Load(), l.observeOpt)
	o.ObserveInt64(m.limit, l.current(), l.observeOpt)
}

// release ends the attempt p admitted with outcome o. The Permit carries
// its limiter, so a Set releases the right one even after its key was
// evicted.
func release(p bulwark.Permit, o bulwark.Outcome) {
	l, ok := p.Ref().(*limiter)
	if !ok {
		panic("bulkhead: Release of a Permit that no bulkhead issued")
	}
	if l.ad != nil {
		l.releaseAdaptive(o, p.Start())
		return
	}
	l.release()
}
