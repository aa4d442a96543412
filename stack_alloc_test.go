package bulwark_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/retry"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// A healthy call through the four policies a user would stack (attempt
// deadline, retry on a budget, breaker, bulkhead) allocates no more than
// the context.WithTimeout a user would write for the deadline alone, plus
// two. Measured when written: 6 allocations, context.WithTimeout 4.
func TestDoFourPoliciesAllocations(t *testing.T) {
	ctx := context.Background()
	withTimeout := testing.AllocsPerRun(1000, func() {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = c
		cancel()
	})
	call := func(context.Context) (int, error) { return 1, nil }
	for _, tt := range []struct {
		name string
		cfg  timeout.Config
	}{
		{"attempt deadline", timeout.Config{Attempt: 10 * time.Second}},
		{"total and attempt deadlines", timeout.Config{Total: 30 * time.Second, Attempt: 10 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			to, err := timeout.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			budget, err := retry.NewBudget(retry.BudgetConfig{})
			if err != nil {
				t.Fatal(err)
			}
			r, err := retry.New(retry.Config{Budget: budget})
			if err != nil {
				t.Fatal(err)
			}
			brk, err := breaker.NewSet(breaker.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = brk.Close() })
			blk, err := bulkhead.NewSet(bulkhead.Config{Limit: 256})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = blk.Close() })
			s := newStack(t, bulwark.Config{Timeout: to, Retry: r, Guards: []bulwark.Guard{brk, blk}, Idempotent: true})
			do := func() {
				if v, err := bulwark.Do(ctx, s, "k", call); err != nil || v != 1 {
					t.Fatalf("Do = %d, %v; want 1, nil", v, err)
				}
			}
			do() // the key's breaker and bulkhead are made on first use
			got := testing.AllocsPerRun(1000, do)
			t.Logf("%v allocations per Do, context.WithTimeout alone %v", got, withTimeout)
			if got > withTimeout+2 {
				t.Fatalf("got %v allocations per Do, want at most %v (context.WithTimeout's %v plus 2)", got, withTimeout+2, withTimeout)
			}
		})
	}
}
