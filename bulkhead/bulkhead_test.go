package bulkhead_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/bulkhead"
)

func mustNew(t testing.TB, cfg bulkhead.Config) *bulkhead.Bulkhead {
	t.Helper()
	b, err := bulkhead.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): got %v, want nil", cfg, err)
	}
	return b
}

func mustEnter(t testing.TB, g bulwark.Guard, ctx context.Context, key string) bulwark.Permit {
	t.Helper()
	p, err := g.Enter(ctx, key)
	if err != nil {
		t.Fatalf("Enter(%q): got %v, want nil", key, err)
	}
	return p
}

func wantReason(t *testing.T, err error, want bulkhead.Reason) {
	t.Helper()
	var fe *bulkhead.FullError
	if !errors.As(err, &fe) {
		t.Fatalf("got error %v, want a *FullError with reason %v", err, want)
	}
	if fe.Reason != want {
		t.Errorf("got reason %v, want %v", fe.Reason, want)
	}
}

func wantCounts(t *testing.T, b *bulkhead.Bulkhead, inFlight, queued int) {
	t.Helper()
	if got := b.InFlight(); got != inFlight {
		t.Errorf("InFlight: got %d, want %d", got, inFlight)
	}
	if got := b.Queued(); got != queued {
		t.Errorf("Queued: got %d, want %d", got, queued)
	}
}

// TestLimitHeld fills a bulkhead with many callers that hold their slots
// open and checks that exactly Limit got in and the rest wait.
func TestLimitHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit, callers = 4, 50
		b := mustNew(t, bulkhead.Config{Limit: limit, MaxQueue: callers})
		var cur, peak atomic.Int64
		hold := make(chan struct{})
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				p, err := b.Enter(t.Context(), "")
				if err != nil {
					t.Errorf("Enter: got %v, want nil", err)
					return
				}
				n := cur.Add(1)
				for old := peak.Load(); n > old && !peak.CompareAndSwap(old, n); old = peak.Load() {
				}
				<-hold
				cur.Add(-1)
				p.Done(bulwark.Success)
			})
		}
		synctest.Wait()
		if got := cur.Load(); got != limit {
			t.Errorf("running attempts: got %d, want %d", got, limit)
		}
		wantCounts(t, b, limit, callers-limit)
		close(hold)
		wg.Wait()
		if got := peak.Load(); got != limit {
			t.Errorf("peak running attempts: got %d, want %d", got, limit)
		}
		wantCounts(t, b, 0, 0)
	})
}

// TestNeverAboveLimit hammers a bulkhead from many goroutines in real time
// and checks that no more than Limit attempts ever ran at once and that
// every attempt was either admitted or rejected.
func TestNeverAboveLimit(t *testing.T) {
	tests := []struct {
		name string
		cfg  bulkhead.Config
	}{
		{"no queue", bulkhead.Config{Limit: 3}},
		{"queue", bulkhead.Config{Limit: 3, MaxQueue: 8}},
		{"queue with wait", bulkhead.Config{Limit: 3, MaxQueue: 8, MaxWait: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const goroutines, iterations = 32, 300
			b := mustNew(t, tt.cfg)
			var cur, peak, admitted, rejected atomic.Int64
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					for range iterations {
						p, err := b.Enter(t.Context(), "")
						if err != nil {
							if !errors.Is(err, bulkhead.ErrFull) {
								t.Errorf("Enter: got %v, want nil or ErrFull", err)
							}
							rejected.Add(1)
							continue
						}
						admitted.Add(1)
						n := cur.Add(1)
						for old := peak.Load(); n > old && !peak.CompareAndSwap(old, n); old = peak.Load() {
						}
						if q := b.Queued(); q > tt.cfg.MaxQueue {
							t.Errorf("Queued: got %d, want <= %d", q, tt.cfg.MaxQueue)
						}
						runtime.Gosched()
						cur.Add(-1)
						p.Done(bulwark.Success)
					}
				})
			}
			wg.Wait()
			if got := peak.Load(); got > int64(tt.cfg.Limit) || got < 1 {
				t.Errorf("peak running attempts: got %d, want 1..%d", got, tt.cfg.Limit)
			}
			if got := admitted.Load() + rejected.Load(); got != goroutines*iterations {
				t.Errorf("admitted+rejected: got %d, want %d", got, goroutines*iterations)
			}
			wantCounts(t, b, 0, 0)
		})
	}
}

// TestQueue checks the queue bound and that waiters are admitted first
// come, first served.
func TestQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, bulkhead.Config{Limit: 1, MaxQueue: 2})
		holder := mustEnter(t, b, t.Context(), "")
		admitted := make(chan int)
		release := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				p, err := b.Enter(t.Context(), "")
				if err != nil {
					t.Errorf("waiter %d: got %v, want nil", i, err)
					return
				}
				admitted <- i
				<-release[i]
				p.Done(bulwark.Success)
			})
			synctest.Wait() // queue them in order
		}
		wantCounts(t, b, 1, 2)

		_, err := b.Enter(t.Context(), "")
		wantReason(t, err, bulkhead.ReasonQueueFull)
		wantCounts(t, b, 1, 2)

		holder.Done(bulwark.Success)
		if got := <-admitted; got != 0 {
			t.Errorf("first admitted: got waiter %d, want 0", got)
		}
		synctest.Wait()
		wantCounts(t, b, 1, 1)
		close(release[0])
		if got := <-admitted; got != 1 {
			t.Errorf("second admitted: got waiter %d, want 1", got)
		}
		close(release[1])
		wg.Wait()
		wantCounts(t, b, 0, 0)
	})
}

func TestMaxWait(t *testing.T) {
	const maxWait = 100 * time.Millisecond
	t.Run("expires", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, bulkhead.Config{Limit: 1, MaxQueue: 1, MaxWait: maxWait})
			holder := mustEnter(t, b, t.Context(), "")
			defer holder.Done(bulwark.Success)
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				_, err := b.Enter(t.Context(), "")
				done <- err
			}()
			synctest.Wait()
			wantCounts(t, b, 1, 1)
			time.Sleep(maxWait - time.Nanosecond)
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("Enter returned %v before MaxWait, want it still waiting", err)
			default:
			}
			err := <-done
			if got := time.Since(start); got != maxWait {
				t.Errorf("waited: got %v, want %v", got, maxWait)
			}
			wantReason(t, err, bulkhead.ReasonMaxWait)
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("errors.Is(err, DeadlineExceeded): got true, want false")
			}
			wantCounts(t, b, 1, 0)
		})
	})
	t.Run("slot frees in time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, bulkhead.Config{Limit: 1, MaxQueue: 1, MaxWait: maxWait})
			holder := mustEnter(t, b, t.Context(), "")
			done := make(chan error, 1)
			go func() {
				p, err := b.Enter(t.Context(), "")
				if err == nil {
					defer p.Done(bulwark.Success)
				}
				done <- err
			}()
			time.Sleep(maxWait / 2)
			holder.Done(bulwark.Success)
			if err := <-done; err != nil {
				t.Errorf("Enter: got %v, want nil", err)
			}
		})
	})
}

func TestCallerEndsWait(t *testing.T) {
	tests := []struct {
		name    string
		maxWait time.Duration
		end     func(cancel context.CancelFunc) // ends the caller's context
		want    error
	}{
		{"cancel", 0, func(cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"cancel with MaxWait", time.Hour, func(cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"own deadline before MaxWait", time.Hour, func(context.CancelFunc) { time.Sleep(time.Minute) }, context.DeadlineExceeded},
		{"own deadline equal to MaxWait", time.Minute, func(context.CancelFunc) { time.Sleep(time.Minute) }, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mp, r := newReader()
				b := mustNew(t, bulkhead.Config{Limit: 1, MaxQueue: 1, MaxWait: tt.maxWait, MeterProvider: mp})
				holder := mustEnter(t, b, t.Context(), "")
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				done := make(chan error, 1)
				go func() {
					_, err := b.Enter(ctx, "")
					done <- err
				}()
				synctest.Wait()
				wantCounts(t, b, 1, 1)
				tt.end(cancel)
				err := <-done
				if !errors.Is(err, tt.want) || errors.Is(err, bulkhead.ErrFull) {
					t.Errorf("Enter: got %v, want %v and not ErrFull", err, tt.want)
				}
				if got := bulwark.ClassifyError(ctx, err); got != bulwark.Ignored {
					t.Errorf("ClassifyError: got %v, want %v", got, bulwark.Ignored)
				}
				wantCounts(t, b, 1, 0)
				if got := points(t, r, "bulwark.bulkhead.rejected"); len(got) != 0 {
					t.Errorf("rejected: got %v, want no rejection", got)
				}
				// No slot leaked: the next attempt gets the one slot at once.
				holder.Done(bulwark.Success)
				p := mustEnter(t, b, t.Context(), "")
				wantCounts(t, b, 1, 0)
				p.Done(bulwark.Success)
			})
		})
	}
}

func TestContextDone(t *testing.T) {
	tests := []struct {
		name string
		cfg  bulkhead.Config
		hold int
	}{
		{"free", bulkhead.Config{Limit: 1}, 0},
		{"full", bulkhead.Config{Limit: 1}, 1},
		{"full with queue", bulkhead.Config{Limit: 1, MaxQueue: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp, r := newReader()
			tt.cfg.MeterProvider = mp
			b := mustNew(t, tt.cfg)
			for range tt.hold {
				p := mustEnter(t, b, t.Context(), "")
				defer p.Done(bulwark.Success)
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			p, err := b.Enter(ctx, "")
			if !errors.Is(err, context.Canceled) || errors.Is(err, bulkhead.ErrFull) {
				t.Errorf("Enter: got %v, want %v", err, context.Canceled)
			}
			if p != (bulwark.Permit{}) {
				t.Errorf("Permit: got %+v, want the zero Permit", p)
			}
			wantCounts(t, b, tt.hold, 0)
			if got := points(t, r, "bulwark.bulkhead.rejected"); len(got) != 0 {
				t.Errorf("rejected: got %v, want no rejection", got)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mp, r := newReader()
		b := mustNew(t, bulkhead.Config{Name: "db", Limit: 2, MaxQueue: 1, MaxWait: time.Second, MeterProvider: mp})
		nq := mustNew(t, bulkhead.Config{Name: "nq", Limit: 1, MeterProvider: mp})
		p1 := mustEnter(t, b, t.Context(), "")
		p2 := mustEnter(t, b, t.Context(), "")
		p3 := mustEnter(t, nq, t.Context(), "")
		done := make(chan error, 1)
		go func() {
			_, err := b.Enter(t.Context(), "")
			done <- err
		}()
		synctest.Wait()

		check := func(name string, want map[string]int64) {
			t.Helper()
			got := points(t, r, name)
			if len(got) != len(want) {
				t.Errorf("%s: got %v, want %v", name, got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s{%s}: got %d, want %d", name, k, got[k], v)
				}
			}
		}
		check("bulwark.bulkhead.in_flight", map[string]int64{"bulwark.key=db": 2, "bulwark.key=nq": 1})
		check("bulwark.bulkhead.queued", map[string]int64{"bulwark.key=db": 1, "bulwark.key=nq": 0})
		check("bulwark.bulkhead.limit", map[string]int64{"bulwark.key=db": 2, "bulwark.key=nq": 1})

		_, err := b.Enter(t.Context(), "")
		wantReason(t, err, bulkhead.ReasonQueueFull)
		_, err = nq.Enter(t.Context(), "")
		wantReason(t, err, bulkhead.ReasonNoQueue)
		_, err = nq.Enter(t.Context(), "")
		wantReason(t, err, bulkhead.ReasonNoQueue)
		wantReason(t, <-done, bulkhead.ReasonMaxWait)

		check("bulwark.bulkhead.rejected", map[string]int64{
			"bulwark.bulkhead.reason=queue_full,bulwark.key=db": 1,
			"bulwark.bulkhead.reason=max_wait,bulwark.key=db":   1,
			"bulwark.bulkhead.reason=no_queue,bulwark.key=nq":   2,
		})
		check("bulwark.bulkhead.queued", map[string]int64{"bulwark.key=db": 0, "bulwark.key=nq": 0})

		p1.Done(bulwark.Success)
		p2.Done(bulwark.Failure)
		p3.Done(bulwark.Ignored)
		check("bulwark.bulkhead.in_flight", map[string]int64{"bulwark.key=db": 0, "bulwark.key=nq": 0})
	})
}

// TestOutcomeIgnored checks that a fixed bulkhead frees the slot whatever
// the outcome, and learns nothing from it.
func TestOutcomeIgnored(t *testing.T) {
	b := mustNew(t, bulkhead.Config{Limit: 2})
	for range 10 {
		for _, o := range []bulwark.Outcome{bulwark.Success, bulwark.Failure, bulwark.Ignored} {
			mustEnter(t, b, t.Context(), "").Done(o)
		}
	}
	wantCounts(t, b, 0, 0)
	if got := b.Limit(); got != 2 {
		t.Errorf("Limit: got %d, want 2", got)
	}
}

func TestReleaseForeignPermit(t *testing.T) {
	b := mustNew(t, bulkhead.Config{})
	defer func() {
		if r := recover(); r == nil {
			t.Errorf("Release of a foreign Permit: got no panic, want one")
		}
	}()
	b.Release(bulwark.NewPermit(b, "not ours", 0), bulwark.Success)
}

func TestStack(t *testing.T) {
	b := mustNew(t, bulkhead.Config{Limit: 1})
	stack, err := bulwark.New(bulwark.Config{Guards: []bulwark.Guard{b}})
	if err != nil {
		t.Fatalf("bulwark.New: got %v, want nil", err)
	}
	var a bulwark.Attempt
	if err := stack.Enter(t.Context(), "k", &a); err != nil {
		t.Fatalf("Stack.Enter: got %v, want nil", err)
	}
	_, err = bulwark.Do(t.Context(), stack, "k", func(context.Context) (int, error) { return 1, nil })
	if !errors.Is(err, bulkhead.ErrFull) {
		t.Errorf("Do on a full bulkhead: got %v, want ErrFull", err)
	}
	a.Done(bulwark.Success)
	v, err := bulwark.Do(t.Context(), stack, "k", func(context.Context) (int, error) { return 1, nil })
	if v != 1 || err != nil {
		t.Errorf("Do: got %d, %v, want 1, nil", v, err)
	}
	wantCounts(t, b, 0, 0)
}

func TestAllocs(t *testing.T) {
	providers := map[string]func() bulkhead.Config{
		"global": func() bulkhead.Config { return bulkhead.Config{} },
		"sdk": func() bulkhead.Config {
			mp, _ := newReader()
			return bulkhead.Config{MeterProvider: mp}
		},
	}
	for name, cfg := range providers {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			b := mustNew(t, cfg())
			s := mustNewSet(t, cfg())
			full := func() bulkhead.Config { c := cfg(); c.Limit = 1; return c }()
			fb := mustNew(t, full)
			defer mustEnter(t, fb, ctx, "").Done(bulwark.Success)
			fs := mustNewSet(t, full)
			defer mustEnter(t, fs, ctx, "k").Done(bulwark.Success)
			// Adaptive limits whose windows close at every attempt.
			adaptive := func(limit int) bulkhead.Config {
				c := cfg()
				c.Limit, c.Adaptive = limit, &bulkhead.AdaptiveConfig{Window: time.Nanosecond, MinSamples: 1}
				return c
			}
			ab := mustNew(t, adaptive(64))
			as := mustNewSet(t, adaptive(64))
			afb := mustNew(t, adaptive(1))
			defer mustEnter(t, afb, ctx, "").Done(bulwark.Success)

			tests := []struct {
				name string
				f    func()
			}{
				{"Bulkhead Enter+Done", func() {
					p, _ := b.Enter(ctx, "k")
					p.Done(bulwark.Success)
				}},
				{"Set Enter+Done", func() {
					p, _ := s.Enter(ctx, "k")
					p.Done(bulwark.Success)
				}},
				{"Bulkhead rejection", func() {
					if _, err := fb.Enter(ctx, "k"); err == nil {
						t.Fatal("Enter: got nil, want a rejection")
					}
				}},
				{"Set rejection", func() {
					if _, err := fs.Enter(ctx, "k"); err == nil {
						t.Fatal("Enter: got nil, want a rejection")
					}
				}},
				{"adaptive Bulkhead Enter+Done", func() {
					p, _ := ab.Enter(ctx, "k")
					p.Done(bulwark.Success)
				}},
				{"adaptive Set Enter+Done", func() {
					p, _ := as.Enter(ctx, "k")
					p.Done(bulwark.Failure)
				}},
				{"adaptive Bulkhead rejection", func() {
					if _, err := afb.Enter(ctx, "k"); err == nil {
						t.Fatal("Enter: got nil, want a rejection")
					}
				}},
			}
			for _, tt := range tests {
				if got := testing.AllocsPerRun(1000, tt.f); got != 0 {
					t.Errorf("%s: got %v allocations, want 0", tt.name, got)
				}
			}
		})
	}
}

// The benchmarks compare the bulkheads with the bare semaphore a user
// would otherwise pick: Acquire/Release (waits when full) and
// TryAcquire/Release (rejects when full). The limit is high enough that
// nothing waits or is rejected except in the Reject benchmarks.
func BenchmarkEnterDone(b *testing.B) {
	const limit = 1 << 20
	ctx := context.Background()
	sem := semaphore.NewWeighted(limit)
	blk := mustNew(b, bulkhead.Config{Limit: limit})
	set := mustNewSet(b, bulkhead.Config{Limit: limit})
	ad := &bulkhead.AdaptiveConfig{InitialLimit: limit}
	adBlk := mustNew(b, bulkhead.Config{Limit: limit, Adaptive: ad})
	adSet := mustNewSet(b, bulkhead.Config{Limit: limit, Adaptive: ad})
	cases := []struct {
		name string
		f    func()
	}{
		{"semaphore.Acquire", func() {
			if err := sem.Acquire(ctx, 1); err == nil {
				sem.Release(1)
			}
		}},
		{"semaphore.TryAcquire", func() {
			if sem.TryAcquire(1) {
				sem.Release(1)
			}
		}},
		{"Bulkhead", func() {
			if p, err := blk.Enter(ctx, "k"); err == nil {
				p.Done(bulwark.Success)
			}
		}},
		{"Set", func() {
			if p, err := set.Enter(ctx, "k"); err == nil {
				p.Done(bulwark.Success)
			}
		}},
		{"Bulkhead-adaptive", func() {
			if p, err := adBlk.Enter(ctx, "k"); err == nil {
				p.Done(bulwark.Success)
			}
		}},
		{"Set-adaptive", func() {
			if p, err := adSet.Enter(ctx, "k"); err == nil {
				p.Done(bulwark.Success)
			}
		}},
	}
	for _, c := range cases {
		b.Run(c.name+"/sequential", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.f()
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.f()
				}
			})
		})
	}
}

func BenchmarkReject(b *testing.B) {
	ctx := context.Background()
	sem := semaphore.NewWeighted(1)
	sem.TryAcquire(1)
	blk := mustNew(b, bulkhead.Config{Limit: 1})
	defer mustEnter(b, blk, ctx, "").Done(bulwark.Success)
	set := mustNewSet(b, bulkhead.Config{Limit: 1})
	defer mustEnter(b, set, ctx, "k").Done(bulwark.Success)
	adBlk := mustNew(b, bulkhead.Config{Limit: 1, Adaptive: &bulkhead.AdaptiveConfig{}})
	defer mustEnter(b, adBlk, ctx, "").Done(bulwark.Success)
	cases := []struct {
		name string
		f    func()
	}{
		{"semaphore.TryAcquire", func() {
			if sem.TryAcquire(1) {
				b.Error("TryAcquire: got true, want false")
			}
		}},
		{"Bulkhead", func() {
			if _, err := blk.Enter(ctx, "k"); err == nil {
				b.Error("Enter: got nil, want a rejection")
			}
		}},
		{"Set", func() {
			if _, err := set.Enter(ctx, "k"); err == nil {
				b.Error("Enter: got nil, want a rejection")
			}
		}},
		{"Bulkhead-adaptive", func() {
			if _, err := adBlk.Enter(ctx, "k"); err == nil {
				b.Error("Enter: got nil, want a rejection")
			}
		}},
	}
	for _, c := range cases {
		b.Run(c.name+"/sequential", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.f()
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.f()
				}
			})
		})
	}
}
