package bulkhead_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// A Stack holds the call's total deadline off the context: the wait in a
// bulkhead's queue, with no MaxWait of its own, must still end there, with
// the total deadline's error, and leave the queue, for a Bulkhead and for
// a Set, behind or without a MaxWait longer than the total.
func TestTotalDeadlineEndsTheQueueWait(t *testing.T) {
	for _, c := range []struct {
		name  string
		guard func(t *testing.T, cfg bulkhead.Config) (bulwark.Guard, func() int)
	}{
		{"Bulkhead", func(t *testing.T, cfg bulkhead.Config) (bulwark.Guard, func() int) {
			b, err := bulkhead.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return b, b.Queued
		}},
		{"Set", func(t *testing.T, cfg bulkhead.Config) (bulwark.Guard, func() int) {
			s, err := bulkhead.NewSet(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return s, func() int { return s.Queued("k") }
		}},
	} {
		for _, maxWait := range []time.Duration{0, time.Minute} {
			t.Run(c.name+"/MaxWait="+maxWait.String(), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					g, queued := c.guard(t, bulkhead.Config{Limit: 1, MaxQueue: 1, MaxWait: maxWait})
					to, err := timeout.New(timeout.Config{Total: time.Second})
					if err != nil {
						t.Fatal(err)
					}
					s, err := bulwark.New(bulwark.Config{Timeout: to, Guards: []bulwark.Guard{g}})
					if err != nil {
						t.Fatal(err)
					}
					release := make(chan struct{})
					var wg sync.WaitGroup
					wg.Go(func() { // holds the only slot for as long as the test wants
						_, _ = bulwark.Do(context.Background(), s, "k", func(context.Context) (int, error) {
							<-release
							return 1, nil
						})
					})
					synctest.Wait()
					start := time.Now()
					ran := false
					_, err = bulwark.Do(context.Background(), s, "k", func(context.Context) (int, error) {
						ran = true
						return 1, nil
					})
					if waited := time.Since(start); waited != time.Second {
						t.Errorf("the queued call returned after %v, want the total deadline, 1s", waited)
					}
					if !errors.Is(err, timeout.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("got %v, want the total deadline's timeout error", err)
					}
					if ran {
						t.Error("the call ran after its total deadline")
					}
					if n := queued(); n != 0 {
						t.Errorf("%d attempts still queued, want 0", n)
					}
					close(release)
					wg.Wait()
				})
			})
		}
	}
}
