package fallback

import (
	"context"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwarkrpc/bulwark"
)

// ValueConfig configures a Value. The zero ValueConfig is valid: it answers
// every failure Default accepts with the zero T.
type ValueConfig[T any] struct {
	// Value is the answer given instead of a failure. It is handed to
	// every such caller: share only a value that is safe to share. Zero
	// means T's zero value.
	Value T
	// When decides whether a failed call is answered; it is never asked
	// about a caller whose own context ended (see Default). Nil means
	// Default.
	When func(ctx context.Context, err error) bool
	// Name is reported in the bulwark.key attribute of the metrics, which
	// keeps several fallbacks on one MeterProvider apart. Zero means "".
	Name string
	// MeterProvider receives the bulwark.fallback.used counter. Nil means
	// the global provider.
	MeterProvider metric.MeterProvider
}

// Value is a bulwark.Fallback that answers a failed call with a fixed
// value. It never answers before the call (Lookup) and learns nothing from
// successes (Store). It is safe for concurrent use. Build it with
// NewValue.
type Value[T any] struct {
	value T
	when  func(context.Context, error) bool
	used  used
}

var _ bulwark.Fallback[int] = (*Value[int])(nil)

// NewValue returns the Value of cfg. It fails only when the MeterProvider
// refuses to create the instruments.
func NewValue[T any](cfg ValueConfig[T]) (*Value[T], error) {
	u, err := newUsed(meterOf(cfg.MeterProvider), cfg.Name, SourceValue)
	if err != nil {
		return nil, err
	}
	return &Value[T]{value: cfg.Value, when: cfg.When, used: u}, nil
}

// Lookup never answers: it returns the zero T and false.
func (f *Value[T]) Lookup(context.Context, string) (T, bool) {
	var zero T
	return zero, false
}

// Store does nothing.
func (f *Value[T]) Store(context.Context, string, T) {}

// Recover returns the configured value and a nil error when err is one to
// fall back on (see ValueConfig.When), counting it in bulwark.fallback.used
// and filling in ctx's Note; otherwise it returns v and err unchanged.
func (f *Value[T]) Recover(ctx context.Context, _ string, v T, err error) (T, error) {
	if !should(ctx, err, f.when) {
		return v, err
	}
	f.used.add(ctx)
	record(ctx, Note{Source: SourceValue, Err: err})
	return f.value, nil
}
