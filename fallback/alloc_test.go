package fallback_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/fallback"
)

// fallbacks are the three fallbacks as a passing-through Pipeline uses
// them: the Cache stores every success (FreshFor zero: it never answers
// before the call).
func fallbacks(tb testing.TB) []struct {
	name string
	f    bulwark.Fallback[int]
} {
	return []struct {
		name string
		f    bulwark.Fallback[int]
	}{
		{"value", mustValue(tb, fallback.ValueConfig[int]{Value: -1})},
		{"func", mustFunc(tb, fallback.FuncConfig[int]{Func: func(context.Context, string, error) (int, error) { return -1, nil }})},
		{"cache", mustCache(tb, fallback.CacheConfig[int]{MaxBytes: 1 << 20, Size: func(int) int { return 8 }})},
	}
}

func ok(context.Context) (int, error) { return 1, nil }

func TestPassThroughAllocatesNothingMore(t *testing.T) {
	ctx := context.Background()
	stack := mustStack(t, bulwark.Config{})
	base := testing.AllocsPerRun(1000, func() { bulwark.Do(ctx, stack, "", ok) })
	for _, fb := range fallbacks(t) {
		t.Run(fb.name, func(t *testing.T) {
			p := mustPipeline(t, bulwark.PipelineConfig[int]{Stack: stack, Fallback: fb.f})
			got := testing.AllocsPerRun(1000, func() {
				if v, err := p.Do(ctx, "k", ok); v != 1 || err != nil {
					t.Fatalf("got %d, %v; want 1, nil", v, err)
				}
			})
			if got != base {
				t.Fatalf("got %v allocations per call, want %v (bulwark.Do alone)", got, base)
			}
		})
	}
}

func TestHitAndRecoverAllocateNothing(t *testing.T) {
	ctx := context.Background()
	c := mustCache(t, fallback.CacheConfig[int]{FreshFor: time.Hour})
	c.Store(ctx, "k", 1)
	var n fallback.Note
	noted := fallback.WithNote(ctx, &n)
	tests := []struct {
		name string
		fn   func()
	}{
		{"Lookup hit", func() { c.Lookup(ctx, "k") }},
		{"Lookup hit, noted", func() { c.Lookup(noted, "k") }},
		{"Lookup miss", func() { c.Lookup(ctx, "absent") }},
		{"Store replacing", func() { c.Store(ctx, "k", 2) }},
		{"Recover stale", func() { c.Recover(ctx, "k", 0, errDown) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(1000, tc.fn); got != 0 {
				t.Fatalf("got %v allocations, want 0", got)
			}
		})
	}
	for _, fb := range fallbacks(t)[:2] {
		if got := testing.AllocsPerRun(1000, func() { fb.f.Recover(ctx, "k", 0, errDown) }); got != 0 {
			t.Fatalf("%s Recover: got %v allocations, want 0", fb.name, got)
		}
	}
	p := mustPipeline(t, bulwark.PipelineConfig[int]{Stack: mustStack(t, bulwark.Config{}), Fallback: c})
	if got := testing.AllocsPerRun(1000, func() { p.Do(ctx, "k", ok) }); got != 0 {
		t.Fatalf("Pipeline.Do answered fresh: got %v allocations, want 0", got)
	}
}
