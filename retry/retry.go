package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/timeout"
)

const (
	scope      = "github.com/bulwarkrpc/bulwark/retry"
	keyAttr    = "bulwark.key"
	reasonAttr = "bulwark.retry.reason"

	defaultMaxAttempts = 3
	defaultMaxPushback = 30 * time.Second
	defaultQuantile    = 0.5
)

// Config configures a Retry. The zero Config is valid: up to 3 attempts of
// idempotent calls that fail, exponential backoff with full jitter from
// 50ms up to 5s, server pushback honoured up to 30s, and a budget of its
// own of 20 % of calls plus 10 retries per second.
type Config struct {
	// Name is the bulwark.key attribute of the metrics (and of the
	// Budget's, when the Retry makes its own). Zero means "".
	Name string
	// MaxAttempts bounds the attempts of one call, the first included: 1
	// never retries. Zero means 3; it must be >= 0.
	MaxAttempts int
	// Backoff chooses the wait before each retry. Nil means Exponential{}:
	// full jitter, DefaultBase, DefaultCap. Exponential, Decorrelated and
	// Constant values are validated by New.
	Backoff Backoff
	// Budget bounds retries across calls; share one between the clients
	// that call the same dependency, and with hedging. Nil means a Budget
	// of this Retry's own, with BudgetConfig's defaults.
	Budget *Budget
	// MaxPushback caps the wait a server asks for (Retry-After,
	// grpc-retry-pushback-ms): a longer one is waited only this long,
	// never trusted blindly. Zero means 30s, the longest a caller
	// typically waits for any answer; the deadline check refuses waits
	// that cannot fit anyway. It must be >= 0.
	MaxPushback time.Duration
	// Latency, when set, gives the expected latency of an attempt: its
	// Quantile of the attempts it has seen. The Retry records into it the
	// latency of every attempt it runs that is not Ignored (a cancelled
	// attempt's time says nothing about the dependency). Nil means none.
	Latency *Latency
	// Quantile is the quantile of Latency taken as the expected latency of
	// an attempt: a retry whose wait and expected latency do not fit in
	// the remaining deadline is not started. Zero means 0.5: a retry
	// that has less time left than the median attempt needs fails more
	// often than not. It must be within [0, 1].
	Quantile float64
	// ExpectedLatency is the expected latency of an attempt while Latency
	// is nil or has too few samples. Zero means none: a retry is refused
	// only when its wait alone does not fit. It must be >= 0.
	ExpectedLatency time.Duration
	// RetryOn decides whether a result is worth another attempt; the
	// rules that forbid one (not idempotent, Final, negative pushback,
	// attempts, deadline, budget) apply after it. It must be safe for
	// concurrent use. Nil means retry Failures only. A transport adapter
	// with a richer policy (go-retryablehttp's CheckRetry, which needs the
	// response) applies it in its attempt and reports the verdict as the
	// Result's Outcome and Final.
	RetryOn func(bulwark.Result) bool
	// MeterProvider receives the metrics. Nil means the global provider.
	MeterProvider metric.MeterProvider
}

// Reasons for giving up, the values of the bulwark.retry.reason attribute
// of bulwark.retry.given_up.
const (
	reasonAttempts      = "attempts"
	reasonBudget        = "budget"
	reasonDeadline      = "deadline"
	reasonCanceled      = "canceled"
	reasonPushback      = "pushback"
	reasonNotIdempotent = "not_idempotent"
	reasonFinal         = "final"
)

// Retry re-runs failed attempts of idempotent calls, after a backoff,
// within a shared budget, a maximum number of attempts and the remaining
// deadline. It implements bulwark.Wrapper and is safe for concurrent use.
// Build it with New.
type Retry struct {
	maxAttempts int
	backoff     Backoff
	budget      *Budget
	maxPushback time.Duration
	latency     *Latency
	quantile    float64
	expected    time.Duration
	retryOn     func(bulwark.Result) bool

	retries, givenUp metric.Int64Counter
	waits            metric.Float64Histogram
	// Prebuilt attribute options, one slice each, so that recording
	// allocates nothing.
	retryFailure      []metric.AddOption
	retryPushback     []metric.AddOption
	nameOpt           []metric.RecordOption
	givenUpAttempts   []metric.AddOption
	givenUpBudget     []metric.AddOption
	givenUpDeadline   []metric.AddOption
	givenUpCanceled   []metric.AddOption
	givenUpPushback   []metric.AddOption
	givenUpIdempotent []metric.AddOption
	givenUpFinal      []metric.AddOption
}

var _ bulwark.Wrapper = (*Retry)(nil)

// New validates cfg and returns its Retry. A negative count or duration, a
// Quantile outside [0, 1], or an invalid Exponential, Decorrelated or
// Constant Backoff is an error naming the field.
func New(cfg Config) (*Retry, error) {
	switch {
	case cfg.MaxAttempts < 0:
		return nil, fmt.Errorf("retry: Config.MaxAttempts is %d, want >= 0", cfg.MaxAttempts)
	case cfg.MaxPushback < 0:
		return nil, fmt.Errorf("retry: Config.MaxPushback is %v, want >= 0", cfg.MaxPushback)
	case math.IsNaN(cfg.Quantile) || cfg.Quantile < 0 || cfg.Quantile > 1:
		return nil, fmt.Errorf("retry: Config.Quantile is %v, want within [0, 1]", cfg.Quantile)
	case cfg.ExpectedLatency < 0:
		return nil, fmt.Errorf("retry: Config.ExpectedLatency is %v, want >= 0", cfg.ExpectedLatency)
	}
	if v, ok := cfg.Backoff.(interface{ validate() error }); ok {
		if err := v.validate(); err != nil {
			return nil, err
		}
	}
	r := &Retry{
		maxAttempts: cfg.MaxAttempts,
		backoff:     cfg.Backoff,
		budget:      cfg.Budget,
		maxPushback: cfg.MaxPushback,
		latency:     cfg.Latency,
		quantile:    cfg.Quantile,
		expected:    cfg.ExpectedLatency,
		retryOn:     cfg.RetryOn,
	}
	if r.maxAttempts == 0 {
		r.maxAttempts = defaultMaxAttempts
	}
	if r.backoff == nil {
		r.backoff = Exponential{}
	}
	if r.maxPushback == 0 {
		r.maxPushback = defaultMaxPushback
	}
	if r.quantile == 0 {
		r.quantile = defaultQuantile
	}
	if r.budget == nil {
		b, err := NewBudget(BudgetConfig{Name: cfg.Name, MeterProvider: cfg.MeterProvider})
		if err != nil {
			return nil, err
		}
		r.budget = b
	}
	if err := r.instruments(cfg); err != nil {
		return nil, fmt.Errorf("retry: creating instruments: %w", err)
	}
	return r, nil
}

func (r *Retry) instruments(cfg Config) error {
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(scope)
	var err error
	if r.retries, err = m.Int64Counter("bulwark.retry.retries",
		metric.WithDescription("Retries started, by reason: the attempt failed, or the server asked for a wait."),
		metric.WithUnit("{retry}")); err != nil {
		return err
	}
	if r.givenUp, err = m.Int64Counter("bulwark.retry.given_up",
		metric.WithDescription("Calls whose last attempt failed and was worth a retry that was not started, by reason."),
		metric.WithUnit("{call}")); err != nil {
		return err
	}
	if r.waits, err = m.Float64Histogram("bulwark.retry.backoff",
		metric.WithDescription("Waits before retries, server pushback included."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)); err != nil {
		return err
	}
	name := attribute.String(keyAttr, cfg.Name)
	opt := func(reason string) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(name, attribute.String(reasonAttr, reason)))}
	}
	r.nameOpt = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(name))}
	r.retryFailure, r.retryPushback = opt("failure"), opt("pushback")
	r.givenUpAttempts = opt(reasonAttempts)
	r.givenUpBudget = opt(reasonBudget)
	r.givenUpDeadline = opt(reasonDeadline)
	r.givenUpCanceled = opt(reasonCanceled)
	r.givenUpPushback = opt(reasonPushback)
	r.givenUpIdempotent = opt(reasonNotIdempotent)
	r.givenUpFinal = opt(reasonFinal)
	return nil
}

// Run runs c's attempts, numbered from 0, one after another, until one
// needs no retry or a retry is not allowed, and returns the number of the
// last attempt run and its error. It records the call in the Budget once.
//
// After an attempt whose Result RetryOn accepts, the next one starts only
// when every rule allows it: the call is idempotent; the Result is not
// Final and its Pushback is not negative (the server said not to retry);
// MaxAttempts is not reached; the wait — the larger of the backoff and the
// server's pushback capped by MaxPushback — plus the expected latency of an
// attempt fits in the time left before ctx's deadline; and the Budget
// allows one more attempt, withdrawn before the wait. Otherwise Run returns
// the last result at once. When ctx is done during a wait, Run returns the
// last result at once too: an attempt it never started cannot have a better
// one.
//
// The first attempt always runs (when ctx is done, the attempt is expected
// to return ctx.Err() itself): refusing a call on an estimate would fail
// calls that might well have succeeded. A call whose first attempt needs no
// retry makes no allocation, starts no goroutine and records no metric.
func (r *Retry) Run(ctx context.Context, c bulwark.Call) (int, error) {
	// One clock reading serves the budget and the latency tracker.
	t0 := r.budget.elapsed()
	r.budget.requestAt(t0)
	res := r.attempt(ctx, c, 0, t0)
	if !r.worth(res) {
		return 0, res.Err
	}
	return r.retry(ctx, c, res)
}

// retry goes on after attempt 0 failed with res; it is apart from Run so
// that the pass-through path stays small.
func (r *Retry) retry(ctx context.Context, c bulwark.Call, res bulwark.Result) (int, error) {
	var (
		timer *time.Timer // made on the first wait, reset for the next ones
		prev  time.Duration
	)
	for n := 0; ; {
		wait, backoff, stop := r.next(ctx, c, n, res, prev)
		if stop != nil {
			r.givenUp.Add(context.Background(), 1, stop...)
			return n, res.Err
		}
		opt := r.retryFailure
		if res.Pushback > 0 {
			opt = r.retryPushback
		}
		r.retries.Add(context.Background(), 1, opt...)
		r.waits.Record(context.Background(), wait.Seconds(), r.nameOpt...)
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait) // it has fired and been received from: nothing stale
			}
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				r.givenUp.Add(context.Background(), 1, r.doneOpt(ctx)...)
				return n, res.Err
			}
		}
		prev = backoff
		n++
		res = r.attempt(ctx, c, n, r.budget.elapsed())
		if !r.worth(res) {
			return n, res.Err
		}
	}
}

// worth reports whether res is worth another attempt, by RetryOn.
func (r *Retry) worth(res bulwark.Result) bool {
	if r.retryOn == nil {
		return res.Outcome == bulwark.Failure
	}
	return r.retryOn(res)
}

// attempt runs attempt n, started at t0 on the budget's clock, and feeds
// its latency to the tracker.
func (r *Retry) attempt(ctx context.Context, c bulwark.Call, n int, t0 time.Duration) bulwark.Result {
	res := c.Attempt(ctx, n)
	if r.latency != nil && res.Outcome != bulwark.Ignored {
		r.latency.Observe(r.budget.elapsed() - t0)
	}
	return res
}

// next decides whether attempt n+1 may start after res, and after which
// wait; backoff is the Backoff's part of it, the prev of the next retry.
// stop is the given_up option when it may not start. It withdraws from the
// budget last, so that a retry refused for another reason spends nothing.
func (r *Retry) next(ctx context.Context, c bulwark.Call, n int, res bulwark.Result, prev time.Duration) (wait, backoff time.Duration, stop []metric.AddOption) {
	switch {
	case !c.Idempotent:
		return 0, 0, r.givenUpIdempotent
	case res.Final:
		return 0, 0, r.givenUpFinal
	case res.Pushback < 0:
		return 0, 0, r.givenUpPushback
	case n+1 >= r.maxAttempts:
		return 0, 0, r.givenUpAttempts
	case ctx.Err() != nil:
		return 0, 0, r.doneOpt(ctx)
	}
	backoff = max(r.backoff.Delay(n, prev), 0)
	wait = max(backoff, min(res.Pushback, r.maxPushback))
	// Saturating: a huge wait plus a huge expected latency must not wrap
	// around into a short one. An attempt that would start with no time
	// left at all (the deadline passed during the last one, which a
	// deadline held in c.Deadline does not show on ctx) never starts: its
	// context would end at once, and its endpoint be charged a failure.
	if left, ok := timeout.RemainingUntil(ctx, c.Deadline); ok && (wait >= left || r.expectedLatency() > left-wait) {
		return 0, 0, r.givenUpDeadline
	}
	if !r.budget.Withdraw() {
		return 0, 0, r.givenUpBudget
	}
	return wait, backoff, nil
}

// expectedLatency returns the expected latency of one attempt: the
// tracker's quantile when it has enough samples, else ExpectedLatency.
func (r *Retry) expectedLatency() time.Duration {
	if r.latency != nil {
		if d, ok := r.latency.Quantile(r.quantile); ok {
			return d
		}
	}
	return r.expected
}

// doneOpt returns the given_up option for a done ctx.
func (r *Retry) doneOpt(ctx context.Context) []metric.AddOption {
	if errors.Is(ctx.Err(), context.Canceled) {
		return r.givenUpCanceled
	}
	return r.givenUpDeadline
}
