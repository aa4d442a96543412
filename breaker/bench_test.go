package breaker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/sony/gobreaker/v2"
)

// The bare alternative: gobreaker with the same window, trials and open
// period as breaker's defaults, tripping on the first failure.
func bareSettings() gobreaker.Settings {
	return gobreaker.Settings{
		MaxRequests:  3,
		Interval:     30 * time.Second,
		BucketPeriod: 3 * time.Second,
		Timeout:      time.Hour,
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 },
	}
}

func ok() (struct{}, error)   { return struct{}{}, nil }
func fail() (struct{}, error) { return struct{}{}, errors.New("down") }

// bench runs f sequentially and under RunParallel, reporting allocations.
func bench(b *testing.B, name string, f func()) {
	b.Run(name+"/seq", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f()
		}
	})
	b.Run(name+"/par", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				f()
			}
		})
	})
}

// BenchmarkEnterDone is the pass-through path: admit, then report a success.
func BenchmarkEnterDone(b *testing.B) {
	ctx := context.Background()
	brk := mustNew(b, breaker.Config{})
	slow := mustNew(b, breaker.Config{SlowCallThreshold: time.Hour})
	set := mustNewSet(b, breaker.Config{})
	cb := gobreaker.NewCircuitBreaker[struct{}](bareSettings())
	ts := gobreaker.NewTwoStepCircuitBreaker[struct{}](bareSettings())

	bench(b, "Breaker", func() {
		p, _ := brk.Enter(ctx, "k")
		p.Done(bulwark.Success)
	})
	bench(b, "Breaker+SlowCallThreshold", func() {
		p, _ := slow.Enter(ctx, "k")
		p.Done(bulwark.Success)
	})
	bench(b, "Set", func() {
		p, _ := set.Enter(ctx, "k")
		p.Done(bulwark.Success)
	})
	bench(b, "gobreaker.Execute", func() { _, _ = cb.Execute(ok) })
	bench(b, "gobreaker.TwoStep", func() {
		done, _ := ts.Allow()
		done(nil)
	})
}

// BenchmarkRejection is the refusal of an open breaker.
func BenchmarkRejection(b *testing.B) {
	ctx := context.Background()
	_, mp := newReader(b)
	cfg := breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Hour}
	brk := mustNew(b, cfg)
	set := mustNewSet(b, cfg)
	cfg.MeterProvider = mp
	sdk := mustNew(b, cfg)
	run(b, brk, "", bulwark.Failure)
	run(b, set, "k", bulwark.Failure)
	run(b, sdk, "", bulwark.Failure)
	// Half-open with its one trial slot taken: trip, let 1ns pass, take it.
	full := mustNew(b, breaker.Config{ConsecutiveFailures: 1, OpenDuration: 1, HalfOpenTrials: 1, TrialTimeout: time.Hour})
	run(b, full, "", bulwark.Failure)
	for full.State() != breaker.HalfOpen {
	}
	trial := admit(b, full, "")
	defer trial.Done(bulwark.Success)
	cb := gobreaker.NewCircuitBreaker[struct{}](bareSettings())
	_, _ = cb.Execute(fail)
	ts := gobreaker.NewTwoStepCircuitBreaker[struct{}](bareSettings())
	done, _ := ts.Allow()
	done(errors.New("down"))

	bench(b, "Breaker", func() { _, _ = brk.Enter(ctx, "k") })
	bench(b, "Breaker+sdkmetric", func() { _, _ = sdk.Enter(ctx, "k") })
	bench(b, "Set", func() { _, _ = set.Enter(ctx, "k") })
	bench(b, "Breaker/half-open-full", func() { _, _ = full.Enter(ctx, "") })
	bench(b, "gobreaker.Execute", func() { _, _ = cb.Execute(ok) })
	bench(b, "gobreaker.TwoStep", func() { _, _ = ts.Allow() })
}
