package bulwark_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// memo is a Fallback double: answers Lookup from fresh, remembers Store,
// and Recover returns the stored value.
type memo struct {
	mu      sync.Mutex
	fresh   map[string]string
	stored  map[string]string
	recover []error
}

func newMemo() *memo { return &memo{fresh: map[string]string{}, stored: map[string]string{}} }

func (m *memo) Lookup(_ context.Context, key string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.fresh[key]
	return v, ok
}

func (m *memo) Store(_ context.Context, key, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stored[key] = v
}

func (m *memo) Recover(ctx context.Context, key string, _ string, err error) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recover = append(m.recover, err)
	if v, ok := m.stored[key]; ok && ctx.Err() == nil {
		return v + " (stale)", nil
	}
	return "", err
}

func TestPipelineFallbackOrder(t *testing.T) {
	fb := newMemo()
	p, err := bulwark.NewPipeline(bulwark.PipelineConfig[string]{Stack: newStack(t, bulwark.Config{}), Fallback: fb})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := 0
	ok := func(context.Context) (string, error) { calls++; return "v1", nil }
	down := errors.New("down")
	fail := func(context.Context) (string, error) { calls++; return "", down }

	if v, err := p.Do(ctx, "user:1", ok); v != "v1" || err != nil {
		t.Fatalf("Do = %q, %v; want v1, nil", v, err)
	}
	if fb.stored["user:1"] != "v1" {
		t.Fatalf("Store was not told the success: %v", fb.stored)
	}
	if v, err := p.Do(ctx, "user:1", fail); v != "v1 (stale)" || err != nil {
		t.Fatalf("Do on failure = %q, %v; want the fallback's v1 (stale), nil", v, err)
	}
	if len(fb.recover) != 1 || !errors.Is(fb.recover[0], down) {
		t.Fatalf("Recover saw %v, want [down]", fb.recover)
	}
	if _, err := p.Do(ctx, "user:2", fail); !errors.Is(err, down) {
		t.Fatalf("Do with nothing to fall back on = %v, want down", err)
	}
	fb.fresh["user:3"] = "cached"
	before := calls
	if v, _ := p.Do(ctx, "user:3", ok); v != "cached" || calls != before {
		t.Fatalf("Lookup hit: got %q after %d calls, want cached and no call", v, calls-before)
	}
}

func TestPipelineRejectsBadConfig(t *testing.T) {
	noTotal, _ := timeout.New(timeout.Config{Attempt: time.Second})
	tests := []struct {
		name  string
		cfg   bulwark.PipelineConfig[int]
		field string
	}{
		{"nil stack", bulwark.PipelineConfig[int]{}, "PipelineConfig.Stack"},
		{"coalesce without any deadline", bulwark.PipelineConfig[int]{Stack: newStack(t, bulwark.Config{}), Coalesce: true}, "PipelineConfig.Coalesce"},
		{"coalesce with only an attempt deadline", bulwark.PipelineConfig[int]{Stack: newStack(t, bulwark.Config{Timeout: noTotal}), Coalesce: true}, "PipelineConfig.Coalesce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := bulwark.NewPipeline(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err = %v, want one naming %s", err, tt.field)
			}
		})
	}
}

func coalescing(t *testing.T) *bulwark.Pipeline[int] {
	t.Helper()
	to, _ := timeout.New(timeout.Config{Total: time.Minute})
	p, err := bulwark.NewPipeline(bulwark.PipelineConfig[int]{Stack: newStack(t, bulwark.Config{Timeout: to}), Coalesce: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPipelineCoalescesConcurrentCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := coalescing(t)
		const callers = 100
		var calls atomic.Int32
		release := make(chan struct{})
		call := func(ctx context.Context) (int, error) {
			calls.Add(1)
			<-release
			return 42, nil
		}
		var wg sync.WaitGroup
		got := make([]int, callers)
		errs := make([]error, callers)
		for i := range callers {
			wg.Go(func() { got[i], errs[i] = p.Do(context.Background(), "k", call) })
		}
		synctest.Wait() // every caller is waiting on the one flight
		close(release)
		wg.Wait()
		for i := range callers {
			if got[i] != 42 || errs[i] != nil {
				t.Fatalf("caller %d got %d, %v; want 42, nil", i, got[i], errs[i])
			}
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("%d calls for %d concurrent callers, want 1", n, callers)
		}
	})
}

func TestPipelineCoalescedCallerLeavesAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := coalescing(t)
		release := make(chan struct{})
		var flightErr error
		call := func(ctx context.Context) (int, error) {
			select {
			case <-release:
				return 7, nil
			case <-ctx.Done():
				flightErr = ctx.Err()
				return 0, ctx.Err()
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { _, err := p.Do(ctx, "k", call); done <- err }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("the leaving caller got %v, want context.Canceled", err)
		}
		// The flight goes on for the others: a new caller joins it.
		joined := make(chan int)
		go func() { v, _ := p.Do(context.Background(), "k", call); joined <- v }()
		synctest.Wait()
		close(release)
		if v := <-joined; v != 7 {
			t.Fatalf("joiner got %d, want 7", v)
		}
		if flightErr != nil {
			t.Fatalf("the shared call was cancelled (%v) when its first caller left", flightErr)
		}
	})
}

// A coalesced call that calls runtime.Goexit answers every caller sharing
// it with an error, at once: none waits on a flight that will never land
// (their contexts here never end).
func TestPipelineCoalescedGoexitAnswersEveryCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := coalescing(t)
		release := make(chan struct{})
		call := func(ctx context.Context) (int, error) {
			<-release
			runtime.Goexit()
			return 1, nil
		}
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() { _, errs[i] = p.Do(context.Background(), "k", call) })
		}
		synctest.Wait() // every caller waits on the one flight
		close(release)
		wg.Wait()
		for i, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "Goexit") {
				t.Errorf("caller %d got %v, want an error naming runtime.Goexit", i, err)
			}
		}
	})
}

func TestPipelinePanicPropagates(t *testing.T) {
	p, _ := bulwark.NewPipeline(bulwark.PipelineConfig[int]{Stack: newStack(t, bulwark.Config{}), Fallback: nil})
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v, want boom", r)
		}
	}()
	_, _ = p.Do(context.Background(), "k", func(context.Context) (int, error) { panic("boom") })
}
