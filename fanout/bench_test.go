package fanout_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark/fanout"
	"github.com/bulwarkrpc/bulwark/hedge"
)

// The branches of the benchmarks answer at once, so that what is measured
// is the fan-out's own cost: goroutines, bookkeeping, metrics.
func fetchName(context.Context) (string, error)   { return "ada", nil }
func fetchOrders(context.Context) ([]int, error)  { return nil, nil }
func fetchCount(context.Context) (int, error)     { return 7, nil }
func fetchReplica(context.Context) (int, error)   { return 1, nil }
func fetchMirror(context.Context) (string, error) { return "payload", nil }

var sinkName string
var sinkCount int

func gatherFanout(b *testing.B, f *fanout.Fanout, ctx context.Context) {
	g := f.Gather()
	name := fanout.Add(g, "users", nil, fetchName)
	orders := fanout.Add(g, "orders", nil, fetchOrders)
	count := fanout.Add(g, "count", nil, fetchCount)
	if err := g.Run(ctx); err != nil {
		b.Fatal(err)
	}
	n, _ := name.Get()
	o, _ := orders.Get()
	c, _ := count.Get()
	sinkName, sinkCount = n, c+len(o)
}

// gatherByHand is what a user writes without the package: a goroutine per
// branch and a sync.WaitGroup. It neither bounds concurrency nor stops
// waiting when ctx ends.
func gatherByHand(b *testing.B, ctx context.Context) {
	var wg sync.WaitGroup
	var n string
	var o []int
	var c int
	var nerr, oerr, cerr error
	wg.Add(3)
	go func() { defer wg.Done(); n, nerr = fetchName(ctx) }()
	go func() { defer wg.Done(); o, oerr = fetchOrders(ctx) }()
	go func() { defer wg.Done(); c, cerr = fetchCount(ctx) }()
	wg.Wait()
	if nerr != nil || oerr != nil || cerr != nil {
		b.Fatal(nerr, oerr, cerr)
	}
	sinkName, sinkCount = n, c+len(o)
}

// gatherByHandCtx is the hand-written version that, like Gather, stops
// waiting when ctx ends: a channel closed by the last branch, a select on
// it and ctx.Done(), a mutex so that a late branch writes nothing once
// the caller has stopped waiting.
func gatherByHandCtx(b *testing.B, ctx context.Context) {
	var mu sync.Mutex
	left, gone := 3, false
	done := make(chan struct{})
	var n string
	var o []int
	var c int
	end := func(set func()) {
		mu.Lock()
		defer mu.Unlock()
		if !gone {
			set()
			if left--; left == 0 {
				close(done)
			}
		}
	}
	go func() { v, _ := fetchName(ctx); end(func() { n = v }) }()
	go func() { v, _ := fetchOrders(ctx); end(func() { o = v }) }()
	go func() { v, _ := fetchCount(ctx); end(func() { c = v }) }()
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		gone = true
		mu.Unlock()
		b.Fatal(ctx.Err())
	}
	mu.Lock()
	sinkName, sinkCount = n, c+len(o)
	mu.Unlock()
}

func BenchmarkGather(b *testing.B) {
	f := mustNew(b, fanout.Config{})
	ctx, cancel := context.WithCancel(context.Background()) // a cancellable ctx, as a request's is
	defer cancel()
	b.Run("fanout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			gatherFanout(b, f, ctx)
		}
	})
	b.Run("waitgroup", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			gatherByHand(b, ctx)
		}
	})
	b.Run("byhand+ctx", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			gatherByHandCtx(b, ctx)
		}
	})
	// With an SDK MeterProvider, as in production: the metric calls cost
	// what the SDK's Add costs, once per outcome per call.
	sdk := mustNew(b, fanout.Config{MeterProvider: newMeter()})
	b.Run("fanout+sdkmetrics", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			gatherFanout(b, sdk, ctx)
		}
	})
	b.Run("fanout/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				gatherFanout(b, f, ctx)
			}
		})
	})
	b.Run("waitgroup/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				gatherByHand(b, ctx)
			}
		})
	})
	b.Run("byhand+ctx/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				gatherByHandCtx(b, ctx)
			}
		})
	})
}

var replicas = []fanout.Branch[int]{
	{Name: "a", Call: fetchReplica},
	{Name: "b", Call: fetchReplica},
	{Name: "c", Call: fetchReplica},
}

func quorumFanout(b *testing.B, f *fanout.Fanout, ctx context.Context) {
	answers, err := fanout.Quorum(ctx, f, 2, replicas...)
	if err != nil || len(answers) != 2 {
		b.Fatal(answers, err)
	}
	sinkCount = answers[0].Value
}

// quorumByHand: every replica on a goroutine, answers on a buffered
// channel, the rest cancelled once two have come in.
func quorumByHand(b *testing.B, ctx context.Context) {
	type res struct {
		v   int
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan res, len(replicas))
	for _, r := range replicas {
		go func() {
			v, err := r.Call(ctx)
			ch <- res{v, err}
		}()
	}
	ok := 0
	for range replicas {
		if r := <-ch; r.err == nil {
			ok++
			sinkCount = r.v
			if ok == 2 {
				return
			}
		}
	}
	b.Fatal("no quorum")
}

func BenchmarkQuorum(b *testing.B) {
	f := mustNew(b, fanout.Config{})
	ctx := context.Background()
	b.Run("fanout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			quorumFanout(b, f, ctx)
		}
	})
	b.Run("byhand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			quorumByHand(b, ctx)
		}
	})
	b.Run("fanout/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				quorumFanout(b, f, ctx)
			}
		})
	})
	b.Run("byhand/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				quorumByHand(b, ctx)
			}
		})
	})
}

var mirrors = []fanout.Branch[string]{
	{Name: "m1", Call: fetchMirror},
	{Name: "m2", Call: fetchMirror},
}

func firstFanout(b *testing.B, f *fanout.Fanout, ctx context.Context) {
	ans, err := fanout.First(ctx, f, mirrors...)
	if err != nil {
		b.Fatal(err)
	}
	sinkName = ans.Value
}

// firstByHand: the first mirror on a goroutine, a timer for the stagger,
// the second mirror when the timer fires first. No budget, no latency
// tracking, no metrics.
func firstByHand(b *testing.B, ctx context.Context) {
	type res struct {
		v   string
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan res, len(mirrors))
	start := func(i int) {
		go func() {
			v, err := mirrors[i].Call(ctx)
			ch <- res{v, err}
		}()
	}
	start(0)
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.err == nil {
			sinkName = r.v
			return
		}
	case <-timer.C:
	}
	start(1)
	r := <-ch
	sinkName = r.v
}

func BenchmarkFirst(b *testing.B) {
	f := mustNew(b, fanout.Config{Hedge: hedge.Config{Delay: time.Second}})
	ctx := context.Background()
	b.Run("fanout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			firstFanout(b, f, ctx)
		}
	})
	b.Run("byhand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			firstByHand(b, ctx)
		}
	})
	b.Run("fanout/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				firstFanout(b, f, ctx)
			}
		})
	})
	b.Run("byhand/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				firstByHand(b, ctx)
			}
		})
	})
}
