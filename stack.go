package bulwark

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwarkrpc/bulwark/timeout"
)

// Result is how one attempt ended, as a Wrapper sees it.
type Result struct {
	// Outcome classifies the attempt. Wrappers repeat only Failures.
	Outcome Outcome
	// Err is the attempt's error, if any. An HTTP response with a 5xx
	// status is a Failure with a nil Err.
	Err error
	// Pushback is the wait the server asked for before another attempt
	// (Retry-After, grpc-retry-pushback-ms). Zero means it asked nothing;
	// a negative value means it asked not to be called again for this.
	Pushback time.Duration
	// Final forbids repeating this attempt, whatever its outcome: the
	// adapter knows something the outcome does not say (a body that was
	// partly consumed, an answer that must not be retried).
	Final bool
}

// Call is one logical call as a Wrapper runs it.
type Call struct {
	// Idempotent says that running the call more than once is safe. A
	// Wrapper never starts a second attempt (retry or hedge) of a call
	// that is not idempotent.
	Idempotent bool
	// Attempts runs the attempts, through the guards.
	Attempts Attempter
	// Deadline is the call's total deadline, held as a time rather than
	// on the context (see Stack.Deadline); zero means none. A Wrapper
	// starts no attempt and waits no backoff that cannot fit before it or
	// before ctx's own deadline.
	Deadline time.Time
}

// Attempt runs attempt n of the call.
func (c Call) Attempt(ctx context.Context, n int) Result { return c.Attempts.Attempt(ctx, n) }

// An Attempter runs one attempt of a call, n counting from 0, through the
// guards. Attempt may be called from several goroutines at once (hedging),
// each with its own n. (An interface rather than a func, so that a call's
// state, already on the heap, serves without a closure.)
type Attempter interface {
	Attempt(ctx context.Context, n int) Result
}

// AttemptFunc adapts a function to an Attempter.
type AttemptFunc func(ctx context.Context, n int) Result

// Attempt calls f.
func (f AttemptFunc) Attempt(ctx context.Context, n int) Result { return f(ctx, n) }

// A Wrapper re-runs a whole call: retry and hedging are Wrappers. Run calls
// c.Attempt once per attempt, numbering them from 0, and decides from each
// Result whether to start another; a hedging Wrapper runs attempts
// concurrently and cancels the losers through their contexts. Run returns
// the number of the attempt whose result the caller gets and that attempt's
// error. It returns once that result is decided; attempts it cancelled may
// still be finishing on goroutines of their own, which end when their
// attempt returns (see Concurrent). A Wrapper must be safe for concurrent
// use.
type Wrapper interface {
	Run(ctx context.Context, c Call) (int, error)
}

// Concurrent is implemented by a Wrapper that may run a call's attempts at
// the same time (hedging). It leaves the winning attempt's context alive
// after Run returns, so its caller must give Run a context it cancels once
// the result is consumed. A Wrapper without it runs one attempt after
// another and leaves no context alive.
type Concurrent interface {
	Wrapper
	// Concurrent marks the Wrapper; it does nothing.
	Concurrent()
}

// Config composes a Stack. The zero Config is valid: it runs the call once,
// with no deadline of ours and no guard.
type Config struct {
	// Timeout gives the call its total deadline and each attempt its own.
	// Nil means no deadline of ours; the caller's still applies.
	Timeout *timeout.Timeout
	// Retry re-runs the call, inside the total deadline and outside the
	// guards, so that a retry passes the guards again (and may go to
	// another endpoint). Nil means one attempt.
	Retry Wrapper
	// Picker chooses the endpoint of each attempt (a load balancer), inside
	// the Wrapper and outside the Guards, which then keep their state per
	// endpoint. Nil means the key is the endpoint.
	Picker Picker
	// Guards admit each attempt, outermost first: give the breaker before
	// the bulkhead, so that an open breaker takes no bulkhead slot and a
	// full bulkhead is never counted against the endpoint. Nil means none.
	Guards []Guard
	// Classify maps an attempt's error to its Outcome. Nil means
	// ClassifyError.
	Classify Classifier
	// Idempotent declares every call through the Stack safe to repeat, so
	// the Retry Wrapper may retry or hedge it. False means only calls
	// whose context is marked with Idempotent are repeated.
	Idempotent bool
}

// Stack is the one composition of bulwark's policies, in the order the
// package documentation gives. Do runs a function through it; transport
// adapters use Enter and Attempt directly so that guards are released when a
// response body is closed or a stream ends. A Stack is immutable and safe for
// concurrent use. Build it with New.
type Stack struct {
	picker     Picker
	timeout    *timeout.Timeout
	retry      Wrapper
	guards     []Guard
	waiting    []WaitingGuard // guards[i] as a WaitingGuard, or nil; nil when none is
	starters   []int          // the indexes of the Starters in guards
	classify   Classifier
	idempotent bool
}

// New validates cfg and returns its Stack. A nil entry in Guards is an
// error naming its index; so is a nil pointer there, or in Picker or Retry
// (a constructor's result not checked, say), which would panic at the
// first call.
func New(cfg Config) (*Stack, error) {
	for i, g := range cfg.Guards {
		if g == nil {
			return nil, fmt.Errorf("bulwark: Config.Guards[%d] is nil", i)
		}
		if nilPointer(g) {
			return nil, fmt.Errorf("bulwark: Config.Guards[%d] is a nil %T", i, g)
		}
	}
	switch {
	case nilPointer(cfg.Picker):
		return nil, fmt.Errorf("bulwark: Config.Picker is a nil %T", cfg.Picker)
	case nilPointer(cfg.Retry):
		return nil, fmt.Errorf("bulwark: Config.Retry is a nil %T", cfg.Retry)
	}
	s := &Stack{
		timeout:    cfg.Timeout,
		picker:     cfg.Picker,
		retry:      cfg.Retry,
		guards:     append([]Guard(nil), cfg.Guards...),
		classify:   cfg.Classify,
		idempotent: cfg.Idempotent,
	}
	if s.classify == nil {
		s.classify = ClassifyError
	}
	for i, g := range s.guards {
		if _, ok := g.(Starter); ok {
			s.starters = append(s.starters, i)
		}
		if w, ok := g.(WaitingGuard); ok {
			if s.waiting == nil {
				s.waiting = make([]WaitingGuard, len(s.guards))
			}
			s.waiting[i] = w
		}
	}
	return s, nil
}

// nilPointer reports whether v is a nil pointer in a non-nil interface.
func nilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// Classify applies the Stack's Classifier to an attempt's error; caller is
// the context the attempt was entered with. When caller ended because this
// Stack's own total deadline fired, the end is not the caller's doing: the
// Classifier sees a caller that is still live (same values, no deadline),
// so that an endpoint that kept us waiting is judged a Failure. A deadline
// set by anyone else — an outer Stack included — is the caller's.
func (s *Stack) Classify(caller context.Context, err error) Outcome {
	if err != nil && s.timeout != nil && caller.Err() != nil && s.timeout.Owns(caller) {
		caller = context.WithoutCancel(caller)
	}
	return s.classify(caller, err)
}

// Retry returns the configured Wrapper, or nil.
func (s *Stack) Retry() Wrapper { return s.retry }

// Deadline returns the total deadline of a call starting now, when one is
// configured and the caller's own is not earlier; zero otherwise. It is a
// time, not a context: give it to EnterBy for every attempt and to the
// Wrapper in Call.Deadline. Each attempt's context then carries whichever
// of the two deadlines comes first, so the call needs no timer of its own.
func (s *Stack) Deadline(ctx context.Context) time.Time {
	if s.timeout == nil {
		return time.Time{}
	}
	return s.timeout.Deadline(ctx)
}

// Concurrent reports whether the Stack's Wrapper may run attempts at the
// same time (see the Concurrent interface).
func (s *Stack) Concurrent() bool {
	_, ok := s.retry.(Concurrent)
	return ok
}

// inlinePermits is how many guards an Attempt holds without allocating.
const inlinePermits = 4

// Attempt is one attempt admitted by every guard of a Stack, with its own
// deadline. Stack.Enter fills it; Done ends it. The zero Attempt is ready for
// Enter; an Attempt must not be copied once entered, and may be entered
// again only after Done. Done is safe to call from several goroutines (a
// response body closed while it is being read to EOF): the first call wins.
type Attempt struct {
	stack    *Stack
	caller   context.Context
	ctx      context.Context
	cancel   context.CancelFunc
	n        int
	permits  [inlinePermits]Permit
	extra    []Permit
	endpoint string
	ended    atomic.Bool
}

// Endpoint returns the address the Stack's Picker chose for the attempt;
// "" without a Picker.
func (a *Attempt) Endpoint() string { return a.endpoint }

// A Starter is a Guard that wants to know when the attempt it admitted
// really starts: after every guard inside it admitted it too (a bulkhead
// queue may have made it wait). The breaker's slow-call clock starts there,
// so that time spent queued is never charged to the endpoint. A Stack
// tells the Starters among its Config.Guards, and a Picker's Permit whose
// guard is one: a Guard that hands out other guards' Permits (one guard
// per key) is told only if it is a Starter itself.
type Starter interface {
	Guard
	// Started returns p, updated for an attempt starting now.
	Started(p Permit) Permit
}

// ErrAttemptInUse is returned by Stack.Enter for an Attempt entered before
// and not yet ended: entering it again would lose what it holds.
var ErrAttemptInUse = errors.New("bulwark: Attempt entered again before Done")

// Enter admits one attempt on key through every guard, outermost first, and
// then starts the attempt deadline. On success the caller must end a with
// Done (or Finish) exactly once. On refusal it releases every guard already
// entered (the attempt never started: their outcome is Ignored) and returns
// the refusal; a is then ended and needs no Done. A ctx already done is
// refused with ctx.Err() before any guard is entered. An Attempt still in
// use is refused with ErrAttemptInUse and left as it was.
func (s *Stack) Enter(ctx context.Context, key string, a *Attempt) error {
	return s.EnterBy(ctx, key, time.Time{}, "", a)
}

// EnterBy is Enter for an attempt of a call whose total deadline is total
// (from Deadline; zero means none): the attempt's context ends at the
// attempt deadline or at total, whichever comes first. avoid is the
// endpoint the call's previous attempt went to (Attempt.Endpoint; "" for
// the first): with a Picker, the attempt goes elsewhere when it can. With
// a Picker, an instance whose guards refuse the attempt at once (its
// breaker open, its bulkhead full) is passed over for another, up to three
// instances in all; the last refusal is returned if none admits it, if the
// Picker names an instance refused already, or if the refusal came after a
// wait (see Waiter). With a Timeout, an attempt that has no time left once
// every guard admitted it (total passed while a guard made it wait, or ctx
// ended) is refused too, with the total deadline's *timeout.Error or ctx.Err(), and
// its guards are released as Ignored: it never reached the endpoint.
func (s *Stack) EnterBy(ctx context.Context, key string, total time.Time, avoid string, a *Attempt) error {
	if a.stack != nil && !a.ended.Load() {
		return ErrAttemptInUse
	}
	a.stack, a.caller, a.ctx, a.cancel, a.n, a.extra, a.endpoint = s, ctx, ctx, nil, 0, a.extra[:0], ""
	a.ended.Store(true) // until every guard has admitted it
	if err := ctx.Err(); err != nil {
		return err
	}
	admitted := false
	defer func() {
		if !admitted { // refused, or a guard panicked: release what was taken
			a.release(Ignored)
		}
	}()
	if s.picker == nil {
		if err := s.enterGuards(ctx, key, total, a); err != nil {
			return s.refusal(ctx, total, err, a)
		}
	} else {
		// The guards inside keep their state per endpoint: when one of
		// them refuses the instance picked at once (its breaker is open,
		// its bulkhead full), another instance may well be admitted. The
		// refused pick ends Ignored, as it never started: the balancer
		// learns nothing of the instance from it. A refusal that came
		// after a wait (see Waiter) is the answer: the wait was spent.
		var refused [maxPicks]string
		var refusal error // the last refusal, when another pick follows it
		for i := range maxPicks {
			addr, p, err := s.picker.Pick(ctx, key, avoid)
			if err != nil {
				if refusal != nil {
					return refusal
				}
				return err
			}
			if slices.Contains(refused[:i], addr) { // nothing new to try
				p.Done(Ignored)
				return refusal
			}
			a.put(p)
			a.endpoint = addr
			err = s.enterGuards(ctx, addr, total, a)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrRejected) || waited(err) || i == maxPicks-1 {
				return s.refusal(ctx, total, err, a)
			}
			a.release(Ignored)
			clear(a.extra) // release counted a.n down; the spill-over is empty again
			a.extra = a.extra[:0]
			a.endpoint, avoid, refused[i], refusal = "", addr, addr, err
		}
	}
	a.restart()
	if s.timeout != nil {
		a.ctx, a.cancel = s.timeout.WithAttemptUntil(ctx, total)
		if a.ctx.Err() != nil {
			// No time is left: the total deadline passed while a guard
			// made the attempt wait (a bulkhead's queue), or the caller
			// left meanwhile. Started, the attempt would fail at once and
			// be charged to the endpoint; it never reached it.
			return a.expired()
		}
	}
	a.ended.Store(false)
	admitted = true
	return nil
}

// refusal returns the error of an attempt a guard refused: err, or, when
// the call's total deadline ended a guard's wait (see WaitingGuard), the
// total deadline's *timeout.Error. The guards are released by EnterBy.
func (s *Stack) refusal(ctx context.Context, total time.Time, err error, a *Attempt) error {
	if total.IsZero() || s.timeout == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	a.ctx, a.cancel = s.timeout.WithAttemptUntil(ctx, total) // done already: total has passed
	if a.ctx.Err() == nil {
		a.cancel()
		a.ctx, a.cancel = ctx, nil
		return err
	}
	return a.expired()
}

// expired ends an attempt whose context was done before it started, and
// returns its refusal: the caller's ctx.Err(), or the total deadline's
// *timeout.Error. The guards are released by EnterBy.
func (a *Attempt) expired() error {
	err := a.caller.Err()
	if err == nil {
		a.stack.timeout.Observe(a.ctx, timeout.Total)
		err = timeout.Wrap(a.ctx, context.DeadlineExceeded)
	}
	a.cancel()
	a.ctx, a.cancel = a.caller, nil
	return err
}

// restart tells every Starter among a's guards that the attempt starts now.
func (a *Attempt) restart() {
	s, first := a.stack, 0
	if s.picker != nil {
		first = 1 // the pick's Permit comes before the guards'
		if st, ok := a.permits[0].guard.(Starter); ok {
			a.permits[0] = st.Started(a.permits[0])
		}
	}
	for _, i := range s.starters {
		p := a.at(first + i)
		*p = s.guards[i].(Starter).Started(*p)
	}
}

// Restart tells the guards of an entered attempt that keep a clock (a
// breaker's slow-call threshold) that the attempt really starts now. Enter
// does so once every guard of its Stack has admitted the attempt; call
// Restart when the attempt then waited for something else before it could
// start — the admission of another Stack, as a stream judged by a breaker
// in one Stack and held by a bulkhead in another — so that the wait is not
// charged to the endpoint. It must not run concurrently with Done.
func (a *Attempt) Restart() {
	if a.stack != nil && !a.ended.Load() {
		a.restart()
	}
}

// maxPicks is how many instances an attempt over a Picker asks the guards
// to admit before it takes the refusal for an answer.
const maxPicks = 3

// A Waiter is a refusal that may have come after the attempt waited for
// admission (a bulkhead's queue): Waited reports whether it did. An
// attempt over a Picker passes a refused instance over for another only
// when the refusal came at once; a wait already spent is not spent again
// elsewhere.
type Waiter interface {
	Waited() bool
}

// waited reports whether err is a refusal that came after a wait.
func waited(err error) bool {
	var w Waiter
	return errors.As(err, &w) && w.Waited()
}

// A WaitingGuard is a Guard whose admission may wait: a bulkhead's queue.
// A Stack holds a call's total deadline as a time, off the context (see
// Stack.Deadline), so a wait on the context alone could outlast it: the
// Stack admits its attempts through EnterUntil instead, when the call has
// a total deadline. EnterUntil is Enter with the wait ended at until (zero:
// unbounded), by a refusal matching context.DeadlineExceeded when until
// ended it; the Stack returns the total deadline's *timeout.Error then.
type WaitingGuard interface {
	Guard
	EnterUntil(ctx context.Context, key string, until time.Time) (Permit, error)
}

// enterGuards enters every guard on key, outermost first, putting their
// permits in a.
func (s *Stack) enterGuards(ctx context.Context, key string, total time.Time, a *Attempt) error {
	for i, g := range s.guards {
		var p Permit
		var err error
		if s.waiting != nil && s.waiting[i] != nil && !total.IsZero() {
			p, err = s.waiting[i].EnterUntil(ctx, key, total)
		} else {
			p, err = g.Enter(ctx, key)
		}
		if err != nil {
			return err
		}
		a.put(p)
	}
	return nil
}

func (a *Attempt) put(p Permit) {
	if a.n < inlinePermits {
		a.permits[a.n] = p
	} else {
		a.extra = append(a.extra, p)
	}
	a.n++
}

func (a *Attempt) at(i int) *Permit {
	if i < inlinePermits {
		return &a.permits[i]
	}
	return &a.extra[i-inlinePermits]
}

// release reports o to every permit, innermost first. When a guard's
// Release panics (a user callback inside it), the rest are still released
// before the panic goes on.
func (a *Attempt) release(o Outcome) {
	defer func() {
		if a.n > 0 {
			a.release(o)
		}
	}()
	for a.n > 0 {
		a.n--
		p := a.at(a.n)
		q := *p
		*p = Permit{}
		q.Done(o)
	}
}

// Context returns the attempt's context: the one given to Enter, bounded by
// the attempt deadline. Run the attempt under it.
func (a *Attempt) Context() context.Context { return a.ctx }

// Err returns err annotated as a *timeout.Error when our attempt or total
// deadline ended the attempt; otherwise err unchanged.
func (a *Attempt) Err(err error) error { return timeout.Wrap(a.ctx, err) }

// Done ends the attempt with outcome o: it records a fired attempt
// deadline, cancels the attempt's context and releases every guard,
// innermost first. Only the first call has any effect; a concurrent second
// call returns at once, possibly before the first has finished releasing.
func (a *Attempt) Done(o Outcome) {
	if !a.ended.CompareAndSwap(false, true) {
		return
	}
	if a.cancel != nil {
		if t := a.stack.timeout; !t.Observe(a.ctx, timeout.Attempt) {
			t.Observe(a.ctx, timeout.Total)
		}
		a.cancel()
	}
	a.release(o)
}

// Finish ends an attempt whose whole result is err: it annotates err as
// Err does, classifies it with the Stack's Classifier, calls Done with that
// outcome, and returns the outcome and the annotated error. When the
// Classifier panics, the attempt is ended as Ignored (its outcome is
// unknown) before the panic goes on.
func (a *Attempt) Finish(err error) (Outcome, error) {
	err = a.Err(err)
	classified := false
	defer func() {
		if !classified { // the Classifier panicked: the outcome is unknown
			a.Done(Ignored)
		}
	}()
	o := a.stack.Classify(a.caller, err)
	classified = true
	a.Done(o)
	return o, err
}

type (
	attemptKey    struct{}
	idempotentKey struct{}
)

// AttemptNumber returns the number of the attempt that ctx belongs to under
// Do: 0 for the first, 1 for the first retry or hedge, and so on. It returns
// 0 for a context that did not come from Do.
func AttemptNumber(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}

// WithAttemptNumber returns ctx carrying attempt number n, for adapters
// that run attempts themselves; n == 0 returns ctx unchanged.
func WithAttemptNumber(ctx context.Context, n int) context.Context {
	if n == 0 {
		return ctx
	}
	return context.WithValue(ctx, attemptKey{}, n)
}

// Idempotent returns ctx marked as belonging to a call that is safe to
// repeat, so that Do may retry or hedge it.
func Idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// IsIdempotent reports whether ctx was marked by Idempotent.
func IsIdempotent(ctx context.Context) bool {
	v, _ := ctx.Value(idempotentKey{}).(bool)
	return v
}

// PushbackOf returns the wait a server asked for, carried by err or any
// error it wraps through a RetryAfter() time.Duration method; zero when none.
func PushbackOf(err error) time.Duration {
	if err == nil {
		return 0
	}
	var p interface{ RetryAfter() time.Duration }
	if errors.As(err, &p) {
		return p.RetryAfter()
	}
	return 0
}

// Do runs call through s on key (the endpoint or route the guards are kept
// per): total deadline, then the Wrapper, then every guard, then the attempt
// deadline. It returns the result of the attempt the Wrapper chose, or of
// the only attempt when there is no Wrapper. The Wrapper repeats the call only when it is idempotent:
// the Stack says so (Config.Idempotent) or ctx is marked by Idempotent.
// Errors of ours keep their causes: a fired deadline is a *timeout.Error
// matching context.DeadlineExceeded, a refusal matches ErrRejected. A panic
// in call (or runtime.Goexit) is recorded as a Failure and goes on.
//
// The context call gets ends when its attempt is over, that is before Do
// returns: call must finish with it, and return nothing that still reads
// from it — an *http.Response's body, a stream — or read that inside call.
// (httpclient and grpcclient, which hand such things back, keep an
// attempt's context alive until its body or stream ends.)
func Do[T any](ctx context.Context, s *Stack, key string, call func(context.Context) (T, error)) (T, error) {
	total := s.Deadline(ctx)
	if s.retry == nil {
		v, _, _, err := once(ctx, s, key, total, "", call)
		return v, err
	}
	if s.Concurrent() {
		// The winning attempt's context is left alive: this call is over
		// when Do returns.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
	}
	d := &doCall[T]{s: s, key: key, total: total, call: call}
	w, err := s.retry.Run(ctx, Call{Idempotent: s.idempotent || IsIdempotent(ctx), Attempts: d, Deadline: total})
	return d.result(w), err
}

// doCall keeps the results of one Do's attempts, which a hedging Wrapper
// may run at once.
type doCall[T any] struct {
	s     *Stack
	key   string
	total time.Time
	call  func(context.Context) (T, error)

	mu    sync.Mutex
	first T      // attempt 0's result: most calls have no other
	more  []T    // attempt n's at more[n-1]
	last  string // the endpoint of the latest attempt, for the next to avoid
}

// Attempt runs attempt n: a doCall is the Attempter of its call.
func (d *doCall[T]) Attempt(ctx context.Context, n int) Result {
	d.mu.Lock()
	avoid := d.last
	d.mu.Unlock()
	v, o, addr, err := once(WithAttemptNumber(ctx, n), d.s, d.key, d.total, avoid, d.call)
	d.mu.Lock()
	if addr != "" {
		d.last = addr
	}
	if n == 0 {
		d.first = v
	} else {
		for len(d.more) < n {
			var zero T
			d.more = append(d.more, zero)
		}
		d.more[n-1] = v
	}
	d.mu.Unlock()
	return Result{Outcome: o, Err: err, Pushback: PushbackOf(err)}
}

func (d *doCall[T]) result(n int) T {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n == 0 {
		return d.first
	}
	if n > 0 && n <= len(d.more) {
		return d.more[n-1]
	}
	var zero T
	return zero
}

// once runs one attempt of call through the guards and the attempt deadline.
func once[T any](ctx context.Context, s *Stack, key string, total time.Time, avoid string, call func(context.Context) (T, error)) (v T, o Outcome, endpoint string, err error) {
	var a Attempt
	if err := s.EnterBy(ctx, key, total, avoid, &a); err != nil {
		return v, Ignored, "", err
	}
	// Not recover(): it would miss runtime.Goexit and lose the panic's
	// stack. A call that did not return normally is the endpoint's Failure.
	returned := false
	defer func() {
		if !returned {
			a.Done(Failure)
		}
	}()
	cctx := a.ctx
	if a.endpoint != "" {
		cctx = context.WithValue(cctx, endpointKey{}, a.endpoint)
	}
	v, err = call(cctx)
	returned = true
	o, err = a.Finish(err)
	return v, o, a.endpoint, err
}
