package bulwark_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/timeout"
)

func ExampleNew() {
	brk, _ := breaker.NewSet(breaker.Config{ConsecutiveFailures: 3})
	blk, _ := bulkhead.NewSet(bulkhead.Config{Limit: 8})
	to, _ := timeout.New(timeout.Config{Total: 2 * time.Second, Attempt: 500 * time.Millisecond})
	stack, err := bulwark.New(bulwark.Config{Timeout: to, Guards: []bulwark.Guard{brk, blk}})
	if err != nil {
		panic(err)
	}

	down := errors.New("connection refused")
	for i := range 5 {
		_, err := bulwark.Do(context.Background(), stack, "inventory", func(ctx context.Context) (int, error) {
			return 0, down // the inventory service is down
		})
		var open *breaker.OpenError
		if errors.As(err, &open) {
			fmt.Printf("call %d: refused, breaker for %q is %s (rejected locally: %v)\n",
				i+1, open.Key, open.State, errors.Is(err, bulwark.ErrRejected))
			continue
		}
		fmt.Printf("call %d: %v\n", i+1, err)
	}
	// Output:
	// call 1: connection refused
	// call 2: connection refused
	// call 3: connection refused
	// call 4: refused, breaker for "inventory" is open (rejected locally: true)
	// call 5: refused, breaker for "inventory" is open (rejected locally: true)
}

func ExampleDo() {
	to, _ := timeout.New(timeout.Config{Attempt: 10 * time.Millisecond})
	stack, _ := bulwark.New(bulwark.Config{Timeout: to})

	_, err := bulwark.Do(context.Background(), stack, "search", func(ctx context.Context) ([]string, error) {
		<-ctx.Done() // a search that takes too long
		return nil, ctx.Err()
	})
	fmt.Println(err)
	fmt.Println(errors.Is(err, timeout.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// timeout: attempt deadline of 10ms exceeded: context deadline exceeded
	// true true
}
