package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
)

func ExampleNew() {
	brk, err := breaker.New(breaker.Config{
		ConsecutiveFailures: 3,
		OpenDuration:        10 * time.Second,
		OnStateChange: func(e breaker.Event) {
			fmt.Printf("breaker %s → %s\n", e.From, e.To)
		},
	})
	if err != nil {
		panic(err)
	}
	defer brk.Close()

	ctx := context.Background()
	for range 4 {
		p, err := brk.Enter(ctx, "")
		if err != nil {
			var open *breaker.OpenError
			errors.As(err, &open)
			fmt.Println("refused:", errors.Is(err, breaker.ErrOpen), open.State, time.Until(open.RetryAt).Round(time.Second))
			continue
		}
		p.Done(bulwark.Failure) // the endpoint failed
	}
	fmt.Println(brk.State())
	// Output:
	// breaker closed → open
	// refused: true open 10s
	// open
}

func ExampleNewSet() {
	set, err := breaker.NewSet(breaker.Config{ConsecutiveFailures: 1, MaxKeys: 100})
	if err != nil {
		panic(err)
	}
	defer set.Close()

	ctx := context.Background()
	for _, key := range []string{"users", "orders"} {
		p, err := set.Enter(ctx, key)
		if err != nil {
			panic(err)
		}
		if key == "users" {
			p.Done(bulwark.Failure)
		} else {
			p.Done(bulwark.Success)
		}
	}
	_, err = set.Enter(ctx, "users")
	fmt.Println("users:", set.State("users"), errors.Is(err, bulwark.ErrRejected))
	_, err = set.Enter(ctx, "orders")
	fmt.Println("orders:", set.State("orders"), err)
	// Output:
	// users: open true
	// orders: closed <nil>
}

// A Set is a bulwark.Guard: give it to a Stack, before the bulkhead.
func ExampleSet_stack() {
	set, err := breaker.NewSet(breaker.Config{ConsecutiveFailures: 2})
	if err != nil {
		panic(err)
	}
	defer set.Close()
	stack, err := bulwark.New(bulwark.Config{Guards: []bulwark.Guard{set}})
	if err != nil {
		panic(err)
	}

	down := errors.New("connection refused")
	for range 3 {
		_, err := bulwark.Do(context.Background(), stack, "10.0.0.7:8080", func(context.Context) (string, error) {
			return "", down
		})
		fmt.Println(errors.Is(err, down), errors.Is(err, breaker.ErrOpen))
	}
	// Output:
	// true false
	// true false
	// false true
}
