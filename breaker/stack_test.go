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
// attempt: time queued is the bulkhead's, not the endpoint's. So it is for
// a Breaker and for a Set, which hands out its breakers' Permits.
func TestSlowCallClockSkipsTheBulkheadQueue(t *testing.T) {
	cfg := breaker.Config{SlowCallThreshold: 2 * time.Second}
	for _, c := range []struct {
		name string
		new  func(t *testing.T) (bulwark.Guard, func() breaker.Counts)
	}{
		{"Breaker", func(t *testing.T) (bulwark.Guard, func() breaker.Counts) {
			b := mustNew(t, cfg)
			return b, b.Counts
		}},
		{"Set", func(t *testing.T) (bulwark.Guard, func() breaker.Counts) {
			s, err := breaker.NewSet(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return s, func() breaker.Counts { return s.Counts("k") }
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				brk, counts := c.new(t)
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
				if got := counts(); got.Successes != 2 || got.Failures != 0 {
					t.Fatalf("counts %+v, want 2 successes: neither call was slower than 2s at the endpoint", got)
				}

				call(2500 * time.Millisecond) // slow at the endpoint itself
				if got := counts(); got.Failures != 1 {
					t.Fatalf("counts %+v, want the 2.5s call counted as a failure", got)
				}
			})
		})
	}
}
