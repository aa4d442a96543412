package fanout

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/bulwarkrpc/bulwark"
)

// Branch is one of the interchangeable calls that Quorum and First run:
// replicas of one service, or several services answering the same
// question, all returning T.
//
// A Branch has no fallback: a default value counted as a vote would fake a
// quorum, and a race is won by a real answer. Put a fallback around the
// whole call instead.
type Branch[T any] struct {
	// Name names the branch in errors and spans, and is the key its
	// Stack's guards keep their state per (the replica, the endpoint).
	Name string
	// Stack runs Call with the branch's own policies. Nil means none.
	Stack *bulwark.Stack
	// Call is the branch's call; it must end soon after its context
	// does. Required.
	Call func(context.Context) (T, error)
}

// Answer is one branch's successful answer.
type Answer[T any] struct {
	// Index is the branch's position in the branches given.
	Index int
	// Value is what the branch's call returned.
	Value T
}

// Quorum runs branches concurrently, at most f's Config.MaxConcurrent at a
// time, and returns as soon as k of them have succeeded: their k answers,
// in the order they came, and a nil error. It then cancels the others'
// contexts and does not wait for them. It fails as soon as k successes are
// out of reach (more than n-k failures), or when ctx ends, with the
// answers it got and a *QuorumError (matching ErrNoQuorum, and ctx's error
// when ctx ended) listing the branches that failed or were abandoned.
//
// Bad input (no branches, k outside [1, n], a nil Call, a nil f) is an
// error matching ErrInvalid, returned before any branch starts. When ctx
// is already done, Quorum starts nothing and returns ctx's error. A
// branch still running when Quorum returns ends on its own goroutine when
// its call returns; what it returns is dropped. A panic in a branch is not
// recovered.
func Quorum[T any](ctx context.Context, f *Fanout, k int, branches ...Branch[T]) ([]Answer[T], error) {
	n := len(branches)
	if err := check(f, "Quorum", branches); err != nil {
		return nil, err
	}
	if k < 1 || k > n {
		return nil, invalid(fmt.Sprintf("fanout: Quorum needs k within [1, %d] (the number of branches), got k = %d", n, k))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancel(ctx)
	defer cancel() // the branches still running when the quorum is decided
	q := &quorum[T]{f: f, k: k, branches: branches, tracing: recording(ctx), done: make(chan struct{})}
	q.answers = make([]Answer[T], 0, k)
	q.slots = q.inline[:0]
	if n > len(q.inline) {
		q.slots = make([]slot, 0, n)
	}
	q.slots = q.slots[:n]
	if m := f.max; m > 0 && m < n {
		for range m {
			go q.work(bctx)
		}
	} else {
		q.next = n
		for i := range q.slots {
			q.slots[i].started = true
		}
		for i := range n {
			go q.run(bctx, i)
		}
	}
	select {
	case <-q.done:
	case <-ctx.Done():
	}

	q.mu.Lock()
	if !q.decided { // ctx ended first; q.done is left open, and nobody waits on it
		q.decide(abandoned(ctx.Err()))
	}
	c, ok, answers := q.counts, q.ok, q.answers
	q.mu.Unlock()

	f.record(ctx, opQuorum, &c, ok >= k && c[StatusFailure] > 0)
	if ok >= k {
		return answers, nil
	}
	return answers, q.failure()
}

// check returns the bad-input error of a Quorum or a First, or nil.
func check[T any](f *Fanout, opName string, branches []Branch[T]) error {
	if f == nil {
		return invalid("fanout: " + opName + " with a nil *Fanout")
	}
	if len(branches) == 0 {
		return invalid("fanout: " + opName + " has no branches")
	}
	for i, b := range branches {
		if b.Call == nil {
			return invalid(fmt.Sprintf("fanout: branch %d (%q) has a nil Call", i, b.Name))
		}
	}
	return nil
}

// slot is the state of one branch of a Quorum or a First.
type slot struct {
	started bool
	status  Status
	err     error
}

type quorum[T any] struct {
	f        *Fanout
	k        int
	branches []Branch[T]
	tracing  bool
	done     chan struct{} // closed once the branches decided the quorum

	mu      sync.Mutex
	next    int // the next branch to start
	decided bool
	ok, bad int // successes and failures so far
	answers []Answer[T]
	slots   []slot
	inline  [4]slot
	counts  counts
}

// work runs branches until none is left or the quorum is decided: with
// Config.MaxConcurrent, Quorum starts that many.
func (q *quorum[T]) work(ctx context.Context) {
	returned := false
	defer func() {
		if !returned { // a branch called runtime.Goexit: the branches after it still need a worker
			go q.work(ctx)
		}
	}()
	for {
		q.mu.Lock()
		if q.decided || q.next == len(q.branches) {
			q.mu.Unlock()
			break
		}
		i := q.next
		q.next++
		q.slots[i].started = true
		q.mu.Unlock()
		q.run(ctx, i)
	}
	returned = true
}

// run runs branch i and counts its result, unless the quorum is decided.
func (q *quorum[T]) run(ctx context.Context, i int) {
	b := &q.branches[i]
	var span trace.Span
	if q.tracing {
		ctx, span = q.f.startSpan(ctx, opQuorum, b.Name, i)
	}
	returned := false
	defer func() {
		if !returned { // a panic, which goes on, or runtime.Goexit: do not leave Quorum waiting
			var zero T
			q.settle(i, zero, fmt.Errorf("fanout: branch %d (%q) did not return: it panicked or called runtime.Goexit", i, b.Name), span)
		}
	}()
	v, err := call(ctx, b.Stack, b.Name, b.Call)
	returned = true
	q.settle(i, v, err, span)
}

func (q *quorum[T]) settle(i int, v T, err error, span trace.Span) {
	s := StatusSuccess
	if err != nil {
		s = StatusFailure
	}
	deciding := false
	q.mu.Lock()
	if q.decided {
		s = StatusAbandoned // counted as such when the quorum was decided
	} else {
		q.slots[i].status, q.slots[i].err = s, err
		q.counts[s]++
		if err == nil {
			q.answers = append(q.answers, Answer[T]{Index: i, Value: v})
			q.ok++
		} else {
			q.bad++
		}
		deciding = q.ok == q.k || q.bad > len(q.branches)-q.k
		if deciding {
			q.decide(nil)
		}
	}
	q.mu.Unlock()
	// The deciding branch's span ends before Quorum is told, outside the
	// lock, since span processors are the user's code. (The spans of
	// branches still ending then may end after Quorum returns.)
	endSpan(span, s, err)
	if deciding {
		close(q.done)
	}
}

// decide ends the quorum: the branches still running are abandoned, with
// err when the caller gave up (nil when the quorum was decided by the
// branches). q.mu held. The caller closes q.done.
func (q *quorum[T]) decide(err error) {
	q.decided = true
	for i := range q.slots {
		if s := &q.slots[i]; s.started && s.status == StatusPending {
			s.status, s.err = StatusAbandoned, err
			q.counts[StatusAbandoned]++
		}
	}
}

// failure returns the *QuorumError of a decided quorum.
func (q *quorum[T]) failure() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return quorumError(q.k, q.ok, len(q.slots), func(i int) (string, *slot) { return q.branches[i].Name, &q.slots[i] })
}

// quorumError returns the *QuorumError of a call needing k successes that
// got ok from n branches; at returns branch i's name and slot. It lists
// the branches that failed, and those abandoned for a reason of the
// caller's (a slot abandoned because the call was decided has no error).
func quorumError(k, ok, n int, at func(int) (string, *slot)) error {
	e := &QuorumError{K: k, N: n, Succeeded: ok}
	for i := range n {
		name, s := at(i)
		if s.err != nil && (s.status == StatusFailure || s.status == StatusAbandoned) {
			e.Branches = append(e.Branches, &BranchError{Index: i, Name: name, Status: s.status, Err: s.err})
		}
	}
	return e
}
