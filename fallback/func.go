package fallback

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwarkrpc/bulwark"
)

// FuncConfig configures a Func. Func is required; every other field may be
// left zero.
type FuncConfig[T any] struct {
	// Func computes the answer to the failed call identified by key, from
	// err, the failure. It runs on the caller's goroutine with the
	// caller's ctx, which is live. It may decline by returning an error
	// (err itself, or one that wraps it): the caller then gets that error.
	// A panic in it reaches the caller. Required: there is no sensible
	// default function.
	Func func(ctx context.Context, key string, err error) (T, error)
	// When decides whether a failed call is handed to Func; it is never
	// asked about a caller whose own context ended (see Default). Nil
	// means Default.
	When func(ctx context.Context, err error) bool
	// Name is reported in the bulwark.key attribute of the metrics, which
	// keeps several fallbacks on one MeterProvider apart. Zero means "".
	Name string
	// MeterProvider receives the bulwark.fallback.used counter. Nil means
	// the global provider.
	MeterProvider metric.MeterProvider
}

// Func is a bulwark.Fallback that answers a failed call with the result of
// a function of the error. It never answers before the call (Lookup) and
// learns nothing from successes (Store). It is safe for concurrent use when
// the function is. Build it with NewFunc.
type Func[T any] struct {
	fn   func(context.Context, string, error) (T, error)
	when func(context.Context, error) bool
	used used
}

var _ bulwark.Fallback[int] = (*Func[int])(nil)

// NewFunc returns the Func of cfg. A nil cfg.Func is an error.
func NewFunc[T any](cfg FuncConfig[T]) (*Func[T], error) {
	if cfg.Func == nil {
		return nil, errors.New("fallback: FuncConfig.Func is nil")
	}
	u, err := newUsed(meterOf(cfg.MeterProvider), cfg.Name, SourceFunc)
	if err != nil {
		return nil, err
	}
	return &Func[T]{fn: cfg.Func, when: cfg.When, used: u}, nil
}

// Lookup never answers: it returns the zero T and false.
func (f *Func[T]) Lookup(context.Context, string) (T, bool) {
	var zero T
	return zero, false
}

// Store does nothing.
func (f *Func[T]) Store(context.Context, string, T) {}

// Recover returns what the function makes of err when err is one to fall
// back on (see FuncConfig.When); otherwise it returns v and err unchanged.
// When the function answers with a nil error, the fallback counts in
// bulwark.fallback.used and fills in ctx's Note; when it declines, neither.
func (f *Func[T]) Recover(ctx context.Context, key string, v T, err error) (T, error) {
	if !should(ctx, err, f.when) {
		return v, err
	}
	w, ferr := f.fn(ctx, key, err)
	if ferr != nil {
		return w, ferr
	}
	f.used.add(ctx)
	record(ctx, Note{Source: SourceFunc, Err: err})
	return w, nil
}
