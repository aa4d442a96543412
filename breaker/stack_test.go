package breaker_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
)

// Under a Stack the slow-call clock starts once the bulkhead admitted the
// attempt: time queued is the bulkhead's, not the endpoint's.
func TestSlowCallClockSkipsTheBulkheadQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		brk := mustNew(t, breaker.Config{SlowCallThreshold: 2 * time.Second})
		blk, err := bulkhead.New(bulkhead.Config{Limit: 1, MaxQueue: 1})
		if err != nil {
			t.Fatal(err)
		}
		s, err := bulwark.New(bulwark.Config{Guards: []bulwark.Guard{brk, blk}})
		if err != nil {
			t.Fatal(err)
		}
		call := func(d time.Duration) {
			_, err := bulwark.Do(context.Background(), s, "k", func(context.Context) (int, error) {
				time.Sleep(d) // fake clock: the endpoint's own time
				return 1, nil
			})
			if err != nil {
				t.Error(err)
			}
		}
		var wg sync.WaitGroup
		wg.Go(func() { call(1500 * time.Millisecond) }) // holds the only slot
		synctest.Wait()
		wg.Go(func() { call(time.Second) }) // queues 1.5s, then runs 1s: 2.5s in all
		wg.Wait()
		if got := brk.Counts(); got.Successes != 2 || got.Failures != 0 {
			t.Fatalf("counts %+v, want 2 successes: neither call was slower than 2s at the endpoint", got)
		}

		call(2500 * time.Millisecond) // slow at the endpoint itself
		if got := brk.Counts(); got.Failures != 1 {
			t.Fatalf("counts %+v, want the 2.5s call counted as a failure", got)
		}
	})
}
