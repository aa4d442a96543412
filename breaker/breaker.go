package breaker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/internal/clock"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// State is the state of a breaker. The zero value is Closed.
type State uint8

const (
	// Closed: every attempt is admitted and judged.
	Closed State = iota
	// HalfOpen: up to Config.HalfOpenTrials trial attempts are admitted at
	// once; the others are refused.
	HalfOpen
	// Open: every attempt is refused until Config.OpenDuration has passed.
	Open
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// attr returns the state as a metric attribute value.
func (s State) attr() string {
	if s == HalfOpen {
		return "half_open"
	}
	return s.String()
}

func fromGobreaker(s gobreaker.State) State {
	switch s {
	case gobreaker.StateHalfOpen:
		return HalfOpen
	case gobreaker.StateOpen:
		return Open
	}
	return Closed
}

// Event is one state change of one breaker.
type Event struct {
	// Key is the key of the breaker in its Set; "" for a Breaker.
	Key string
	// From and To are the states before and after the change.
	From, To State
	// At is when the change happened.
	At time.Time
}

// Counts are what a breaker counted since its last state change, within
// the rolling window when it is closed. Calls admitted but not yet reported
// are in Requests only.
type Counts struct {
	Requests             uint32
	Successes            uint32
	Failures             uint32
	Ignored              uint32
	ConsecutiveSuccesses uint32
	ConsecutiveFailures  uint32
}

// The errors by which an Outcome reaches gobreaker: Success is nil.
var (
	errFailure = errors.New("breaker: failure")
	errIgnored = errors.New("breaker: ignored")
)

func isIgnored(err error) bool { return err == errIgnored }

func errOf(o bulwark.Outcome) error {
	switch o {
	case bulwark.Success:
		return nil
	case bulwark.Failure:
		return errFailure
	}
	return errIgnored // Ignored, and any outcome this package does not know
}

// noTrial is Breaker.trialDue when no trial is in flight.
const noTrial = math.MaxInt64

// trial is one attempt admitted while the breaker is half-open.
type trial struct {
	done     func(error)
	start    int64  // shared.since() at admission
	period   uint64 // Breaker.halfOpens at admission
	reported atomic.Bool
}

// Breaker is one circuit breaker: it refuses attempts while the endpoint
// behind it is failing, then lets a few trials through to learn whether it
// recovered. It implements bulwark.Guard and ignores the key given to Enter.
// A Breaker is safe for concurrent use. Build it with New.
type Breaker struct {
	cb   *gobreaker.TwoStepCircuitBreaker[struct{}]
	cfg  *shared
	slow time.Duration // cfg.slow, on the line every attempt reads
	key  string

	// Written under gobreaker's lock, in record; read anywhere.
	state     atomic.Uint32 // a State
	openErr   atomic.Pointer[OpenError]
	fullErr   atomic.Pointer[OpenError]
	halfOpens atomic.Uint64 // half-open periods begun

	// pending tells, in one load, that events wait in events.
	pending  atomic.Bool
	evMu     sync.Mutex
	events   []Event
	draining bool // a goroutine is delivering events

	// trialDue is the shared.since() reading from which the oldest trial
	// in flight may be given up; noTrial when none is.
	trialDue atomic.Int64
	trialMu  sync.Mutex
	trials   []*trial // of the current half-open period, not yet reported

	// Metric options, built once.
	observeOpt   metric.ObserveOption
	rejectOpen   metric.ObserveOption
	rejectFull   metric.ObserveOption
	moves        [3][3][]metric.AddOption
	registration metric.Registration // New only: the observation callback
	keyAttr      attribute.KeyValue

	// Refusals, observed as bulwark.breaker.rejections. Last, away from
	// the words the admission path reads.
	rejectedOpen, rejectedFull atomic.Int64
}

// New validates cfg and returns a closed Breaker. A field out of range is an
// error naming it. The MeterProvider observes the breaker's state and
// refusals (and so holds the breaker) for as long as it lives, or until
// Close.
func New(cfg Config) (*Breaker, error) {
	s, err := settle(cfg)
	if err != nil {
		return nil, err
	}
	b := newBreaker(s, "")
	b.registration, err = s.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		b.observe(o, time.Now())
		return nil
	}, s.state, s.rejections)
	if err != nil {
		return nil, fmt.Errorf("breaker: registering the state gauge: %w", err)
	}
	return b, nil
}

func newBreaker(s *shared, key string) *Breaker {
	b := &Breaker{cfg: s, slow: s.slow, key: key}
	b.trialDue.Store(noTrial)
	keyAttr := attribute.String("bulwark.key", key)
	b.keyAttr = keyAttr
	b.observeOpt = metric.WithAttributeSet(attribute.NewSet(keyAttr))
	b.rejectOpen = metric.WithAttributeSet(attribute.NewSet(keyAttr, attribute.String("bulwark.breaker.reason", "open")))
	b.rejectFull = metric.WithAttributeSet(attribute.NewSet(keyAttr, attribute.String("bulwark.breaker.reason", "half_open_full")))
	for _, m := range [...][2]State{{Closed, Open}, {Open, HalfOpen}, {HalfOpen, Closed}, {HalfOpen, Open}} {
		b.moves[m[0]][m[1]] = transitionOpts(keyAttr, m[0], m[1])
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](s.settings(b.record))
	return b
}

// addOpts returns the options of one attribute set, as a slice built once so
// that passing it to Add allocates nothing.
func addOpts(kvs ...attribute.KeyValue) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}

func transitionOpts(key attribute.KeyValue, from, to State) []metric.AddOption {
	return addOpts(key,
		attribute.String("bulwark.breaker.from", from.attr()),
		attribute.String("bulwark.breaker.to", to.attr()))
}

// Enter admits one attempt, or refuses it with an *OpenError (which matches
// ErrOpen and bulwark.ErrRejected) while the breaker is open or every
// half-open trial slot is taken. key is ignored. A ctx already done gets
// ctx.Err() and leaves the breaker as it was: no trial slot is taken. The
// Permit's Done must be called exactly once; a second Done of a trial is
// dropped, but a second Done of an attempt admitted while closed counts
// twice (bulwark.Attempt makes it once).
func (b *Breaker) Enter(ctx context.Context, _ string) (bulwark.Permit, error) {
	if err := ctx.Err(); err != nil {
		return bulwark.Permit{}, err
	}
	return b.enter()
}

func (b *Breaker) enter() (bulwark.Permit, error) {
	if State(b.state.Load()) == Open {
		// While the open period lasts the answer is known: refuse without
		// gobreaker's lock, which every refused attempt of an outage would
		// otherwise contend for. record stores openErr before the state.
		if e := b.openErr.Load(); clock.Now().Before(e.RetryAt) {
			b.rejectedOpen.Add(1)
			return bulwark.Permit{}, e
		}
	}
	done, err := b.cb.Allow()
	if err == gobreaker.ErrTooManyRequests && b.expireTrials() {
		// A trial was given up as failed: the breaker is open again, or
		// a slot is free. Ask once more for the honest answer.
		done, err = b.cb.Allow()
	}
	if err != nil {
		return bulwark.Permit{}, b.refuse(err)
	}
	var ref any = done
	if State(b.state.Load()) == HalfOpen {
		ref = b.addTrial(done)
	}
	if b.pending.Load() {
		b.deliverAdmitting(ref)
	}
	var start int64 // after OnStateChange: its time is not the call's
	if b.slow > 0 {
		start = b.cfg.since()
	}
	return bulwark.NewPermit(b, ref, start), nil
}

// deliverAdmitting delivers the pending events for enter, which has
// admitted the attempt of ref. If OnStateChange panics, the attempt, which
// will never start, is reported Ignored (a trial's slot is given back)
// before the panic goes on.
func (b *Breaker) deliverAdmitting(ref any) {
	delivered := false
	defer func() {
		if delivered {
			return
		}
		// As Release does for Ignored, but delivering nothing now: that
		// would call OnStateChange again, on the way out of its panic.
		switch r := ref.(type) {
		case func(error):
			r(errIgnored)
		case *trial:
			if r.reported.CompareAndSwap(false, true) {
				b.retimeTrials()
				r.done(errIgnored)
			}
		}
	}()
	b.deliver()
	delivered = true
}

// refuse counts a refusal and returns the error of the current period.
func (b *Breaker) refuse(err error) error {
	e, n := b.openErr.Load(), &b.rejectedOpen
	if err == gobreaker.ErrTooManyRequests {
		e, n = b.fullErr.Load(), &b.rejectedFull
	}
	n.Add(1)
	if b.pending.Load() {
		b.deliver()
	}
	if e == nil { // cannot happen: record stores it before gobreaker can refuse
		return ErrOpen
	}
	return e
}

// Started restarts p's slow-call clock for an attempt that really starts
// now, after every guard inside the breaker admitted it: time spent queued
// in a bulkhead is not the endpoint's. bulwark.Stack calls it (the breaker
// is a bulwark.Starter); without a SlowCallThreshold it returns p as is.
func (b *Breaker) Started(p bulwark.Permit) bulwark.Permit {
	if b.slow <= 0 {
		return p
	}
	return p.WithStart(b.cfg.since())
}

// Release reports how the attempt that p admitted ended. A Success slower
// than Config.SlowCallThreshold counts as a Failure. Callers call p.Done,
// which calls Release; p must come from b.Enter.
func (b *Breaker) Release(p bulwark.Permit, o bulwark.Outcome) {
	var done func(error)
	switch r := p.Ref().(type) {
	case func(error):
		done = r
	case *trial:
		if !r.reported.CompareAndSwap(false, true) {
			return // reported already, or given up as failed
		}
		b.retimeTrials()
		done = r.done
	default:
		return
	}
	if o == bulwark.Success && b.slow > 0 && time.Duration(b.cfg.since()-p.Start()) > b.slow {
		o = bulwark.Failure
	}
	done(errOf(o))
	if b.pending.Load() {
		b.deliver()
	}
}

// State returns the breaker's state now. An open breaker whose
// OpenDuration has passed turns half-open here, as on Enter.
func (b *Breaker) State() State {
	s := fromGobreaker(b.cb.State())
	if b.pending.Load() {
		b.deliver()
	}
	return s
}

// Counts returns what the breaker counted since its last state change,
// within the rolling window when it is closed.
func (b *Breaker) Counts() Counts {
	b.cb.State() // rolls the window up to now
	c := b.cb.Counts()
	if b.pending.Load() {
		b.deliver()
	}
	return Counts{
		Requests:             c.Requests,
		Successes:            c.TotalSuccesses,
		Failures:             c.TotalFailures,
		Ignored:              c.TotalExclusions,
		ConsecutiveSuccesses: c.ConsecutiveSuccesses,
		ConsecutiveFailures:  c.ConsecutiveFailures,
	}
}

// Close unregisters the breaker's state and refusals from the
// MeterProvider, which then no longer holds it. The breaker keeps working;
// bulwark.breaker.transitions is still counted.
func (b *Breaker) Close() error { return b.registration.Unregister() }

// observe reports the breaker's state and refusals to o.
func (b *Breaker) observe(o metric.Observer, now time.Time) {
	o.ObserveInt64(b.cfg.state, b.observed(now), b.observeOpt)
	if n := b.rejectedOpen.Load(); n > 0 {
		o.ObserveInt64(b.cfg.rejections, n, b.rejectOpen)
	}
	if n := b.rejectedFull.Load(); n > 0 {
		o.ObserveInt64(b.cfg.rejections, n, b.rejectFull)
	}
}

// observed returns the state the gauge shows, without touching gobreaker:
// an open breaker past its OpenDuration is half-open (the next attempt is a
// trial).
func (b *Breaker) observed(now time.Time) int64 {
	s := State(b.state.Load())
	if s == Open {
		if e := b.openErr.Load(); e != nil && !now.Before(e.RetryAt) {
			s = HalfOpen
		}
	}
	return int64(s)
}

// record is gobreaker's OnStateChange. It runs under gobreaker's lock, so it
// only records: no user code, no call back into the breaker.
func (b *Breaker) record(_ string, from, to gobreaker.State) {
	now := time.Now()
	ev := Event{Key: b.key, From: fromGobreaker(from), To: fromGobreaker(to), At: now}
	switch ev.To {
	case Open:
		b.openErr.Store(&OpenError{Key: b.key, State: Open, RetryAt: now.Add(b.cfg.open)})
	case HalfOpen:
		b.halfOpens.Add(1)
		// Until a trial is registered, the earliest any can expire.
		b.fullErr.Store(&OpenError{Key: b.key, State: HalfOpen, RetryAt: now.Add(b.cfg.trialTimeout)})
	}
	b.state.Store(uint32(ev.To)) // after the errors: a reader of Open finds its openErr
	b.evMu.Lock()
	b.events = append(b.events, ev)
	b.pending.Store(true)
	b.evMu.Unlock()
}

// deliver sends the pending events to the transitions counter and to
// Config.OnStateChange, with no lock held, unless another goroutine is at
// it already: that one delivers what was enqueued meanwhile too, so events
// go out in order, one at a time.
func (b *Breaker) deliver() {
	b.evMu.Lock()
	if b.draining {
		b.evMu.Unlock()
		return
	}
	b.draining = true
	for len(b.events) > 0 {
		batch := b.events
		b.events = nil
		b.evMu.Unlock()
		b.send(batch)
		b.evMu.Lock()
	}
	b.draining = false
	b.pending.Store(false)
	b.evMu.Unlock()
}

func (b *Breaker) send(batch []Event) {
	next, completed := 0, false // batch[next:] is not delivered yet
	defer func() {
		if !completed { // OnStateChange panicked: put the rest back for the next caller
			b.evMu.Lock()
			b.events = append(batch[next:len(batch):len(batch)], b.events...)
			b.draining = false
			b.pending.Store(len(b.events) > 0)
			b.evMu.Unlock()
		}
	}()
	for _, ev := range batch {
		next++
		opts := b.moves[ev.From][ev.To]
		if opts == nil { // a change gobreaker does not make
			opts = transitionOpts(b.keyAttr, ev.From, ev.To)
		}
		b.cfg.transitions.Add(context.Background(), 1, opts...)
		if f := b.cfg.onStateChange; f != nil {
			f(ev)
		}
	}
	completed = true
}

// addTrial registers a trial admitted while half-open, so that it can be
// given up if it never reports.
func (b *Breaker) addTrial(done func(error)) *trial {
	t := &trial{done: done, period: b.halfOpens.Load()}
	b.trialMu.Lock()
	t.start = b.cfg.since()
	b.trials = append(b.trials, t)
	b.retimeLocked()
	b.trialMu.Unlock()
	return t
}

// retimeTrials forgets a trial that reported.
func (b *Breaker) retimeTrials() {
	b.trialMu.Lock()
	b.retimeLocked()
	b.trialMu.Unlock()
}

// expireTrials gives up, as failed, every trial in flight for longer than
// Config.TrialTimeout, and reports whether there was one. Only a refusal for
// want of a trial slot calls it; the cost is one atomic load until a trial
// is due.
func (b *Breaker) expireTrials() bool {
	due := b.trialDue.Load()
	if due == noTrial {
		return false
	}
	now := b.cfg.since()
	if now < due {
		return false
	}
	var expired []*trial
	b.trialMu.Lock()
	for _, t := range b.trials {
		if now-t.start >= int64(b.cfg.trialTimeout) && t.reported.CompareAndSwap(false, true) {
			expired = append(expired, t)
		}
	}
	b.retimeLocked()
	b.trialMu.Unlock()
	for _, t := range expired {
		t.done(errFailure) // outside trialMu: it takes gobreaker's lock
	}
	return len(expired) > 0
}

// retimeLocked forgets trials that reported or belong to an earlier
// half-open period (gobreaker drops their reports), then sets trialDue and
// the half-open refusal from the oldest trial left. b.trialMu is held.
func (b *Breaker) retimeLocked() {
	period := b.halfOpens.Load()
	kept := b.trials[:0]
	for _, t := range b.trials {
		if t.period == period && !t.reported.Load() {
			kept = append(kept, t)
		}
	}
	clear(b.trials[len(kept):])
	b.trials = kept
	if len(kept) == 0 {
		b.trialDue.Store(noTrial)
		return
	}
	oldest := kept[0].start
	for _, t := range kept[1:] {
		oldest = min(oldest, t.start)
	}
	// Saturated below noTrial: a TrialTimeout too long to add ("never")
	// must not wrap round to a due time in the past.
	due := oldest + min(int64(b.cfg.trialTimeout), noTrial-1-oldest)
	if due == b.trialDue.Load() {
		return
	}
	b.trialDue.Store(due)
	b.fullErr.Store(&OpenError{Key: b.key, State: HalfOpen, RetryAt: b.cfg.epoch.Add(time.Duration(due))})
}
