package fanout

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/bulwarkrpc/bulwark"
)

// First races branches and returns the first success: branch 0 starts at
// once, and each next one when the stagger delay passes with no answer,
// or at once when the only branch running fails (a failure while others
// run leaves the next one to the delay). The first branch to succeed
// wins: First returns its answer, cancels the others' contexts and does
// not wait for them. The delay is f's Config.Hedge: fixed, or a quantile
// of the latencies First observes (hedge.Config.Latency).
//
// First is a hedge.Hedge whose attempt n runs branch n. Every branch
// beyond the first is an extra attempt drawn on Config.Hedge.Budget,
// shared with the retries that draw on it: when the budget refuses, no
// further branch starts, and First returns what the started ones
// answered. Equally, no branch starts when the time left before ctx's
// deadline is shorter than the expected latency (with a Latency).
//
// When every started branch fails, or ctx ends first, First returns a
// *QuorumError (matching ErrNoQuorum, and ctx's error when ctx ended)
// listing them. Bad input (no branches, a nil Call, a nil f) is an error
// matching ErrInvalid, returned before any branch starts. When ctx is
// already done, First starts nothing and returns ctx's error. A branch
// still running when First returns, even one that ignores its context,
// ends on its own goroutine when its call returns; what it returns is
// dropped. A panic in a branch is not recovered.
func First[T any](ctx context.Context, f *Fanout, branches ...Branch[T]) (Answer[T], error) {
	var none Answer[T]
	if err := check(f, "First", branches); err != nil {
		return none, err
	}
	if err := ctx.Err(); err != nil {
		return none, err
	}
	n := len(branches)
	r := &race[T]{f: f, branches: branches, tracing: recording(ctx)}
	r.slots = r.inline[:0]
	if n > len(r.inline) {
		r.slots = make([]raceSlot[T], 0, n)
	}
	r.slots = r.slots[:n]

	// The winner's context stays alive under a Hedge until this one ends.
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var w int
	var err error
	if n == 1 {
		err = r.Attempt(bctx, 0).Err
	} else {
		h, herr := f.hedgeFor(n)
		if herr != nil { // only when the MeterProvider refuses; New validated the rest
			return none, fmt.Errorf("fanout: First: %w", herr)
		}
		w, err = h.Run(bctx, bulwark.Call{Idempotent: true, Attempts: r})
	}

	r.mu.Lock()
	r.decided = true
	var cause error
	if ctx.Err() != nil {
		cause = abandoned(ctx.Err())
	}
	var c counts
	ok := 0
	for i := range r.slots {
		s := &r.slots[i]
		if !s.started {
			continue
		}
		switch {
		case s.status == StatusPending:
			s.status, s.err = StatusAbandoned, cause
		case s.status == StatusSuccess && (err != nil || i != w):
			s.status = StatusAbandoned // it succeeded too, but too late: its answer is dropped
		}
		if s.status == StatusSuccess {
			ok++
		}
		c[s.status]++
	}
	var v T
	if err == nil {
		v = r.slots[w].v
	}
	r.mu.Unlock()

	f.record(ctx, opFirst, &c, err == nil && c[StatusFailure] > 0)
	if err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		return none, quorumError(1, ok, len(r.slots), func(i int) (string, *slot) { return r.branches[i].Name, &r.slots[i].slot })
	}
	return Answer[T]{Index: w, Value: v}, nil
}

// race is the state of one First call, and the bulwark.Attempter its
// Hedge runs: attempt n is branch n.
type race[T any] struct {
	f        *Fanout
	branches []Branch[T]
	tracing  bool

	mu      sync.Mutex
	decided bool // First has returned: later results are dropped
	slots   []raceSlot[T]
	inline  [4]raceSlot[T]
}

type raceSlot[T any] struct {
	slot
	v T
}

// Attempt runs branch n.
func (r *race[T]) Attempt(ctx context.Context, n int) bulwark.Result {
	r.mu.Lock()
	if r.decided || n >= len(r.branches) { // a hedge that fired as First returned
		r.mu.Unlock()
		return bulwark.Result{Outcome: bulwark.Ignored, Err: context.Canceled}
	}
	r.slots[n].started = true
	r.mu.Unlock()
	if n == 0 {
		// A Hedge runs attempt 0 on its caller's goroutine and waits for
		// it to return. Run the branch on a goroutine of its own, so that
		// one that ignores cancellation holds neither the race nor the
		// caller once it is lost or the caller is gone.
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.run(ctx, 0)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			return bulwark.Result{Outcome: bulwark.Ignored, Err: abandoned(ctx.Err())}
		}
	} else {
		r.run(ctx, n)
	}
	r.mu.Lock()
	s := r.slots[n].slot
	r.mu.Unlock()
	switch s.status {
	case StatusSuccess:
		return bulwark.Result{Outcome: bulwark.Success}
	case StatusFailure:
		// Whatever the branch's Stack made of it (an open breaker is
		// Ignored there), the race goes on to the next branch.
		return bulwark.Result{Outcome: bulwark.Failure, Err: s.err}
	}
	return bulwark.Result{Outcome: bulwark.Ignored, Err: s.err}
}

// run runs branch n and records its result, unless First has returned.
func (r *race[T]) run(ctx context.Context, n int) {
	b := &r.branches[n]
	var span trace.Span
	if r.tracing {
		ctx, span = r.f.startSpan(ctx, opFirst, b.Name, n)
	}
	returned := false
	defer func() {
		if !returned { // a panic, which goes on, or runtime.Goexit: the race must not wait for it
			var zero T
			r.settle(ctx, n, zero, fmt.Errorf("fanout: branch %d (%q) did not return: it panicked or called runtime.Goexit", n, b.Name), span)
		}
	}()
	v, err := call(ctx, b.Stack, b.Name, b.Call)
	returned = true
	r.settle(ctx, n, v, err, span)
}

func (r *race[T]) settle(ctx context.Context, n int, v T, err error, span trace.Span) {
	s := StatusSuccess
	switch {
	case err != nil && ctx.Err() != nil:
		// Cancelled: the race was decided without it, or the caller left.
		s, err = StatusAbandoned, abandoned(ctx.Err())
	case err != nil:
		s = StatusFailure
	}
	r.mu.Lock()
	if r.decided {
		s = StatusAbandoned // counted as such when First returned
	} else {
		sl := &r.slots[n]
		sl.status, sl.err, sl.v = s, err, v
	}
	r.mu.Unlock()
	endSpan(span, s, err)
}
