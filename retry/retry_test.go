package retry_test

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/retry"
)

var (
	errDown = errors.New("down")
	fail    = bulwark.Result{Outcome: bulwark.Failure, Err: errDown}
	success = bulwark.Result{Outcome: bulwark.Success}
)

// script is a Call double: attempt n returns results[n], or the last one
// beyond; it records when each attempt started.
type script struct {
	results []bulwark.Result
	took    time.Duration // each attempt sleeps this long (in a bubble)

	mu     sync.Mutex
	start  time.Time
	starts []time.Duration // since the script was made
	ns     []int
}

func newScript(results ...bulwark.Result) *script {
	return &script{results: results, start: time.Now()}
}

func (s *script) call(idempotent bool) bulwark.Call {
	return bulwark.Call{Idempotent: idempotent, Attempts: bulwark.AttemptFunc(s.attempt)}
}

func (s *script) attempt(ctx context.Context, n int) bulwark.Result {
	s.mu.Lock()
	s.starts = append(s.starts, time.Since(s.start))
	s.ns = append(s.ns, n)
	s.mu.Unlock()
	if s.took > 0 {
		time.Sleep(s.took)
	}
	return s.results[min(n, len(s.results)-1)]
}

func (s *script) attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ns)
}

func mustNew(t testing.TB, cfg retry.Config) *retry.Retry {
	t.Helper()
	r, err := retry.New(cfg)
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	return r
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     retry.Config
		wantErr string
	}{
		{"zero", retry.Config{}, ""},
		{"one attempt", retry.Config{MaxAttempts: 1}, ""},
		{"quantile one", retry.Config{Quantile: 1}, ""},
		{"negative attempts", retry.Config{MaxAttempts: -1}, "retry: Config.MaxAttempts is -1, want >= 0"},
		{"negative pushback", retry.Config{MaxPushback: -time.Second}, "retry: Config.MaxPushback is -1s, want >= 0"},
		{"negative quantile", retry.Config{Quantile: -0.5}, "retry: Config.Quantile is -0.5, want within [0, 1]"},
		{"quantile above one", retry.Config{Quantile: 1.5}, "Config.Quantile is 1.5"},
		{"NaN quantile", retry.Config{Quantile: math.NaN()}, "Config.Quantile is NaN"},
		{"negative expected latency", retry.Config{ExpectedLatency: -time.Second}, "retry: Config.ExpectedLatency is -1s, want >= 0"},
		{"bad backoff", retry.Config{Backoff: retry.Exponential{Base: -1}}, "retry: Config.Backoff.Base is -1ns, want >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := retry.New(tt.cfg)
			switch {
			case tt.wantErr == "" && (err != nil || r == nil):
				t.Errorf("got %v, %v, want a Retry", r, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRun covers the decisions, each on a script of results, with waits
// of zero so that only the counts matter.
func TestRun(t *testing.T) {
	pushback := func(d time.Duration) bulwark.Result {
		return bulwark.Result{Outcome: bulwark.Failure, Err: errDown, Pushback: d}
	}
	ignored := bulwark.Result{Outcome: bulwark.Ignored, Err: context.Canceled}
	tests := []struct {
		name       string
		cfg        retry.Config
		idempotent bool
		results    []bulwark.Result
		wantN      int
		wantErr    error
		wantGiveUp string // the reason counted in given_up, "" for none
	}{
		{"success at once", retry.Config{}, true, []bulwark.Result{success}, 0, nil, ""},
		{"success on retry", retry.Config{}, true, []bulwark.Result{fail, fail, success}, 2, nil, ""},
		{"attempts run out", retry.Config{}, true, []bulwark.Result{fail}, 2, errDown, "attempts"},
		{"more attempts", retry.Config{MaxAttempts: 5}, true, []bulwark.Result{fail}, 4, errDown, "attempts"},
		{"one attempt", retry.Config{MaxAttempts: 1}, true, []bulwark.Result{fail}, 0, errDown, "attempts"},
		{"not idempotent", retry.Config{}, false, []bulwark.Result{fail, success}, 0, errDown, "not_idempotent"},
		{"not idempotent, success", retry.Config{}, false, []bulwark.Result{success}, 0, nil, ""},
		{"final", retry.Config{}, true, []bulwark.Result{{Outcome: bulwark.Failure, Err: errDown, Final: true}, success}, 0, errDown, "final"},
		{"server says do not retry", retry.Config{}, true, []bulwark.Result{pushback(-1), success}, 0, errDown, "pushback"},
		{"ignored is not retried", retry.Config{}, true, []bulwark.Result{ignored, success}, 0, context.Canceled, ""},
		{"failure with nil error (an HTTP 5xx)", retry.Config{}, true, []bulwark.Result{{Outcome: bulwark.Failure}}, 2, nil, "attempts"},
		{"RetryOn", retry.Config{RetryOn: func(r bulwark.Result) bool { return r.Outcome != bulwark.Success }}, true,
			[]bulwark.Result{ignored, success}, 1, nil, ""},
		{"RetryOn refuses", retry.Config{RetryOn: func(bulwark.Result) bool { return false }}, true,
			[]bulwark.Result{fail, success}, 0, errDown, ""},
		{"budget", retry.Config{Budget: mustBudget(t, retry.BudgetConfig{Ratio: 1e-9, PerSecond: 1e-9})}, true,
			[]bulwark.Result{fail, success}, 0, errDown, "budget"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp, rd := newReader()
			cfg := tt.cfg
			cfg.Backoff, cfg.MeterProvider, cfg.Name = retry.Constant(0), mp, "svc"
			r := mustNew(t, cfg)
			s := newScript(tt.results...)
			n, err := r.Run(context.Background(), s.call(tt.idempotent))
			if n != tt.wantN || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Run: got %d, %v, want %d, %v", n, err, tt.wantN, tt.wantErr)
			}
			for i, got := range s.ns {
				if got != i {
					t.Errorf("attempt numbers: got %v, want 0, 1, 2, ...", s.ns)
					break
				}
			}
			if got := s.attempts(); got != tt.wantN+1 {
				t.Errorf("attempts: got %d, want %d", got, tt.wantN+1)
			}
			retries := points(t, rd, "bulwark.retry.retries")["bulwark.key=svc,bulwark.retry.reason=failure"]
			if retries != int64(tt.wantN) {
				t.Errorf("bulwark.retry.retries: got %d, want %d", retries, tt.wantN)
			}
			wantGiveUp := map[string]int64{}
			if tt.wantGiveUp != "" {
				wantGiveUp["bulwark.key=svc,bulwark.retry.reason="+tt.wantGiveUp] = 1
			}
			if got := points(t, rd, "bulwark.retry.given_up"); !equalMaps(got, wantGiveUp) {
				t.Errorf("bulwark.retry.given_up: got %v, want %v", got, wantGiveUp)
			}
		})
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestWaits times the waits on the bubble's clock.
func TestWaits(t *testing.T) {
	ms := time.Millisecond
	pushback := func(d time.Duration) bulwark.Result {
		return bulwark.Result{Outcome: bulwark.Failure, Err: errDown, Pushback: d}
	}
	tests := []struct {
		name       string
		cfg        retry.Config
		results    []bulwark.Result
		wantStarts []time.Duration
	}{
		{"constant", retry.Config{Backoff: retry.Constant(100 * ms)}, []bulwark.Result{fail},
			[]time.Duration{0, 100 * ms, 200 * ms}},
		{"exponential, highest draws", retry.Config{MaxAttempts: 4, Backoff: retry.Exponential{Base: 10 * ms, Rand: highest}}, []bulwark.Result{fail},
			[]time.Duration{0, 10 * ms, 30 * ms, 70 * ms}},
		{"decorrelated, highest draws", retry.Config{MaxAttempts: 4, Backoff: retry.Decorrelated{Base: 10 * ms, Rand: highest}}, []bulwark.Result{fail},
			[]time.Duration{0, 30 * ms, 120 * ms, 390 * ms}},
		{"pushback longer than the backoff", retry.Config{Backoff: retry.Constant(100 * ms)},
			[]bulwark.Result{pushback(time.Second), pushback(50 * ms), success},
			[]time.Duration{0, time.Second, 1100 * ms}},
		{"pushback capped", retry.Config{Backoff: retry.Constant(0), MaxPushback: 2 * time.Second},
			[]bulwark.Result{pushback(time.Hour), pushback(math.MaxInt64), success},
			[]time.Duration{0, 2 * time.Second, 4 * time.Second}},
		{"default cap of 30s", retry.Config{Backoff: retry.Constant(0)},
			[]bulwark.Result{pushback(time.Hour), success},
			[]time.Duration{0, 30 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := mustNew(t, tt.cfg)
				s := newScript(tt.results...)
				r.Run(context.Background(), s.call(true))
				if !equalDurations(s.starts, tt.wantStarts) {
					t.Errorf("attempts started at: got %v, want %v", s.starts, tt.wantStarts)
				}
			})
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBackoffArguments checks what a Backoff is given: the number of the
// failed attempt and the previous wait of its own (not the pushback).
func TestBackoffArguments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type call struct {
			n    int
			prev time.Duration
		}
		var calls []call
		b := retry.BackoffFunc(func(n int, prev time.Duration) time.Duration {
			calls = append(calls, call{n, prev})
			return time.Duration(n+1) * time.Millisecond
		})
		r := mustNew(t, retry.Config{MaxAttempts: 4, Backoff: b})
		s := newScript(bulwark.Result{Outcome: bulwark.Failure, Pushback: time.Second}, fail)
		r.Run(context.Background(), s.call(true))
		want := []call{{0, 0}, {1, time.Millisecond}, {2, 2 * time.Millisecond}}
		if len(calls) != len(want) {
			t.Fatalf("Backoff calls: got %v, want %v", calls, want)
		}
		for i := range want {
			if calls[i] != want[i] {
				t.Errorf("Backoff calls: got %v, want %v", calls, want)
			}
		}
	})
}

// TestDeadline checks that no retry starts when its wait and the expected
// latency of an attempt do not fit in the remaining deadline, and that
// Run then returns at once.
func TestDeadline(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		cfg      retry.Config
		deadline time.Duration
		took     time.Duration // each attempt
		feed     time.Duration // observed into the Latency beforehand, when set
		pushback time.Duration
		want     int // attempts
	}{
		{"wait fits", retry.Config{Backoff: retry.Constant(100 * ms)}, time.Second, 0, 0, 0, 3},
		{"wait does not fit", retry.Config{Backoff: retry.Constant(100 * ms)}, 150 * ms, 0, 0, 0, 2},
		{"wait longer than the deadline", retry.Config{Backoff: retry.Constant(time.Second)}, 500 * ms, 0, 0, 0, 1},
		{"pushback does not fit", retry.Config{Backoff: retry.Constant(0)}, time.Second, 0, 0, 5 * time.Second, 1},
		{"wait and expected latency do not fit",
			retry.Config{Backoff: retry.Constant(100 * ms), ExpectedLatency: 200 * ms}, 250 * ms, 0, 0, 0, 1},
		{"attempts eat the deadline",
			retry.Config{Backoff: retry.Constant(10 * ms), ExpectedLatency: 100 * ms}, 250 * ms, 100 * ms, 0, 0, 2},
		{"latency tracker",
			retry.Config{Backoff: retry.Constant(0), Latency: mustLatency(t, retry.LatencyConfig{Window: 10})}, 300 * ms, 0, 500 * ms, 0, 1},
		{"latency tracker, quantile",
			retry.Config{Backoff: retry.Constant(0), Quantile: 0.1, Latency: mustLatency(t, retry.LatencyConfig{Window: 10})}, 300 * ms, 0, 200 * ms, 0, 3},
		{"latency tracker without samples falls back on ExpectedLatency",
			retry.Config{Backoff: retry.Constant(0), ExpectedLatency: time.Second, Latency: mustLatency(t, retry.LatencyConfig{Window: 10})}, 300 * ms, 0, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mp, rd := newReader()
				cfg := tt.cfg
				cfg.MeterProvider = mp
				if tt.feed > 0 {
					for range 10 {
						cfg.Latency.Observe(tt.feed)
					}
				}
				r := mustNew(t, cfg)
				s := newScript(bulwark.Result{Outcome: bulwark.Failure, Err: errDown, Pushback: tt.pushback})
				s.took = tt.took
				ctx, cancel := context.WithTimeout(context.Background(), tt.deadline)
				defer cancel()
				start := time.Now()
				n, err := r.Run(ctx, s.call(true))
				if got := s.attempts(); got != tt.want || n != tt.want-1 || err != errDown {
					t.Fatalf("got %d attempts, Run returned %d, %v, want %d attempts, %d, %v", got, n, err, tt.want, tt.want-1, errDown)
				}
				// Returned at once after the last attempt, not at the deadline.
				if got, want := time.Since(start), s.starts[len(s.starts)-1]+tt.took; got != want {
					t.Errorf("Run returned after %v, want %v", got, want)
				}
				reason := "deadline"
				if tt.want == 3 {
					reason = "attempts"
				}
				if got := points(t, rd, "bulwark.retry.given_up")["bulwark.key=,bulwark.retry.reason="+reason]; got != 1 {
					t.Errorf("given_up %s: got %d, want 1", reason, got)
				}
			})
		})
	}
}

// TestContextDoneWhileWaiting cancels the caller during a wait: Run
// returns the last result at once.
func TestContextDoneWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mp, rd := newReader()
		r := mustNew(t, retry.Config{Backoff: retry.Constant(time.Hour), MeterProvider: mp})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := newScript(fail, success)
		type ran struct {
			n   int
			err error
		}
		done := make(chan ran)
		go func() {
			n, err := r.Run(ctx, s.call(true))
			done <- ran{n, err}
		}()
		synctest.Wait() // Run is waiting its hour
		start := time.Now()
		cancel()
		got := <-done
		if got.n != 0 || got.err != errDown || s.attempts() != 1 {
			t.Errorf("got %d, %v after %d attempts, want 0, %v after 1", got.n, got.err, s.attempts(), errDown)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Run returned %v after the cancellation, want at once", d)
		}
		if got := points(t, rd, "bulwark.retry.given_up")["bulwark.key=,bulwark.retry.reason=canceled"]; got != 1 {
			t.Errorf("given_up canceled: got %d, want 1", got)
		}
	})
}

// TestContextDoneDuringAttempt lets the deadline pass while an attempt
// runs: no retry, and the reason is the deadline.
func TestContextDoneDuringAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mp, rd := newReader()
		r := mustNew(t, retry.Config{Backoff: retry.Constant(0), MeterProvider: mp})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s := newScript(fail, success)
		s.took = 2 * time.Second
		if n, err := r.Run(ctx, s.call(true)); n != 0 || err != errDown || s.attempts() != 1 {
			t.Errorf("got %d, %v after %d attempts, want 0, %v after 1", n, err, s.attempts(), errDown)
		}
		if got := points(t, rd, "bulwark.retry.given_up")["bulwark.key=,bulwark.retry.reason=deadline"]; got != 1 {
			t.Errorf("given_up deadline: got %d, want 1", got)
		}
	})
}

// TestBudgetShared runs calls through two Retries on one Budget: each
// call earns its ratio once, retries of both draw on it.
func TestBudgetShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBudget(t, retry.BudgetConfig{PerSecond: 1e-9, Ratio: 0.5})
		r1 := mustNew(t, retry.Config{Budget: b, Backoff: retry.Constant(0), MaxAttempts: 2})
		r2 := mustNew(t, retry.Config{Budget: b, Backoff: retry.Constant(0), MaxAttempts: 2})
		var attempts int
		for i := range 10 {
			r := r1
			if i%2 == 1 {
				r = r2
			}
			s := newScript(fail)
			r.Run(context.Background(), s.call(true))
			attempts += s.attempts()
		}
		// 10 calls earn 5 retries; the first call's retry comes from its
		// own half, so 5 of the 10 calls retry.
		if attempts != 15 {
			t.Errorf("attempts: got %d, want 15 (10 calls, 5 retries)", attempts)
		}
		if b.Withdraw() {
			t.Error("after the calls: got a withdrawal, want the budget spent")
		}
	})
}

// TestMetrics checks the retry reasons and the waits recorded.
func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mp, rd := newReader()
		r := mustNew(t, retry.Config{Name: "users", Backoff: retry.Constant(100 * time.Millisecond), MaxAttempts: 4, MeterProvider: mp})
		s := newScript(fail, bulwark.Result{Outcome: bulwark.Failure, Pushback: time.Second}, fail, success)
		if n, err := r.Run(context.Background(), s.call(true)); n != 3 || err != nil {
			t.Fatalf("Run: got %d, %v, want 3, nil", n, err)
		}
		want := map[string]int64{
			"bulwark.key=users,bulwark.retry.reason=failure":  2,
			"bulwark.key=users,bulwark.retry.reason=pushback": 1,
		}
		if got := points(t, rd, "bulwark.retry.retries"); !equalMaps(got, want) {
			t.Errorf("bulwark.retry.retries: got %v, want %v", got, want)
		}
		if count, sum := histogram(t, rd, "bulwark.retry.backoff"); count != 3 || math.Abs(sum-1.2) > 1e-9 {
			t.Errorf("bulwark.retry.backoff: got %d waits totalling %vs, want 3 totalling 1.2s", count, sum)
		}
		if got := points(t, rd, "bulwark.retry.given_up"); len(got) != 0 {
			t.Errorf("bulwark.retry.given_up: got %v, want none", got)
		}

		// A Retry's own budget carries its name: 200 calls earn 140
		// retries of the 400 they ask for.
		orders := mustNew(t, retry.Config{Name: "orders", Backoff: retry.Constant(0), MeterProvider: mp})
		for range 200 {
			s := newScript(fail)
			orders.Run(context.Background(), s.call(true))
		}
		if got := points(t, rd, "bulwark.retry.retries")["bulwark.key=orders,bulwark.retry.reason=failure"]; got != 140 {
			t.Errorf("bulwark.retry.retries of orders: got %d, want 140", got)
		}
		exhausted := points(t, rd, "bulwark.retry.budget.exhausted")["bulwark.key=orders"]
		givenUp := points(t, rd, "bulwark.retry.given_up")["bulwark.key=orders,bulwark.retry.reason=budget"]
		if exhausted == 0 || exhausted != givenUp {
			t.Errorf("bulwark.retry.budget.exhausted: got %d, want as many as given_up for the budget (%d), under the Retry's name", exhausted, givenUp)
		}
	})
}

// TestPassThroughAllocs proves that a call whose first attempt succeeds
// allocates nothing and records nothing, with and without a latency
// tracker.
func TestPassThroughAllocs(t *testing.T) {
	mp, rd := newReader()
	plain := mustNew(t, retry.Config{MeterProvider: mp})
	tracked := mustNew(t, retry.Config{MeterProvider: mp, Latency: mustLatency(t, retry.LatencyConfig{})})
	c := bulwark.Call{Idempotent: true, Attempts: bulwark.AttemptFunc(func(context.Context, int) bulwark.Result { return success })}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for name, r := range map[string]*retry.Retry{"plain": plain, "latency": tracked} {
		if got := testing.AllocsPerRun(1000, func() { r.Run(ctx, c) }); got != 0 {
			t.Errorf("%s: got %v allocations per call, want 0", name, got)
		}
	}
	// No goroutine either: none is running beside the attempt.
	before := runtime.NumGoroutine()
	var during int
	plain.Run(ctx, bulwark.Call{Idempotent: true, Attempts: bulwark.AttemptFunc(func(context.Context, int) bulwark.Result {
		during = runtime.NumGoroutine()
		return success
	})})
	if during != before {
		t.Errorf("goroutines during the attempt: got %d, want %d as before Run", during, before)
	}
	for _, name := range []string{"bulwark.retry.retries", "bulwark.retry.given_up"} {
		if got := points(t, rd, name); len(got) != 0 {
			t.Errorf("%s: got %v, want nothing recorded", name, got)
		}
	}
}

// TestRetryPathAllocs bounds the allocations of a call that retries: the
// one timer of the call, reused for every wait.
func TestRetryPathAllocs(t *testing.T) {
	mp, _ := newReader()
	r := mustNew(t, retry.Config{MeterProvider: mp, MaxAttempts: 4, Backoff: retry.Constant(time.Nanosecond),
		Budget: mustBudget(t, retry.BudgetConfig{Ratio: 1})})
	c := bulwark.Call{Idempotent: true, Attempts: bulwark.AttemptFunc(func(_ context.Context, n int) bulwark.Result {
		if n < 3 {
			return fail
		}
		return success
	})}
	if got := testing.AllocsPerRun(100, func() { r.Run(context.Background(), c) }); got > 3 {
		t.Errorf("got %v allocations per call with 3 retries, want at most 3 (one timer)", got)
	}
}

// TestLatencyRecorded checks that the Retry feeds its tracker with every
// attempt but those Ignored.
func TestLatencyRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLatency(t, retry.LatencyConfig{Window: 3, MinSamples: 3})
		r := mustNew(t, retry.Config{Latency: l, Backoff: retry.Constant(0)})
		s := newScript(fail, success)
		s.took = 40 * time.Millisecond
		r.Run(context.Background(), s.call(true))
		if d, ok := l.Quantile(0.5); ok {
			t.Fatalf("after 2 attempts: got %v, true, want too few samples", d)
		}
		s = newScript(bulwark.Result{Outcome: bulwark.Ignored})
		s.took = time.Second
		r.Run(context.Background(), s.call(true))
		if d, ok := l.Quantile(0.5); ok {
			t.Fatalf("after an Ignored attempt: got %v, true, want it not recorded", d)
		}
		s = newScript(success)
		s.took = 40 * time.Millisecond
		r.Run(context.Background(), s.call(true))
		if d, ok := l.Quantile(1); !ok || !near(d, 40*time.Millisecond) {
			t.Errorf("after 3 attempts of 40ms: got %v, %v, want 40ms, true", d, ok)
		}
	})
}

func TestConcurrentRuns(t *testing.T) {
	r := mustNew(t, retry.Config{Backoff: retry.Constant(0), Budget: mustBudget(t, retry.BudgetConfig{Ratio: 1}),
		Latency: mustLatency(t, retry.LatencyConfig{Window: 16, MinSamples: 1})})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				s := newScript(fail, success)
				if n, err := r.Run(context.Background(), s.call(true)); n != 1 || err != nil {
					t.Errorf("got %d, %v, want 1, nil", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestNoRetryPastTheCallDeadline lets the call's total deadline (held in
// Call.Deadline, as a Stack holds it, not on ctx) pass while an attempt
// runs: with no wait and no expected latency, no retry starts with no time
// left, where its context would end at once and the endpoint be charged a
// failure for an attempt never sent.
func TestNoRetryPastTheCallDeadline(t *testing.T) {
	for _, took := range []time.Duration{time.Second, 2 * time.Second} { // ends at the deadline, or past it
		t.Run(took.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mp, rd := newReader()
				r := mustNew(t, retry.Config{Backoff: retry.Constant(0), MeterProvider: mp})
				s := newScript(fail, success)
				s.took = took
				c := s.call(true)
				c.Deadline = time.Now().Add(time.Second)
				if n, err := r.Run(context.Background(), c); n != 0 || err != errDown || s.attempts() != 1 {
					t.Errorf("got %d, %v after %d attempts, want 0, %v after 1", n, err, s.attempts(), errDown)
				}
				if got := points(t, rd, "bulwark.retry.given_up")["bulwark.key=,bulwark.retry.reason=deadline"]; got != 1 {
					t.Errorf("given_up deadline: got %d, want 1", got)
				}
			})
		})
	}
}
