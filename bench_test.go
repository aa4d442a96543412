package bulwark_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/semaphore"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// The composed pass-through stack (breaker + bulkhead + attempt deadline)
// beside what a user would otherwise write: a bare context.WithTimeout, and
// a bare gobreaker. Run with
//
//	go test -run '^$' -bench Compose -count 10 . | tee new.txt && benchstat new.txt

func composedStack(b *testing.B) *bulwark.Stack {
	b.Helper()
	brk, err := breaker.NewSet(breaker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	blk, err := bulkhead.NewSet(bulkhead.Config{Limit: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	to, err := timeout.New(timeout.Config{Attempt: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	s, err := bulwark.New(bulwark.Config{Timeout: to, Guards: []bulwark.Guard{brk, blk}})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// both runs body sequentially and under RunParallel.
func both(b *testing.B, body func(pb func() bool)) {
	b.Run("seq", func(b *testing.B) {
		b.ReportAllocs()
		body(b.Loop)
	})
	b.Run("par", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) { body(pb.Next) })
	})
}

func BenchmarkCompose(b *testing.B) {
	ctx := context.Background()
	b.Run("bare-context.WithTimeout", func(b *testing.B) {
		both(b, func(next func() bool) {
			for next() {
				c, cancel := context.WithTimeout(ctx, time.Second)
				_ = c
				cancel()
			}
		})
	})
	b.Run("bare-gobreaker.Execute", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{})
		both(b, func(next func() bool) {
			for next() {
				_, _ = cb.Execute(func() (int, error) { return 1, nil })
			}
		})
	})
	b.Run("floor-WithTimeout+gobreaker.TwoStep+semaphore", func(b *testing.B) {
		// The least any composition of the three mandated parts can cost:
		// one breaker and one semaphore (no key lookup), written by hand.
		cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{})
		sem := semaphore.NewWeighted(1 << 20)
		both(b, func(next func() bool) {
			for next() {
				done, err := cb.Allow()
				if err != nil {
					b.Fatal(err)
				}
				if !sem.TryAcquire(1) {
					b.Fatal("semaphore full")
				}
				c, cancel := context.WithTimeout(ctx, time.Second)
				_ = c
				cancel()
				sem.Release(1)
				done(nil)
			}
		})
	})
	b.Run("stack-Enter-Done", func(b *testing.B) {
		s := composedStack(b)
		both(b, func(next func() bool) {
			var a bulwark.Attempt
			for next() {
				if err := s.Enter(ctx, "api.example:443", &a); err != nil {
					b.Fatal(err)
				}
				a.Done(bulwark.Success)
			}
		})
	})
	b.Run("stack-Do", func(b *testing.B) {
		s := composedStack(b)
		call := func(context.Context) (int, error) { return 1, nil }
		both(b, func(next func() bool) {
			for next() {
				if _, err := bulwark.Do(ctx, s, "api.example:443", call); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("stack-open-rejection", func(b *testing.B) {
		brk, err := breaker.NewSet(breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		blk, _ := bulkhead.NewSet(bulkhead.Config{})
		to, _ := timeout.New(timeout.Config{Attempt: time.Second})
		s, _ := bulwark.New(bulwark.Config{Timeout: to, Guards: []bulwark.Guard{brk, blk}})
		var a bulwark.Attempt
		if err := s.Enter(ctx, "down", &a); err != nil {
			b.Fatal(err)
		}
		a.Done(bulwark.Failure)
		both(b, func(next func() bool) {
			var a bulwark.Attempt
			for next() {
				if err := s.Enter(ctx, "down", &a); !errors.Is(err, breaker.ErrOpen) {
					b.Fatalf("Enter = %v, want breaker.ErrOpen", err)
				}
			}
		})
	})
}
