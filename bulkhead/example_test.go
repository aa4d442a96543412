package bulkhead_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/bulkhead"
)

func ExampleNew() {
	ctx := context.Background()
	blk, err := bulkhead.New(bulkhead.Config{Name: "db", Limit: 2})
	if err != nil {
		panic(err)
	}
	p1, _ := blk.Enter(ctx, "")
	p2, _ := blk.Enter(ctx, "")
	fmt.Println("in flight:", blk.InFlight())

	_, err = blk.Enter(ctx, "")
	fmt.Println(err)
	fmt.Println(errors.Is(err, bulkhead.ErrFull), bulwark.ClassifyError(ctx, err))

	p1.Done(bulwark.Success)
	p2.Done(bulwark.Failure)
	fmt.Println("in flight:", blk.InFlight())
	// Output:
	// in flight: 2
	// bulkhead: full: key "db", limit 2, no queue
	// true ignored
	// in flight: 0
}

func ExampleNewSet() {
	ctx := context.Background()
	set, err := bulkhead.NewSet(bulkhead.Config{Limit: 1, MaxQueue: 1, MaxWait: 10 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	// As a guard of a Stack, the Set limits each key on its own.
	stack, err := bulwark.New(bulwark.Config{Guards: []bulwark.Guard{set}})
	if err != nil {
		panic(err)
	}
	hold, _ := set.Enter(ctx, "users") // a long call in progress on "users"

	_, err = bulwark.Do(ctx, stack, "users", func(context.Context) (string, error) { return "user", nil })
	var full *bulkhead.FullError
	if errors.As(err, &full) {
		fmt.Println(full.Key, full.Reason)
	}
	orders, err := bulwark.Do(ctx, stack, "orders", func(context.Context) (string, error) { return "orders", nil })
	fmt.Println(orders, err)

	hold.Done(bulwark.Success)
	// Output:
	// users max_wait
	// orders <nil>
}

func ExampleNew_adaptive() {
	ctx := context.Background()
	blk, err := bulkhead.New(bulkhead.Config{
		Name:  "api",
		Limit: 256, // the ceiling
		// Learn from 1 to 256 attempts at once, starting at 4. The short
		// window and few samples make this example quick; the defaults
		// (100ms, 8) suit most endpoints.
		Adaptive: &bulkhead.AdaptiveConfig{InitialLimit: 4, Window: time.Millisecond, MinSamples: 4},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("limit:", blk.Limit())

	// A window in which every attempt fails (the endpoint sheds load)
	// halves the limit, however many fail.
	var attempts []bulwark.Permit
	for range 4 {
		p, _ := blk.Enter(ctx, "")
		attempts = append(attempts, p)
	}
	time.Sleep(time.Millisecond) // the attempts' work
	for _, p := range attempts {
		p.Done(bulwark.Failure)
	}
	fmt.Println("limit:", blk.Limit())

	p1, _ := blk.Enter(ctx, "")
	p2, _ := blk.Enter(ctx, "")
	_, err = blk.Enter(ctx, "")
	fmt.Println(err)
	p1.Done(bulwark.Ignored) // the caller gave up: teaches the limit nothing
	p2.Done(bulwark.Success)
	// Output:
	// limit: 4
	// limit: 2
	// bulkhead: full: key "api", limit 2, no queue
}
