package hedge_test

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/retry"
)

func ExampleNew() {
	budget, _ := retry.NewBudget(retry.BudgetConfig{}) // shared with the retries
	h, err := hedge.New(hedge.Config{Delay: 20 * time.Millisecond, Budget: budget})
	if err != nil {
		panic(err)
	}
	stack, _ := bulwark.New(bulwark.Config{Retry: h, Idempotent: true})

	replica, err := bulwark.Do(context.Background(), stack, "search", func(ctx context.Context) (string, error) {
		if bulwark.AttemptNumber(ctx) == 0 {
			<-ctx.Done() // the first replica is stuck; the hedge cancels it
			return "", ctx.Err()
		}
		return "answered by the hedge", nil
	})
	fmt.Println(replica, err)
	// Output:
	// answered by the hedge <nil>
}
