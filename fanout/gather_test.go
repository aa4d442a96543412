package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/fallback"
	"github.com/bulwarkrpc/bulwark/fanout"
	"github.com/bulwarkrpc/bulwark/timeout"
)

type user struct{ Name string }
type order struct{ ID int }

// Three branches of three types: each Result keeps its own.
func TestGatherKeepsEachBranchType(t *testing.T) {
	f := mustNew(t, fanout.Config{})
	g := f.Gather()
	u := fanout.Add(g, "users", nil, func(context.Context) (user, error) { return user{"ada"}, nil })
	o := fanout.Add(g, "orders", nil, func(context.Context) ([]order, error) { return []order{{1}, {2}}, nil })
	n := fanout.Add(g, "count", nil, func(context.Context) (int, error) { return 7, nil })
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("Run: got %v, want nil", err)
	}
	if v, err := u.Get(); err != nil || v.Name != "ada" {
		t.Errorf("users: got %v, %v, want {ada}, nil", v, err)
	}
	if v, err := o.Get(); err != nil || len(v) != 2 || v[1].ID != 2 {
		t.Errorf("orders: got %v, %v, want [{1} {2}], nil", v, err)
	}
	if v, err := n.Get(); err != nil || v != 7 {
		t.Errorf("count: got %v, %v, want 7, nil", v, err)
	}
	for _, s := range []fanout.Status{u.Status(), o.Status(), n.Status()} {
		if s != fanout.StatusSuccess {
			t.Errorf("status: got %v, want success", s)
		}
	}
}

// A failing branch cancels nothing: the slow healthy one still answers,
// with a live context.
func TestGatherFailureCancelsNoOther(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := mustNew(t, fanout.Config{})
		g := f.Gather()
		bad := fanout.Add(g, "bad", nil, func(context.Context) (int, error) { return 0, errBoom })
		slow := fanout.Add(g, "slow", nil, func(ctx context.Context) (string, error) {
			timer := time.NewTimer(time.Second)
			defer timer.Stop()
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-timer.C:
				return "done", nil
			}
		})
		err := g.Run(context.Background())
		var pe *fanout.PartialError
		if !errors.As(err, &pe) || !errors.Is(err, fanout.ErrPartial) || !errors.Is(err, errBoom) {
			t.Fatalf("Run: got %v, want a *PartialError matching ErrPartial and the branch's error", err)
		}
		if len(pe.Branches) != 1 || pe.Branches[0].Name != "bad" || pe.Branches[0].Index != 0 || pe.N != 2 {
			t.Errorf("PartialError: got %+v, want branch 0 (bad) of 2", pe)
		}
		if v, err := slow.Get(); err != nil || v != "done" {
			t.Errorf("slow: got %q, %v, want done, nil", v, err)
		}
		if _, err := bad.Get(); !errors.Is(err, errBoom) || bad.Status() != fanout.StatusFailure {
			t.Errorf("bad: got %v (%v), want boom (failure)", err, bad.Status())
		}
	})
}

func TestGatherMaxConcurrent(t *testing.T) {
	for _, tc := range []struct {
		max, want int
		elapsed   time.Duration
	}{
		{0, 5, time.Second},
		{1, 1, 5 * time.Second},
		{2, 2, 3 * time.Second},
		{5, 5, time.Second},
		{9, 5, time.Second},
	} {
		t.Run(fmt.Sprint(tc.max), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := mustNew(t, fanout.Config{MaxConcurrent: tc.max})
				var active, peak atomic.Int32
				g := f.Gather()
				var rs []*fanout.Result[int]
				for i := range 5 {
					rs = append(rs, fanout.Add(g, fmt.Sprint(i), nil, func(context.Context) (int, error) {
						n := active.Add(1)
						for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
						}
						time.Sleep(time.Second)
						active.Add(-1)
						return i, nil
					}))
				}
				start := time.Now()
				if err := g.Run(context.Background()); err != nil {
					t.Fatal(err)
				}
				if got := int(peak.Load()); got != tc.want {
					t.Errorf("peak concurrency: got %d, want %d", got, tc.want)
				}
				if got := time.Since(start); got != tc.elapsed {
					t.Errorf("elapsed: got %v, want %v", got, tc.elapsed)
				}
				for i, r := range rs {
					if v, err := r.Get(); err != nil || v != i {
						t.Errorf("branch %d: got %d, %v, want %d, nil", i, v, err, i)
					}
				}
			})
		})
	}
}

// A branch that ignores cancellation is not waited for beyond the caller's
// deadline; its goroutine ends when its call returns (synctest.Test fails
// if a goroutine of the bubble outlives it), and what it returns then is
// dropped.
func TestGatherAbandonsStraggler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMeter()
		f := mustNew(t, fanout.Config{MeterProvider: m})
		release := make(chan struct{})
		returned := make(chan struct{})
		g := f.Gather()
		fast := fanout.Add(g, "fast", nil, func(context.Context) (int, error) { return 1, nil })
		stuck := fanout.Add(g, "stuck", nil, func(context.Context) (int, error) {
			defer close(returned)
			<-release // ignores its context
			return 2, nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := g.Run(ctx)
		if got := time.Since(start); got != time.Second {
			t.Errorf("Run returned after %v, want 1s (the deadline)", got)
		}
		if !errors.Is(err, fanout.ErrPartial) || !errors.Is(err, fanout.ErrAbandoned) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run: got %v, want ErrPartial, ErrAbandoned and DeadlineExceeded", err)
		}
		if v, err := fast.Get(); v != 1 || err != nil {
			t.Errorf("fast: got %d, %v, want 1, nil", v, err)
		}
		check := func() {
			t.Helper()
			v, err := stuck.Get()
			if v != 0 || !errors.Is(err, fanout.ErrAbandoned) || !errors.Is(err, context.DeadlineExceeded) || stuck.Status() != fanout.StatusAbandoned {
				t.Errorf("stuck: got %d, %v (%v), want 0, abandoned by the deadline", v, err, stuck.Status())
			}
		}
		check()
		close(release)
		<-returned
		synctest.Wait() // the straggler's goroutine has reported, or tried to
		check()         // and nothing changed
		for _, tc := range []struct {
			outcome string
			want    int64
		}{{"success", 1}, {"abandoned", 1}, {"failure", 0}, {"fallback", 0}} {
			if got := m.sum(t, "bulwark.fanout.branches", map[string]string{"bulwark.fanout.op": "gather", "bulwark.fanout.outcome": tc.outcome}); got != tc.want {
				t.Errorf("branches %s: got %d, want %d", tc.outcome, got, tc.want)
			}
		}
		if got := m.sum(t, "bulwark.fanout.partial", nil); got != 1 {
			t.Errorf("partial: got %d, want 1", got)
		}
	})
}

// With MaxConcurrent, a branch not yet started when ctx ends is abandoned
// too, and never starts.
func TestGatherAbandonsUnstarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := mustNew(t, fanout.Config{MaxConcurrent: 1})
		var ran atomic.Int32
		g := f.Gather()
		release := make(chan struct{})
		first := fanout.Add(g, "first", nil, func(ctx context.Context) (int, error) {
			ran.Add(1)
			<-release // ignores its context, and holds the only worker
			return 0, nil
		})
		second := fanout.Add(g, "second", nil, func(context.Context) (int, error) {
			ran.Add(1)
			return 2, nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := g.Run(ctx)
		close(release)
		synctest.Wait() // the worker is gone: it started nothing more
		var pe *fanout.PartialError
		if !errors.As(err, &pe) || len(pe.Branches) != 2 {
			t.Fatalf("Run: got %v, want a *PartialError naming both branches", err)
		}
		for _, s := range []fanout.Status{first.Status(), second.Status()} {
			if s != fanout.StatusAbandoned {
				t.Errorf("status: got %v, want abandoned", s)
			}
		}
		if got := ran.Load(); got != 1 {
			t.Errorf("branches run: got %d, want 1", got)
		}
	})
}

// A per-branch default, through a Pipeline with a fallback.Value: the
// caller gets the default, marked as a fallback, and Run reports no
// missing branch.
func TestGatherDefault(t *testing.T) {
	m := newMeter()
	f := mustNew(t, fanout.Config{MeterProvider: m})
	def, err := fallback.NewValue(fallback.ValueConfig[[]string]{Value: []string{"bestsellers"}})
	if err != nil {
		t.Fatal(err)
	}
	recs := pipeline(t, def)
	g := f.Gather()
	u := fanout.Add(g, "users", nil, func(context.Context) (user, error) { return user{"ada"}, nil })
	r := fanout.AddPipeline(g, "recs", recs, "recs:ada", func(context.Context) ([]string, error) { return nil, errBoom })
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("Run: got %v, want nil: every branch answered", err)
	}
	if v, _ := u.Get(); v.Name != "ada" {
		t.Errorf("users: got %v, want ada", v)
	}
	v, err := r.Get()
	if err != nil || len(v) != 1 || v[0] != "bestsellers" || r.Status() != fanout.StatusFallback {
		t.Errorf("recs: got %v, %v (%v), want [bestsellers], nil (fallback)", v, err, r.Status())
	}
	if n := r.Note(); n.Source != fallback.SourceValue || !errors.Is(n.Err, errBoom) {
		t.Errorf("recs note: got %+v, want source value, err boom", n)
	}
	if got := m.sum(t, "bulwark.fanout.branches", map[string]string{"bulwark.fanout.outcome": "fallback"}); got != 1 {
		t.Errorf("fallback branches: got %d, want 1", got)
	}
	if got := m.sum(t, "bulwark.fanout.partial", map[string]string{"bulwark.fanout.op": "gather"}); got != 1 {
		t.Errorf("partial: got %d, want 1", got)
	}
}

// A per-branch cached value: the last good answer replaces a failure.
func TestGatherCachedValue(t *testing.T) {
	f := mustNew(t, fanout.Config{})
	cache, err := fallback.NewCache(fallback.CacheConfig[int]{})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	p := pipeline(t, cache)
	for i, tc := range []struct {
		err    error
		want   int
		status fanout.Status
		source fallback.Source
	}{
		{nil, 41, fanout.StatusSuccess, fallback.SourceCall},
		{errBoom, 41, fanout.StatusFallback, fallback.SourceCacheStale},
	} {
		g := f.Gather()
		r := fanout.AddPipeline(g, "stock", p, "sku-1", func(context.Context) (int, error) { return 41, tc.err })
		if err := g.Run(context.Background()); err != nil {
			t.Fatalf("call %d: Run: got %v, want nil", i, err)
		}
		if v, err := r.Get(); v != tc.want || err != nil || r.Status() != tc.status || r.Note().Source != tc.source {
			t.Errorf("call %d: got %d, %v (%v, %v), want %d, nil (%v, %v)", i, v, err, r.Status(), r.Note().Source, tc.want, tc.status, tc.source)
		}
	}
}

func pipeline[T any](t testing.TB, fb bulwark.Fallback[T]) *bulwark.Pipeline[T] {
	t.Helper()
	s, err := bulwark.New(bulwark.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := bulwark.NewPipeline(bulwark.PipelineConfig[T]{Stack: s, Fallback: fb})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Each branch runs through its own Stack: a branch whose own deadline
// fires fails with a *timeout.Error while the others are untouched.
func TestGatherBranchStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to, err := timeout.New(timeout.Config{Total: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		short, err := bulwark.New(bulwark.Config{Timeout: to})
		if err != nil {
			t.Fatal(err)
		}
		f := mustNew(t, fanout.Config{})
		g := f.Gather()
		slow := func(ctx context.Context) (int, error) {
			timer := time.NewTimer(time.Second)
			defer timer.Stop()
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-timer.C:
				return 1, nil
			}
		}
		bounded := fanout.Add(g, "bounded", short, slow)
		free := fanout.Add(g, "free", nil, slow)
		_ = g.Run(context.Background())
		var te *timeout.Error
		if _, err := bounded.Get(); !errors.As(err, &te) {
			t.Errorf("bounded: got %v, want a *timeout.Error", err)
		}
		if v, err := free.Get(); v != 1 || err != nil {
			t.Errorf("free: got %d, %v, want 1, nil", v, err)
		}
	})
}

func TestGatherBadInput(t *testing.T) {
	f := mustNew(t, fanout.Config{})
	var ran atomic.Int32
	ok := func(context.Context) (int, error) { ran.Add(1); return 1, nil }
	for _, tc := range []struct {
		name  string
		build func() (*fanout.Gather, []*fanout.Result[int])
		want  string
	}{
		{"no branches", func() (*fanout.Gather, []*fanout.Result[int]) { return f.Gather(), nil }, "no branches"},
		{"nil function", func() (*fanout.Gather, []*fanout.Result[int]) {
			g := f.Gather()
			return g, []*fanout.Result[int]{fanout.Add(g, "a", nil, ok), fanout.Add[int](g, "b", nil, nil)}
		}, `branch 1 ("b") has a nil function`},
		{"nil pipeline", func() (*fanout.Gather, []*fanout.Result[int]) {
			g := f.Gather()
			return g, []*fanout.Result[int]{fanout.Add(g, "a", nil, ok), fanout.AddPipeline(g, "p", nil, "k", ok)}
		}, `branch 1 ("p") has a nil Pipeline`},
		{"nil fanout", func() (*fanout.Gather, []*fanout.Result[int]) {
			var nf *fanout.Fanout
			g := nf.Gather()
			return g, []*fanout.Result[int]{fanout.Add(g, "a", nil, ok)}
		}, "nil *Fanout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran.Store(0)
			g, rs := tc.build()
			err := g.Run(context.Background())
			if !errors.Is(err, fanout.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run: got %v, want ErrInvalid naming %q", err, tc.want)
			}
			if n := ran.Load(); n != 0 {
				t.Errorf("branches run: got %d, want 0", n)
			}
			for _, r := range rs {
				if _, rerr := r.Get(); !errors.Is(rerr, fanout.ErrInvalid) {
					t.Errorf("Result %s: got %v, want ErrInvalid", r.Name(), rerr)
				}
			}
		})
	}
	t.Run("nil gather", func(t *testing.T) {
		var g *fanout.Gather
		r := fanout.Add(g, "a", nil, ok)
		if _, err := r.Get(); !errors.Is(err, fanout.ErrInvalid) || !strings.Contains(err.Error(), "nil *Gather") {
			t.Errorf("Result: got %v, want ErrInvalid naming the nil *Gather", err)
		}
		if err := g.Run(context.Background()); !errors.Is(err, fanout.ErrInvalid) {
			t.Errorf("Run: got %v, want ErrInvalid", err)
		}
	})
	t.Run("run twice, add after run", func(t *testing.T) {
		g := f.Gather()
		first := fanout.Add(g, "a", nil, ok)
		if err := g.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		late := fanout.Add(g, "late", nil, ok)
		if err := g.Run(context.Background()); !errors.Is(err, fanout.ErrInvalid) || !strings.Contains(err.Error(), "twice") {
			t.Errorf("second Run: got %v, want ErrInvalid naming the second Run", err)
		}
		if _, err := late.Get(); !errors.Is(err, fanout.ErrInvalid) || !strings.Contains(err.Error(), "after Gather.Run") {
			t.Errorf("late Result: got %v, want ErrInvalid naming the late Add", err)
		}
		if v, err := first.Get(); v != 1 || err != nil {
			t.Errorf("first Result: got %d, %v, want 1, nil", v, err)
		}
		if n := ran.Load(); n != 1 {
			t.Errorf("branches run: got %d, want 1", n)
		}
	})
}

func TestGatherContextAlreadyDone(t *testing.T) {
	f := mustNew(t, fanout.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var ran atomic.Int32
	g := f.Gather()
	r := fanout.Add(g, "a", nil, func(context.Context) (int, error) { ran.Add(1); return 1, nil })
	if err := g.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: got %v, want context.Canceled", err)
	}
	if _, err := r.Get(); !errors.Is(err, fanout.ErrAbandoned) || !errors.Is(err, context.Canceled) || r.Status() != fanout.StatusAbandoned {
		t.Errorf("Result: got %v (%v), want abandoned, Canceled", err, r.Status())
	}
	if n := ran.Load(); n != 0 {
		t.Errorf("branches run: got %d, want 0", n)
	}
}

func TestResultBeforeRun(t *testing.T) {
	f := mustNew(t, fanout.Config{})
	g := f.Gather()
	r := fanout.Add(g, "a", nil, func(context.Context) (int, error) { return 1, nil })
	if v, err := r.Get(); v != 0 || !errors.Is(err, fanout.ErrPending) {
		t.Errorf("Get before Run: got %d, %v, want 0, ErrPending", v, err)
	}
	if s := r.Status(); s != fanout.StatusPending {
		t.Errorf("Status before Run: got %v, want pending", s)
	}
	if v := r.Or(9); v != 9 {
		t.Errorf("Or before Run: got %d, want 9", v)
	}
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := r.Or(9); v != 1 {
		t.Errorf("Or after Run: got %d, want 1", v)
	}
}

// runtime.Goexit in a branch (t.FailNow from a helper, say) fails that
// branch; the others still run, even with a single worker.
func TestGatherGoexit(t *testing.T) {
	f := mustNew(t, fanout.Config{MaxConcurrent: 1})
	g := f.Gather()
	gone := fanout.Add(g, "gone", nil, func(context.Context) (int, error) {
		runtime.Goexit()
		return 0, nil
	})
	after := fanout.Add(g, "after", nil, func(context.Context) (int, error) { return 2, nil })
	err := g.Run(context.Background())
	if !errors.Is(err, fanout.ErrPartial) {
		t.Errorf("Run: got %v, want ErrPartial", err)
	}
	if _, err := gone.Get(); err == nil || !strings.Contains(err.Error(), "Goexit") {
		t.Errorf("gone: got %v, want an error naming runtime.Goexit", err)
	}
	if v, err := after.Get(); v != 2 || err != nil {
		t.Errorf("after: got %d, %v, want 2, nil", v, err)
	}
}

// Completions racing with the caller's cancellation: every branch is
// reported exactly once, as its own answer or as abandoned, never both,
// never neither; the metrics count each once.
func TestGatherNoResultLostOrReportedTwice(t *testing.T) {
	const calls, n = 300, 6
	m := newMeter()
	f := mustNew(t, fanout.Config{MeterProvider: m, MaxConcurrent: 4})
	var wg sync.WaitGroup
	var answered, abandonedN, counted atomic.Int64
	for c := range calls {
		ctx, cancel := context.WithCancel(context.Background())
		g := f.Gather()
		rs := make([]*fanout.Result[int], n)
		var calledBack [n]atomic.Int32
		for i := range n {
			rs[i] = fanout.Add(g, fmt.Sprint(i), nil, func(ctx context.Context) (int, error) {
				calledBack[i].Add(1)
				for range rand.IntN(3) {
					runtime.Gosched()
				}
				if i%3 == 0 { // honours cancellation
					if err := ctx.Err(); err != nil {
						return 0, err
					}
				}
				return c*n + i, nil
			})
		}
		wg.Go(func() {
			for range rand.IntN(4) {
				runtime.Gosched()
			}
			cancel()
		})
		err := g.Run(ctx)
		if err == nil || errors.Is(err, fanout.ErrPartial) {
			counted.Add(n) // a Run refused because ctx was done at the start counts nothing
		}
		var missing map[int]bool
		var pe *fanout.PartialError
		if errors.As(err, &pe) {
			missing = map[int]bool{}
			for _, b := range pe.Branches {
				if missing[b.Index] {
					t.Fatalf("call %d: branch %d listed twice in %v", c, b.Index, err)
				}
				missing[b.Index] = true
			}
		} else if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("call %d: Run: got %v", c, err)
		}
		for i, r := range rs {
			if calledBack[i].Load() > 1 {
				t.Fatalf("call %d: branch %d ran %d times", c, i, calledBack[i].Load())
			}
			v, rerr := r.Get()
			switch r.Status() {
			case fanout.StatusSuccess:
				answered.Add(1)
				if v != c*n+i || rerr != nil || missing[i] {
					t.Fatalf("call %d: branch %d: got %d, %v (missing %v), want %d, nil", c, i, v, rerr, missing[i], c*n+i)
				}
			case fanout.StatusAbandoned, fanout.StatusFailure:
				if r.Status() == fanout.StatusAbandoned {
					abandonedN.Add(1)
				}
				if err != nil && errors.As(err, &pe) && !missing[i] {
					t.Fatalf("call %d: branch %d without answer is not in %v", c, i, err)
				}
				if rerr == nil {
					t.Fatalf("call %d: branch %d: %v with a nil error", c, i, r.Status())
				}
			default:
				t.Fatalf("call %d: branch %d: status %v after Run", c, i, r.Status())
			}
		}
		cancel()
	}
	wg.Wait()
	total := m.sum(t, "bulwark.fanout.branches", nil)
	if total != counted.Load() {
		t.Errorf("branches counted: got %d, want %d", total, counted.Load())
	}
	if got := m.sum(t, "bulwark.fanout.branches", map[string]string{"bulwark.fanout.outcome": "success"}); got != answered.Load() {
		t.Errorf("successes counted: got %d, want %d", got, answered.Load())
	}
	t.Logf("%d answered, %d abandoned, %d counted", answered.Load(), abandonedN.Load(), total)
}
