package retry_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/retry"
)

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

// BenchmarkRunPassThrough is a call whose first attempt succeeds, through
// Run, beside the attempt called directly, and the same through
// bulwark.Do with and without the Retry.
func BenchmarkRunPassThrough(b *testing.B) {
	mp, _ := newReader()
	ctx := context.Background()
	c := bulwark.Call{Idempotent: true, Attempts: bulwark.AttemptFunc(func(context.Context, int) bulwark.Result { return success })}
	plain := mustNew(b, retry.Config{MeterProvider: mp})
	tracked := mustNew(b, retry.Config{MeterProvider: mp, Latency: mustLatency(b, retry.LatencyConfig{})})

	bench(b, "bare", func() { c.Attempt(ctx, 0) })
	bench(b, "Retry", func() { plain.Run(ctx, c) })
	bench(b, "Retry+Latency", func() { tracked.Run(ctx, c) })

	without, _ := bulwark.New(bulwark.Config{})
	with, _ := bulwark.New(bulwark.Config{Retry: plain, Idempotent: true})
	call := func(context.Context) (int, error) { return 1, nil }
	bench(b, "Do", func() { bulwark.Do(ctx, without, "", call) })
	bench(b, "Do+Retry", func() { bulwark.Do(ctx, with, "", call) })
}

// mutexBudget is the bare alternative: two counters under a mutex, no
// window.
type mutexBudget struct {
	mu                    sync.Mutex
	requests, withdrawals float64
}

func (m *mutexBudget) Request() { m.mu.Lock(); m.requests++; m.mu.Unlock() }
func (m *mutexBudget) Withdraw() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.withdrawals+1 > 10+0.2*m.requests {
		return false
	}
	m.withdrawals++
	return true
}

// BenchmarkBudget is one call's Request and one Withdraw, the cost a
// retried call pays.
func BenchmarkBudget(b *testing.B) {
	mp, _ := newReader()
	// Ratio 1: every request earns the withdrawal that follows it.
	granted := mustBudget(b, retry.BudgetConfig{Ratio: 1, MeterProvider: mp})
	bench(b, "Budget", func() {
		granted.Request()
		granted.Withdraw()
	})
	bench(b, "Budget.Request", granted.Request)
	// Spent: every withdrawal is refused, and counted in the metric.
	spent := mustBudget(b, retry.BudgetConfig{Ratio: 1e-9, PerSecond: 1e-9, MeterProvider: mp})
	bench(b, "Budget.Withdraw/refused", func() { spent.Withdraw() })
	var m mutexBudget
	bench(b, "mutex", func() {
		m.Request()
		m.Withdraw()
	})
}

// ringLatency is the bare alternative: the last samples in a ring under a
// mutex, sorted on demand.
type ringLatency struct {
	mu      sync.Mutex
	samples []time.Duration
	next    int
}

func (r *ringLatency) Observe(d time.Duration) {
	r.mu.Lock()
	if len(r.samples) < 1000 {
		r.samples = append(r.samples, d)
	} else {
		r.samples[r.next] = d
		r.next = (r.next + 1) % len(r.samples)
	}
	r.mu.Unlock()
}

func (r *ringLatency) Quantile(q float64) time.Duration {
	r.mu.Lock()
	s := slices.Clone(r.samples)
	r.mu.Unlock()
	slices.Sort(s)
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

func BenchmarkLatency(b *testing.B) {
	l := mustLatency(b, retry.LatencyConfig{})
	var ring ringLatency
	for i := range 2000 {
		l.Observe(time.Duration(i) * time.Microsecond)
		ring.Observe(time.Duration(i) * time.Microsecond)
	}
	bench(b, "Observe", func() { l.Observe(1234 * time.Microsecond) })
	bench(b, "Quantile", func() { l.Quantile(0.99) })
	bench(b, "ring.Observe", func() { ring.Observe(1234 * time.Microsecond) })
	bench(b, "ring.Quantile", func() { ring.Quantile(0.99) })
}

func BenchmarkParseRetryAfter(b *testing.B) {
	now := time.Now()
	date := now.Add(time.Minute).UTC().Format(http.TimeFormat)
	bench(b, "seconds", func() { retry.ParseRetryAfter("120", now) })
	bench(b, "date", func() { retry.ParseRetryAfter(date, now) })
	bench(b, "strconv.Atoi", func() { strconv.Atoi("120") })
	bench(b, "http.ParseTime", func() { http.ParseTime(date) })
}

func BenchmarkBackoff(b *testing.B) {
	e, d := retry.Exponential{}, retry.Decorrelated{}
	bench(b, "Exponential", func() { e.Delay(3, 0) })
	bench(b, "Decorrelated", func() { d.Delay(3, 200*time.Millisecond) })
}
