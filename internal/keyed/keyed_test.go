package keyed_test

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/bulwarkrpc/bulwark/internal/keyed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewRejectsBadSize(t *testing.T) {
	for _, size := range []int{0, -1} {
		if _, err := keyed.New(size, func(string) int { return 0 }, nil, nil); err == nil {
			t.Errorf("New(%d): got nil error, want one", size)
		}
	}
}

func TestGetMakesOncePerKey(t *testing.T) {
	var made atomic.Int32
	s, _ := keyed.New(8, func(k string) string { made.Add(1); return "v:" + k }, nil, nil)
	for range 3 {
		if got := s.Get("a"); got != "v:a" {
			t.Fatalf("Get(a) = %q, want v:a", got)
		}
	}
	if made.Load() != 1 {
		t.Fatalf("made %d values for one key, want 1", made.Load())
	}
	if _, ok := s.Peek("b"); ok {
		t.Fatalf("Peek(b) found a key never used")
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}

func TestRacingFirstUsesShareOneValue(t *testing.T) {
	s, _ := keyed.New(4, func(string) *int { return new(int) }, nil, nil)
	var wg sync.WaitGroup
	got := make([]*int, 16)
	for i := range got {
		wg.Go(func() { got[i] = s.Get("k") })
	}
	wg.Wait()
	for i, p := range got {
		if p != got[0] {
			t.Fatalf("caller %d got a different value than caller 0", i)
		}
	}
}

func TestBoundedAndHotKeysSurviveAFlood(t *testing.T) {
	var evicted []string
	var mu sync.Mutex
	s, _ := keyed.New(16, func(k string) string { return k }, func(k, v string) {
		mu.Lock()
		evicted = append(evicted, k)
		mu.Unlock()
		if k != v {
			t.Errorf("onEvict(%q, %q): value does not belong to key", k, v)
		}
	}, nil)
	hot := []string{"api-1", "api-2", "api-3"}
	for i := range 10_000 {
		for _, h := range hot {
			s.Get(h)
		}
		s.Get(fmt.Sprintf("hostile-%d", i))
		if n := s.Len(); n > 16 {
			t.Fatalf("Len = %d after %d keys, want <= 16", n, i)
		}
	}
	for _, h := range hot {
		if _, ok := s.Peek(h); !ok {
			t.Errorf("hot key %s was evicted by a flood of one-off keys", h)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := 10_000 + len(hot) - 16; len(evicted) != want {
		t.Fatalf("evicted %d keys, want %d (every key beyond the bound)", len(evicted), want)
	}
}

func TestRangeVisitsEveryKeyOnce(t *testing.T) {
	s, _ := keyed.New(8, func(k string) string { return k + "!" }, nil, nil)
	for _, k := range []string{"c", "a", "b"} {
		s.Get(k)
	}
	var keys []string
	s.Range(func(k, v string) {
		if v != k+"!" {
			t.Errorf("Range gave %q for key %q", v, k)
		}
		s.Get("d") // no lock is held while f runs
		keys = append(keys, k)
	})
	sort.Strings(keys)
	if fmt.Sprint(keys) != "[a b c]" {
		t.Fatalf("Range visited %v, want [a b c]", keys)
	}
}

func TestConcurrentUseStaysBounded(t *testing.T) {
	s, _ := keyed.New(32, func(k string) string { return k }, nil, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprintf("k%d", (i*7+g)%100)
				if v := s.Get(k); v != k {
					t.Errorf("Get(%s) = %s", k, v)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := s.Len(); n > 32 {
		t.Fatalf("Len = %d, want <= 32", n)
	}
	n := 0
	s.Range(func(string, string) { n++ })
	if n != s.Len() {
		t.Fatalf("Range visited %d keys, Len says %d", n, s.Len())
	}
}

func BenchmarkGet(b *testing.B) {
	s, _ := keyed.New(1024, func(k string) int { return len(k) }, nil, nil)
	s.Get("api.example:443")
	b.Run("seq", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Get("api.example:443")
		}
	})
	b.Run("par", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.Get("api.example:443")
			}
		})
	})
}

func TestBusyKeysAreSpared(t *testing.T) {
	busy := map[string]bool{"busy": true}
	s, _ := keyed.New(2, func(k string) string { return k }, nil, func(v string) bool { return busy[v] })
	s.Get("busy")
	for i := range 100 {
		s.Get(fmt.Sprintf("k%d", i))
		if _, ok := s.Peek("busy"); !ok {
			t.Fatalf("the busy key was evicted by key %d", i)
		}
	}
	// Every key busy: the bound wins, and the set stays at its size.
	all, _ := keyed.New(2, func(k string) string { return k }, nil, func(string) bool { return true })
	for i := range 10 {
		all.Get(fmt.Sprintf("k%d", i))
	}
	if n := all.Len(); n != 2 {
		t.Fatalf("Len = %d with every key busy, want the bound, 2", n)
	}
}

// An evicted key's entry may linger in the table of recent entries: a
// lookup must pass it by and make the key anew, as the map no longer holds
// it.
func TestEvictedKeyIsMadeAnew(t *testing.T) {
	built := 0
	s, _ := keyed.New(1, func(k string) string { built++; return fmt.Sprint(k, built) }, nil, nil)
	first := s.Get("a")
	if again := s.Get("a"); again != first { // now a recent entry
		t.Fatalf("Get(a) = %q, then %q", first, again)
	}
	s.Get("b") // evicts a
	if got := s.Get("a"); got == first {
		t.Fatalf("Get(a) after its eviction = %q, the evicted value; want a new one", got)
	}
	if _, ok := s.Peek("b"); ok {
		t.Fatal("b is still held; the set's size is 1")
	}
}

// Under concurrent lookups that evict all the time, no lookup returns a
// value already evicted once the evictions are over: the table of recent
// entries and the map agree with the ring (run it with -race).
func TestConcurrentEvictionLeavesNoStaleEntry(t *testing.T) {
	type val struct {
		key     string
		evicted atomic.Bool
	}
	for round := range 10 {
		s, _ := keyed.New(4, func(k string) *val { return &val{key: k} },
			func(_ string, v *val) { v.evicted.Store(true) }, nil)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 1000 {
					k := fmt.Sprintf("k%d", (i*7+g*3+round)%40)
					if v := s.Get(k); v.key != k {
						t.Errorf("Get(%s) = %s", k, v.key)
						return
					}
				}
			})
		}
		wg.Wait()
		if n := s.Len(); n > 4 {
			t.Fatalf("Len = %d, want <= 4", n)
		}
		for i := range 40 {
			k := fmt.Sprintf("k%d", i)
			held, ok := s.Peek(k)
			if got := s.Get(k); ok && got != held || got.evicted.Load() {
				t.Fatalf("round %d: Get(%s) gave a value the set no longer holds (evicted: %v)", round, k, got.evicted.Load())
			}
		}
	}
}
