package fallback

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const (
	scope      = "github.com/bulwarkrpc/bulwark/fallback"
	keyAttr    = "bulwark.key"
	sourceAttr = "bulwark.fallback.source"
	resultAttr = "bulwark.fallback.cache.result"
)

// used is the bulwark.fallback.used counter of one fallback, with its
// attribute set built once (in a slice, so that Add's variadic argument
// allocates nothing).
type used struct {
	counter metric.Int64Counter
	opts    []metric.AddOption
}

// add counts one failed call answered.
func (u used) add(ctx context.Context) { u.counter.Add(ctx, 1, u.opts...) }

func meterOf(mp metric.MeterProvider) metric.Meter {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(scope)
}

func newUsed(m metric.Meter, name string, s Source) (used, error) {
	c, err := m.Int64Counter("bulwark.fallback.used",
		metric.WithDescription("Failed calls answered by a fallback instead."),
		metric.WithUnit("{call}"))
	if err != nil {
		return used{}, fmt.Errorf("fallback: creating instruments: %w", err)
	}
	return used{
		counter: c,
		opts: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String(keyAttr, name), attribute.String(sourceAttr, s.String())))},
	}, nil
}
