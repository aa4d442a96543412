package hedge_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustNew(t testing.TB, cfg hedge.Config) *hedge.Hedge {
	t.Helper()
	h, err := hedge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// attempts is a Call double: attempt n waits for behave[n] to tell it how
// to end, or for its context to end (then Ignored, as a cancelled loser).
type attempts struct {
	mu      sync.Mutex
	started []int
	ctxErr  map[int]error
}

func (a *attempts) call(idempotent bool, behave func(ctx context.Context, n int) bulwark.Result) bulwark.Call {
	return bulwark.Call{Idempotent: idempotent, Attempts: bulwark.AttemptFunc(func(ctx context.Context, n int) bulwark.Result {
		a.mu.Lock()
		a.started = append(a.started, n)
		a.mu.Unlock()
		res := behave(ctx, n)
		a.mu.Lock()
		if a.ctxErr == nil {
			a.ctxErr = map[int]error{}
		}
		a.ctxErr[n] = ctx.Err()
		a.mu.Unlock()
		return res
	})}
}

func hang(ctx context.Context) bulwark.Result {
	<-ctx.Done()
	return bulwark.Result{Outcome: bulwark.Ignored, Err: ctx.Err()}
}

var (
	ok   = bulwark.Result{Outcome: bulwark.Success}
	boom = errors.New("503")
	fail = bulwark.Result{Outcome: bulwark.Failure, Err: boom}
)

func TestFastFirstAttemptIsNotHedged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, hedge.Config{Delay: time.Second})
		var a attempts
		n, err := h.Run(context.Background(), a.call(true, func(context.Context, int) bulwark.Result {
			time.Sleep(500 * time.Millisecond) // fake clock: answers before the delay
			return ok
		}))
		if n != 0 || err != nil {
			t.Fatalf("Run = %d, %v; want 0, nil", n, err)
		}
		synctest.Wait()
		if len(a.started) != 1 {
			t.Fatalf("attempts started: %v, want only the first", a.started)
		}
	})
}

func TestSlowFirstAttemptIsHedgedAndCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, hedge.Config{Delay: 100 * time.Millisecond})
		var a attempts
		start := time.Now()
		n, err := h.Run(context.Background(), a.call(true, func(ctx context.Context, n int) bulwark.Result {
			if n == 0 {
				return hang(ctx)
			}
			return ok
		}))
		if n != 1 || err != nil {
			t.Fatalf("Run = %d, %v; want the hedge's 1, nil", n, err)
		}
		if took := time.Since(start); took != 100*time.Millisecond {
			t.Fatalf("Run took %v, want the 100ms delay and no more", took)
		}
		synctest.Wait()
		if a.ctxErr[0] != context.Canceled {
			t.Fatalf("the first attempt's context: %v, want cancelled", a.ctxErr[0])
		}
		if a.ctxErr[1] != nil {
			t.Fatalf("the winner's context: %v, want it left alive", a.ctxErr[1])
		}
	})
}

func TestNotIdempotentIsNeverHedged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, hedge.Config{Delay: time.Millisecond})
		var a attempts
		n, err := h.Run(context.Background(), a.call(false, func(context.Context, int) bulwark.Result {
			time.Sleep(time.Second)
			return fail
		}))
		if n != 0 || !errors.Is(err, boom) || len(a.started) != 1 {
			t.Fatalf("Run = %d, %v after attempts %v; want only the first, failed", n, err, a.started)
		}
	})
}

func TestFailureHedgesAtOnceAndLastFailureIsReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, hedge.Config{Delay: time.Hour, MaxHedges: 2})
		var a attempts
		start := time.Now()
		n, err := h.Run(context.Background(), a.call(true, func(_ context.Context, n int) bulwark.Result {
			return bulwark.Result{Outcome: bulwark.Failure, Err: errors.New(strings.Repeat("x", n+1))}
		}))
		if time.Since(start) != 0 {
			t.Fatalf("took %v: a failure must not wait out the delay", time.Since(start))
		}
		if n != 2 || err == nil || err.Error() != "xxx" || len(a.started) != 3 {
			t.Fatalf("Run = %d, %v after %v; want attempt 2's failure after three attempts", n, err, a.started)
		}
	})
}

func TestFinalResultIsNotHedged(t *testing.T) {
	h := mustNew(t, hedge.Config{Delay: time.Hour})
	var a attempts
	n, err := h.Run(context.Background(), a.call(true, func(context.Context, int) bulwark.Result {
		return bulwark.Result{Outcome: bulwark.Failure, Err: boom, Final: true}
	}))
	if n != 0 || !errors.Is(err, boom) || len(a.started) != 1 {
		t.Fatalf("Run = %d, %v after %v; want the final failure at once", n, err, a.started)
	}
}

func TestMaxHedgesStaggered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, hedge.Config{Delay: 100 * time.Millisecond, MaxHedges: 2})
		var a attempts
		var at []time.Duration
		start := time.Now()
		var mu sync.Mutex
		n, _ := h.Run(context.Background(), a.call(true, func(ctx context.Context, n int) bulwark.Result {
			mu.Lock()
			at = append(at, time.Since(start))
			mu.Unlock()
			if n < 2 {
				return hang(ctx)
			}
			time.Sleep(10 * time.Millisecond)
			return ok
		}))
		synctest.Wait()
		if n != 2 || len(at) != 3 || at[1] != 100*time.Millisecond || at[2] != 200*time.Millisecond {
			t.Fatalf("winner %d, starts at %v; want 3 attempts at 0, 100ms, 200ms and the third to win", n, at)
		}
		for i := range 2 {
			if a.ctxErr[i] != context.Canceled {
				t.Errorf("loser %d context: %v, want cancelled", i, a.ctxErr[i])
			}
		}
	})
}

func TestBudgetBoundsHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		budget, err := retry.NewBudget(retry.BudgetConfig{Ratio: 1e-9, PerSecond: 1e-9, Window: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		h := mustNew(t, hedge.Config{Delay: 10 * time.Millisecond, Budget: budget, MeterProvider: mp})
		var a attempts
		n, err := h.Run(context.Background(), a.call(true, func(ctx context.Context, n int) bulwark.Result {
			time.Sleep(time.Second)
			return ok
		}))
		if n != 0 || err != nil || len(a.started) != 1 {
			t.Fatalf("Run = %d, %v after %v; want no hedge: the budget is spent", n, err, a.started)
		}
		if got := sum(t, reader, "bulwark.hedge.skipped", "bulwark.hedge.reason", "budget"); got != 1 {
			t.Fatalf("bulwark.hedge.skipped{reason=budget} = %d, want 1", got)
		}
	})
}

func TestLatencyDrivesTheDelay(t *testing.T) {
	lat, err := retry.NewLatency(retry.LatencyConfig{Window: 100, MinSamples: 10})
	if err != nil {
		t.Fatal(err)
	}
	h := mustNew(t, hedge.Config{Delay: time.Second, Latency: lat, Quantile: 0.5, MinDelay: 5 * time.Millisecond})
	if got := h.Delay(); got != time.Second {
		t.Fatalf("Delay with no samples = %v, want the fixed 1s", got)
	}
	for range 20 {
		lat.Observe(40 * time.Millisecond)
	}
	if got := h.Delay(); got < 38*time.Millisecond || got > 42*time.Millisecond {
		t.Fatalf("Delay after 20×40ms = %v, want about 40ms", got)
	}
	for range 200 {
		lat.Observe(time.Millisecond)
	}
	if got := h.Delay(); got != 5*time.Millisecond {
		t.Fatalf("Delay after 1ms latencies = %v, want MinDelay 5ms", got)
	}
}

func TestNoHedgeWhenTheDeadlineCannotFitOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lat, _ := retry.NewLatency(retry.LatencyConfig{Window: 100, MinSamples: 10})
		for range 20 {
			lat.Observe(time.Second)
		}
		h := mustNew(t, hedge.Config{Latency: lat, Quantile: 0.5, MinDelay: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		var a attempts
		_, _ = h.Run(ctx, a.call(true, func(ctx context.Context, n int) bulwark.Result { return hang(ctx) }))
		if len(a.started) != 1 {
			t.Fatalf("attempts %v: at 1s only 0.5s is left, less than the 1s an attempt takes; want no hedge", a.started)
		}
	})
}

func TestCallerCancelReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, hedge.Config{Delay: 10 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		release := make(chan struct{})
		var a attempts
		time.AfterFunc(50*time.Millisecond, cancel)
		n, err := h.Run(ctx, a.call(true, func(ctx context.Context, n int) bulwark.Result {
			if n == 0 {
				return hang(ctx)
			}
			<-release // a hedge that ignores cancellation
			return ok
		}))
		if n != 0 || !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %d, %v; want the first attempt's cancellation", n, err)
		}
		close(release) // the stray hedge ends on its own goroutine
		synctest.Wait()
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tt := range []struct {
		cfg   hedge.Config
		field string
	}{
		{hedge.Config{Delay: -1}, "Config.Delay"},
		{hedge.Config{MinDelay: -1}, "Config.MinDelay"},
		{hedge.Config{MaxHedges: -1}, "Config.MaxHedges"},
		{hedge.Config{Quantile: 1}, "Config.Quantile"},
		{hedge.Config{Quantile: -0.5}, "Config.Quantile"},
	} {
		if _, err := hedge.New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tt.cfg, err, tt.field)
		}
	}
}

// A cancelled hedge is never counted as a failure of its endpoint: over a
// real loopback server, through a Stack with a breaker.
func TestCancelledLoserIsNotABreakerFailure(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			<-r.Context().Done() // the first request hangs until cancelled
			return
		}
		_, _ = io.WriteString(w, "fast")
	}))
	defer srv.Close()
	brk, err := breaker.New(breaker.Config{ConsecutiveFailures: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := mustNew(t, hedge.Config{Delay: 20 * time.Millisecond})
	released := make(chan bulwark.Outcome, 2)
	// Outermost, so released after the breaker has recorded the outcome.
	s, err := bulwark.New(bulwark.Config{Retry: h, Idempotent: true, Guards: []bulwark.Guard{notify(released), brk}})
	if err != nil {
		t.Fatal(err)
	}
	body, err := bulwark.Do(context.Background(), s, "srv", func(ctx context.Context) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	})
	if err != nil || body != "fast" {
		t.Fatalf("Do = %q, %v; want the hedge's fast answer", body, err)
	}
	// Do returns once the winner is known; wait until both reported.
	if o1, o2 := <-released, <-released; !(o1 == bulwark.Success && o2 == bulwark.Ignored || o1 == bulwark.Ignored && o2 == bulwark.Success) {
		t.Fatalf("outcomes %v and %v, want a success and an ignored", o1, o2)
	}
	if got := brk.Counts(); got.Failures != 0 || got.Successes != 1 || brk.State() != breaker.Closed {
		t.Fatalf("breaker counts %+v, state %v; want 1 success, the loser ignored, closed", got, brk.State())
	}
	srv.Client().CloseIdleConnections()
}

func sum(t *testing.T, r *sdkmetric.ManualReader, name, key, value string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				if v, ok := dp.Attributes.Value(attribute.Key(key)); ok && v.AsString() == value {
					n += dp.Value
				}
			}
		}
	}
	return n
}

// notify is a Guard that reports every release on a channel.
type notify chan bulwark.Outcome

func (n notify) Enter(context.Context, string) (bulwark.Permit, error) {
	return bulwark.NewPermit(n, nil, 0), nil
}
func (n notify) Release(_ bulwark.Permit, o bulwark.Outcome) { n <- o }

// A hedge refused by a guard before it was sent (its instance's breaker is
// open) must not win over the primary still running.
func TestRefusedHedgeDoesNotWin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, hedge.Config{Delay: 10 * time.Millisecond})
		var a attempts
		n, err := h.Run(context.Background(), a.call(true, func(ctx context.Context, n int) bulwark.Result {
			if n == 1 {
				return bulwark.Result{Outcome: bulwark.Ignored, Err: bulwark.RejectionError("breaker: open")}
			}
			time.Sleep(50 * time.Millisecond) // the primary answers, late
			return ok
		}))
		if n != 0 || err != nil {
			t.Fatalf("Run = %d, %v; want the primary's success", n, err)
		}
		if a.ctxErr[0] != nil {
			t.Fatalf("the primary was cancelled (%v) by a hedge that was never sent", a.ctxErr[0])
		}
	})
}

// A primary refused by a guard only after a wait (a bulkhead queue), while
// a hedge runs: when the caller then gives up, Run still returns a real
// attempt's result, never a number that names no attempt with a nil error,
// and the hedge that ends later decides nothing a second time.
func TestCallerCancelAfterPrimaryRefusedDuringHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, hedge.Config{Delay: 10 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		release := make(chan struct{})
		var a attempts
		time.AfterFunc(100*time.Millisecond, cancel)
		n, err := h.Run(ctx, a.call(true, func(ctx context.Context, n int) bulwark.Result {
			if n == 0 {
				time.Sleep(50 * time.Millisecond) // queued past the hedge delay, then refused
				return bulwark.Result{Outcome: bulwark.Ignored, Err: bulwark.RejectionError("bulkhead: full")}
			}
			<-release // a hedge that ignores cancellation
			return ok
		}))
		if n < 0 || err == nil {
			t.Errorf("Run = %d, %v; want attempt 0's refusal (the caller gave up before the hedge answered)", n, err)
		}
		close(release) // the stray hedge ends on its own goroutine
		synctest.Wait()
	})
}

// A panic in the first attempt goes on to Run's caller, and the call is
// over: the hedge timer armed for it must not start an attempt later.
func TestPanicInFirstAttemptStartsNoHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, hedge.Config{Delay: 10 * time.Millisecond})
		var a attempts
		func() {
			defer func() {
				if r := recover(); r != "attempt 0" {
					t.Errorf("recovered %v, want the attempt's panic", r)
				}
			}()
			_, _ = h.Run(context.Background(), a.call(true, func(ctx context.Context, n int) bulwark.Result {
				if n == 0 {
					panic("attempt 0")
				}
				return ok
			}))
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.started) != 1 {
			t.Fatalf("attempts started: %v, want only the first, which panicked", a.started)
		}
	})
}

// A hedge whose attempt never returns normally (runtime.Goexit, which
// bulwark.Do lets through after recording a Failure) must not leave Run
// waiting for it forever.
func TestGoexitInHedgeDoesNotHangRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, hedge.Config{Delay: time.Hour})
		var a attempts
		n, err := h.Run(context.Background(), a.call(true, func(ctx context.Context, n int) bulwark.Result {
			if n == 0 {
				return fail // hedge at once
			}
			runtime.Goexit()
			return ok
		}))
		if err == nil {
			t.Fatalf("Run = %d, nil; want a failure: no attempt succeeded", n)
		}
	})
}

// The call's total deadline (held in Call.Deadline, as a Stack holds it)
// passes while the only attempt runs: no hedge starts with no time left,
// Latency or not, where its context would end at once and its endpoint be
// charged a failure for an attempt never sent.
func TestNoHedgePastTheCallDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		h := mustNew(t, hedge.Config{Delay: time.Hour, MaxHedges: 2, MeterProvider: mp})
		var a attempts
		c := a.call(true, func(context.Context, int) bulwark.Result {
			time.Sleep(50 * time.Millisecond) // ends when the total deadline fires
			return fail
		})
		c.Deadline = time.Now().Add(50 * time.Millisecond)
		n, err := h.Run(context.Background(), c)
		if n != 0 || !errors.Is(err, boom) || len(a.started) != 1 {
			t.Fatalf("Run = %d, %v after attempts %v; want the first attempt's failure and no hedge", n, err, a.started)
		}
		if got := sum(t, reader, "bulwark.hedge.skipped", "bulwark.hedge.reason", "deadline"); got != 1 {
			t.Fatalf("bulwark.hedge.skipped{reason=deadline} = %d, want 1", got)
		}
	})
}
