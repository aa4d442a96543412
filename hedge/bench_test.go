package hedge_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/hedge"
)

// The cost of hedging a call whose first attempt answers before the delay,
// beside calling the attempt directly.
func BenchmarkPassThrough(b *testing.B) {
	ctx := context.Background()
	attempt := func(context.Context, int) bulwark.Result { return bulwark.Result{} }
	call := bulwark.Call{Idempotent: true, Attempts: bulwark.AttemptFunc(attempt)}
	h := mustNew(b, hedge.Config{Delay: time.Second})
	for _, bm := range []struct {
		name string
		run  func()
	}{
		{"direct", func() { attempt(ctx, 0) }},
		{"hedge", func() { _, _ = h.Run(ctx, call) }},
	} {
		b.Run(bm.name+"/seq", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bm.run()
			}
		})
		b.Run(bm.name+"/par", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bm.run()
				}
			})
		})
	}
}

// TestPassThroughAllocations pins what a hedged call costs when its first
// attempt answers in time: a cancellable context for the first attempt (it
// could lose, and a loser is cancelled). The run's state and its timer come
// from a pool.
func TestPassThroughAllocations(t *testing.T) {
	h := mustNew(t, hedge.Config{Delay: time.Second})
	call := bulwark.Call{Idempotent: true, Attempts: bulwark.AttemptFunc(func(context.Context, int) bulwark.Result { return bulwark.Result{} })}
	got := testing.AllocsPerRun(1000, func() { _, _ = h.Run(context.Background(), call) })
	if got > 3 {
		t.Fatalf("got %v allocs per pass-through Run, want at most 3", got)
	}
	t.Logf("%v allocs per pass-through Run", got)
}
