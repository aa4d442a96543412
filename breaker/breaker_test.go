package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
)

func TestTripsOnFailureRate(t *testing.T) {
	tests := []struct {
		name     string
		cfg      breaker.Config
		outcomes []bulwark.Outcome
		want     breaker.State // after the last outcome; Closed before it
	}{
		{"defaults: 19 failures are below MinimumCalls", breaker.Config{}, repeat(F, 19), breaker.Closed},
		{"defaults: the 20th failure trips", breaker.Config{}, repeat(F, 20), breaker.Open},
		{"below MinimumCalls", breaker.Config{MinimumCalls: 10}, repeat(F, 9), breaker.Closed},
		{"at MinimumCalls", breaker.Config{MinimumCalls: 10}, repeat(F, 10), breaker.Open},
		{"rate below the ratio", breaker.Config{MinimumCalls: 10}, concat(repeat(S, 6), repeat(F, 4)), breaker.Closed},
		{"rate at the ratio", breaker.Config{MinimumCalls: 10}, concat(repeat(S, 5), repeat(F, 5)), breaker.Open},
		{"ignored calls are not judged", breaker.Config{MinimumCalls: 10}, concat(repeat(I, 50), repeat(F, 9)), breaker.Closed},
		{"ratio 0.25", breaker.Config{MinimumCalls: 8, FailureRatio: 0.25}, concat(repeat(S, 6), repeat(F, 2)), breaker.Open},
		{"ratio 1 needs every call to fail", breaker.Config{MinimumCalls: 4, FailureRatio: 1}, concat(repeat(S, 1), repeat(F, 10)), breaker.Closed},
		{"ratio 1, all failed", breaker.Config{MinimumCalls: 4, FailureRatio: 1}, repeat(F, 4), breaker.Open},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := mustNew(t, tt.cfg)
				n := len(tt.outcomes)
				run(t, b, "", tt.outcomes[:n-1]...)
				if got := b.State(); got != breaker.Closed {
					t.Fatalf("before the last outcome: got %v, want closed", got)
				}
				run(t, b, "", tt.outcomes[n-1])
				if got := b.State(); got != tt.want {
					t.Errorf("after the last outcome: got %v, want %v (counts %+v)", got, tt.want, b.Counts())
				}
			})
		})
	}
}

func TestTripsOnConsecutiveFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, breaker.Config{ConsecutiveFailures: 3, MinimumCalls: 1000})
		run(t, b, "", F, F, S, F, I, F) // an Ignored call does not break the run
		if got, want := b.Counts().ConsecutiveFailures, uint32(2); got != want {
			t.Fatalf("ConsecutiveFailures: got %d, want %d", got, want)
		}
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("after 2 failures in a row: got %v, want closed", got)
		}
		run(t, b, "", F)
		if got := b.State(); got != breaker.Open {
			t.Errorf("after 3 failures in a row: got %v, want open", got)
		}
	})
}

func TestRollingWindowForgets(t *testing.T) {
	cfg := breaker.Config{Window: 10 * time.Second, BucketPeriod: time.Second, MinimumCalls: 4}
	t.Run("failures older than the window are forgotten", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, cfg)
			run(t, b, "", F, F, F)
			time.Sleep(9500 * time.Millisecond)
			if got, want := b.Counts().Failures, uint32(3); got != want {
				t.Fatalf("after 9.5s: got %d failures, want %d", got, want)
			}
			time.Sleep(500 * time.Millisecond)
			if got := b.Counts().Failures; got != 0 {
				t.Fatalf("after 10s: got %d failures, want 0", got)
			}
			run(t, b, "", F)
			if got := b.State(); got != breaker.Closed {
				t.Errorf("one failure in the window: got %v, want closed", got)
			}
		})
	})
	t.Run("failures inside the window add up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, cfg)
			run(t, b, "", F, F, F)
			time.Sleep(5 * time.Second)
			run(t, b, "", F)
			if got := b.State(); got != breaker.Open {
				t.Errorf("four failures in the window: got %v, want open", got)
			}
		})
	})
	t.Run("the window rolls bucket by bucket", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, cfg)
			run(t, b, "", F, F)
			time.Sleep(5 * time.Second)
			run(t, b, "", F)
			time.Sleep(5 * time.Second) // the first two are out, the third is in
			if got, want := b.Counts().Failures, uint32(1); got != want {
				t.Fatalf("got %d failures, want %d", got, want)
			}
			run(t, b, "", F, F)
			if got := b.State(); got != breaker.Closed {
				t.Errorf("three failures in the window: got %v, want closed", got)
			}
		})
	})
}

func TestIgnoredNeverTrips(t *testing.T) {
	cfg := breaker.Config{ConsecutiveFailures: 1, MinimumCalls: 1}
	tests := []struct {
		name string
		call func(t *testing.T, b *breaker.Breaker)
	}{
		{"Ignored outcomes", func(t *testing.T, b *breaker.Breaker) {
			run(t, b, "", repeat(I, 10)...)
		}},
		{"a local rejection classified by a Stack", func(t *testing.T, b *breaker.Breaker) {
			stack, err := bulwark.New(bulwark.Config{Guards: []bulwark.Guard{b}})
			if err != nil {
				t.Fatal(err)
			}
			full := bulwark.RejectionError("bulkhead: full")
			for range 10 {
				_, err := bulwark.Do(context.Background(), stack, "", func(context.Context) (int, error) { return 0, full })
				if !errors.Is(err, full) {
					t.Fatalf("Do: got %v, want %v", err, full)
				}
			}
		}},
		{"the caller's cancellation classified by a Stack", func(t *testing.T, b *breaker.Breaker) {
			stack, err := bulwark.New(bulwark.Config{Guards: []bulwark.Guard{b}})
			if err != nil {
				t.Fatal(err)
			}
			for range 10 {
				ctx, cancel := context.WithCancel(context.Background())
				_, err := bulwark.Do(ctx, stack, "", func(ctx context.Context) (int, error) {
					cancel()
					return 0, ctx.Err()
				})
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Do: got %v, want context.Canceled", err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := mustNew(t, cfg)
				tt.call(t, b)
				if got := b.State(); got != breaker.Closed {
					t.Errorf("state: got %v, want closed", got)
				}
				c := b.Counts()
				if c.Ignored != 10 || c.Failures != 0 || c.Successes != 0 {
					t.Errorf("counts: got %+v, want 10 ignored and nothing else judged", c)
				}
				run(t, b, "", F) // the breaker does trip on a real failure
				if got := b.State(); got != breaker.Open {
					t.Errorf("after a failure: got %v, want open", got)
				}
			})
		})
	}
}

func TestSlowSuccessesTrip(t *testing.T) {
	tests := []struct {
		took time.Duration
		want breaker.State
	}{
		{50 * time.Millisecond, breaker.Closed},
		{100 * time.Millisecond, breaker.Closed}, // not slower than the threshold
		{100*time.Millisecond + 1, breaker.Open},
		{time.Second, breaker.Open},
	}
	for _, tt := range tests {
		t.Run(tt.took.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := mustNew(t, breaker.Config{SlowCallThreshold: 100 * time.Millisecond, ConsecutiveFailures: 3})
				for range 3 {
					p := admit(t, b, "")
					time.Sleep(tt.took)
					p.Done(bulwark.Success)
				}
				if got := b.State(); got != tt.want {
					t.Errorf("got %v, want %v (counts %+v)", got, tt.want, b.Counts())
				}
			})
		})
	}
	t.Run("off by default", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, breaker.Config{ConsecutiveFailures: 1, Window: 2 * time.Hour})
			p := admit(t, b, "")
			time.Sleep(time.Hour)
			p.Done(bulwark.Success)
			if got := b.Counts().Successes; got != 1 {
				t.Errorf("successes: got %d, want 1", got)
			}
		})
	})
}

// trip opens b with one failure (b must have ConsecutiveFailures: 1) and
// returns when it happened.
func trip(t *testing.T, b *breaker.Breaker) time.Time {
	t.Helper()
	run(t, b, "", F)
	if got := b.State(); got != breaker.Open {
		t.Fatalf("after a failure: got %v, want open", got)
	}
	return time.Now()
}

func TestHalfOpen(t *testing.T) {
	cfg := breaker.Config{ConsecutiveFailures: 1, OpenDuration: 5 * time.Second, HalfOpenTrials: 3}
	t.Run("closes after HalfOpenTrials successes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, cfg)
			tripped := trip(t, b)
			if e := refused(t, b, ""); e.State != breaker.Open || !e.RetryAt.Equal(tripped.Add(5*time.Second)) {
				t.Fatalf("refusal: got %+v, want open until %v", e, tripped.Add(5*time.Second))
			}
			time.Sleep(5 * time.Second)
			if got := b.State(); got != breaker.HalfOpen {
				t.Fatalf("after OpenDuration: got %v, want half-open", got)
			}
			trials := []bulwark.Permit{admit(t, b, ""), admit(t, b, ""), admit(t, b, "")}
			if e := refused(t, b, ""); e.State != breaker.HalfOpen {
				t.Fatalf("a fourth trial: got %+v, want a half-open refusal", e)
			}
			trials[0].Done(bulwark.Success)
			trials[1].Done(bulwark.Success)
			if got := b.State(); got != breaker.HalfOpen {
				t.Fatalf("after 2 successful trials: got %v, want half-open", got)
			}
			trials[2].Done(bulwark.Success)
			if got := b.State(); got != breaker.Closed {
				t.Errorf("after 3 successful trials: got %v, want closed", got)
			}
		})
	})
	t.Run("opens again on a failed trial", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, cfg)
			trip(t, b)
			time.Sleep(5 * time.Second)
			p1, p2 := admit(t, b, ""), admit(t, b, "")
			p1.Done(bulwark.Success)
			p2.Done(bulwark.Failure)
			if got := b.State(); got != breaker.Open {
				t.Fatalf("after a failed trial: got %v, want open", got)
			}
			if e := refused(t, b, ""); !e.RetryAt.Equal(time.Now().Add(5 * time.Second)) {
				t.Errorf("RetryAt: got %v, want %v", e.RetryAt, time.Now().Add(5*time.Second))
			}
		})
	})
	t.Run("an ignored trial frees its slot", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, breaker.Config{ConsecutiveFailures: 1, HalfOpenTrials: 1})
			trip(t, b)
			time.Sleep(5 * time.Second)
			admit(t, b, "").Done(bulwark.Ignored)
			if got := b.State(); got != breaker.HalfOpen {
				t.Fatalf("after an ignored trial: got %v, want half-open", got)
			}
			admit(t, b, "").Done(bulwark.Success)
			if got := b.State(); got != breaker.Closed {
				t.Errorf("after a successful trial: got %v, want closed", got)
			}
		})
	})
	t.Run("a second Done of a trial is dropped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, breaker.Config{ConsecutiveFailures: 1, HalfOpenTrials: 2})
			trip(t, b)
			time.Sleep(5 * time.Second)
			p := admit(t, b, "")
			p.Done(bulwark.Success)
			p.Done(bulwark.Success)
			if got := b.Counts().Successes; got != 1 {
				t.Errorf("successes: got %d, want 1", got)
			}
			if got := b.State(); got != breaker.HalfOpen {
				t.Errorf("state: got %v, want half-open (one trial of two succeeded)", got)
			}
		})
	})
}

func TestLostTrialIsGivenUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []breaker.Event
		b := mustNew(t, breaker.Config{
			ConsecutiveFailures: 1, HalfOpenTrials: 2,
			OpenDuration: 5 * time.Second, TrialTimeout: 30 * time.Second,
			OnStateChange: func(e breaker.Event) { events = append(events, e) },
		})
		trip(t, b)
		time.Sleep(5 * time.Second)
		lost := admit(t, b, "") // never reports in time
		time.Sleep(time.Second)
		ok := admit(t, b, "")
		ok.Done(bulwark.Success)
		// Both slots are held: one by a success that cannot close the breaker
		// alone, one by the lost trial.
		due := time.Now().Add(29 * time.Second)
		e := refused(t, b, "")
		if e.State != breaker.HalfOpen || !e.RetryAt.Equal(due) {
			t.Fatalf("refusal: got %+v, want half-open, retry at %v", e, due)
		}
		if want := `breaker: half-open, every trial slot taken (key "", retry at 2000-01-01T00:00:35Z)`; e.Error() != want {
			t.Errorf("Error(): got %q, want %q", e.Error(), want)
		}
		time.Sleep(29*time.Second - 1)
		if e := refused(t, b, ""); e.State != breaker.HalfOpen {
			t.Fatalf("just before TrialTimeout: got %+v, want a half-open refusal", e)
		}
		time.Sleep(1)
		e = refused(t, b, "") // gives the lost trial up as failed: open again
		if e.State != breaker.Open || !e.RetryAt.Equal(time.Now().Add(5*time.Second)) {
			t.Fatalf("at TrialTimeout: got %+v, want open until %v", e, time.Now().Add(5*time.Second))
		}
		lost.Done(bulwark.Success) // too late: dropped
		if got := b.State(); got != breaker.Open {
			t.Fatalf("after the late report: got %v, want open", got)
		}
		time.Sleep(5 * time.Second)
		run(t, b, "", S, S)
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("after two good trials: got %v, want closed", got)
		}
		want := []breaker.State{breaker.Open, breaker.HalfOpen, breaker.Open, breaker.HalfOpen, breaker.Closed}
		if len(events) != len(want) {
			t.Fatalf("events: got %v, want changes to %v", events, want)
		}
		for i, e := range events {
			if e.To != want[i] {
				t.Errorf("event %d: got to %v, want %v", i, e.To, want[i])
			}
		}
	})
}

func TestOnStateChange(t *testing.T) {
	t.Run("may call back into the breaker; events in order", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			type seen struct {
				ev       breaker.Event
				state    breaker.State
				admitted bool
			}
			var (
				got []seen
				b   *breaker.Breaker
			)
			b = mustNew(t, breaker.Config{
				ConsecutiveFailures: 1, HalfOpenTrials: 1, OpenDuration: 5 * time.Second,
				OnStateChange: func(e breaker.Event) {
					s := seen{ev: e, state: b.State()}
					_ = b.Counts()
					if p, err := b.Enter(context.Background(), ""); err == nil {
						s.admitted = true
						p.Done(bulwark.Ignored)
					}
					got = append(got, s)
				},
			})
			t0 := time.Now()
			run(t, b, "", F)
			time.Sleep(5 * time.Second)
			run(t, b, "", S)
			t1 := t0.Add(5 * time.Second)
			want := []seen{
				{breaker.Event{From: breaker.Closed, To: breaker.Open, At: t0}, breaker.Open, false},
				{breaker.Event{From: breaker.Open, To: breaker.HalfOpen, At: t1}, breaker.HalfOpen, false}, // the only slot is taken
				{breaker.Event{From: breaker.HalfOpen, To: breaker.Closed, At: t1}, breaker.Closed, true},
			}
			if len(got) != len(want) {
				t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				if g.ev.From != w.ev.From || g.ev.To != w.ev.To || !g.ev.At.Equal(w.ev.At) || g.ev.Key != "" ||
					g.state != w.state || g.admitted != w.admitted {
					t.Errorf("event %d: got %+v, want %+v", i, g, w)
				}
			}
		})
	})
	t.Run("an open breaker turns half-open when State is asked", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var events []breaker.Event
			b := mustNew(t, breaker.Config{ConsecutiveFailures: 1, OnStateChange: func(e breaker.Event) { events = append(events, e) }})
			trip(t, b)
			time.Sleep(5 * time.Second)
			if got := b.State(); got != breaker.HalfOpen {
				t.Fatalf("got %v, want half-open", got)
			}
			if len(events) != 2 || events[1].To != breaker.HalfOpen {
				t.Errorf("events: got %+v, want closed→open, open→half-open", events)
			}
		})
	})
	t.Run("one at a time and in order under many callers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var (
				inside atomic.Bool
				last   = breaker.Closed
				lastAt time.Time
				n      int
			)
			b := mustNew(t, breaker.Config{
				ConsecutiveFailures: 1, HalfOpenTrials: 1, OpenDuration: time.Millisecond,
				OnStateChange: func(e breaker.Event) {
					if !inside.CompareAndSwap(false, true) {
						t.Error("OnStateChange called while another call is running")
					}
					if e.From != last || e.At.Before(lastAt) {
						t.Errorf("event %d: got %v→%v at %v, want from %v at or after %v", n, e.From, e.To, e.At, last, lastAt)
					}
					last, lastAt = e.To, e.At
					n++
					time.Sleep(time.Microsecond) // let the other callers run meanwhile
					inside.Store(false)
				},
			})
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 300 {
						p, err := b.Enter(context.Background(), "")
						if err != nil {
							time.Sleep(time.Millisecond)
							continue
						}
						if (g+i)%3 == 0 {
							p.Done(bulwark.Failure)
						} else {
							p.Done(bulwark.Success)
						}
					}
				})
			}
			wg.Wait()
			if n < 10 {
				t.Errorf("got %d events, want the breaker to have flapped at least 10 times", n)
			}
		})
	})
	t.Run("a panicking callback does not stop later events", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var events []breaker.Event
			b := mustNew(t, breaker.Config{ConsecutiveFailures: 1, OnStateChange: func(e breaker.Event) {
				events = append(events, e)
				if len(events) == 1 {
					panic("boom")
				}
			}})
			func() {
				defer func() {
					if r := recover(); r != "boom" {
						t.Errorf("recovered %v, want the callback's panic", r)
					}
				}()
				run(t, b, "", F)
			}()
			time.Sleep(5 * time.Second)
			if got := b.State(); got != breaker.HalfOpen {
				t.Fatalf("got %v, want half-open", got)
			}
			if len(events) != 2 || events[1].To != breaker.HalfOpen {
				t.Errorf("events: got %+v, want the open→half-open change delivered", events)
			}
		})
	})
}

func TestOpenError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := mustNewSet(t, breaker.Config{ConsecutiveFailures: 1, OpenDuration: 7 * time.Second})
		run(t, set, "users", F)
		tripped := time.Now()
		_, err := set.Enter(context.Background(), "users")
		var oe *breaker.OpenError
		if !errors.As(err, &oe) {
			t.Fatalf("got %v (%T), want an *OpenError", err, err)
		}
		if oe.Key != "users" || oe.State != breaker.Open || !oe.RetryAt.Equal(tripped.Add(7*time.Second)) {
			t.Errorf("got %+v, want key users, open, retry at %v", oe, tripped.Add(7*time.Second))
		}
		for _, target := range []error{breaker.ErrOpen, bulwark.ErrRejected} {
			if !errors.Is(err, target) {
				t.Errorf("errors.Is(err, %v): got false, want true", target)
			}
		}
		if errors.Is(err, context.Canceled) {
			t.Error("errors.Is(err, context.Canceled): got true, want false")
		}
		if got := bulwark.ClassifyError(context.Background(), err); got != bulwark.Ignored {
			t.Errorf("ClassifyError: got %v, want ignored", got)
		}
		if want := `breaker: open (key "users", retry at 2000-01-01T00:00:07Z)`; err.Error() != want {
			t.Errorf("Error(): got %q, want %q", err.Error(), want)
		}
		if _, again := set.Enter(context.Background(), "users"); again != err {
			t.Errorf("a second refusal in the same open period: got %p, want the same *OpenError %p", again, err)
		}
		time.Sleep(time.Until(oe.RetryAt))
		p := admit(t, set, "users") // from RetryAt on, a trial is admitted
		p.Done(bulwark.Success)
	})
}

func TestCountsUnderParallelCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, breaker.Config{MinimumCalls: 1 << 30, SlowCallThreshold: time.Hour})
		const goroutines, each = 8, 999
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for i := range each {
					p, err := b.Enter(context.Background(), "")
					if err != nil {
						t.Errorf("Enter: %v", err)
						return
					}
					p.Done(bulwark.Outcome(i % 3))
				}
			})
		}
		wg.Wait()
		third := uint32(goroutines * each / 3)
		want := breaker.Counts{Requests: 3 * third, Successes: third, Failures: third, Ignored: third}
		got := b.Counts()
		got.ConsecutiveFailures, got.ConsecutiveSuccesses = 0, 0 // depend on the interleaving
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
}

func TestDoneContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	t.Run("Breaker", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, breaker.Config{})
			p, err := b.Enter(ctx, "")
			if !errors.Is(err, context.Canceled) || p.Ref() != nil {
				t.Fatalf("got %v, %+v, want context.Canceled and a zero Permit", err, p)
			}
			if c := b.Counts(); c.Requests != 0 {
				t.Errorf("counts: got %+v, want nothing counted", c)
			}
		})
	})
	t.Run("a half-open slot is not taken", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, breaker.Config{ConsecutiveFailures: 1, HalfOpenTrials: 1})
			trip(t, b)
			time.Sleep(5 * time.Second)
			for range 3 {
				if _, err := b.Enter(ctx, ""); !errors.Is(err, context.Canceled) {
					t.Fatalf("got %v, want context.Canceled", err)
				}
			}
			admit(t, b, "").Done(bulwark.Success)
			if got := b.State(); got != breaker.Closed {
				t.Errorf("got %v, want closed", got)
			}
		})
	})
	t.Run("Set", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			set := mustNewSet(t, breaker.Config{})
			if _, err := set.Enter(ctx, "users"); !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			if got := set.Len(); got != 0 {
				t.Errorf("keys held: got %d, want 0", got)
			}
		})
	})
}

func TestAllocs(t *testing.T) {
	_, mp := newReader(t)
	providers := []struct {
		name string
		cfg  breaker.Config
	}{
		{"global provider", breaker.Config{}},
		{"sdk provider", breaker.Config{MeterProvider: mp}},
	}
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := pv.cfg
				cfg.ConsecutiveFailures, cfg.HalfOpenTrials = 1, 1
				cfg.OpenDuration, cfg.TrialTimeout = time.Hour, 10*time.Hour
				ctx := context.Background()

				slow := cfg
				slow.SlowCallThreshold = time.Hour
				b, set, bs := mustNew(t, cfg), mustNewSet(t, cfg), mustNew(t, slow)
				run(t, set, "k", S) // the key exists
				// gobreaker's Allow allocates the done closure it returns:
				// that one allocation is the floor.
				for name, g := range map[string]bulwark.Guard{"Breaker": b, "Set": set, "Breaker with SlowCallThreshold": bs} {
					got := testing.AllocsPerRun(1000, func() {
						p, _ := g.Enter(ctx, "k")
						p.Done(bulwark.Success)
					})
					if got > 1 {
						t.Errorf("%s Enter+Done: got %v allocs, want <= 1", name, got)
					}
				}

				run(t, b, "", F)
				run(t, set, "k", F)
				for name, g := range map[string]bulwark.Guard{"Breaker": b, "Set": set} {
					got := testing.AllocsPerRun(1000, func() {
						if _, err := g.Enter(ctx, "k"); err == nil {
							t.Fatal("admitted, want a refusal")
						}
					})
					if got != 0 {
						t.Errorf("%s open refusal: got %v allocs, want 0", name, got)
					}
				}

				time.Sleep(time.Hour)
				trial := admit(t, b, "")
				got := testing.AllocsPerRun(1000, func() {
					if _, err := b.Enter(ctx, ""); err == nil {
						t.Fatal("admitted, want a refusal")
					}
				})
				if got != 0 {
					t.Errorf("half-open refusal: got %v allocs, want 0", got)
				}
				trial.Done(bulwark.Success)
			})
		})
	}
}

func TestRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, breaker.Config{})
		set := mustNewSet(t, breaker.Config{})
		b.Release(admit(t, b, ""), bulwark.Failure)
		set.Release(admit(t, set, "k"), bulwark.Failure)
		b.Release(bulwark.Permit{}, bulwark.Failure) // admits nothing: ignored
		bulwark.Permit{}.Done(bulwark.Failure)
		if got := b.Counts(); got.Requests != 1 || got.Failures != 1 {
			t.Errorf("Breaker counts: got %+v, want one failure", got)
		}
		if got := set.Counts("k"); got.Requests != 1 || got.Failures != 1 {
			t.Errorf("Set counts: got %+v, want one failure", got)
		}
		admit(t, b, "").Done(bulwark.Outcome(9)) // unknown: judged as nothing
		if got := b.Counts(); got.Ignored != 1 || got.Failures != 1 || got.Successes != 0 {
			t.Errorf("after an unknown outcome: got %+v, want it ignored", got)
		}
	})
}

func TestPanickingCallbackLosesNoLaterEventOfItsBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []string
		hold := make(chan struct{})
		b := mustNew(t, breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Second, HalfOpenTrials: 1,
			OnStateChange: func(e breaker.Event) {
				events = append(events, e.From.String()+"→"+e.To.String())
				switch e.To {
				case breaker.Open:
					if len(events) == 1 {
						<-hold // the drainer is busy: later changes queue up
					}
				case breaker.HalfOpen:
					panic("boom")
				}
			}})
		drainer := make(chan any)
		go func() {
			defer func() { drainer <- recover() }()
			run(t, b, "", F) // closed → open; its delivery waits on hold
		}()
		synctest.Wait()
		time.Sleep(time.Second)
		// open → half-open and half-open → open queue behind the drainer.
		p, err := b.Enter(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		p.Done(F)
		close(hold)
		if r := <-drainer; r != "boom" {
			t.Fatalf("drainer recovered %v, want the callback's panic", r)
		}
		b.State() // the next caller delivers what the panic left
		want := []string{"closed→open", "open→half-open", "half-open→open"}
		if fmt.Sprint(events) != fmt.Sprint(want) {
			t.Fatalf("events %v, want %v", events, want)
		}
	})
}

// A panic in OnStateChange while an attempt is being admitted (here the
// change to half-open its admission made) goes on to the caller, but the
// trial slot the attempt took is given back, as for an attempt that never
// started: the breaker is not left half-open with a slot held, nor opened
// again by the lost trial given up as a Failure after TrialTimeout.
func TestPanickingCallbackOnEnterLosesNoTrial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		panicked := false
		b := mustNew(t, breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Second, HalfOpenTrials: 1,
			TrialTimeout: time.Minute,
			OnStateChange: func(e breaker.Event) {
				if e.To == breaker.HalfOpen && !panicked {
					panicked = true
					panic("boom")
				}
			}})
		trip(t, b)
		time.Sleep(time.Second)
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Fatalf("recovered %v, want the callback's panic", r)
				}
			}()
			p, err := b.Enter(context.Background(), "")
			if err == nil {
				p.Done(bulwark.Success)
			}
			t.Fatal("Enter returned although OnStateChange panicked")
		}()
		p, err := b.Enter(context.Background(), "")
		if err != nil {
			t.Fatalf("the next attempt: got %v, want it admitted as the trial", err)
		}
		p.Done(bulwark.Success)
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("after a good trial: got %v, want closed", got)
		}
	})
}

// A TrialTimeout too long to add to a clock reading (a way to say "never
// give a trial up") still gives a half-open refusal a RetryAt in the
// future, not one wrapped round to the past.
func TestHugeTrialTimeoutRetryAtIsLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Second, HalfOpenTrials: 1,
			TrialTimeout: math.MaxInt64})
		trip(t, b)
		time.Sleep(time.Second)
		p := admit(t, b, "")
		defer p.Done(bulwark.Ignored)
		time.Sleep(time.Second) // the breaker has run a while: its clock reads more than zero
		if e := refused(t, b, ""); e.State != breaker.HalfOpen || !e.RetryAt.After(time.Now()) {
			t.Fatalf("refusal: got %+v, want half-open with a RetryAt after now (%v)", e, time.Now())
		}
	})
}
