package bulwark_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/retry"
	"github.com/bulwarkrpc/bulwark/timeout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Guard double that logs every Enter and Release into a
// shared journal, and refuses when told to.
type recorder struct {
	name    string
	journal *journal
	refuse  error
}

type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	j.entries = append(j.entries, s)
	j.mu.Unlock()
}

func (j *journal) String() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.entries, " ")
}

func (r *recorder) Enter(ctx context.Context, key string) (bulwark.Permit, error) {
	if r.refuse != nil {
		r.journal.add(r.name + ":refuse")
		return bulwark.Permit{}, r.refuse
	}
	r.journal.add(r.name + ":enter(" + key + ")")
	return bulwark.NewPermit(r, r, 7), nil
}

func (r *recorder) Release(p bulwark.Permit, o bulwark.Outcome) {
	if p.Ref() != r || p.Start() != 7 {
		panic("permit does not carry what Enter put in it")
	}
	r.journal.add(r.name + ":" + o.String())
}

func newStack(t *testing.T, cfg bulwark.Config) *bulwark.Stack {
	t.Helper()
	s, err := bulwark.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDoOrderAndOutcomes(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		call    func(context.Context) (int, error)
		want    string
		wantErr error
	}{
		{"success", func(context.Context) (int, error) { return 42, nil },
			"outer:enter(k) inner:enter(k) inner:success outer:success", nil},
		{"failure", func(context.Context) (int, error) { return 0, boom },
			"outer:enter(k) inner:enter(k) inner:failure outer:failure", boom},
		{"cancelled by us", func(context.Context) (int, error) { return 0, context.Canceled },
			"outer:enter(k) inner:enter(k) inner:ignored outer:ignored", context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{
				&recorder{name: "outer", journal: j}, &recorder{name: "inner", journal: j}}})
			v, err := bulwark.Do(context.Background(), s, "k", tt.call)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && v != 42 {
				t.Fatalf("v = %d, want 42", v)
			}
			if got := j.String(); got != tt.want {
				t.Fatalf("journal:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestRefusalReleasesOuterGuardsAsIgnored(t *testing.T) {
	j := &journal{}
	full := bulwark.RejectionError("inner: full")
	s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{
		&recorder{name: "outer", journal: j}, &recorder{name: "inner", journal: j, refuse: full}}})
	called := false
	_, err := bulwark.Do(context.Background(), s, "k", func(context.Context) (int, error) {
		called = true
		return 0, nil
	})
	if !errors.Is(err, full) || !errors.Is(err, bulwark.ErrRejected) {
		t.Fatalf("err = %v, want the inner refusal", err)
	}
	if called {
		t.Fatal("the call ran although a guard refused it")
	}
	if got, want := j.String(), "outer:enter(k) inner:refuse outer:ignored"; got != want {
		t.Fatalf("journal:\n got %s\nwant %s", got, want)
	}
}

func TestDoneContextEntersNothing(t *testing.T) {
	j := &journal{}
	s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{&recorder{name: "g", journal: j}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := bulwark.Do(ctx, s, "k", func(context.Context) (int, error) { return 1, nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if got := j.String(); got != "" {
		t.Fatalf("journal = %q, want nothing entered", got)
	}
}

func TestAttemptDeadlineIsAFailureOfTheEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		to, _ := timeout.New(timeout.Config{Total: time.Minute, Attempt: time.Second})
		s := newStack(t, bulwark.Config{Timeout: to, Guards: []bulwark.Guard{&recorder{name: "g", journal: j}}})
		_, err := bulwark.Do(context.Background(), s, "k", func(ctx context.Context) (int, error) {
			<-ctx.Done() // an endpoint that never answers
			return 0, ctx.Err()
		})
		var te *timeout.Error
		if !errors.As(err, &te) || te.Scope != timeout.Attempt {
			t.Fatalf("err = %v, want a *timeout.Error of the attempt", err)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v does not match context.DeadlineExceeded", err)
		}
		if got, want := j.String(), "g:enter(k) g:failure"; got != want {
			t.Fatalf("journal = %s, want %s", got, want)
		}
	})
}

func TestCallerDeadlineIsIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		to, _ := timeout.New(timeout.Config{Total: time.Minute, Attempt: 10 * time.Second})
		s := newStack(t, bulwark.Config{Timeout: to, Guards: []bulwark.Guard{&recorder{name: "g", journal: j}}})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := bulwark.Do(ctx, s, "k", func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		if err != context.DeadlineExceeded {
			t.Fatalf("err = %#v, want the caller's plain context.DeadlineExceeded", err)
		}
		if got, want := j.String(), "g:enter(k) g:ignored"; got != want {
			t.Fatalf("journal = %s, want %s", got, want)
		}
	})
}

func TestTotalDeadlineWrapsTheError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to, _ := timeout.New(timeout.Config{Total: time.Second})
		s := newStack(t, bulwark.Config{Timeout: to})
		_, err := bulwark.Do(context.Background(), s, "k", func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		var te *timeout.Error
		if !errors.As(err, &te) || te.Scope != timeout.Total {
			t.Fatalf("err = %v, want a *timeout.Error of the total deadline", err)
		}
	})
}

func TestPanicIsRecordedThenRepanics(t *testing.T) {
	j := &journal{}
	s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{&recorder{name: "g", journal: j}}})
	defer func() {
		if r := recover(); r != "kaboom" {
			t.Fatalf("recovered %v, want the caller's panic value", r)
		}
		if got, want := j.String(), "g:enter(k) g:failure"; got != want {
			t.Fatalf("journal = %s, want %s", got, want)
		}
	}()
	_, _ = bulwark.Do(context.Background(), s, "k", func(context.Context) (int, error) { panic("kaboom") })
	t.Fatal("Do returned although the call panicked")
}

func TestAttemptDoneOnlyOnce(t *testing.T) {
	var releases atomic.Int32
	g := &counting{releases: &releases}
	s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{g}})
	for range 100 {
		var a bulwark.Attempt
		if err := s.Enter(context.Background(), "k", &a); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { a.Done(bulwark.Success) })
		}
		wg.Wait()
	}
	if got := releases.Load(); got != 100 {
		t.Fatalf("releases = %d, want 100 (one per attempt)", got)
	}
}

type counting struct{ releases *atomic.Int32 }

func (c *counting) Enter(context.Context, string) (bulwark.Permit, error) {
	return bulwark.NewPermit(c, nil, 0), nil
}
func (c *counting) Release(bulwark.Permit, bulwark.Outcome) { c.releases.Add(1) }

func TestManyGuardsBeyondInlineCapacity(t *testing.T) {
	j := &journal{}
	var guards []bulwark.Guard
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		guards = append(guards, &recorder{name: n, journal: j})
	}
	s := newStack(t, bulwark.Config{Guards: guards})
	var a bulwark.Attempt
	for round := range 2 { // the Attempt is reused after Done
		if err := s.Enter(context.Background(), "k", &a); err != nil {
			t.Fatal(err)
		}
		a.Done(bulwark.Success)
		want := "a:enter(k) b:enter(k) c:enter(k) d:enter(k) e:enter(k) f:enter(k) " +
			"f:success e:success d:success c:success b:success a:success"
		if got := j.String(); got != want {
			t.Fatalf("round %d journal:\n got %s\nwant %s", round, got, want)
		}
		j.entries = nil
	}
}

func TestNewRejectsNilGuard(t *testing.T) {
	_, err := bulwark.New(bulwark.Config{Guards: []bulwark.Guard{&counting{}, nil}})
	if err == nil || !strings.Contains(err.Error(), "Config.Guards[1]") {
		t.Fatalf("err = %v, want one naming Config.Guards[1]", err)
	}
}

// A nil pointer in an interface field (a constructor's result taken
// without its error) is refused by New, naming the field, rather than
// panicking at the first call.
func TestNewRejectsNilPointers(t *testing.T) {
	for _, tt := range []struct {
		cfg  bulwark.Config
		want string
	}{
		{bulwark.Config{Guards: []bulwark.Guard{&counting{}, (*breaker.Set)(nil)}}, "Config.Guards[1] is a nil *breaker.Set"},
		{bulwark.Config{Picker: (*discovery.Balancer)(nil)}, "Config.Picker is a nil *discovery.Balancer"},
		{bulwark.Config{Retry: (*retry.Retry)(nil)}, "Config.Retry is a nil *retry.Retry"},
	} {
		if _, err := bulwark.New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New: err = %v, want one saying %q", err, tt.want)
		}
	}
}

// retrier is a Wrapper double: up to max sequential attempts, retrying failures.
type retrier struct{ max int }

func (r retrier) Run(ctx context.Context, c bulwark.Call) (int, error) {
	var res bulwark.Result
	for n := range r.max {
		if res = c.Attempt(ctx, n); res.Outcome != bulwark.Failure || !c.Idempotent {
			return n, res.Err
		}
	}
	return r.max - 1, res.Err
}

func TestDoWithWrapperRetriesThroughTheGuards(t *testing.T) {
	j := &journal{}
	s := newStack(t, bulwark.Config{Retry: retrier{max: 3}, Idempotent: true,
		Guards: []bulwark.Guard{&recorder{name: "g", journal: j}}})
	var seen []int
	v, err := bulwark.Do(context.Background(), s, "k", func(ctx context.Context) (string, error) {
		n := bulwark.AttemptNumber(ctx)
		seen = append(seen, n)
		if n < 2 {
			return "bad", errors.New("503")
		}
		return "good", nil
	})
	if err != nil || v != "good" {
		t.Fatalf("Do = %q, %v; want good, nil", v, err)
	}
	if len(seen) != 3 || seen[0] != 0 || seen[1] != 1 || seen[2] != 2 {
		t.Fatalf("attempt numbers seen = %v, want [0 1 2]", seen)
	}
	want := "g:enter(k) g:failure g:enter(k) g:failure g:enter(k) g:success"
	if got := j.String(); got != want {
		t.Fatalf("journal:\n got %s\nwant %s", got, want)
	}
}

// racer is a hedging Wrapper double: it starts two attempts at once,
// returns the first success and cancels the other, waiting for both.
type racer struct{}

func (racer) Run(ctx context.Context, c bulwark.Call) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		n   int
		err error
	}
	results := make(chan result, 2)
	for n := range 2 {
		go func() {
			results <- result{n, c.Attempt(ctx, n).Err}
		}()
	}
	first := <-results
	cancel()
	second := <-results
	if first.err != nil {
		return second.n, second.err
	}
	return first.n, first.err
}

func TestDoWithConcurrentAttemptsReturnsTheWinnersResult(t *testing.T) {
	j := &journal{}
	s := newStack(t, bulwark.Config{Retry: racer{}, Guards: []bulwark.Guard{&recorder{name: "g", journal: j}}})
	slowStarted := make(chan struct{})
	v, err := bulwark.Do(context.Background(), s, "k", func(ctx context.Context) (int, error) {
		if bulwark.AttemptNumber(ctx) == 0 {
			close(slowStarted)
			<-ctx.Done() // the slow one: loses and is cancelled
			return -1, ctx.Err()
		}
		<-slowStarted
		return 1, nil
	})
	if err != nil || v != 1 {
		t.Fatalf("Do = %d, %v; want the winner's 1, nil", v, err)
	}
	// The loser was cancelled by the wrapper, not by the caller: Ignored, never a failure.
	got := j.String()
	if strings.Count(got, "g:success") != 1 || strings.Count(got, "g:ignored") != 1 || strings.Contains(got, "failure") {
		t.Fatalf("journal = %s, want one success and one ignored", got)
	}
}

func TestDoPassThroughAllocatesNothing(t *testing.T) {
	s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{&counting{releases: new(atomic.Int32)}}})
	ctx := context.Background()
	call := func(context.Context) (int, error) { return 1, nil }
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := bulwark.Do(ctx, s, "k", call); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("got %v allocs per Do, want 0", allocs)
	}
}

func TestGoexitInCallIsReleasedAsFailure(t *testing.T) {
	j := &journal{}
	s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{&recorder{name: "g", journal: j}}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = bulwark.Do(context.Background(), s, "k", func(context.Context) (int, error) {
			runtime.Goexit() // what t.FailNow does in a helper
			return 0, nil
		})
	}()
	<-done
	if got, want := j.String(), "g:enter(k) g:failure"; got != want {
		t.Fatalf("journal = %s, want %s", got, want)
	}
}

func TestOuterStacksDeadlineIsTheCallersForTheInnerStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		outerTO, _ := timeout.New(timeout.Config{Total: time.Second})
		innerTO, _ := timeout.New(timeout.Config{Total: time.Hour})
		outer := newStack(t, bulwark.Config{Timeout: outerTO, Guards: []bulwark.Guard{&recorder{name: "outer", journal: j}}})
		inner := newStack(t, bulwark.Config{Timeout: innerTO, Guards: []bulwark.Guard{&recorder{name: "inner", journal: j}}})
		_, err := bulwark.Do(context.Background(), outer, "k", func(ctx context.Context) (int, error) {
			return bulwark.Do(ctx, inner, "k", func(ctx context.Context) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			})
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a deadline", err)
		}
		// For the inner stack the outer deadline is its caller's: Ignored.
		// For the outer stack it is its own: a Failure of what it called.
		want := "outer:enter(k) inner:enter(k) inner:ignored outer:failure"
		if got := j.String(); got != want {
			t.Fatalf("journal:\n got %s\nwant %s", got, want)
		}
	})
}

// panicky is a Guard whose Enter or Release panics, as a user callback
// inside a real guard might.
type panicky struct {
	journal      *journal
	enter, leave bool
}

func (p *panicky) Enter(context.Context, string) (bulwark.Permit, error) {
	if p.enter {
		panic("enter")
	}
	return bulwark.NewPermit(p, nil, 0), nil
}

func (p *panicky) Release(bulwark.Permit, bulwark.Outcome) {
	p.journal.add("panicky:release")
	if p.leave {
		panic("release")
	}
}

func TestPanickingGuardLosesNothing(t *testing.T) {
	for _, tt := range []struct {
		name string
		g    *panicky
		want string
	}{
		{"in Enter", &panicky{enter: true}, "outer:enter(k) outer:ignored"},
		{"in Release", &panicky{leave: true}, "outer:enter(k) panicky:release outer:success"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			tt.g.journal = j
			s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{&recorder{name: "outer", journal: j}, tt.g}})
			func() {
				defer func() {
					if recover() == nil {
						t.Fatal("the guard's panic was swallowed")
					}
				}()
				_, _ = bulwark.Do(context.Background(), s, "k", func(context.Context) (int, error) { return 1, nil })
			}()
			if got := j.String(); got != tt.want {
				t.Fatalf("journal:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEnterAnAttemptInUseIsRefused(t *testing.T) {
	var releases atomic.Int32
	s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{&counting{releases: &releases}}})
	var a bulwark.Attempt
	if err := s.Enter(context.Background(), "k", &a); err != nil {
		t.Fatal(err)
	}
	if err := s.Enter(context.Background(), "k", &a); !errors.Is(err, bulwark.ErrAttemptInUse) {
		t.Fatalf("second Enter = %v, want ErrAttemptInUse", err)
	}
	a.Done(bulwark.Success)
	if got := releases.Load(); got != 1 {
		t.Fatalf("releases = %d, want 1: the first entry's permit survived the refused second", got)
	}
	if err := s.Enter(context.Background(), "k", &a); err != nil {
		t.Fatalf("Enter after Done = %v, want nil", err)
	}
	a.Done(bulwark.Success)
}

// starter records when Started is called: after every guard admitted.
type starter struct{ recorder }

func (s *starter) Enter(ctx context.Context, key string) (bulwark.Permit, error) {
	s.journal.add(s.name + ":enter(" + key + ")")
	return bulwark.NewPermit(s, s, 0), nil
}

func (s *starter) Release(p bulwark.Permit, o bulwark.Outcome) {
	if p.Start() != 7 {
		panic("Started's permit was not the one released")
	}
	s.journal.add(s.name + ":" + o.String())
}

func (s *starter) Started(p bulwark.Permit) bulwark.Permit {
	s.journal.add(s.name + ":started")
	return bulwark.NewPermit(s, s, 7)
}

func TestStartersAreToldAfterEveryGuardAdmitted(t *testing.T) {
	j := &journal{}
	st := &starter{recorder{name: "breaker", journal: j}}
	s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{st, &recorder{name: "bulkhead", journal: j}}})
	if _, err := bulwark.Do(context.Background(), s, "k", func(context.Context) (int, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	want := "breaker:enter(k) bulkhead:enter(k) breaker:started bulkhead:success breaker:success"
	if got := j.String(); got != want {
		t.Fatalf("journal:\n got %s\nwant %s", got, want)
	}
}

// pickRR is a Picker double: round robin over addrs, skipping avoid.
type pickRR struct {
	addrs   []string
	next    atomic.Int32
	journal *journal
}

func (p *pickRR) Enter(ctx context.Context, key string) (bulwark.Permit, error) {
	_, pm, err := p.Pick(ctx, key, "")
	return pm, err
}

func (p *pickRR) Pick(_ context.Context, key, avoid string) (string, bulwark.Permit, error) {
	if len(p.addrs) == 0 {
		return "", bulwark.Permit{}, bulwark.ErrNoEndpoint
	}
	for range len(p.addrs) {
		a := p.addrs[int(p.next.Add(1)-1)%len(p.addrs)]
		if a != avoid || len(p.addrs) == 1 {
			p.journal.add("pick(" + key + ")=" + a)
			return a, bulwark.NewPermit(p, nil, 0), nil
		}
	}
	return "", bulwark.Permit{}, bulwark.ErrNoEndpoint
}

func (p *pickRR) Release(_ bulwark.Permit, o bulwark.Outcome) { p.journal.add("pick:" + o.String()) }

func TestPickerChoosesTheEndpointAndRetriesGoElsewhere(t *testing.T) {
	j := &journal{}
	picker := &pickRR{addrs: []string{"10.0.0.1:80", "10.0.0.2:80"}, journal: j}
	s := newStack(t, bulwark.Config{Picker: picker, Retry: retrier{max: 2}, Idempotent: true,
		Guards: []bulwark.Guard{&recorder{name: "breaker", journal: j}}})
	var called []string
	_, err := bulwark.Do(context.Background(), s, "users", func(ctx context.Context) (int, error) {
		called = append(called, bulwark.EndpointOf(ctx))
		if len(called) == 1 {
			return 0, errors.New("refused")
		}
		return 1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(called) != 2 || called[0] == called[1] {
		t.Fatalf("endpoints called %v, want the retry on the other one", called)
	}
	want := "pick(users)=10.0.0.1:80 breaker:enter(10.0.0.1:80) breaker:failure pick:failure " +
		"pick(users)=10.0.0.2:80 breaker:enter(10.0.0.2:80) breaker:success pick:success"
	if got := j.String(); got != want {
		t.Fatalf("journal:\n got %s\nwant %s", got, want)
	}

	empty := newStack(t, bulwark.Config{Picker: &pickRR{journal: j}})
	if _, err := bulwark.Do(context.Background(), empty, "users", func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, bulwark.ErrNoEndpoint) || !errors.Is(err, bulwark.ErrRejected) {
		t.Fatalf("no endpoint: got %v, want ErrNoEndpoint", err)
	}
}

// refuseKeys is a Guard double that refuses the keys it is given (as an
// open breaker or a full bulkhead of that endpoint would) and admits the
// rest.
type refuseKeys struct {
	recorder
	refused map[string]bool
}

func (r *refuseKeys) Enter(ctx context.Context, key string) (bulwark.Permit, error) {
	if r.refused[key] {
		r.journal.add(r.name + ":refuse(" + key + ")")
		return bulwark.Permit{}, bulwark.RejectionError("refused " + key)
	}
	r.journal.add(r.name + ":enter(" + key + ")")
	return bulwark.NewPermit(r, &r.recorder, 7), nil
}

func (r *refuseKeys) Release(p bulwark.Permit, o bulwark.Outcome) {
	r.journal.add(r.name + ":" + o.String())
}

// An instance whose guards refuse the attempt is passed over for another:
// its pick ends Ignored, and the attempt runs on the next instance. When
// every instance tried refuses, the last refusal is the answer, after at
// most three picks.
func TestRefusedInstanceIsPassedOver(t *testing.T) {
	j := &journal{}
	picker := &pickRR{addrs: []string{"a:80", "b:80", "c:80"}, journal: j}
	brk := &refuseKeys{recorder: recorder{name: "breaker", journal: j}, refused: map[string]bool{"a:80": true}}
	s := newStack(t, bulwark.Config{Picker: picker, Guards: []bulwark.Guard{brk}})
	var called string
	if _, err := bulwark.Do(context.Background(), s, "users", func(ctx context.Context) (int, error) {
		called = bulwark.EndpointOf(ctx)
		return 1, nil
	}); err != nil {
		t.Fatalf("one instance refusing of three: %v", err)
	}
	if called != "b:80" {
		t.Fatalf("the call ran on %q, want b:80", called)
	}
	want := "pick(users)=a:80 breaker:refuse(a:80) pick:ignored pick(users)=b:80 breaker:enter(b:80) breaker:success pick:success"
	if got := j.String(); got != want {
		t.Fatalf("journal:\n got %s\nwant %s", got, want)
	}

	j.entries = nil
	brk.refused = map[string]bool{"a:80": true, "b:80": true, "c:80": true, "d:80": true}
	picker.addrs = []string{"a:80", "b:80", "c:80", "d:80"}
	picker.next.Store(0)
	_, err := bulwark.Do(context.Background(), s, "users", func(context.Context) (int, error) { return 1, nil })
	if !errors.Is(err, bulwark.ErrRejected) || !strings.Contains(err.Error(), "c:80") {
		t.Fatalf("every instance refusing: got %v, want the third refusal", err)
	}
	if n := strings.Count(j.String(), "pick(users)"); n != 3 {
		t.Fatalf("journal %s: %d picks, want 3", j, n)
	}
}

// holding admits every attempt and counts the permits it holds.
type holding struct{ held atomic.Int64 }

func (g *holding) Enter(context.Context, string) (bulwark.Permit, error) {
	g.held.Add(1)
	return bulwark.NewPermit(g, g, 0), nil
}
func (g *holding) Release(bulwark.Permit, bulwark.Outcome) { g.held.Add(-1) }

// waitedRefusal is a refusal after a wait, as a bulkhead's after MaxWait.
type waitedRefusal struct{}

func (waitedRefusal) Error() string        { return "refused after a wait" }
func (waitedRefusal) Is(target error) bool { return target == bulwark.ErrRejected }
func (waitedRefusal) Waited() bool         { return true }

// refuseOnce refuses the first attempt it sees with err, then admits.
type refuseOnce struct {
	holding
	err   error
	calls atomic.Int32
}

func (g *refuseOnce) Enter(ctx context.Context, key string) (bulwark.Permit, error) {
	if g.calls.Add(1) == 1 {
		return bulwark.Permit{}, g.err
	}
	return g.holding.Enter(ctx, key)
}

// Passing over a refused instance loses no permit, however many guards
// (more than an Attempt keeps inline) were entered before the refusal; a
// refusal that came after a wait is the answer; a Picker that names a
// refused instance again ends the search.
func TestPassingOverLosesNothingAndStops(t *testing.T) {
	t.Run("many guards", func(t *testing.T) {
		gs := []*holding{{}, {}, {}, {}}
		last := &refuseOnce{err: bulwark.RejectionError("full")}
		picker := &pickRR{addrs: []string{"a:80", "b:80"}, journal: &journal{}}
		s := newStack(t, bulwark.Config{Picker: picker, Guards: []bulwark.Guard{gs[0], gs[1], gs[2], gs[3], last}})
		var a bulwark.Attempt
		if err := s.Enter(context.Background(), "svc", &a); err != nil {
			t.Fatal(err)
		}
		a.Done(bulwark.Success)
		for i, g := range append(gs, &last.holding) {
			if n := g.held.Load(); n != 0 {
				t.Errorf("guard %d holds %d permits after Done, want 0", i, n)
			}
		}
	})
	t.Run("refused after a wait", func(t *testing.T) {
		j := &journal{}
		g := &refuseOnce{err: waitedRefusal{}}
		s := newStack(t, bulwark.Config{Picker: &pickRR{addrs: []string{"a:80", "b:80"}, journal: j}, Guards: []bulwark.Guard{g}})
		var a bulwark.Attempt
		if err := s.Enter(context.Background(), "svc", &a); !errors.Is(err, waitedRefusal{}) {
			t.Fatalf("Enter = %v, want the refusal that came after a wait", err)
		}
		if got := j.String(); got != "pick(svc)=a:80 pick:ignored" {
			t.Fatalf("journal %q, want one pick only", got)
		}
	})
	t.Run("the same instance again", func(t *testing.T) {
		j := &journal{}
		brk := &refuseKeys{recorder: recorder{name: "breaker", journal: j}, refused: map[string]bool{"a:80": true}}
		s := newStack(t, bulwark.Config{Picker: &pickRR{addrs: []string{"a:80"}, journal: j}, Guards: []bulwark.Guard{brk}})
		var a bulwark.Attempt
		if err := s.Enter(context.Background(), "svc", &a); !errors.Is(err, bulwark.ErrRejected) {
			t.Fatalf("Enter = %v, want the instance's refusal", err)
		}
		want := "pick(svc)=a:80 breaker:refuse(a:80) pick:ignored pick(svc)=a:80 pick:ignored"
		if got := j.String(); got != want {
			t.Fatalf("journal:\n got %s\nwant %s", got, want)
		}
	})
}

// Restart tells the Starters of an entered attempt again, and an ended
// attempt's not at all.
func TestRestartTellsTheStartersAgain(t *testing.T) {
	j := &journal{}
	st := &starter{recorder{name: "breaker", journal: j}}
	s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{st}})
	var a bulwark.Attempt
	if err := s.Enter(context.Background(), "k", &a); err != nil {
		t.Fatal(err)
	}
	a.Restart()
	a.Done(bulwark.Success)
	a.Restart()
	want := "breaker:enter(k) breaker:started breaker:started breaker:success"
	if got := j.String(); got != want {
		t.Fatalf("journal:\n got %s\nwant %s", got, want)
	}
}

// An attempt that waited in a bulkhead's queue until the call's total
// deadline had passed never reached the endpoint: it is refused with the
// total deadline's error, and counts against nobody.
func TestQueuedPastTheTotalDeadlineIsNoFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		to, _ := timeout.New(timeout.Config{Total: time.Second})
		blk, err := bulkhead.New(bulkhead.Config{Limit: 1, MaxQueue: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer blk.Close()
		s := newStack(t, bulwark.Config{Timeout: to, Guards: []bulwark.Guard{&recorder{name: "brk", journal: j}, blk}})
		held, err := blk.Enter(context.Background(), "k")
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			called bool
			err    error
		}
		done := make(chan result, 1)
		go func() {
			called := false
			_, err := bulwark.Do(context.Background(), s, "k", func(ctx context.Context) (int, error) {
				called = true
				return 0, ctx.Err()
			})
			done <- result{called, err}
		}()
		synctest.Wait() // queued behind held
		time.Sleep(2 * time.Second)
		held.Done(bulwark.Success)
		r := <-done
		var te *timeout.Error
		if !errors.As(r.err, &te) || te.Scope != timeout.Total {
			t.Fatalf("err = %v, want the total deadline's *timeout.Error", r.err)
		}
		if r.called {
			t.Error("the call ran with no time left")
		}
		if got, want := j.String(), "brk:enter(k) brk:ignored"; got != want {
			t.Fatalf("journal = %s, want %s", got, want)
		}
		if got := blk.InFlight(); got != 0 {
			t.Fatalf("bulkhead InFlight = %d, want 0", got)
		}
	})
}

// A Classifier that panics loses nothing: the guards are released (as
// Ignored: the outcome is unknown) and the attempt's timer is stopped
// before the panic goes on.
func TestPanickingClassifierReleasesTheGuards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		to, _ := timeout.New(timeout.Config{Attempt: time.Hour})
		s := newStack(t, bulwark.Config{Timeout: to, Guards: []bulwark.Guard{&recorder{name: "g", journal: j}},
			Classify: func(context.Context, error) bulwark.Outcome { panic("classify") }})
		var attemptCtx context.Context
		func() {
			defer func() {
				if r := recover(); r != "classify" {
					t.Fatalf("recovered %v, want the Classifier's panic", r)
				}
			}()
			_, _ = bulwark.Do(context.Background(), s, "k", func(ctx context.Context) (int, error) {
				attemptCtx = ctx
				return 0, errors.New("boom")
			})
		}()
		if got, want := j.String(), "g:enter(k) g:ignored"; got != want {
			t.Fatalf("journal = %s, want %s", got, want)
		}
		if attemptCtx.Err() == nil {
			t.Fatal("the attempt's context is still live: its timer was left armed")
		}
	})
}
