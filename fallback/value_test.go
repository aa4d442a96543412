package fallback_test

import (
	"context"
	"errors"
	"testing"

	"github.com/bulwarkrpc/bulwark/fallback"
)

func TestValue(t *testing.T) {
	ctx := context.Background()
	t.Run("zero config answers the zero value", func(t *testing.T) {
		f := mustValue(t, fallback.ValueConfig[int]{})
		if v, err := f.Recover(ctx, "k", 7, errDown); err != nil || v != 0 {
			t.Fatalf("got %d, %v; want 0, nil", v, err)
		}
	})
	t.Run("answers the value, notes it", func(t *testing.T) {
		f := mustValue(t, fallback.ValueConfig[int]{Value: 42})
		var n fallback.Note
		if v, err := f.Recover(fallback.WithNote(ctx, &n), "k", 7, errDown); err != nil || v != 42 {
			t.Fatalf("got %d, %v; want 42, nil", v, err)
		}
		if n.Source != fallback.SourceValue || !errors.Is(n.Err, errDown) || n.Age != 0 {
			t.Fatalf("got note %+v, want value, errDown, no age", n)
		}
	})
	t.Run("never looks up, stores nothing", func(t *testing.T) {
		f := mustValue(t, fallback.ValueConfig[int]{Value: 42})
		f.Store(ctx, "k", 1)
		if v, ok := f.Lookup(ctx, "k"); ok || v != 0 {
			t.Fatalf("got %d, %v; want 0, false", v, ok)
		}
	})
}

func TestFunc(t *testing.T) {
	ctx := context.Background()
	t.Run("nil Func is an error", func(t *testing.T) {
		_, err := fallback.NewFunc(fallback.FuncConfig[int]{})
		if err == nil || err.Error() != "fallback: FuncConfig.Func is nil" {
			t.Fatalf("got %v, want an error naming FuncConfig.Func", err)
		}
	})
	t.Run("receives key and error", func(t *testing.T) {
		var gotKey string
		var gotErr error
		f := mustFunc(t, fallback.FuncConfig[int]{Func: func(_ context.Context, key string, err error) (int, error) {
			gotKey, gotErr = key, err
			return len(key), nil
		}})
		var n fallback.Note
		v, err := f.Recover(fallback.WithNote(ctx, &n), "abc", 7, errDown)
		if err != nil || v != 3 || gotKey != "abc" || gotErr != errDown {
			t.Fatalf("got %d, %v (saw %q, %v); want 3, nil (saw abc, errDown)", v, err, gotKey, gotErr)
		}
		if n.Source != fallback.SourceFunc || n.Err != errDown {
			t.Fatalf("got note %+v, want func, errDown", n)
		}
	})
	t.Run("declines with an error", func(t *testing.T) {
		errNone := errors.New("no default either")
		f := mustFunc(t, fallback.FuncConfig[int]{Func: func(_ context.Context, _ string, err error) (int, error) {
			return -1, errors.Join(errNone, err)
		}})
		var n fallback.Note
		v, err := f.Recover(fallback.WithNote(ctx, &n), "k", 7, errDown)
		if v != -1 || !errors.Is(err, errNone) || !errors.Is(err, errDown) {
			t.Fatalf("got %d, %v; want -1 and the function's error", v, err)
		}
		if n != (fallback.Note{}) {
			t.Fatalf("got note %+v, want none: nothing was replaced", n)
		}
	})
	t.Run("never looks up", func(t *testing.T) {
		f := mustFunc(t, fallback.FuncConfig[int]{Func: func(context.Context, string, error) (int, error) { return 1, nil }})
		f.Store(ctx, "k", 1)
		if v, ok := f.Lookup(ctx, "k"); ok || v != 0 {
			t.Fatalf("got %d, %v; want 0, false", v, ok)
		}
	})
}

func TestSource(t *testing.T) {
	tests := []struct {
		s        fallback.Source
		str      string
		fallback bool
	}{
		{fallback.SourceCall, "call", false},
		{fallback.SourceValue, "value", true},
		{fallback.SourceFunc, "func", true},
		{fallback.SourceCacheFresh, "cache_fresh", false},
		{fallback.SourceCacheStale, "cache_stale", true},
		{fallback.Source(99), "source(99)", false},
	}
	for _, tc := range tests {
		if got := tc.s.String(); got != tc.str {
			t.Errorf("String: got %q, want %q", got, tc.str)
		}
		if got := tc.s.Fallback(); got != tc.fallback {
			t.Errorf("%v.Fallback(): got %v, want %v", tc.s, got, tc.fallback)
		}
	}
}
