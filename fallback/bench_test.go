package fallback_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/fallback"
)

// The pass-through cost of each fallback (the call succeeds) beside
// bulwark.Do alone, and the cost of a cache hit beside the map under a
// RWMutex a user would write. Run with
//
//	go test -run '^$' -bench . -count 10 ./fallback/ | tee new.txt && benchstat new.txt

// both runs body sequentially and under RunParallel.
func both(b *testing.B, body func(next func() bool)) {
	b.Run("seq", func(b *testing.B) {
		b.ReportAllocs()
		body(b.Loop)
	})
	b.Run("par", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) { body(pb.Next) })
	})
}

func BenchmarkPassThrough(b *testing.B) {
	ctx := context.Background()
	stack := mustStack(b, bulwark.Config{})
	b.Run("bare-bulwark.Do", func(b *testing.B) {
		both(b, func(next func() bool) {
			for next() {
				bulwark.Do(ctx, stack, "", ok)
			}
		})
	})
	b.Run("pipeline-no-fallback", func(b *testing.B) {
		p := mustPipeline(b, bulwark.PipelineConfig[int]{Stack: stack})
		both(b, func(next func() bool) {
			for next() {
				p.Do(ctx, "k", ok)
			}
		})
	})
	for _, fb := range fallbacks(b) {
		b.Run("pipeline-"+fb.name, func(b *testing.B) {
			p := mustPipeline(b, bulwark.PipelineConfig[int]{Stack: stack, Fallback: fb.f})
			both(b, func(next func() bool) {
				for next() {
					p.Do(ctx, "k", ok)
				}
			})
		})
	}
}

// keys are the keys a cache benchmark reads, all present.
var keys = func() []string {
	k := make([]string, 1024)
	for i := range k {
		k[i] = fmt.Sprint("users/", i)
	}
	return k
}()

// rwCache is the bare alternative: a map under a RWMutex, with a
// freshness check, no bound and no recency.
type rwCache struct {
	mu sync.RWMutex
	m  map[string]rwEntry
}

type rwEntry struct {
	v      int
	stored time.Time
}

func (c *rwCache) get(key string, fresh time.Duration) (int, bool) {
	now := time.Now()
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || now.Sub(e.stored) >= fresh {
		return 0, false
	}
	return e.v, true
}

func BenchmarkCacheHit(b *testing.B) {
	ctx := context.Background()
	b.Run("bare-map-RWMutex", func(b *testing.B) {
		c := &rwCache{m: map[string]rwEntry{}}
		for i, k := range keys {
			c.m[k] = rwEntry{i, time.Now()}
		}
		both(b, func(next func() bool) {
			i := 0
			for next() {
				if _, hit := c.get(keys[i%len(keys)], time.Hour); !hit {
					b.Fatal("miss")
				}
				i++
			}
		})
	})
	c := mustCache(b, fallback.CacheConfig[int]{FreshFor: time.Hour})
	for i, k := range keys {
		c.Store(ctx, k, i)
	}
	b.Run("Cache.Lookup", func(b *testing.B) {
		both(b, func(next func() bool) {
			i := 0
			for next() {
				if _, hit := c.Lookup(ctx, keys[i%len(keys)]); !hit {
					b.Fatal("miss")
				}
				i++
			}
		})
	})
	b.Run("Pipeline.Do-fresh", func(b *testing.B) {
		p := mustPipeline(b, bulwark.PipelineConfig[int]{Stack: mustStack(b, bulwark.Config{}), Fallback: c})
		both(b, func(next func() bool) {
			i := 0
			for next() {
				p.Do(ctx, keys[i%len(keys)], ok)
				i++
			}
		})
	})
}
