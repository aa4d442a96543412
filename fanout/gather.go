package fanout

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/fallback"
)

// Gather is one scatter-gather call: branches are added to it (Add,
// AddPipeline), each with its own type and its own policies, then Run runs
// them all concurrently and waits for every one of them. A branch that
// fails does not cancel the others. Each branch's answer, or its error, is
// read from the typed Result that Add returned.
//
// Nothing runs before Run, so that bad input (no branches, a nil function)
// is refused before any branch starts. A Gather is used once. Add and Run
// are safe for concurrent use; Run must be called once, after every Add.
// Make a Gather with Fanout.Gather.
type Gather struct {
	f        *Fanout
	next     atomic.Int64 // the next branch a worker takes
	closed   atomic.Bool  // Run stopped waiting: workers start nothing more
	finished atomic.Bool  // Run has returned: every Result is settled
	tracing  bool         // set before the workers start

	left  atomic.Int32          // branches not yet ended (settled, span included)
	tally [nStatus]atomic.Int32 // branches settled, by Status
	done  chan struct{}         // closed when left reaches 0, at most once

	mu       sync.Mutex
	running  bool // Run has begun: no more Add
	branches []branch
	inline   [4]branch // branches' first backing array: most gathers have few
}

// A branch's settlement: a branch is settled once, by its own goroutine
// (its result) or by Run (abandoned), whichever claims it first.
const (
	unsettled uint32 = iota
	claimed          // being written by whoever claimed it: a few stores, no user code
	settled
)

// branch is the untyped side of a Result, as the Gather runs it.
type branch interface {
	// check returns the bad-input error of branch i, or nil.
	check(i int) error
	// run runs branch i and settles it, unless Run abandoned it.
	run(ctx context.Context, i int)
	// abandon settles a branch not settled yet as abandoned with err.
	abandon(err error)
	// refuse settles a branch that will never run with err and s.
	refuse(err error, s Status)
	// report returns the branch's name, Status and error, once settled.
	report() (string, Status, error)
}

// Gather returns a new, empty Gather of f. On a nil f it still returns a
// Gather, whose Run reports the nil Fanout as bad input.
func (f *Fanout) Gather() *Gather {
	g := &Gather{f: f}
	g.branches = g.inline[:0]
	return g
}

// add adds b, or returns why it cannot be.
func (g *Gather) add(b branch) error {
	if g == nil {
		return invalid("fanout: Add to a nil *Gather")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running {
		return invalid("fanout: branch added after Gather.Run")
	}
	g.branches = append(g.branches, b)
	return nil
}

// Run runs every branch added, at most Config.MaxConcurrent at a time,
// each under ctx, and waits until each has ended or ctx ends, whichever
// comes first. Then every Result is settled: with its call's answer, its
// fallback's answer, its call's error, or, for a branch still running (or
// not yet started) when ctx ended, an error matching ErrAbandoned and
// ctx's error. An abandoned branch's call keeps running on its goroutine
// until it returns; what it returns is dropped (and its span, when the
// caller's span is recording, ends then: the others' end before Run
// returns). Run never cancels a branch
// because another failed: give each branch its own deadline (its Stack's
// timeout) and the whole call its deadline through ctx.
//
// Run returns nil when every branch answered (its call, or its fallback),
// and otherwise a *PartialError naming the branches that did not: the
// others' answers are in their Results. Bad input (no branches, a nil
// function, a nil Pipeline, a nil Fanout, a second Run) is an error
// matching ErrInvalid, returned before any branch starts. When ctx is
// already done, Run starts nothing and returns ctx's error (every branch
// is then abandoned). A panic in a branch is not recovered: like any
// goroutine's, it ends the program.
func (g *Gather) Run(ctx context.Context) error {
	if g == nil {
		return invalid("fanout: Run of a nil *Gather")
	}
	g.mu.Lock()
	if g.running {
		g.mu.Unlock()
		return invalid("fanout: Gather.Run called twice")
	}
	g.running = true
	g.mu.Unlock() // the branches are fixed now
	n := len(g.branches)
	if err := g.check(); err != nil {
		return g.refuse(err, StatusFailure)
	}
	if err := ctx.Err(); err != nil {
		return g.refuse(err, StatusAbandoned)
	}
	g.left.Store(int32(n))
	g.done = make(chan struct{})
	g.tracing = recording(ctx)

	if m := g.f.max; m > 0 && m < n {
		for range m {
			go g.work(ctx)
		}
	} else {
		// A goroutine per branch, each with exactly one to run: cheaper
		// than workers that may find nothing left to do.
		for i, b := range g.branches {
			go b.run(ctx, i)
		}
	}
	select {
	case <-g.done:
	case <-ctx.Done():
	}

	if g.left.Load() > 0 { // ctx ended first: stop waiting
		g.closed.Store(true)
		cause := abandoned(ctx.Err())
		for _, b := range g.branches {
			b.abandon(cause)
		}
	}
	var c counts
	for s := range c {
		c[s] = int(g.tally[s].Load())
	}
	g.finished.Store(true)

	answered := c[StatusSuccess] + c[StatusFallback]
	g.f.record(ctx, opGather, &c, answered > 0 && c[StatusSuccess] < n) // partial: some answered, not all by their call
	if answered == n {
		return nil
	}
	return g.partial(n)
}

// check returns the first bad input, or nil.
func (g *Gather) check() error {
	if g.f == nil {
		return invalid("fanout: Gather of a nil *Fanout")
	}
	if len(g.branches) == 0 {
		return invalid("fanout: Gather has no branches")
	}
	for i, b := range g.branches {
		if err := b.check(i); err != nil {
			return err
		}
	}
	return nil
}

// refuse settles every branch with err and s, none of them having run, and
// returns err.
func (g *Gather) refuse(err error, s Status) error {
	berr := err
	if s == StatusAbandoned {
		berr = abandoned(err)
	}
	for _, b := range g.branches {
		b.refuse(berr, s)
	}
	g.finished.Store(true)
	return err
}

// work runs branches until none is left or Run stopped waiting: with
// Config.MaxConcurrent, Run starts that many.
func (g *Gather) work(ctx context.Context) {
	returned := false
	defer func() {
		if !returned { // a branch called runtime.Goexit: the branches after it still need a worker
			go g.work(ctx)
		}
	}()
	for !g.closed.Load() {
		i := int(g.next.Add(1) - 1)
		if i >= len(g.branches) {
			break
		}
		g.branches[i].run(ctx, i)
	}
	returned = true
}

// release tells Run that one more branch has ended.
func (g *Gather) release() {
	if g.left.Add(-1) == 0 {
		close(g.done)
	}
}

// partial returns the *PartialError of the branches that gave no answer.
// Run has settled every branch.
func (g *Gather) partial(n int) error {
	e := &PartialError{N: n}
	for i, b := range g.branches {
		name, s, err := b.report()
		if !s.answered() {
			e.Branches = append(e.Branches, &BranchError{Index: i, Name: name, Status: s, Err: err})
		}
	}
	return e
}

// Result is the typed answer of one branch of a Gather. It is settled when
// the Gather's Run returns and never changes afterwards; before that, its
// methods report the branch as pending. A Result is safe for concurrent
// use.
type Result[T any] struct {
	g        *Gather
	name     string
	stack    *bulwark.Stack
	pipe     *viaPipeline[T] // added by AddPipeline
	fn       func(context.Context) (T, error)
	rejected error // why Add refused the branch; set before Add returns

	// Written once, by whoever claims the Result (see settled); read
	// once g.finished.
	state  atomic.Uint32
	v      T
	err    error
	status Status
}

// viaPipeline is what a branch added by AddPipeline has beyond the others.
type viaPipeline[T any] struct {
	p    *bulwark.Pipeline[T]
	key  string
	note fallback.Note // settled with the Result
}

// Add adds to g a branch named name that runs fn through the Stack s (nil
// means none: fn runs as it is), on key name (the key s's guards keep
// their state per), and returns the branch's Result, to read after
// g.Run. A nil fn makes Run return an error matching ErrInvalid; a nil g,
// or a g already Run, makes the Result report such an error itself.
func Add[T any](g *Gather, name string, s *bulwark.Stack, fn func(context.Context) (T, error)) *Result[T] {
	r := &Result[T]{g: g, name: name, stack: s, fn: fn}
	r.rejected = g.add(r)
	return r
}

// AddPipeline adds to g a branch named name that runs fn through the
// Pipeline p, asking key (the question fn answers: p's cache and
// coalescing key), and returns the branch's Result. When fn fails and p's
// fallback answers (a default, a cached value), the Result holds that
// answer with StatusFallback, and its Note says where the answer came
// from. (A Fallback of one's own is seen as StatusFallback only when it
// fills in a fallback.Note, as the fallback package's do.) A nil p or fn
// makes Run return an error matching ErrInvalid; a nil g, or a g already
// Run, makes the Result report such an error itself.
func AddPipeline[T any](g *Gather, name string, p *bulwark.Pipeline[T], key string, fn func(context.Context) (T, error)) *Result[T] {
	r := &Result[T]{g: g, name: name, pipe: &viaPipeline[T]{p: p, key: key}, fn: fn}
	r.rejected = g.add(r)
	return r
}

func (r *Result[T]) check(i int) error {
	switch {
	case r.fn == nil:
		return invalid(fmt.Sprintf("fanout: branch %d (%q) has a nil function", i, r.name))
	case r.pipe != nil && r.pipe.p == nil:
		return invalid(fmt.Sprintf("fanout: branch %d (%q) has a nil Pipeline", i, r.name))
	}
	return nil
}

func (r *Result[T]) run(ctx context.Context, i int) {
	g := r.g
	var span trace.Span
	if g.tracing {
		ctx, span = g.f.startSpan(ctx, opGather, r.name, i)
	}
	returned := false
	defer func() {
		if !returned { // a panic, which goes on, or runtime.Goexit: Run must not wait for this branch
			var zero T
			r.settle(zero, fmt.Errorf("fanout: branch %d (%q) did not return: it panicked or called runtime.Goexit", i, r.name), nil, StatusFailure, span)
		}
	}()
	var v T
	var err error
	var note *fallback.Note
	if r.pipe != nil {
		note = new(fallback.Note) // not r.pipe.note: an abandoned branch's fallback may write it after Run
		v, err = r.pipe.p.Do(fallback.WithNote(ctx, note), r.pipe.key, r.fn)
	} else {
		v, err = call(ctx, r.stack, r.name, r.fn)
	}
	returned = true
	s := StatusSuccess
	switch {
	case err != nil:
		s = StatusFailure
	case note != nil && note.Source.Fallback():
		s = StatusFallback
	}
	r.settle(v, err, note, s, span)
}

// settle records the branch's end, unless Run abandoned it already, and
// ends its span.
func (r *Result[T]) settle(v T, err error, note *fallback.Note, s Status, span trace.Span) {
	g := r.g
	kept := r.state.CompareAndSwap(unsettled, claimed)
	if kept {
		r.v, r.err, r.status = v, err, s
		if note != nil {
			r.pipe.note = *note
		}
		g.tally[s].Add(1)
		r.state.Store(settled)
	} else {
		s = StatusAbandoned // Run stopped waiting: what the call returned is dropped
	}
	// The span ends before Run is told, so that Run returns after the
	// spans of the branches it waited for.
	endSpan(span, s, err)
	if kept {
		g.release()
	}
}

func (r *Result[T]) abandon(err error) {
	for {
		switch r.state.Load() {
		case unsettled:
			if r.state.CompareAndSwap(unsettled, claimed) {
				r.err, r.status = err, StatusAbandoned
				r.g.tally[StatusAbandoned].Add(1)
				r.state.Store(settled)
				return
			}
		case claimed:
			runtime.Gosched() // its goroutine is storing its result: a few stores away
		default:
			return
		}
	}
}

func (r *Result[T]) refuse(err error, s Status) {
	r.err, r.status = err, s
	r.state.Store(settled)
}

func (r *Result[T]) report() (string, Status, error) { return r.name, r.status, r.err }

// ready returns nil when the Result is settled, and otherwise the error
// it reports instead of its own.
func (r *Result[T]) ready() error {
	if r.rejected != nil {
		return r.rejected
	}
	if !r.g.finished.Load() {
		return ErrPending
	}
	return nil
}

// Name returns the branch's name.
func (r *Result[T]) Name() string { return r.name }

// Get returns the branch's answer and a nil error (its call's, or its
// fallback's), or the zero T, or whatever the call returned with its
// error, and the error. Before Run returns it returns the zero T and
// ErrPending.
func (r *Result[T]) Get() (T, error) {
	if err := r.ready(); err != nil {
		var zero T
		return zero, err
	}
	return r.v, r.err
}

// Or returns the branch's answer when it has one (StatusSuccess or
// StatusFallback), and def otherwise.
func (r *Result[T]) Or(def T) T {
	if r.ready() != nil || !r.status.answered() {
		return def
	}
	return r.v
}

// Err returns the branch's error: nil when it answered, ErrPending before
// Run returns.
func (r *Result[T]) Err() error {
	if err := r.ready(); err != nil {
		return err
	}
	return r.err
}

// Status returns how the branch ended; StatusPending before Run returns.
// A branch Run refused to start (bad input) is StatusFailure, or
// StatusAbandoned when ctx was already done.
func (r *Result[T]) Status() Status {
	if r.rejected != nil {
		return StatusFailure
	}
	if !r.g.finished.Load() {
		return StatusPending
	}
	return r.status
}

// Note returns where the answer of a branch added with AddPipeline came
// from, as its fallback recorded it (the zero Note: the call itself, or
// no fallback answered).
func (r *Result[T]) Note() fallback.Note {
	if r.ready() != nil || r.pipe == nil {
		return fallback.Note{}
	}
	return r.pipe.note
}
