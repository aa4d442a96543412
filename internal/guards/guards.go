// Package guards builds the per-endpoint admission guards of the transport
// adapters (httpclient, grpcclient) from their configuration sections, and
// names refusals for telemetry, so that both adapters do it one way.
package guards

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// Set is what Build made: the guards in the composition order (breaker,
// then bulkhead), the sets themselves (nil when not configured), and what
// must be closed with the adapter.
type Set struct {
	Guards    []bulwark.Guard
	Breakers  *breaker.Set
	Bulkheads *bulkhead.Set
	Closers   []interface{ Close() error }
}

// Build makes a breaker set from brk and a bulkhead set from blk, either
// nil for none, giving each mp when its own MeterProvider is nil. Errors
// name the field as pkg's Config.Breaker or Config.Bulkhead; on error,
// nothing built is left registered.
func Build(pkg string, brk *breaker.Config, blk *bulkhead.Config, mp metric.MeterProvider) (Set, error) {
	var s Set
	if brk != nil {
		c := *brk
		if c.MeterProvider == nil {
			c.MeterProvider = mp
		}
		b, err := breaker.NewSet(c)
		if err != nil {
			return Set{}, fmt.Errorf("%s: Config.Breaker: %w", pkg, err)
		}
		s.Guards, s.Breakers, s.Closers = append(s.Guards, b), b, append(s.Closers, b)
	}
	if blk != nil {
		c := *blk
		if c.MeterProvider == nil {
			c.MeterProvider = mp
		}
		b, err := bulkhead.NewSet(c)
		if err != nil {
			_ = s.Close()
			return Set{}, fmt.Errorf("%s: Config.Bulkhead: %w", pkg, err)
		}
		s.Guards, s.Bulkheads, s.Closers = append(s.Guards, b), b, append(s.Closers, b)
	}
	return s, nil
}

// Close closes everything Build made.
func (s Set) Close() error {
	var errs []error
	for _, c := range s.Closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// ErrorType names the kind of a refusal or deadline of ours, for the
// error.type attribute, without the error's text (which may hold a URL):
// breaker_open, bulkhead_full, no_endpoint, timeout, canceled,
// deadline_exceeded; "" for any other error, which the adapter names.
func ErrorType(err error) string {
	switch {
	case errors.Is(err, breaker.ErrOpen):
		return "breaker_open"
	case errors.Is(err, bulkhead.ErrFull):
		return "bulkhead_full"
	case errors.Is(err, bulwark.ErrNoEndpoint):
		return "no_endpoint"
	case errors.Is(err, timeout.ErrTimeout):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	return ""
}
