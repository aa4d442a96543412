package bulwark

import (
	"context"
	"errors"

	"golang.org/x/sync/singleflight"
)

// A Fallback replaces the result of a call that failed, and may answer a
// call before it runs: a default value, a function of the error, a cache of
// last-known-good results. It is the outermost policy: it sees the final
// result of the call, whatever produced it. A Fallback must be safe for
// concurrent use.
type Fallback[T any] interface {
	// Lookup may answer the call identified by key without running it (a
	// fresh cached value); ok reports whether it did.
	Lookup(ctx context.Context, key string) (v T, ok bool)
	// Store learns the successful result of the call identified by key.
	Store(ctx context.Context, key string, v T)
	// Recover is given the failed result of the call identified by key
	// and returns what the caller gets instead, or err itself when it has
	// nothing better. ctx is the caller's: a Fallback must not recover
	// from the caller's own cancellation.
	Recover(ctx context.Context, key string, v T, err error) (T, error)
}

// PipelineConfig composes a Pipeline.
type PipelineConfig[T any] struct {
	// Stack runs each call. Required.
	Stack *Stack
	// Key is the key the Stack's guards keep their state per (the service
	// or endpoint called). Zero means "".
	Key string
	// Fallback answers instead of a failed call. Nil means none.
	Fallback Fallback[T]
	// Coalesce makes concurrent calls with the same key share one call
	// (golang.org/x/sync/singleflight), so that the stampede after an
	// outage sends one call, not thousands. The shared call runs detached
	// from any one caller's cancellation, bounded by the Stack's total
	// deadline, which must therefore be set; each caller still stops
	// waiting when its own context ends. Callers receive the same T:
	// share only values that are safe to share. False means none.
	Coalesce bool
}

// Pipeline runs calls returning T through a Stack with the generic
// outermost policies, in the composition order: coalescing, then fallback,
// then the Stack (total deadline, retry, guards, attempt deadline). A
// Pipeline is safe for concurrent use. Build it with NewPipeline.
type Pipeline[T any] struct {
	stack    *Stack
	key      string
	fallback Fallback[T]
	coalesce bool
	flights  singleflight.Group
}

// NewPipeline validates cfg and returns its Pipeline. A nil Stack, or
// Coalesce without a total deadline, is an error naming the field.
func NewPipeline[T any](cfg PipelineConfig[T]) (*Pipeline[T], error) {
	if cfg.Stack == nil {
		return nil, errors.New("bulwark: PipelineConfig.Stack is nil")
	}
	if cfg.Coalesce && (cfg.Stack.timeout == nil || cfg.Stack.timeout.TotalTimeout() == 0) {
		return nil, errors.New("bulwark: PipelineConfig.Coalesce needs a total deadline in PipelineConfig.Stack (timeout.Config.Total): a shared call must not run unbounded")
	}
	return &Pipeline[T]{stack: cfg.Stack, key: cfg.Key, fallback: cfg.Fallback, coalesce: cfg.Coalesce}, nil
}

// Do runs call, identified by key (for the fallback's cache and for
// coalescing: the same key means the same question), and returns its result
// or the fallback's. The fallback's Lookup is asked first, even when ctx is
// already done: a value at hand is returned with a nil error. A panic in
// call is not recovered here (Do records it as a Failure and panics again);
// a coalesced call that panics crashes the program rather than hiding the
// panic from the callers it was shared with; one that calls
// runtime.Goexit answers each of them with an error saying so (its Failure
// recorded, as Do does).
func (p *Pipeline[T]) Do(ctx context.Context, key string, call func(context.Context) (T, error)) (T, error) {
	if p.fallback != nil {
		if v, ok := p.fallback.Lookup(ctx, key); ok {
			return v, nil
		}
	}
	var v T
	var err error
	if p.coalesce {
		v, err = p.shared(ctx, key, call) // the flight stores its success once
	} else {
		v, err = Do(ctx, p.stack, p.key, call)
		if err == nil && p.fallback != nil {
			p.fallback.Store(ctx, key, v)
		}
	}
	if err == nil || p.fallback == nil {
		return v, err
	}
	return p.fallback.Recover(ctx, key, v, err)
}

// errFlightExited is the error of a coalesced call that called
// runtime.Goexit.
var errFlightExited = errors.New("bulwark: the coalesced call did not return: it called runtime.Goexit")

type flight[T any] struct {
	v   T
	err error
}

// shared runs call once for all concurrent callers of key.
func (p *Pipeline[T]) shared(ctx context.Context, key string, call func(context.Context) (T, error)) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	// The flight must not end because its first caller left: detach it
	// from ctx's cancellation (keeping its values); the Stack's total
	// deadline bounds it.
	detached := context.WithoutCancel(ctx)
	ch := p.flights.DoChan(key, func() (any, error) {
		// The call runs on a goroutine of its own, so that one that calls
		// runtime.Goexit ends that goroutine alone, and its callers are
		// told: ended in the flight's, it would answer none of them.
		done := make(chan flight[T], 1)
		go func() {
			returned := false
			defer func() {
				if !returned { // Goexit (a panic crashes the program on its way)
					done <- flight[T]{err: errFlightExited}
				}
			}()
			v, err := Do(detached, p.stack, p.key, call)
			if err == nil && p.fallback != nil {
				p.fallback.Store(detached, key, v)
			}
			returned = true
			done <- flight[T]{v, err}
		}()
		return <-done, nil
	})
	select {
	case r := <-ch:
		f := r.Val.(flight[T])
		return f.v, f.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
