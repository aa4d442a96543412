package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/fallback"
)

func TestNewCacheValidates(t *testing.T) {
	size := func(s string) int { return len(s) }
	tests := []struct {
		name string
		cfg  fallback.CacheConfig[string]
		want string // in the error; "" means valid
	}{
		{"zero", fallback.CacheConfig[string]{}, ""},
		{"all set", fallback.CacheConfig[string]{FreshFor: time.Second, MaxStale: time.Minute, MaxEntries: 5, MaxBytes: 100, Size: size}, ""},
		{"MaxStale equal to FreshFor", fallback.CacheConfig[string]{FreshFor: time.Second, MaxStale: time.Second}, ""},
		{"Size without MaxBytes", fallback.CacheConfig[string]{Size: size}, ""},
		{"huge FreshFor, default MaxStale", fallback.CacheConfig[string]{FreshFor: 1<<63 - 1}, ""},
		{"negative FreshFor", fallback.CacheConfig[string]{FreshFor: -1}, "CacheConfig.FreshFor is -1ns, want >= 0"},
		{"negative MaxStale", fallback.CacheConfig[string]{MaxStale: -time.Second}, "CacheConfig.MaxStale is -1s, want >= 0"},
		{"MaxStale shorter than FreshFor", fallback.CacheConfig[string]{FreshFor: time.Minute, MaxStale: time.Second}, "CacheConfig.MaxStale (1s) is shorter than CacheConfig.FreshFor (1m0s)"},
		{"negative MaxEntries", fallback.CacheConfig[string]{MaxEntries: -1}, "CacheConfig.MaxEntries is -1, want >= 0"},
		{"negative MaxBytes", fallback.CacheConfig[string]{MaxBytes: -1, Size: size}, "CacheConfig.MaxBytes is -1, want >= 0"},
		{"MaxBytes without Size", fallback.CacheConfig[string]{MaxBytes: 100}, "CacheConfig.Size is nil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := fallback.NewCache(tc.cfg)
			if c != nil {
				defer c.Close()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "fallback: ")):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			case tc.want != "" && c != nil:
				t.Fatalf("got a Cache with the error, want nil")
			}
		})
	}
}

// held reports, for each key, whether c holds a value for it, asking
// Recover (which a held value within MaxStale always answers).
func held(c *fallback.Cache[string], keys ...string) string {
	var b strings.Builder
	for _, k := range keys {
		if _, err := c.Recover(context.Background(), k, "", errDown); err == nil {
			b.WriteString(k)
		} else {
			b.WriteString("-")
		}
	}
	return b.String()
}

func TestCacheBoundsAndLRU(t *testing.T) {
	ctx := context.Background()
	size := func(s string) int {
		if s == "negative" {
			return -1
		}
		return len(s)
	}
	type op func(c *fallback.Cache[string])
	store := func(k, v string) op { return func(c *fallback.Cache[string]) { c.Store(ctx, k, v) } }
	lookup := func(k string) op { return func(c *fallback.Cache[string]) { c.Lookup(ctx, k) } }
	recover := func(k string) op { return func(c *fallback.Cache[string]) { c.Recover(ctx, k, "", errDown) } }
	del := func(k string) op { return func(c *fallback.Cache[string]) { c.Delete(k) } }

	tests := []struct {
		name      string
		cfg       fallback.CacheConfig[string]
		ops       []op
		wantHeld  string // over keys a..e: the letter when held, "-" when not
		wantLen   int
		wantBytes int64
	}{{
		name:     "entries: oldest goes",
		cfg:      fallback.CacheConfig[string]{MaxEntries: 3},
		ops:      []op{store("a", "1"), store("b", "1"), store("c", "1"), store("d", "1")},
		wantHeld: "-bcd-", wantLen: 3,
	}, {
		name:     "entries: replacing a key adds nothing",
		cfg:      fallback.CacheConfig[string]{MaxEntries: 3},
		ops:      []op{store("a", "1"), store("b", "1"), store("c", "1"), store("a", "2"), store("c", "2")},
		wantHeld: "abc--", wantLen: 3,
	}, {
		name: "LRU: a fresh hit is a use",
		cfg:  fallback.CacheConfig[string]{MaxEntries: 3, FreshFor: time.Hour},
		ops:  []op{store("a", "1"), store("b", "1"), store("c", "1"), lookup("a"), store("d", "1")},
		// order after: d a c; b was least recently used
		wantHeld: "a-cd-", wantLen: 3,
	}, {
		name:     "LRU: a stale answer is a use",
		cfg:      fallback.CacheConfig[string]{MaxEntries: 3},
		ops:      []op{store("a", "1"), store("b", "1"), store("c", "1"), recover("a"), store("d", "1"), recover("c"), store("e", "1")},
		wantHeld: "--cde", wantLen: 3,
	}, {
		name:     "LRU: a store is a use",
		cfg:      fallback.CacheConfig[string]{MaxEntries: 3},
		ops:      []op{store("a", "1"), store("b", "1"), store("c", "1"), store("a", "2"), store("d", "1")},
		wantHeld: "a-cd-", wantLen: 3,
	}, {
		name:     "LRU: a miss is no use",
		cfg:      fallback.CacheConfig[string]{MaxEntries: 2, FreshFor: time.Hour},
		ops:      []op{store("a", "1"), store("b", "1"), lookup("c"), recover("e"), store("c", "1")},
		wantHeld: "-bc--", wantLen: 2,
	}, {
		name:     "bytes: oldest go until it fits",
		cfg:      fallback.CacheConfig[string]{MaxBytes: 10, Size: size},
		ops:      []op{store("a", "aaaa"), store("b", "bbbb"), store("c", "ccc")},
		wantHeld: "-bc--", wantLen: 2, wantBytes: 7,
	}, {
		name:     "bytes: a value growing pushes others out",
		cfg:      fallback.CacheConfig[string]{MaxBytes: 10, Size: size},
		ops:      []op{store("a", "aa"), store("b", "bb"), store("c", "cc"), store("b", "bbbbbbbbb")},
		wantHeld: "-b---", wantLen: 1, wantBytes: 9,
	}, {
		name:     "bytes: exactly MaxBytes fits",
		cfg:      fallback.CacheConfig[string]{MaxBytes: 10, Size: size},
		ops:      []op{store("a", "aaaaa"), store("b", "bbbbb")},
		wantHeld: "ab---", wantLen: 2, wantBytes: 10,
	}, {
		name:     "bytes: a value larger than MaxBytes is not cached",
		cfg:      fallback.CacheConfig[string]{MaxBytes: 10, Size: size},
		ops:      []op{store("a", "aaaa"), store("b", "bbbbbbbbbbb")},
		wantHeld: "a----", wantLen: 1, wantBytes: 4,
	}, {
		name:     "bytes: ...and drops the value it supersedes",
		cfg:      fallback.CacheConfig[string]{MaxBytes: 10, Size: size},
		ops:      []op{store("a", "aaaa"), store("b", "bb"), store("b", "bbbbbbbbbbb")},
		wantHeld: "a----", wantLen: 1, wantBytes: 4,
	}, {
		name:     "bytes: a negative size is not cached",
		cfg:      fallback.CacheConfig[string]{Size: size},
		ops:      []op{store("a", "aaaa"), store("a", "negative"), store("b", "negative")},
		wantHeld: "-----", wantLen: 0, wantBytes: 0,
	}, {
		name:     "both bounds",
		cfg:      fallback.CacheConfig[string]{MaxEntries: 2, MaxBytes: 10, Size: size},
		ops:      []op{store("a", "a"), store("b", "b"), store("c", "c"), store("d", "dddddddddd")},
		wantHeld: "---d-", wantLen: 1, wantBytes: 10,
	}, {
		name:     "Size without MaxBytes measures only",
		cfg:      fallback.CacheConfig[string]{Size: size},
		ops:      []op{store("a", "aaaa"), store("b", strings.Repeat("b", 1<<20))},
		wantHeld: "ab---", wantLen: 2, wantBytes: 4 + 1<<20,
	}, {
		name:     "Delete",
		cfg:      fallback.CacheConfig[string]{Size: size},
		ops:      []op{store("a", "aaaa"), store("b", "bb"), del("a"), del("e")},
		wantHeld: "-b---", wantLen: 1, wantBytes: 2,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustCache(t, tc.cfg)
			for _, o := range tc.ops {
				o(c)
			}
			if got, got2 := c.Len(), c.Bytes(); got != tc.wantLen || got2 != tc.wantBytes {
				t.Errorf("got Len %d, Bytes %d; want %d, %d", got, got2, tc.wantLen, tc.wantBytes)
			}
			if got := held(c, "a", "b", "c", "d", "e"); got != tc.wantHeld {
				t.Errorf("got held %q, want %q", got, tc.wantHeld)
			}
		})
	}
}

func TestCacheDefaultMaxEntries(t *testing.T) {
	c := mustCache(t, fallback.CacheConfig[int]{})
	for i := range 10_001 {
		c.Store(context.Background(), fmt.Sprint(i), i)
	}
	if got := c.Len(); got != 10_000 {
		t.Fatalf("got %d entries, want 10000", got)
	}
	if _, err := c.Recover(context.Background(), "0", 0, errDown); err == nil {
		t.Fatalf("key 0: got a value, want it evicted")
	}
}

// TestCacheFreshAndMaxStale runs a Pipeline over a double whose endpoint
// goes down, in fake time.
func TestCacheFreshAndMaxStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustCache(t, fallback.CacheConfig[string]{FreshFor: 10 * time.Second, MaxStale: time.Minute})
		p := mustPipeline(t, bulwark.PipelineConfig[string]{Stack: mustStack(t, bulwark.Config{}), Fallback: c})
		calls, down := 0, false
		call := func(context.Context) (string, error) {
			calls++
			if down {
				return "", errDown
			}
			return fmt.Sprintf("v%d", calls), nil
		}
		start := time.Now()
		steps := []struct {
			at        time.Duration
			down      bool
			want      string // "" means the failure
			source    fallback.Source
			age       time.Duration
			wantCalls int
		}{
			{0, false, "v1", fallback.SourceCall, 0, 1},
			{5 * time.Second, false, "v1", fallback.SourceCacheFresh, 5 * time.Second, 1},
			{10*time.Second - 1, true, "v1", fallback.SourceCacheFresh, 10*time.Second - 1, 1},
			{10 * time.Second, false, "v2", fallback.SourceCall, 0, 2}, // FreshFor is over
			{15 * time.Second, true, "v2", fallback.SourceCacheFresh, 5 * time.Second, 2},
			{20 * time.Second, true, "v2", fallback.SourceCacheStale, 10 * time.Second, 3},
			{70 * time.Second, true, "v2", fallback.SourceCacheStale, time.Minute, 4},
			{70*time.Second + 1, true, "", fallback.SourceCall, 0, 5}, // beyond MaxStale
			{71 * time.Second, false, "v6", fallback.SourceCall, 0, 6},
		}
		for i, st := range steps {
			time.Sleep(start.Add(st.at).Sub(time.Now()))
			down = st.down
			var n fallback.Note
			v, err := p.Do(fallback.WithNote(context.Background(), &n), "k", call)
			switch {
			case st.want == "" && !errors.Is(err, errDown):
				t.Fatalf("step %d (%v): got %q, %v; want errDown", i, st.at, v, err)
			case st.want != "" && (err != nil || v != st.want):
				t.Fatalf("step %d (%v): got %q, %v; want %q, nil", i, st.at, v, err, st.want)
			case n.Source != st.source || n.Age != st.age:
				t.Fatalf("step %d (%v): got %v aged %v, want %v aged %v", i, st.at, n.Source, n.Age, st.source, st.age)
			case calls != st.wantCalls:
				t.Fatalf("step %d (%v): got %d calls, want %d", i, st.at, calls, st.wantCalls)
			}
			if st.want == "" && c.Len() != 0 {
				t.Fatalf("step %d: got %d entries, want the value beyond MaxStale dropped", i, c.Len())
			}
		}
	})
}

func TestCacheDefaultMaxStale(t *testing.T) {
	for _, fresh := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprint(fresh), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := mustCache(t, fallback.CacheConfig[string]{FreshFor: fresh})
				ctx := context.Background()
				c.Store(ctx, "k", "v")
				time.Sleep(fresh + 5*time.Minute)
				if v, err := c.Recover(ctx, "k", "", errDown); err != nil || v != "v" {
					t.Fatalf("at FreshFor+5m: got %q, %v; want v, nil", v, err)
				}
				time.Sleep(1)
				if v, err := c.Recover(ctx, "k", "", errDown); err != errDown {
					t.Fatalf("past FreshFor+5m: got %q, %v; want errDown", v, err)
				}
			})
		})
	}
}

func TestCacheLookupWithoutFreshFor(t *testing.T) {
	r, mp := newReader(t)
	c := mustCache(t, fallback.CacheConfig[string]{MeterProvider: mp})
	c.Store(context.Background(), "k", "v")
	if v, ok := c.Lookup(context.Background(), "k"); ok {
		t.Fatalf("got %q, true; want no answer before the call", v)
	}
	if got := collect(t, r)["bulwark.fallback.cache.lookups{bulwark.fallback.cache.result=miss,bulwark.key=}"]; got != 0 {
		t.Fatalf("got %d misses, want 0: nothing was asked", got)
	}
}

func TestCacheConcurrent(t *testing.T) {
	const maxEntries, maxBytes = 16, 100
	r, mp := newReader(t)
	c := mustCache(t, fallback.CacheConfig[string]{
		FreshFor: time.Hour, MaxEntries: maxEntries, MaxBytes: maxBytes,
		Size: func(s string) int { return len(s) }, MeterProvider: mp,
	})
	keys := make([]string, 32)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			for range 2000 {
				k := keys[rng.IntN(len(keys))]
				switch rng.IntN(5) {
				case 0, 1:
					c.Store(ctx, k, strings.Repeat("x", rng.IntN(40)))
				case 2:
					c.Lookup(ctx, k)
				case 3:
					c.Recover(ctx, k, "", errDown)
				case 4:
					if rng.IntN(10) == 0 {
						c.Delete(k)
					}
				}
				if n, b := c.Len(), c.Bytes(); n > maxEntries || b > maxBytes {
					t.Errorf("got %d entries, %d bytes; want at most %d, %d", n, b, maxEntries, maxBytes)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			var rm metricdata.ResourceMetrics
			r.Collect(ctx, &rm) // runs the callback beside the writers
		}
	})
	wg.Wait()
	// The byte count is the sum of what is held: dropping every key
	// brings it back to zero exactly.
	for _, k := range keys {
		c.Delete(k)
	}
	if n, b := c.Len(), c.Bytes(); n != 0 || b != 0 {
		t.Fatalf("after deleting every key: got %d entries, %d bytes; want 0, 0", n, b)
	}
}
