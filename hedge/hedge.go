package hedge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/internal/clock"
	"github.com/bulwarkrpc/bulwark/retry"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// Config configures a Hedge. The zero Config is valid: one hedged attempt
// after 2s, drawing on a budget of its own.
type Config struct {
	// Delay is how long an attempt may go unanswered before the next one
	// starts, when Latency is nil or has too few samples yet. Zero means
	// 2s.
	Delay time.Duration
	// Latency, when set, makes the delay follow observed latency: the
	// Quantile of the latencies the Hedge records into it (every attempt
	// that was not cancelled). It may be shared with a retry.Retry.
	Latency *retry.Latency
	// Quantile of Latency used as the delay. Zero means 0.95; it must be
	// within (0, 1).
	Quantile float64
	// MinDelay bounds a latency-derived delay from below, so that a very
	// fast dependency is not hedged on every call. Zero means 1ms.
	MinDelay time.Duration
	// MaxHedges is how many attempts may start beside the first. Zero
	// means 1.
	MaxHedges int
	// Budget is drawn on for every hedged attempt; share one with the
	// retries. Nil means a budget of its own with retry's defaults.
	Budget *retry.Budget
	// MeterProvider receives the metrics. Nil means the global provider.
	MeterProvider metric.MeterProvider
}

// Hedge runs a call's attempts concurrently: the first at once, the next
// each time the delay passes with no answer, or at once when the only
// attempt running fails. It implements bulwark.Wrapper and is safe for concurrent use. Build
// it with New.
type Hedge struct {
	delay, minDelay time.Duration
	latency         *retry.Latency
	quantile        float64
	max             int
	budget          *retry.Budget
	runs            sync.Pool // of *run

	launched, skipped metric.Int64Counter
	won               metric.Int64Counter
	skipBudget        metric.AddOption
	skipDeadline      metric.AddOption
	wonFirst, wonLate metric.AddOption
}

// New validates cfg and returns a Hedge. Negative durations or counts, and
// a Quantile outside (0, 1), are errors naming the field.
func New(cfg Config) (*Hedge, error) {
	switch {
	case cfg.Delay < 0:
		return nil, fmt.Errorf("hedge: Config.Delay is %v, want >= 0", cfg.Delay)
	case cfg.MinDelay < 0:
		return nil, fmt.Errorf("hedge: Config.MinDelay is %v, want >= 0", cfg.MinDelay)
	case cfg.MaxHedges < 0:
		return nil, fmt.Errorf("hedge: Config.MaxHedges is %d, want >= 0", cfg.MaxHedges)
	case math.IsNaN(cfg.Quantile) || cfg.Quantile < 0 || cfg.Quantile >= 1:
		return nil, fmt.Errorf("hedge: Config.Quantile is %v, want within (0, 1)", cfg.Quantile)
	}
	h := &Hedge{
		delay:    cmp(cfg.Delay, 2*time.Second),
		minDelay: cmp(cfg.MinDelay, time.Millisecond),
		latency:  cfg.Latency,
		quantile: cfg.Quantile,
		max:      cfg.MaxHedges,
		budget:   cfg.Budget,
	}
	if h.quantile == 0 {
		h.quantile = 0.95
	}
	if h.max == 0 {
		h.max = 1
	}
	if h.budget == nil {
		b, err := retry.NewBudget(retry.BudgetConfig{MeterProvider: cfg.MeterProvider})
		if err != nil {
			return nil, err
		}
		h.budget = b
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("github.com/bulwarkrpc/bulwark/hedge")
	var err error
	if h.launched, err = m.Int64Counter("bulwark.hedge.launched",
		metric.WithDescription("Hedged attempts started beside a call's first attempt."),
		metric.WithUnit("{attempt}")); err != nil {
		return nil, fmt.Errorf("hedge: creating instruments: %w", err)
	}
	if h.skipped, err = m.Int64Counter("bulwark.hedge.skipped",
		metric.WithDescription("Hedged attempts not started, by reason."),
		metric.WithUnit("{attempt}")); err != nil {
		return nil, fmt.Errorf("hedge: creating instruments: %w", err)
	}
	if h.won, err = m.Int64Counter("bulwark.hedge.won",
		metric.WithDescription("Hedged calls by which attempt's result the caller got: the first or a hedge."),
		metric.WithUnit("{call}")); err != nil {
		return nil, fmt.Errorf("hedge: creating instruments: %w", err)
	}
	opt := func(k, v string) metric.AddOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String(k, v)))
	}
	h.skipBudget, h.skipDeadline = opt("bulwark.hedge.reason", "budget"), opt("bulwark.hedge.reason", "deadline")
	h.wonFirst, h.wonLate = opt("bulwark.hedge.winner", "first"), opt("bulwark.hedge.winner", "hedge")
	return h, nil
}

func cmp(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Delay returns the delay the next call would wait before hedging.
func (h *Hedge) Delay() time.Duration {
	if h.latency != nil {
		if q, ok := h.latency.Quantile(h.quantile); ok {
			return max(q, h.minDelay)
		}
	}
	return h.delay
}

// Run runs c: the first attempt on the calling goroutine, each hedged
// attempt on a goroutine of its own, started when the delay passes with no
// answer, or at once when the only attempt running fails (or was refused),
// while MaxHedges, the budget and the deadline allow. A call that is not
// idempotent runs once. The first attempt to answer with anything but a
// Failure wins: Run cancels the others' contexts and returns its number and
// error. An attempt refused by a guard before it was sent (errors.Is
// bulwark.ErrRejected) wins nothing while another runs. When every attempt
// fails, the last failure is returned.
//
// The winner's context is left alive (its result may still be in use, such
// as a response body being read); it ends with ctx, which the caller of Run
// must therefore cancel when done (bulwark.Do does). No hedge starts when
// no time is left before ctx's deadline or c.Deadline, or less than the
// expected latency (Latency's Quantile). Run returns once the
// first attempt has returned and the result is decided; a cancelled hedge
// still running then ends on its own goroutine when its attempt returns.
// A panic in the first attempt goes on to Run's caller, after every other
// attempt is cancelled and no more may start; a hedge runs on a goroutine
// of its own, where a panic ends the program (a hedge that calls
// runtime.Goexit counts as a failure).
func (h *Hedge) Run(ctx context.Context, c bulwark.Call) (int, error) {
	h.budget.Request()
	if !c.Idempotent {
		res := h.timed(ctx, c, 0)
		return 0, res.Err
	}
	r := h.get()
	ctx0, cancel0 := context.WithCancel(ctx)
	r.mu.Lock() // the timer may fire before this goroutine goes on
	r.c, r.ctx, r.winner, r.pending, r.n, r.last = c, ctx, -1, 1, 1, -1
	r.cancels[0] = cancel0
	r.timer.Reset(h.Delay())
	r.mu.Unlock()
	returned := false
	defer func() {
		if !returned { // a panic, which goes on to our caller, or runtime.Goexit
			r.abort(cancel0)
		}
	}()
	res := h.timed(ctx0, c, 0)
	returned = true
	r.finish(0, res)

	r.mu.Lock()
	if r.winner < 0 {
		r.decided = make(chan struct{})
		decided := r.decided
		r.mu.Unlock()
		select {
		case <-decided:
		case <-ctx.Done():
			// The caller is gone: every attempt is cancelled through ctx.
			// Do not wait for hedges that may ignore it.
		}
		r.mu.Lock()
		if r.winner < 0 {
			r.decide(r.last, r.lastRes)
		}
	}
	n, err := r.winner, r.res.Err
	reuse := r.stopped && r.n == 1 // no hedge started, and the timer will never fire
	r.mu.Unlock()
	if n == 0 {
		h.won.Add(context.Background(), 1, h.wonFirst)
	} else {
		h.won.Add(context.Background(), 1, h.wonLate)
	}
	if reuse {
		*r = run{h: h, timer: r.timer}
		h.runs.Put(r)
	}
	return n, err
}

// expected returns the expected latency of an attempt: Latency's Quantile,
// or zero when there is none yet.
func (h *Hedge) expected() time.Duration {
	if h.latency != nil {
		if q, ok := h.latency.Quantile(h.quantile); ok {
			return q
		}
	}
	return 0
}

// get returns a run from the pool, or a new one with its stopped timer.
func (h *Hedge) get() *run {
	if r, ok := h.runs.Get().(*run); ok {
		return r
	}
	r := &run{h: h}
	r.timer = time.AfterFunc(time.Hour, r.fire)
	r.timer.Stop()
	return r
}

// Concurrent marks a Hedge as a bulwark.Concurrent Wrapper: it runs
// attempts at the same time and leaves the winner's context alive.
func (h *Hedge) Concurrent() {}

// timed runs attempt n and feeds its latency to the tracker, unless it was
// cancelled (Ignored): a loser's time says nothing about the dependency.
func (h *Hedge) timed(ctx context.Context, c bulwark.Call, n int) bulwark.Result {
	if h.latency == nil {
		return c.Attempt(ctx, n)
	}
	start := clock.Now()
	res := c.Attempt(ctx, n)
	if res.Outcome != bulwark.Ignored {
		h.latency.Observe(time.Since(start))
	}
	return res
}

// run is the state of one hedged call. A run whose timer never fired and
// that started no hedge goes back to its Hedge's pool: nothing can touch it
// any more.
type run struct {
	h     *Hedge
	timer *time.Timer // made once per run, re-armed on reuse

	mu      sync.Mutex
	c       bulwark.Call
	ctx     context.Context
	cancels [2]context.CancelFunc // per attempt; the winner's is never called
	more    []context.CancelFunc  // beyond two attempts
	n       int                   // attempts started
	pending int                   // attempts started and not finished
	winner  int                   // -1 until decided
	res     bulwark.Result        // the winner's
	last    int                   // the last attempt that finished, and its result
	lastRes bulwark.Result
	decided chan struct{} // made only when Run must wait; closed by decide
	stopped bool          // decide stopped the timer before it fired
}

func (r *run) cancel(i int) context.CancelFunc {
	if i < len(r.cancels) {
		return r.cancels[i]
	}
	return r.more[i-len(r.cancels)]
}

// fire starts the next hedge when the delay passes.
func (r *run) fire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.launch()
}

// launch starts one more attempt if nothing is decided and the limits
// allow. r.mu is held.
func (r *run) launch() bool {
	h := r.h
	n := r.n
	if r.winner >= 0 || n > h.max {
		return false
	}
	// Without a Latency nothing is expected of an attempt's duration, but
	// one that would start with no time left at all (the total deadline,
	// which c.Deadline holds off ctx, fired during the last attempt) never
	// starts: its context would end at once and its endpoint be charged a
	// failure. Nor does one for a caller that is gone.
	if left, ok := timeout.RemainingUntil(r.ctx, r.c.Deadline); r.ctx.Err() != nil || ok && (left <= 0 || left < h.expected()) {
		h.skipped.Add(context.Background(), 1, h.skipDeadline)
		return false
	}
	if !h.budget.Withdraw() {
		h.skipped.Add(context.Background(), 1, h.skipBudget)
		return false
	}
	ctxN, cancel := context.WithCancel(r.ctx)
	if n < len(r.cancels) {
		r.cancels[n] = cancel
	} else {
		r.more = append(r.more, cancel)
	}
	r.n++
	r.pending++
	h.launched.Add(context.Background(), 1)
	if n < h.max {
		r.timer.Reset(h.Delay())
	}
	c := r.c
	go func() {
		// A hedge that does not return (a panic, which goes on and ends
		// the program, or runtime.Goexit) is a failure: Run must not wait
		// for it.
		res := bulwark.Result{Outcome: bulwark.Failure, Err: errNoReturn}
		defer func() { r.finish(n, res) }()
		res = h.timed(ctxN, c, n)
	}()
	return true
}

// errNoReturn is the result of an attempt that did not return.
var errNoReturn = errors.New("hedge: attempt did not return: it panicked or called runtime.Goexit")

// abort ends a call whose first attempt did not return: Run's caller is
// gone, so nothing may start any more (the timer is stopped) and every
// attempt's context is cancelled.
func (r *run) abort(cancel0 context.CancelFunc) {
	r.mu.Lock()
	r.pending--
	if r.winner < 0 {
		r.decide(0, bulwark.Result{Outcome: bulwark.Failure, Err: errNoReturn})
	}
	r.mu.Unlock()
	cancel0()
}

// finish records how attempt n ended and decides the call when it can.
func (r *run) finish(n int, res bulwark.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending--
	if r.winner >= 0 {
		return // a loser: its context is cancelled already
	}
	if errors.Is(res.Err, bulwark.ErrRejected) {
		// Refused before it was sent (an open breaker, a full bulkhead on
		// the instance it would have gone to): it says nothing about the
		// call, so it decides nothing while another attempt runs. It is
		// kept as the answer until a failure replaces it: the caller may
		// give up before any other attempt ends.
		if r.last < 0 {
			r.last, r.lastRes = n, res
		}
		if r.pending > 0 {
			return
		}
		if !r.launch() {
			r.decide(r.last, r.lastRes)
		}
		return
	}
	r.last, r.lastRes = n, res
	if res.Outcome != bulwark.Failure || res.Final {
		r.decide(n, res)
		return
	}
	// A failure while nothing else runs: hedge again at once rather than
	// wait out the delay; give up only when no hedge may start.
	if r.pending == 0 && !r.launch() {
		r.decide(n, res)
	}
}

// decide makes attempt n the winner. r.mu is held.
func (r *run) decide(n int, res bulwark.Result) {
	r.winner, r.res = n, res
	r.stopped = r.timer.Stop()
	for i := range r.n {
		if i != n {
			r.cancel(i)()
		}
	}
	if r.decided != nil {
		close(r.decided)
	}
}
