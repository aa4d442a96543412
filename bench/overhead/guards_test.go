package overhead_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/failsafe-go/failsafe-go"
	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
)

// guard is one way to admit a call and report its success.
type guard struct {
	name string
	do   func() error
}

func benchGuards(b *testing.B, gs []guard) {
	for _, g := range gs {
		b.Run("impl="+g.name+"/mode=seq", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := g.do(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("impl="+g.name+"/mode=par", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := g.do(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func noop() error { return nil }

var hystrixN atomic.Int64

// BenchmarkBreaker is the pass-through path of a closed breaker — admit a
// call, report its success — with each library's recommended call shape.
func BenchmarkBreaker(b *testing.B) {
	ctx := context.Background()
	brk, err := breaker.New(breaker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { brk.Close() })
	set, err := breaker.NewSet(breaker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { set.Close() })
	settings := gobreaker.Settings{Name: "bench", MaxRequests: 3, Interval: 30 * time.Second, Timeout: 5 * time.Second}
	gb := gobreaker.NewCircuitBreaker[struct{}](settings)
	gb2 := gobreaker.NewTwoStepCircuitBreaker[struct{}](settings)
	fcb := circuitbreaker.NewBuilder[any]().WithFailureThreshold(5).WithSuccessThreshold(2).WithDelay(5 * time.Second).Build()
	fexec := failsafe.With[any](fcb)
	hname := fmt.Sprintf("bench-breaker-%d", hystrixN.Add(1))
	hystrix.ConfigureCommand(hname, hystrix.CommandConfig{Timeout: 1000, MaxConcurrentRequests: 10000, ErrorPercentThreshold: 25})

	benchGuards(b, []guard{
		{"bulwark", func() error {
			p, err := brk.Enter(ctx, "")
			if err != nil {
				return err
			}
			p.Done(bulwark.Success)
			return nil
		}},
		{"bulwark-set", func() error {
			p, err := set.Enter(ctx, "endpoint")
			if err != nil {
				return err
			}
			p.Done(bulwark.Success)
			return nil
		}},
		{"gobreaker", func() error {
			_, err := gb.Execute(func() (struct{}, error) { return struct{}{}, nil })
			return err
		}},
		{"gobreaker-twostep", func() error {
			done, err := gb2.Allow()
			if err != nil {
				return err
			}
			done(nil)
			return nil
		}},
		{"failsafe", func() error { return fexec.Run(noop) }},
		{"failsafe-permit", func() error {
			if !fcb.TryAcquirePermit() {
				return errors.New("refused")
			}
			fcb.RecordSuccess()
			return nil
		}},
		{"hystrix", func() error {
			// hystrix-go hands its concurrency tickets back on goroutines
			// of its own: a tight loop can outrun them and be refused
			// whatever the limit. A refusal is still a call measured.
			if err := hystrix.Do(hname, noop, nil); err != nil && !errors.Is(err, hystrix.ErrMaxConcurrency) {
				return err
			}
			return nil
		}},
	})
}

// BenchmarkBulkhead is the pass-through path of a bulkhead with room.
func BenchmarkBulkhead(b *testing.B) {
	ctx := context.Background()
	bh, err := bulkhead.New(bulkhead.Config{Limit: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bh.Close() })
	fb := fsbulkhead.New[any](1 << 20)
	fexec := failsafe.With[any](fb)
	benchGuards(b, []guard{
		{"bulwark", func() error {
			p, err := bh.Enter(ctx, "")
			if err != nil {
				return err
			}
			p.Done(bulwark.Success)
			return nil
		}},
		{"failsafe", func() error { return fexec.Run(noop) }},
		{"failsafe-permit", func() error {
			if !fb.TryAcquirePermit() {
				return errors.New("full")
			}
			fb.ReleasePermit()
			return nil
		}},
	})
}
