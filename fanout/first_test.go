package fanout_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/fanout"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/retry"
)

// starts records when each branch started, on the fake clock.
type starts struct {
	mu    sync.Mutex
	start time.Time
	at    map[string]time.Duration
}

func newStarts() *starts { return &starts{start: time.Now(), at: map[string]time.Duration{}} }

func (s *starts) wrap(name string, call func(context.Context) (string, error)) fanout.Branch[string] {
	return fanout.Branch[string]{Name: name, Call: func(ctx context.Context) (string, error) {
		s.mu.Lock()
		s.at[name] = time.Since(s.start)
		s.mu.Unlock()
		return call(ctx)
	}}
}

func (s *starts) get(name string) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.at[name]
	return d, ok
}

func TestFirstStaggersByDelay(t *testing.T) {
	for _, tc := range []struct {
		name      string
		branches  func(*starts, *sync.Map) []fanout.Branch[string]
		winner    int
		value     string
		elapsed   time.Duration
		notStated []string
		cancelled []string
		startedAt map[string]time.Duration
	}{
		{
			name: "first answers before the delay",
			branches: func(s *starts, seen *sync.Map) []fanout.Branch[string] {
				return []fanout.Branch[string]{
					s.wrap("a", after(50*time.Millisecond, "A", nil, seen, "a")),
					s.wrap("b", after(time.Millisecond, "B", nil, seen, "b")),
				}
			},
			winner: 0, value: "A", elapsed: 50 * time.Millisecond, notStated: []string{"b"},
			startedAt: map[string]time.Duration{"a": 0},
		},
		{
			name: "second wins after the delay",
			branches: func(s *starts, seen *sync.Map) []fanout.Branch[string] {
				return []fanout.Branch[string]{
					s.wrap("a", after(time.Second, "A", nil, seen, "a")),
					s.wrap("b", after(50*time.Millisecond, "B", nil, seen, "b")),
					s.wrap("c", after(time.Millisecond, "C", nil, seen, "c")),
				}
			},
			winner: 1, value: "B", elapsed: 150 * time.Millisecond, notStated: []string{"c"}, cancelled: []string{"a"},
			startedAt: map[string]time.Duration{"a": 0, "b": 100 * time.Millisecond},
		},
		{
			name: "a failure starts the next at once",
			branches: func(s *starts, seen *sync.Map) []fanout.Branch[string] {
				return []fanout.Branch[string]{
					s.wrap("a", after(10*time.Millisecond, "", errBoom, seen, "a")),
					s.wrap("b", after(20*time.Millisecond, "B", nil, seen, "b")),
				}
			},
			winner: 1, value: "B", elapsed: 30 * time.Millisecond,
			startedAt: map[string]time.Duration{"a": 0, "b": 10 * time.Millisecond},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newMeter()
				f := mustNew(t, fanout.Config{MeterProvider: m, Hedge: hedge.Config{Delay: 100 * time.Millisecond}})
				var seen sync.Map
				s := newStarts()
				ans, err := fanout.First(context.Background(), f, tc.branches(s, &seen)...)
				if err != nil || ans.Index != tc.winner || ans.Value != tc.value {
					t.Fatalf("First: got %+v, %v, want {%d %s}, nil", ans, err, tc.winner, tc.value)
				}
				if got := time.Since(s.start); got != tc.elapsed {
					t.Errorf("elapsed: got %v, want %v", got, tc.elapsed)
				}
				synctest.Wait()
				for name, want := range tc.startedAt {
					if got, ok := s.get(name); !ok || got != want {
						t.Errorf("%s started at %v (%v), want %v", name, got, ok, want)
					}
				}
				for _, name := range tc.notStated {
					if _, ok := s.get(name); ok {
						t.Errorf("%s started, want not", name)
					}
				}
				for _, name := range tc.cancelled {
					if err, _ := seen.Load(name); err != context.Canceled {
						t.Errorf("%s: context error %v, want Canceled", name, err)
					}
				}
				if got := m.sum(t, "bulwark.fanout.branches", map[string]string{"bulwark.fanout.op": "first", "bulwark.fanout.outcome": "success"}); got != 1 {
					t.Errorf("successes: got %d, want 1", got)
				}
			})
		})
	}
}

// The stagger follows observed latency: with a Latency whose median is
// 40ms, the second branch starts at 40ms.
func TestFirstStaggersByLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lat, err := retry.NewLatency(retry.LatencyConfig{Window: 10, MinSamples: 10})
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			lat.Observe(40 * time.Millisecond)
		}
		f := mustNew(t, fanout.Config{Hedge: hedge.Config{Delay: time.Hour, Latency: lat, Quantile: 0.5}})
		s := newStarts()
		ans, err := fanout.First(context.Background(), f,
			s.wrap("a", after(time.Hour, "A", nil, nil, "")),
			s.wrap("b", after(time.Millisecond, "B", nil, nil, "")))
		if err != nil || ans.Index != 1 {
			t.Fatalf("First: got %+v, %v, want branch 1", ans, err)
		}
		got, _ := s.get("b")
		if got < 39*time.Millisecond || got > 41*time.Millisecond {
			t.Errorf("b started at %v, want 40ms (within the tracker's 2%%)", got)
		}
	})
}

// Racing branches draw on the shared retry budget: with none left, only
// the first branch runs.
func TestFirstDrawsOnBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget, err := retry.NewBudget(retry.BudgetConfig{Ratio: 1e-9, PerSecond: 1e-9})
		if err != nil {
			t.Fatal(err)
		}
		f := mustNew(t, fanout.Config{Hedge: hedge.Config{Delay: 10 * time.Millisecond, Budget: budget}})
		s := newStarts()
		_, err = fanout.First(context.Background(), f,
			s.wrap("a", after(time.Second, "", errBoom, nil, "")),
			s.wrap("b", after(time.Millisecond, "B", nil, nil, "")))
		var qe *fanout.QuorumError
		if !errors.As(err, &qe) || !errors.Is(err, errBoom) || qe.K != 1 || qe.N != 2 || len(qe.Branches) != 1 || qe.Branches[0].Name != "a" {
			t.Fatalf("First: got %v, want a *QuorumError with branch a's failure only", err)
		}
		if _, ok := s.get("b"); ok {
			t.Error("b started, want not: the budget is spent")
		}
	})
}

// A branch that ignores cancellation, even the first (which the hedge
// runs on its caller's goroutine), holds neither the race nor the caller;
// its goroutine ends when its call returns.
func TestFirstDoesNotWaitForStraggler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := mustNew(t, fanout.Config{Hedge: hedge.Config{Delay: 100 * time.Millisecond}})
		release := make(chan struct{})
		var returned atomic.Bool
		stuck := func(context.Context) (string, error) {
			<-release
			returned.Store(true)
			return "late", nil
		}
		start := time.Now()
		ans, err := fanout.First(context.Background(), f,
			fanout.Branch[string]{Name: "stuck", Call: stuck},
			fanout.Branch[string]{Name: "b", Call: after(10*time.Millisecond, "B", nil, nil, "")})
		if err != nil || ans.Value != "B" {
			t.Fatalf("First: got %+v, %v, want B", ans, err)
		}
		if got := time.Since(start); got != 110*time.Millisecond {
			t.Errorf("elapsed: got %v, want 110ms", got)
		}
		close(release)
		synctest.Wait()
		if !returned.Load() {
			t.Error("the straggler did not return")
		}
	})
}

func TestFirstCallerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := mustNew(t, fanout.Config{Hedge: hedge.Config{Delay: 100 * time.Millisecond}})
		release := make(chan struct{})
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := fanout.First(ctx, f,
			fanout.Branch[string]{Name: "a", Call: func(context.Context) (string, error) { <-release; return "", nil }},
			fanout.Branch[string]{Name: "b", Call: after(time.Hour, "B", nil, nil, "")})
		if got := time.Since(start); got != time.Second {
			t.Errorf("elapsed: got %v, want 1s", got)
		}
		var qe *fanout.QuorumError
		if !errors.As(err, &qe) || !errors.Is(err, context.DeadlineExceeded) || qe.Succeeded != 0 || len(qe.Branches) != 2 {
			t.Errorf("First: got %v, want a *QuorumError listing both branches, matching DeadlineExceeded", err)
		}
	})
}

func TestFirstAllFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMeter()
		f := mustNew(t, fanout.Config{MeterProvider: m, Hedge: hedge.Config{Delay: time.Second}})
		errA, errB, errC := errors.New("a"), errors.New("b"), errors.New("c")
		start := time.Now()
		_, err := fanout.First(context.Background(), f,
			fanout.Branch[int]{Name: "a", Call: after(10*time.Millisecond, 0, errA, nil, "")},
			fanout.Branch[int]{Name: "b", Call: after(10*time.Millisecond, 0, errB, nil, "")},
			fanout.Branch[int]{Name: "c", Call: after(10*time.Millisecond, 0, errC, nil, "")})
		if got := time.Since(start); got != 30*time.Millisecond {
			t.Errorf("elapsed: got %v, want 30ms (each failure starts the next at once)", got)
		}
		for _, e := range []error{errA, errB, errC, fanout.ErrNoQuorum} {
			if !errors.Is(err, e) {
				t.Errorf("First: got %v, want it to match %v", err, e)
			}
		}
		if got := m.sum(t, "bulwark.fanout.branches", map[string]string{"bulwark.fanout.outcome": "failure"}); got != 3 {
			t.Errorf("failures: got %d, want 3", got)
		}
	})
}

func TestFirstSingleBranch(t *testing.T) {
	f := mustNew(t, fanout.Config{})
	ans, err := fanout.First(context.Background(), f, fanout.Branch[int]{Name: "only", Call: func(context.Context) (int, error) { return 5, nil }})
	if err != nil || ans != (fanout.Answer[int]{Index: 0, Value: 5}) {
		t.Errorf("First: got %+v, %v, want {0 5}, nil", ans, err)
	}
	_, err = fanout.First(context.Background(), f, fanout.Branch[int]{Name: "only", Call: func(context.Context) (int, error) { return 0, errBoom }})
	if !errors.Is(err, errBoom) || !errors.Is(err, fanout.ErrNoQuorum) {
		t.Errorf("First: got %v, want boom and ErrNoQuorum", err)
	}
}

func TestFirstBadInput(t *testing.T) {
	f := mustNew(t, fanout.Config{})
	var ran atomic.Int32
	ok := fanout.Branch[int]{Name: "ok", Call: func(context.Context) (int, error) { ran.Add(1); return 1, nil }}
	for _, tc := range []struct {
		name string
		f    *fanout.Fanout
		bs   []fanout.Branch[int]
		want string
	}{
		{"n = 0", f, nil, "no branches"},
		{"nil call", f, []fanout.Branch[int]{ok, {Name: "x"}}, `branch 1 ("x") has a nil Call`},
		{"nil fanout", nil, []fanout.Branch[int]{ok}, "nil *Fanout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran.Store(0)
			_, err := fanout.First(context.Background(), tc.f, tc.bs...)
			if !errors.Is(err, fanout.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("First: got %v, want ErrInvalid naming %q", err, tc.want)
			}
			if n := ran.Load(); n != 0 {
				t.Errorf("branches run: got %d, want 0", n)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  fanout.Config
		want string
	}{
		{"negative MaxConcurrent", fanout.Config{MaxConcurrent: -1}, "Config.MaxConcurrent is -1"},
		{"MaxHedges set", fanout.Config{Hedge: hedge.Config{MaxHedges: 2}}, "Config.Hedge.MaxHedges is 2"},
		{"bad hedge delay", fanout.Config{Hedge: hedge.Config{Delay: -time.Second}}, "Config.Hedge: hedge: Config.Delay is -1s"},
		{"bad quantile", fanout.Config{Hedge: hedge.Config{Quantile: 1.5}}, "Quantile is 1.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := fanout.New(tc.cfg)
			if err == nil || f != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: got %v, %v, want an error naming %q", f, err, tc.want)
			}
		})
	}
}

// The first branch is refused by its guards after a wait (a bulkhead
// queue) while the second runs; then the caller gives up. First returns a
// *QuorumError with ctx's error, and neither First nor the straggler that
// ends later crashes.
func TestFirstCallerCancelAfterFirstBranchRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := mustNew(t, fanout.Config{Hedge: hedge.Config{Delay: 10 * time.Millisecond}})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(100*time.Millisecond, cancel)
		release := make(chan struct{})
		_, err := fanout.First(ctx, f,
			fanout.Branch[string]{Name: "queued", Call: func(context.Context) (string, error) {
				time.Sleep(50 * time.Millisecond) // what a bulkhead queue's wait and refusal look like from here
				return "", bulwark.RejectionError("bulkhead: full")
			}},
			fanout.Branch[string]{Name: "stuck", Call: func(context.Context) (string, error) { <-release; return "late", nil }})
		if !errors.Is(err, fanout.ErrNoQuorum) || !errors.Is(err, context.Canceled) {
			t.Errorf("First: got %v, want ErrNoQuorum and context.Canceled", err)
		}
		close(release)
		synctest.Wait()
	})
}
