package timeout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwarkrpc/bulwark/internal/clock"
)

// ErrTimeout matches (with errors.Is) every error produced when one of our
// deadlines fired. Such errors match context.DeadlineExceeded too.
var ErrTimeout = errors.New("timeout: deadline exceeded")

// Scope says which of our deadlines fired.
type Scope uint8

const (
	// Total is the deadline of the whole call, retries and hedges included.
	Total Scope = iota + 1
	// Attempt is the deadline of one attempt.
	Attempt
)

// String returns "total" or "attempt".
func (s Scope) String() string {
	switch s {
	case Total:
		return "total"
	case Attempt:
		return "attempt"
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// Error reports that one of our deadlines fired. It matches ErrTimeout and
// context.DeadlineExceeded with errors.Is; Unwrap also yields the error the
// call itself returned, when there was one.
type Error struct {
	// Scope is the deadline that fired.
	Scope Scope
	// After is the configured duration of that deadline.
	After time.Duration
	// cause is the call's own error, or nil when the Error is a context cause.
	cause error
}

// Error returns, for example, "timeout: attempt deadline of 500ms exceeded".
func (e *Error) Error() string {
	msg := "timeout: " + e.Scope.String() + " deadline of " + e.After.String() + " exceeded"
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

// Is reports whether target is ErrTimeout or context.DeadlineExceeded.
func (e *Error) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

// Unwrap returns the call's own error, if any.
func (e *Error) Unwrap() error { return e.cause }

// Config configures a Timeout. The zero Config sets no deadline at all.
type Config struct {
	// Total bounds the whole call, retries, hedges and waits included.
	// Zero means no total deadline of ours (the caller's still applies).
	Total time.Duration
	// Attempt bounds one attempt. Zero means no attempt deadline. When
	// Total is set too, Attempt must not exceed it.
	Attempt time.Duration
	// MeterProvider receives the bulwark.timeout.fired counter. Nil means
	// the global provider.
	MeterProvider metric.MeterProvider
}

// Timeout applies configured total and attempt deadlines. It is safe for
// concurrent use. Build it with New.
type Timeout struct {
	total, attempt       time.Duration
	totalErr, attemptErr *Error // the causes, one pointer each: Observe tells ours by identity
	fired                metric.Int64Counter
	totalOpt, attemptOpt metric.AddOption
}

// New validates cfg and returns a Timeout. A negative duration, or an
// Attempt longer than Total, is an error naming the field.
func New(cfg Config) (*Timeout, error) {
	switch {
	case cfg.Total < 0:
		return nil, fmt.Errorf("timeout: Config.Total is %v, want >= 0", cfg.Total)
	case cfg.Attempt < 0:
		return nil, fmt.Errorf("timeout: Config.Attempt is %v, want >= 0", cfg.Attempt)
	case cfg.Total > 0 && cfg.Attempt > cfg.Total:
		return nil, fmt.Errorf("timeout: Config.Attempt (%v) exceeds Config.Total (%v)", cfg.Attempt, cfg.Total)
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	fired, err := mp.Meter("github.com/bulwarkrpc/bulwark/timeout").Int64Counter("bulwark.timeout.fired",
		metric.WithDescription("Deadlines of ours that fired while the caller was still waiting."),
		metric.WithUnit("{deadline}"))
	if err != nil {
		return nil, fmt.Errorf("timeout: creating instruments: %w", err)
	}
	return &Timeout{
		total:      cfg.Total,
		attempt:    cfg.Attempt,
		totalErr:   &Error{Scope: Total, After: cfg.Total},
		attemptErr: &Error{Scope: Attempt, After: cfg.Attempt},
		fired:      fired,
		totalOpt:   metric.WithAttributeSet(attribute.NewSet(attribute.String("bulwark.timeout.scope", "total"))),
		attemptOpt: metric.WithAttributeSet(attribute.NewSet(attribute.String("bulwark.timeout.scope", "attempt"))),
	}, nil
}

// TotalTimeout returns the configured total deadline; zero means none.
func (t *Timeout) TotalTimeout() time.Duration { return t.total }

// AttemptTimeout returns the configured attempt deadline; zero means none.
func (t *Timeout) AttemptTimeout() time.Duration { return t.attempt }

// WithTotal returns ctx bounded by the total deadline. When none is
// configured, or the caller's deadline is already earlier, it returns ctx
// itself and a cancel that does nothing: no context is created. The caller
// must call cancel when the call ends.
func (t *Timeout) WithTotal(ctx context.Context) (context.Context, context.CancelFunc) {
	return derive(ctx, t.total, t.totalErr)
}

// WithAttempt is WithTotal for one attempt's deadline.
func (t *Timeout) WithAttempt(ctx context.Context) (context.Context, context.CancelFunc) {
	return derive(ctx, t.attempt, t.attemptErr)
}

// Deadline returns the total deadline of a call starting now, as a time
// rather than a context: zero when no total deadline is configured or the
// caller's own deadline is earlier. Pass it to WithAttemptUntil for each
// attempt. A call bounded this way needs no context, and no timer, of its
// own for the total: each attempt's context carries whichever deadline
// comes first, and the wait between attempts is bounded by the retry's
// arithmetic on the same time.
func (t *Timeout) Deadline(ctx context.Context) time.Time {
	if t.total <= 0 {
		return time.Time{}
	}
	at := clock.Now().Add(t.total)
	if dl, ok := ctx.Deadline(); ok && !dl.After(at) {
		return time.Time{}
	}
	return at
}

// WithAttemptUntil returns ctx bounded by the attempt deadline or by total
// (a time from Deadline; zero means none), whichever comes first; the
// context's cause says which. When neither is set, or the caller's deadline
// is earlier than both, it returns ctx itself and a cancel that does
// nothing. The caller must call cancel when the attempt is over.
func (t *Timeout) WithAttemptUntil(ctx context.Context, total time.Time) (context.Context, context.CancelFunc) {
	if total.IsZero() {
		return derive(ctx, t.attempt, t.attemptErr)
	}
	at, cause := total, t.totalErr
	if t.attempt > 0 {
		if a := clock.Now().Add(t.attempt); a.Before(total) {
			at, cause = a, t.attemptErr
		}
	}
	if dl, ok := ctx.Deadline(); ok && !dl.After(at) {
		return ctx, nop
	}
	return context.WithDeadlineCause(ctx, at, cause)
}

func derive(ctx context.Context, d time.Duration, cause *Error) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, nop
	}
	at := clock.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && !dl.After(at) {
		return ctx, nop
	}
	return context.WithDeadlineCause(ctx, at, cause)
}

func nop() {}

// Observe reports whether ctx, derived by WithTotal (s == Total) or
// WithAttempt (s == Attempt) of this Timeout, ended because that deadline
// fired. When it did, it counts the event in bulwark.timeout.fired. Call it
// once per derived context, when the work under it is over.
func (t *Timeout) Observe(ctx context.Context, s Scope) bool {
	if ctx.Err() == nil {
		return false
	}
	want, opt := t.totalErr, t.totalOpt
	if s == Attempt {
		want, opt = t.attemptErr, t.attemptOpt
	}
	if context.Cause(ctx) != want {
		return false
	}
	t.fired.Add(context.Background(), 1, opt)
	return true
}

// Owns reports whether ctx ended because a deadline of this Timeout fired
// (its total or attempt deadline, on ctx or on a context ctx derives from).
// A deadline of another Timeout — an outer Stack's — is not this one's.
func (t *Timeout) Owns(ctx context.Context) bool {
	if ctx.Err() == nil {
		return false
	}
	c := context.Cause(ctx)
	return c == t.totalErr || c == t.attemptErr
}

// Fired returns the *Error describing which bulwark deadline ended ctx — of
// any Timeout; Owns tells one Timeout's own — or nil when ctx is live or
// ended for another reason (cancelled, or a deadline set without bulwark).
func Fired(ctx context.Context) *Error {
	if ctx.Err() == nil {
		return nil
	}
	e, _ := context.Cause(ctx).(*Error)
	return e
}

// Wrap returns err annotated as a timeout when err is not nil and one of our
// deadlines ended ctx: the result matches ErrTimeout and
// context.DeadlineExceeded with errors.Is and unwraps to err. Otherwise it
// returns err unchanged (the caller's own deadline stays a plain
// context.DeadlineExceeded).
func Wrap(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	e := Fired(ctx)
	if e == nil {
		return err
	}
	return &Error{Scope: e.Scope, After: e.After, cause: err}
}

// Remaining returns the time left before ctx's deadline, and false when ctx
// has no deadline. It never returns a negative duration.
func Remaining(ctx context.Context) (time.Duration, bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	return max(time.Until(dl), 0), true
}

// Enough reports whether ctx leaves time for one more attempt expected to
// take about expected: true when ctx has no deadline, false when ctx is
// already done or less than expected remains.
func Enough(ctx context.Context, expected time.Duration) bool {
	return EnoughUntil(ctx, time.Time{}, expected)
}

// RemainingUntil is Remaining for a call bounded both by ctx and by total,
// a deadline held as a time (zero means none): the time left before the
// earlier of the two.
func RemainingUntil(ctx context.Context, total time.Time) (time.Duration, bool) {
	left, ok := Remaining(ctx)
	if total.IsZero() {
		return left, ok
	}
	t := max(time.Until(total), 0)
	if !ok || t < left {
		return t, true
	}
	return left, true
}

// EnoughUntil is Enough for a call bounded both by ctx and by total (zero
// means none).
func EnoughUntil(ctx context.Context, total time.Time, expected time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	left, ok := RemainingUntil(ctx, total)
	return !ok || left >= expected
}
