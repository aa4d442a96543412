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

	"github.com/bulwarkrpc/bulwark/fanout"
)

// after returns a branch call that answers v, or fails with err, after d,
// or returns its context's error if that ends first. It records the
// context error it saw in seen (nil when it answered).
func after[T any](d time.Duration, v T, err error, seen *sync.Map, name string) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			if seen != nil {
				seen.Store(name, ctx.Err())
			}
			var zero T
			return zero, ctx.Err()
		case <-timer.C:
			return v, err
		}
	}
}

func TestQuorumSucceedsAtK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMeter()
		f := mustNew(t, fanout.Config{MeterProvider: m})
		var seen sync.Map
		var bs []fanout.Branch[int]
		for i := range 5 {
			name := fmt.Sprint("r", i)
			bs = append(bs, fanout.Branch[int]{Name: name, Call: after(time.Duration(5-i)*time.Second, 10*i, nil, &seen, name)})
		}
		start := time.Now()
		answers, err := fanout.Quorum(context.Background(), f, 3, bs...)
		if err != nil {
			t.Fatalf("Quorum: got %v, want nil", err)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("Quorum returned after %v, want 3s (the third success)", got)
		}
		want := []fanout.Answer[int]{{4, 40}, {3, 30}, {2, 20}}
		if fmt.Sprint(answers) != fmt.Sprint(want) {
			t.Errorf("answers: got %v, want %v (in the order they came)", answers, want)
		}
		synctest.Wait() // the losers saw their cancellation
		for _, name := range []string{"r0", "r1"} {
			if err, _ := seen.Load(name); err != context.Canceled {
				t.Errorf("%s: context error %v, want Canceled", name, err)
			}
		}
		if got := m.sum(t, "bulwark.fanout.branches", map[string]string{"bulwark.fanout.op": "quorum", "bulwark.fanout.outcome": "abandoned"}); got != 2 {
			t.Errorf("abandoned: got %d, want 2", got)
		}
		if got := m.sum(t, "bulwark.fanout.partial", nil); got != 0 {
			t.Errorf("partial: got %d, want 0 (no branch failed)", got)
		}
	})
}

// As soon as k successes are out of reach, Quorum fails, without waiting
// for the branch still running.
func TestQuorumFailsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := mustNew(t, fanout.Config{})
		var seen sync.Map
		bs := []fanout.Branch[int]{
			{Name: "a", Call: after(time.Second, 0, errBoom, nil, "a")},
			{Name: "b", Call: after(time.Hour, 1, nil, &seen, "b")},
			{Name: "c", Call: after(2*time.Second, 0, errBoom, nil, "c")},
		}
		start := time.Now()
		answers, err := fanout.Quorum(context.Background(), f, 2, bs...)
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("Quorum returned after %v, want 2s (the second failure)", got)
		}
		var qe *fanout.QuorumError
		if !errors.As(err, &qe) || !errors.Is(err, fanout.ErrNoQuorum) || !errors.Is(err, errBoom) {
			t.Fatalf("Quorum: got %v, want a *QuorumError matching ErrNoQuorum and boom", err)
		}
		if qe.K != 2 || qe.N != 3 || qe.Succeeded != 0 || len(qe.Branches) != 2 || qe.Branches[0].Name != "a" || qe.Branches[1].Name != "c" {
			t.Errorf("QuorumError: got %+v, want K 2, N 3, 0 succeeded, branches a and c", qe)
		}
		if len(answers) != 0 {
			t.Errorf("answers: got %v, want none", answers)
		}
		synctest.Wait()
		if err, _ := seen.Load("b"); err != context.Canceled {
			t.Errorf("b: context error %v, want Canceled", err)
		}
	})
}

// A branch that ignores cancellation is not waited for beyond the
// caller's deadline; the answers already in are returned with the error.
func TestQuorumCallerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := mustNew(t, fanout.Config{})
		release := make(chan struct{})
		stuck := func(context.Context) (int, error) { <-release; return 9, nil }
		bs := []fanout.Branch[int]{
			{Name: "fast", Call: func(context.Context) (int, error) { return 1, nil }},
			{Name: "stuck1", Call: stuck},
			{Name: "stuck2", Call: stuck},
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		answers, err := fanout.Quorum(ctx, f, 2, bs...)
		var qe *fanout.QuorumError
		if !errors.As(err, &qe) || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, fanout.ErrAbandoned) {
			t.Fatalf("Quorum: got %v, want a *QuorumError matching DeadlineExceeded and ErrAbandoned", err)
		}
		if qe.Succeeded != 1 || len(qe.Branches) != 2 {
			t.Errorf("QuorumError: got %+v, want 1 succeeded and the two stuck branches", qe)
		}
		if len(answers) != 1 || answers[0] != (fanout.Answer[int]{Index: 0, Value: 1}) {
			t.Errorf("answers: got %v, want [{0 1}]", answers)
		}
		close(release)
		synctest.Wait()
		if len(answers) != 1 {
			t.Errorf("answers after the stragglers returned: got %v, want unchanged", answers)
		}
	})
}

func TestQuorumMaxConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := mustNew(t, fanout.Config{MaxConcurrent: 2})
		var active, peak, started atomic.Int32
		call := func(ctx context.Context) (int, error) {
			started.Add(1)
			n := active.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			defer active.Add(-1)
			time.Sleep(time.Second)
			return 1, nil
		}
		bs := make([]fanout.Branch[int], 6)
		for i := range bs {
			bs[i] = fanout.Branch[int]{Name: fmt.Sprint(i), Call: call}
		}
		start := time.Now()
		if _, err := fanout.Quorum(context.Background(), f, 3, bs...); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("elapsed: got %v, want 2s (two rounds of two)", got)
		}
		if got := peak.Load(); got != 2 {
			t.Errorf("peak concurrency: got %d, want 2", got)
		}
		if got := started.Load(); got != 4 {
			t.Errorf("branches started: got %d, want 4 (none after the quorum)", got)
		}
	})
}

func TestQuorumBadInput(t *testing.T) {
	f := mustNew(t, fanout.Config{})
	var ran atomic.Int32
	ok := fanout.Branch[int]{Name: "ok", Call: func(context.Context) (int, error) { ran.Add(1); return 1, nil }}
	for _, tc := range []struct {
		name string
		f    *fanout.Fanout
		k    int
		bs   []fanout.Branch[int]
		want string
	}{
		{"k > n", f, 3, []fanout.Branch[int]{ok, ok}, "k = 3"},
		{"k = 0", f, 0, []fanout.Branch[int]{ok}, "k = 0"},
		{"k < 0", f, -1, []fanout.Branch[int]{ok}, "k = -1"},
		{"n = 0", f, 1, nil, "no branches"},
		{"nil call", f, 1, []fanout.Branch[int]{ok, {Name: "x"}}, `branch 1 ("x") has a nil Call`},
		{"nil fanout", nil, 1, []fanout.Branch[int]{ok}, "nil *Fanout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran.Store(0)
			answers, err := fanout.Quorum(context.Background(), tc.f, tc.k, tc.bs...)
			if !errors.Is(err, fanout.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Quorum: got %v, want ErrInvalid naming %q", err, tc.want)
			}
			if answers != nil || ran.Load() != 0 {
				t.Errorf("got answers %v and %d branches run, want none", answers, ran.Load())
			}
		})
	}
	t.Run("context done", func(t *testing.T) {
		ran.Store(0)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := fanout.Quorum(ctx, f, 1, ok); !errors.Is(err, context.Canceled) || ran.Load() != 0 {
			t.Errorf("Quorum: got %v with %d branches run, want Canceled and none", err, ran.Load())
		}
	})
}

// Completions, failures and the caller's cancellation racing: an answer
// is never reported twice, never reported as a failure too, and a success
// is never lost from a Quorum that failed.
func TestQuorumNoResultLostOrReportedTwice(t *testing.T) {
	const calls, n, k = 300, 5, 3
	f := mustNew(t, fanout.Config{})
	var wg sync.WaitGroup
	for c := range calls {
		ctx, cancel := context.WithCancel(context.Background())
		bs := make([]fanout.Branch[int], n)
		for i := range bs {
			bs[i] = fanout.Branch[int]{Name: fmt.Sprint(i), Call: func(ctx context.Context) (int, error) {
				for range rand.IntN(3) {
					runtime.Gosched()
				}
				if (c+i)%3 == 0 {
					return 0, errBoom
				}
				if i%2 == 0 && ctx.Err() != nil {
					return 0, ctx.Err()
				}
				return i, nil
			}}
		}
		wg.Go(func() {
			for range rand.IntN(4) {
				runtime.Gosched()
			}
			cancel()
		})
		answers, err := fanout.Quorum(ctx, f, k, bs...)
		seen := map[int]bool{}
		for _, a := range answers {
			if seen[a.Index] || a.Value != a.Index {
				t.Fatalf("call %d: answer %v twice or wrong in %v", c, a, answers)
			}
			seen[a.Index] = true
		}
		var qe *fanout.QuorumError
		switch {
		case err == nil:
			if len(answers) != k {
				t.Fatalf("call %d: got %d answers, want %d", c, len(answers), k)
			}
		case errors.As(err, &qe):
			if qe.Succeeded != len(answers) || len(answers) >= k {
				t.Fatalf("call %d: %v with %d answers", c, err, len(answers))
			}
			for _, b := range qe.Branches {
				if seen[b.Index] {
					t.Fatalf("call %d: branch %d both answered and failed in %v", c, b.Index, err)
				}
				seen[b.Index] = true
			}
		case errors.Is(err, context.Canceled): // refused at the start
		default:
			t.Fatalf("call %d: got %v", c, err)
		}
		cancel()
	}
	wg.Wait()
}
