package timeout_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/bulwarkrpc/bulwark/timeout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   timeout.Config
		field string
	}{
		{"negative total", timeout.Config{Total: -time.Second}, "Config.Total"},
		{"negative attempt", timeout.Config{Attempt: -1}, "Config.Attempt"},
		{"attempt above total", timeout.Config{Total: time.Second, Attempt: 2 * time.Second}, "Config.Attempt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := timeout.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("got %v, want an error naming %s", err, tt.field)
			}
		})
	}
	if _, err := timeout.New(timeout.Config{}); err != nil {
		t.Fatalf("zero Config: got %v, want nil", err)
	}
	if _, err := timeout.New(timeout.Config{Attempt: time.Second}); err != nil {
		t.Fatalf("attempt without total: got %v, want nil", err)
	}
}

func TestNoContextWhenCallerDeadlineIsEarlier(t *testing.T) {
	to, err := timeout.New(timeout.Config{Total: time.Hour, Attempt: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	caller, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for name, with := range map[string]func(context.Context) (context.Context, context.CancelFunc){
		"total": to.WithTotal, "attempt": to.WithAttempt,
	} {
		ctx, done := with(caller)
		if ctx != caller {
			t.Errorf("%s: got a new context, want the caller's (its deadline is earlier)", name)
		}
		done()
		if caller.Err() != nil {
			t.Errorf("%s: cancel of an uncreated context cancelled the caller", name)
		}
	}
	// No deadline configured: no context either.
	none, _ := timeout.New(timeout.Config{})
	if ctx, done := none.WithTotal(context.Background()); ctx != context.Background() {
		t.Errorf("no total: got a new context, want the caller's")
	} else {
		done()
	}
}

func TestOurDeadlineToldApartFromCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to, err := timeout.New(timeout.Config{Total: 2 * time.Second, Attempt: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		total, cancelTotal := to.WithTotal(context.Background())
		defer cancelTotal()
		attempt, cancelAttempt := to.WithAttempt(total)
		defer cancelAttempt()
		<-attempt.Done()

		got := timeout.Fired(attempt)
		if got == nil || got.Scope != timeout.Attempt || got.After != time.Second {
			t.Fatalf("Fired(attempt) = %v, want the attempt deadline of 1s", got)
		}
		if timeout.Fired(total) != nil {
			t.Fatalf("Fired(total) = %v, want nil: the total deadline has not fired", timeout.Fired(total))
		}
		callErr := errors.New("read: " + context.DeadlineExceeded.Error())
		err = timeout.Wrap(attempt, callErr)
		for _, target := range []error{timeout.ErrTimeout, context.DeadlineExceeded, callErr} {
			if !errors.Is(err, target) {
				t.Errorf("errors.Is(%v, %v) = false, want true", err, target)
			}
		}
		var te *timeout.Error
		if !errors.As(err, &te) || te.Scope != timeout.Attempt {
			t.Errorf("errors.As: got %v, want *timeout.Error of scope attempt", te)
		}
		if !strings.Contains(err.Error(), "attempt deadline of 1s exceeded") {
			t.Errorf("message %q does not say which deadline", err)
		}

		// The caller's own deadline is not ours: Wrap leaves the error alone.
		caller, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		<-caller.Done()
		if timeout.Fired(caller) != nil {
			t.Errorf("Fired(caller's own deadline) = %v, want nil", timeout.Fired(caller))
		}
		if err := timeout.Wrap(caller, context.DeadlineExceeded); err != context.DeadlineExceeded {
			t.Errorf("Wrap(caller's deadline) = %v, want context.DeadlineExceeded unchanged", err)
		}
		if err := timeout.Wrap(attempt, nil); err != nil {
			t.Errorf("Wrap(nil) = %v, want nil", err)
		}
	})
}

func TestTotalFiresThroughAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to, _ := timeout.New(timeout.Config{Total: time.Second, Attempt: time.Second})
		total, c1 := to.WithTotal(context.Background())
		defer c1()
		time.Sleep(500 * time.Millisecond) // fake clock: half the total budget spent
		attempt, c2 := to.WithAttempt(total)
		defer c2()
		if attempt != total {
			t.Fatalf("attempt deadline 1s after 500ms of a 1s total: got a new context, want the total one")
		}
		<-attempt.Done()
		if got := timeout.Fired(attempt); got == nil || got.Scope != timeout.Total {
			t.Fatalf("Fired = %v, want the total deadline", got)
		}
	})
}

func TestRemainingAndEnough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		if _, ok := timeout.Remaining(context.Background()); ok {
			t.Errorf("Remaining(no deadline): got ok, want !ok")
		}
		if !timeout.Enough(context.Background(), time.Hour) {
			t.Errorf("Enough(no deadline): got false, want true")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if left, ok := timeout.Remaining(ctx); !ok || left != time.Second {
			t.Errorf("Remaining = %v, %v; want 1s, true", left, ok)
		}
		if !timeout.Enough(ctx, 900*time.Millisecond) || timeout.Enough(ctx, 1100*time.Millisecond) {
			t.Errorf("Enough with 1s left: want true for 900ms and false for 1.1s")
		}
		<-ctx.Done()
		if left, _ := timeout.Remaining(ctx); left != 0 {
			t.Errorf("Remaining after the deadline = %v, want 0", left)
		}
		if timeout.Enough(ctx, 0) {
			t.Errorf("Enough(done ctx, 0): got true, want false")
		}
	})
}

func TestObserveCountsOnlyOurs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		to, err := timeout.New(timeout.Config{Total: 2 * time.Second, Attempt: time.Second, MeterProvider: mp})
		if err != nil {
			t.Fatal(err)
		}
		other, _ := timeout.New(timeout.Config{Attempt: time.Second})

		a, cancel := to.WithAttempt(context.Background())
		<-a.Done()
		if !to.Observe(a, timeout.Attempt) {
			t.Errorf("Observe(fired attempt) = false, want true")
		}
		if to.Observe(a, timeout.Total) {
			t.Errorf("Observe(attempt ctx, Total) = true, want false")
		}
		if other.Observe(a, timeout.Attempt) {
			t.Errorf("another Timeout's Observe = true, want false: not its deadline")
		}
		cancel()

		live, cancel := to.WithAttempt(context.Background())
		cancel()
		if to.Observe(live, timeout.Attempt) {
			t.Errorf("Observe(cancelled, not fired) = true, want false")
		}

		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != "bulwark.timeout.fired" {
					continue
				}
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					v, _ := dp.Attributes.Value(attribute.Key("bulwark.timeout.scope"))
					got[v.AsString()] += dp.Value
				}
			}
		}
		if got["attempt"] != 1 || got["total"] != 0 {
			t.Errorf("bulwark.timeout.fired = %v, want attempt:1 and no total", got)
		}
	})
}

func TestPassThroughAllocatesNothingWhenNoContextIsMade(t *testing.T) {
	to, _ := timeout.New(timeout.Config{Total: time.Hour})
	caller, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	allocs := testing.AllocsPerRun(1000, func() {
		ctx, done := to.WithTotal(caller)
		done()
		_ = timeout.Wrap(ctx, nil)
	})
	if allocs != 0 {
		t.Fatalf("got %v allocs, want 0", allocs)
	}
}
