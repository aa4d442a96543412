package timeout_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwarkrpc/bulwark/timeout"
)

func ExampleNew() {
	to, err := timeout.New(timeout.Config{Total: time.Second, Attempt: 20 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	ctx, cancel := to.WithTotal(context.Background())
	defer cancel()

	attempt, done := to.WithAttempt(ctx)
	<-attempt.Done() // an endpoint that never answers
	err = timeout.Wrap(attempt, attempt.Err())
	done()

	fmt.Println(err)
	fmt.Println(errors.Is(err, timeout.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	fmt.Println("time left for another attempt:", timeout.Enough(ctx, 100*time.Millisecond))
	// Output:
	// timeout: attempt deadline of 20ms exceeded: context deadline exceeded
	// true true
	// time left for another attempt: true
}

func ExampleNew_validation() {
	_, err := timeout.New(timeout.Config{Total: time.Second, Attempt: 2 * time.Second})
	fmt.Println(err)
	// Output:
	// timeout: Config.Attempt (2s) exceeds Config.Total (1s)
}
