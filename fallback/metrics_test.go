package fallback_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark/fallback"
)

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	t.Run("value and func", func(t *testing.T) {
		r, mp := newReader(t)
		v := mustValue(t, fallback.ValueConfig[int]{Name: "users", MeterProvider: mp})
		f := mustFunc(t, fallback.FuncConfig[int]{Name: "orders", MeterProvider: mp, Func: func(_ context.Context, key string, err error) (int, error) {
			if key == "decline" {
				return 0, err
			}
			return 1, nil
		}})
		v.Recover(ctx, "k", 0, errDown)
		v.Recover(ctx, "k", 0, errDown)
		v.Recover(ctx, "k", 0, nil) // nothing to replace
		f.Recover(ctx, "k", 0, errDown)
		f.Recover(ctx, "decline", 0, errDown) // the function declined: not used
		want := map[string]int64{
			"bulwark.fallback.used{bulwark.fallback.source=value,bulwark.key=users}": 2,
			"bulwark.fallback.used{bulwark.fallback.source=func,bulwark.key=orders}": 1,
		}
		if got := collect(t, r); !maps.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("cache", func(t *testing.T) {
		r, mp := newReader(t)
		c, err := fallback.NewCache(fallback.CacheConfig[string]{
			Name: "users", FreshFor: time.Hour, Size: func(s string) int { return len(s) }, MeterProvider: mp,
		})
		if err != nil {
			t.Fatal(err)
		}
		c.Store(ctx, "a", "aaaa")
		c.Store(ctx, "b", "bb")
		c.Lookup(ctx, "a")                 // hit
		c.Lookup(ctx, "a")                 // hit
		c.Lookup(ctx, "x")                 // miss
		c.Recover(ctx, "b", "", errDown)   // stale_hit
		c.Recover(ctx, "x", "", errDown)   // miss
		c.Recover(ctx, "b", "", nil)       // not asked
		c.Recover(ctx, "b", "", ctx.Err()) // not asked: nil error too
		want := map[string]int64{
			"bulwark.fallback.used{bulwark.fallback.source=cache_stale,bulwark.key=users}":              1,
			"bulwark.fallback.cache.lookups{bulwark.fallback.cache.result=hit,bulwark.key=users}":       2,
			"bulwark.fallback.cache.lookups{bulwark.fallback.cache.result=stale_hit,bulwark.key=users}": 1,
			"bulwark.fallback.cache.lookups{bulwark.fallback.cache.result=miss,bulwark.key=users}":      2,
			"bulwark.fallback.cache.entries{bulwark.key=users}":                                         2,
			"bulwark.fallback.cache.bytes{bulwark.key=users}":                                           6,
		}
		if got := collect(t, r); !maps.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		got := collect(t, r)
		for _, k := range []string{"bulwark.fallback.cache.entries{bulwark.key=users}", "bulwark.fallback.cache.bytes{bulwark.key=users}"} {
			if _, ok := got[k]; ok {
				t.Errorf("after Close: %s still reported", k)
			}
		}
	})
	t.Run("cache without Size reports no bytes", func(t *testing.T) {
		r, mp := newReader(t)
		c := mustCache(t, fallback.CacheConfig[string]{MeterProvider: mp})
		c.Store(ctx, "a", "aaaa")
		got := collect(t, r)
		if _, ok := got["bulwark.fallback.cache.bytes{bulwark.key=}"]; ok {
			t.Errorf("got a bytes gauge, want none without Size")
		}
		if got["bulwark.fallback.cache.entries{bulwark.key=}"] != 1 {
			t.Errorf("got entries %d, want 1", got["bulwark.fallback.cache.entries{bulwark.key=}"])
		}
	})
}
