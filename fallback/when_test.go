package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/fallback"
	"github.com/bulwarkrpc/bulwark/timeout"
)

func TestDefault(t *testing.T) {
	to, err := timeout.New(timeout.Config{Total: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	live := context.Background()
	cancelled, cancel := context.WithCancel(live)
	cancel()
	ownDeadline, cancel2 := context.WithDeadline(live, time.Now().Add(-time.Second))
	defer cancel2()
	ours, cancel3 := to.WithTotal(live) // a deadline of ours, on the caller's context
	defer cancel3()
	<-ours.Done()
	ourErr := timeout.Wrap(ours, errDown)
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"nil error", live, nil, false},
		{"endpoint failure", live, errDown, true},
		{"wrapped failure", live, fmt.Errorf("get: %w", errDown), true},
		{"breaker open", live, breaker.ErrOpen, true},
		{"bulkhead full", live, bulkhead.ErrFull, true},
		{"our deadline", live, ourErr, true},
		{"deadline exceeded, caller live", live, context.DeadlineExceeded, true},
		{"canceled by the toolkit, caller live", live, context.Canceled, false},
		{"caller cancelled", cancelled, errDown, false},
		{"caller cancelled, breaker open", cancelled, breaker.ErrOpen, false},
		{"caller cancelled, our timeout error", cancelled, ourErr, false},
		{"caller's own deadline", ownDeadline, context.DeadlineExceeded, false},
		{"caller's context ended by an outer bulwark deadline", ours, ours.Err(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fallback.Default(tc.ctx, tc.err); got != tc.want {
				t.Errorf("Default(%v): got %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestDefaultFor(t *testing.T) {
	errNotFound := errors.New("not found")
	classify := func(ctx context.Context, err error) bulwark.Outcome {
		if errors.Is(err, errNotFound) {
			return bulwark.Ignored
		}
		return bulwark.ClassifyError(ctx, err)
	}
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name     string
		classify bulwark.Classifier
		ctx      context.Context
		err      error
		want     bool
	}{
		{"ignored by the classifier", classify, ctx, errNotFound, false},
		{"failure by the classifier", classify, ctx, errDown, true},
		{"rejection, whatever the classifier", func(context.Context, error) bulwark.Outcome { return bulwark.Ignored }, ctx, breaker.ErrOpen, true},
		{"caller cancelled, whatever the classifier", func(context.Context, error) bulwark.Outcome { return bulwark.Failure }, cancelled, errDown, false},
		{"nil classifier is ClassifyError", nil, ctx, errNotFound, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fallback.DefaultFor(tc.classify)(tc.ctx, tc.err); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWhen(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	never := func(context.Context, error) bool { return false }
	always := func(context.Context, error) bool { return true }
	for _, k := range []struct {
		name  string
		build func(when func(context.Context, error) bool) bulwark.Fallback[string]
	}{
		{"value", func(w func(context.Context, error) bool) bulwark.Fallback[string] {
			return mustValue(t, fallback.ValueConfig[string]{Value: "fallback", When: w})
		}},
		{"func", func(w func(context.Context, error) bool) bulwark.Fallback[string] {
			return mustFunc(t, fallback.FuncConfig[string]{When: w, Func: func(context.Context, string, error) (string, error) { return "fallback", nil }})
		}},
		{"cache", func(w func(context.Context, error) bool) bulwark.Fallback[string] {
			c := mustCache(t, fallback.CacheConfig[string]{When: w})
			c.Store(ctx, "k", "fallback")
			return c
		}},
	} {
		tests := []struct {
			name string
			when func(context.Context, error) bool
			ctx  context.Context
			err  error
			want bool
		}{
			{"nil is Default: failure", nil, ctx, errDown, true},
			{"nil is Default: toolkit's cancel", nil, ctx, context.Canceled, false},
			{"never", never, ctx, errDown, false},
			{"always, ignored error", always, ctx, context.Canceled, true},
			{"always, but the caller left", always, cancelled, errDown, false},
			{"always, but no error", always, ctx, nil, false},
		}
		for _, tc := range tests {
			t.Run(k.name+"/"+tc.name, func(t *testing.T) {
				v, err := k.build(tc.when).Recover(tc.ctx, "k", "failed", tc.err)
				if got := v == "fallback" && err == nil; got != tc.want {
					t.Errorf("got %q, %v; want fallback %v", v, err, tc.want)
				}
				if !tc.want && (v != "failed" || err != tc.err) {
					t.Errorf("got %q, %v; want the call's own %q, %v", v, err, "failed", tc.err)
				}
			})
		}
	}
}
