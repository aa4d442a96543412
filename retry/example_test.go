package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/retry"
)

func ExampleNew() {
	r, err := retry.New(retry.Config{
		MaxAttempts: 3,
		Backoff:     retry.Exponential{Base: time.Millisecond, Cap: 10 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	stack, err := bulwark.New(bulwark.Config{Retry: r})
	if err != nil {
		panic(err)
	}
	// Only calls marked idempotent are retried.
	ctx := bulwark.Idempotent(context.Background())
	v, err := bulwark.Do(ctx, stack, "inventory", func(ctx context.Context) (string, error) {
		n := bulwark.AttemptNumber(ctx)
		fmt.Println("attempt", n)
		if n < 2 {
			return "", errors.New("connection reset")
		}
		return "42 in stock", nil
	})
	fmt.Println(v, err)

	_, err = retry.New(retry.Config{MaxAttempts: -1})
	fmt.Println(err)
	// Output:
	// attempt 0
	// attempt 1
	// attempt 2
	// 42 in stock <nil>
	// retry: Config.MaxAttempts is -1, want >= 0
}

func ExampleNewBudget() {
	// One budget for every client of a dependency, retries and hedges
	// alike: 20 % of calls plus one extra attempt per second.
	budget, err := retry.NewBudget(retry.BudgetConfig{Name: "payments", Ratio: 0.2, PerSecond: 1, Window: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	for range 50 {
		budget.Request()
	}
	n := 0
	for budget.Withdraw() {
		n++
	}
	fmt.Println("extra attempts allowed:", n) // 1·10 + 0.2·50

	_, err = retry.NewBudget(retry.BudgetConfig{Ratio: 2})
	fmt.Println(err)
	// Output:
	// extra attempts allowed: 20
	// retry: BudgetConfig.Ratio is 2, want within [0, 1]
}

func ExampleNewLatency() {
	lat, err := retry.NewLatency(retry.LatencyConfig{Window: 1000, MinSamples: 10})
	if err != nil {
		panic(err)
	}
	if _, ok := lat.Quantile(0.99); !ok {
		fmt.Println("no answer before 10 samples")
	}
	for i := 1; i <= 100; i++ {
		lat.Observe(time.Duration(i) * time.Millisecond)
	}
	p50, _ := lat.Quantile(0.5)
	p99, _ := lat.Quantile(0.99) // 99ms, within 2 %
	fmt.Println("p50:", p50.Round(time.Millisecond), "p99:", p99.Round(time.Millisecond))

	// A Retry that feeds lat with its attempts and starts no retry when
	// less than their p90 is left before the deadline.
	r, err := retry.New(retry.Config{Latency: lat, Quantile: 0.9})
	fmt.Println(r != nil, err)
	// Output:
	// no answer before 10 samples
	// p50: 50ms p99: 100ms
	// true <nil>
}

func ExampleParseRetryAfter() {
	now := time.Date(2026, time.March, 4, 12, 0, 0, 0, time.UTC)
	for _, v := range []string{
		"120",
		"Wed, 04 Mar 2026 12:00:30 GMT",
		"Wednesday, 04-Mar-26 12:01:00 GMT",
		"Wed, 04 Mar 2026 11:00:00 GMT",
		"-5",
		"soon",
	} {
		d, ok := retry.ParseRetryAfter(v, now)
		fmt.Println(d, ok)
	}
	// Output:
	// 2m0s true
	// 30s true
	// 1m0s true
	// 0s true
	// 0s false
	// 0s false
}

func ExampleParsePushback() {
	for _, v := range []string{"250", "-1", ""} {
		d, ok := retry.ParsePushback(v)
		fmt.Println(d, ok)
	}
	// Output:
	// 250ms true
	// -1ns true
	// 0s false
}

func ExampleNewIdempotencyKey() {
	key := retry.NewIdempotencyKey() // once per logical call, sent with every attempt
	fmt.Println(len(key), key[14:15])
	// Output:
	// 36 4
}

func ExampleBackoffFunc() {
	// A policy of one's own, or an existing one, in one line.
	linear := retry.BackoffFunc(func(n int, _ time.Duration) time.Duration {
		return time.Duration(n+1) * 100 * time.Millisecond
	})
	for n := range 3 {
		fmt.Println(linear.Delay(n, 0))
	}
	// Output:
	// 100ms
	// 200ms
	// 300ms
}
