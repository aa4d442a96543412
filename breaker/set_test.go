package breaker_test

import (
	"maps"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
)

func TestSetKeysAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := mustNewSet(t, breaker.Config{ConsecutiveFailures: 1})
		run(t, set, "a", F)
		run(t, set, "b", S)
		if got := set.State("a"); got != breaker.Open {
			t.Errorf(`State("a"): got %v, want open`, got)
		}
		if got := set.State("b"); got != breaker.Closed {
			t.Errorf(`State("b"): got %v, want closed`, got)
		}
		if e := refused(t, set, "a"); e.Key != "a" {
			t.Errorf("refusal key: got %q, want %q", e.Key, "a")
		}
		run(t, set, "b", S)
		if got := set.Counts("b"); got.Successes != 2 || got.Failures != 0 {
			t.Errorf(`Counts("b"): got %+v, want 2 successes`, got)
		}
	})
}

func TestSetBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := mustNewSet(t, breaker.Config{ConsecutiveFailures: 1, MaxKeys: 2})
		run(t, set, "a", F)
		run(t, set, "b", S)
		if got := set.Len(); got != 2 {
			t.Fatalf("keys held: got %d, want 2", got)
		}
		run(t, set, "c", S) // pushes out "a", the least recently used
		if got := set.Len(); got != 2 {
			t.Fatalf("keys held: got %d, want 2", got)
		}
		if got := set.Counts("a"); got != (breaker.Counts{}) {
			t.Errorf(`Counts("a") after eviction: got %+v, want zero`, got)
		}
		if got := set.State("a"); got != breaker.Closed {
			t.Errorf(`State("a") after eviction: got %v, want closed`, got)
		}
		if got := set.Len(); got != 2 {
			t.Errorf("State and Counts added a key: got %d keys, want 2", got)
		}
		run(t, set, "a", S) // back, with a fresh closed breaker
		if got := set.Counts("a"); got.Successes != 1 || got.Failures != 0 {
			t.Errorf(`Counts("a") after coming back: got %+v, want one success`, got)
		}
	})
}

func TestMetrics(t *testing.T) {
	t.Run("Set", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r, mp := newReader(t)
			set := mustNewSet(t, breaker.Config{ConsecutiveFailures: 1, HalfOpenTrials: 1, MeterProvider: mp})
			run(t, set, "users", F)
			run(t, set, "orders", S)
			refused(t, set, "users")
			refused(t, set, "users")
			want := map[string]int64{
				"bulwark.breaker.state{bulwark.key=users}":                                                           2,
				"bulwark.breaker.state{bulwark.key=orders}":                                                          0,
				"bulwark.breaker.transitions{bulwark.breaker.from=closed,bulwark.breaker.to=open,bulwark.key=users}": 1,
				"bulwark.breaker.rejections{bulwark.breaker.reason=open,bulwark.key=users}":                          2,
			}
			if got := collect(t, r); !maps.Equal(got, want) {
				t.Fatalf("open:\ngot  %v\nwant %v", got, want)
			}

			time.Sleep(5 * time.Second) // nobody calls, yet the next call would be a trial
			want["bulwark.breaker.state{bulwark.key=users}"] = 1
			if got := collect(t, r); !maps.Equal(got, want) {
				t.Fatalf("past OpenDuration:\ngot  %v\nwant %v", got, want)
			}

			p := admit(t, set, "users")
			refused(t, set, "users")
			p.Done(bulwark.Success)
			want["bulwark.breaker.state{bulwark.key=users}"] = 0
			want["bulwark.breaker.transitions{bulwark.breaker.from=open,bulwark.breaker.to=half_open,bulwark.key=users}"] = 1
			want["bulwark.breaker.transitions{bulwark.breaker.from=half_open,bulwark.breaker.to=closed,bulwark.key=users}"] = 1
			want["bulwark.breaker.rejections{bulwark.breaker.reason=half_open_full,bulwark.key=users}"] = 1
			if got := collect(t, r); !maps.Equal(got, want) {
				t.Fatalf("closed again:\ngot  %v\nwant %v", got, want)
			}

			if err := set.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			for k := range collect(t, r) {
				if k == "bulwark.breaker.state{bulwark.key=users}" {
					t.Errorf("after Close: got %s, want the state gauge unobserved", k)
				}
			}
		})
	})
	t.Run("Breaker", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r, mp := newReader(t)
			b := mustNew(t, breaker.Config{ConsecutiveFailures: 1, MeterProvider: mp})
			want := map[string]int64{"bulwark.breaker.state{bulwark.key=}": 0}
			if got := collect(t, r); !maps.Equal(got, want) {
				t.Fatalf("closed:\ngot  %v\nwant %v", got, want)
			}
			run(t, b, "", F)
			refused(t, b, "")
			want = map[string]int64{
				"bulwark.breaker.state{bulwark.key=}": 2,
				"bulwark.breaker.transitions{bulwark.breaker.from=closed,bulwark.breaker.to=open,bulwark.key=}": 1,
				"bulwark.breaker.rejections{bulwark.breaker.reason=open,bulwark.key=}":                          1,
			}
			if got := collect(t, r); !maps.Equal(got, want) {
				t.Fatalf("open:\ngot  %v\nwant %v", got, want)
			}
		})
	})
}
