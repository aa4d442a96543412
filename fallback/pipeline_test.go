package fallback_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/fallback"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// Every test in this file runs a real bulwark.Pipeline over a real
// loopback HTTP server that fails on purpose.

// do runs one call of p on key against s, noting where the answer came from.
func do(p *bulwark.Pipeline[string], ctx context.Context, s *server, key string) (string, fallback.Note, error) {
	var n fallback.Note
	v, err := p.Do(fallback.WithNote(ctx, &n), key, s.get)
	return v, n, err
}

func TestCacheServesStaleWhenServerFails(t *testing.T) {
	s := newServer(t)
	c := mustCache(t, fallback.CacheConfig[string]{})
	p := mustPipeline(t, bulwark.PipelineConfig[string]{Stack: mustStack(t, bulwark.Config{}), Fallback: c})
	ctx := context.Background()

	steps := []struct {
		status     int
		want       string
		wantSource fallback.Source
	}{
		{0, "v1", fallback.SourceCall},         // stored
		{503, "v1", fallback.SourceCacheStale}, // the server fails: last good value
		{500, "v1", fallback.SourceCacheStale}, // still
		{0, "v4", fallback.SourceCall},         // back: a new value, stored
		{503, "v4", fallback.SourceCacheStale}, // the newer one is served
	}
	for i, st := range steps {
		s.fail(st.status)
		v, n, err := do(p, ctx, s, "users/1")
		if err != nil || v != st.want {
			t.Fatalf("step %d: got %q, %v; want %q, nil", i, v, err, st.want)
		}
		if n.Source != st.wantSource {
			t.Fatalf("step %d: got source %v, want %v", i, n.Source, st.wantSource)
		}
		var se *statusError
		if st.status != 0 && (!errors.As(n.Err, &se) || se.code != st.status) {
			t.Fatalf("step %d: got Note.Err %v, want status %d", i, n.Err, st.status)
		}
	}
	if got := s.hits.Load(); got != int64(len(steps)) {
		t.Fatalf("got %d server hits, want %d: a stale-on-error cache always calls", got, len(steps))
	}

	s.fail(503)
	if v, err := p.Do(ctx, "users/2", s.get); err == nil {
		t.Fatalf("unknown key: got %q, nil; want the failure", v)
	}
}

func TestCacheFreshAnswersWithoutCalling(t *testing.T) {
	s := newServer(t)
	c := mustCache(t, fallback.CacheConfig[string]{FreshFor: time.Hour})
	p := mustPipeline(t, bulwark.PipelineConfig[string]{Stack: mustStack(t, bulwark.Config{}), Fallback: c})
	ctx := context.Background()

	for i := range 5 {
		v, n, err := do(p, ctx, s, "a")
		if err != nil || v != "v1" {
			t.Fatalf("call %d: got %q, %v; want v1, nil", i, v, err)
		}
		want := fallback.SourceCacheFresh
		if i == 0 {
			want = fallback.SourceCall
		}
		if n.Source != want {
			t.Fatalf("call %d: got source %v, want %v", i, n.Source, want)
		}
	}
	if got := s.hits.Load(); got != 1 {
		t.Fatalf("got %d server hits, want 1", got)
	}
	if v, _, _ := do(p, ctx, s, "b"); v != "v2" || s.hits.Load() != 2 {
		t.Fatalf("another key: got %q after %d hits, want v2 after 2", v, s.hits.Load())
	}
}

func TestNoFallbackOnCallerCancellation(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name+"/cancel-in-flight", func(t *testing.T) {
			s := newServer(t)
			p := mustPipeline(t, bulwark.PipelineConfig[string]{Stack: mustStack(t, bulwark.Config{}), Fallback: k.build(t)})
			s.hold.Store(true)
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				<-s.arrived // the request reached the server
				cancel()
			}()
			v, n, err := do(p, ctx, s, "k")
			if !errors.Is(err, context.Canceled) || v != "" {
				t.Fatalf("got %q, %v; want \"\", context.Canceled", v, err)
			}
			if n != (fallback.Note{}) {
				t.Fatalf("got note %+v, want none", n)
			}
		})
		t.Run(k.name+"/own-deadline-in-flight", func(t *testing.T) {
			s := newServer(t)
			p := mustPipeline(t, bulwark.PipelineConfig[string]{Stack: mustStack(t, bulwark.Config{}), Fallback: k.build(t)})
			s.hold.Store(true)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			v, _, err := do(p, ctx, s, "k")
			if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, timeout.ErrTimeout) || v != "" {
				t.Fatalf("got %q, %v; want \"\" and the caller's own deadline", v, err)
			}
		})
		t.Run(k.name+"/own-deadline-passed", func(t *testing.T) {
			s := newServer(t)
			p := mustPipeline(t, bulwark.PipelineConfig[string]{Stack: mustStack(t, bulwark.Config{}), Fallback: k.build(t)})
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel()
			v, _, err := do(p, ctx, s, "k")
			if !errors.Is(err, context.DeadlineExceeded) || v != "" {
				t.Fatalf("got %q, %v; want \"\", context.DeadlineExceeded", v, err)
			}
			if got := s.hits.Load(); got != 0 {
				t.Fatalf("got %d server hits, want 0", got)
			}
		})
	}
}

func TestFallbackOnBreakerOpen(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			s := newServer(t)
			brk, err := breaker.New(breaker.Config{ConsecutiveFailures: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer brk.Close()
			p := mustPipeline(t, bulwark.PipelineConfig[string]{
				Stack:    mustStack(t, bulwark.Config{Guards: []bulwark.Guard{brk}}),
				Fallback: k.build(t),
			})
			ctx := context.Background()
			s.fail(503)
			// The endpoint's failure opens the breaker and is answered.
			if v, n, err := do(p, ctx, s, "k"); err != nil || v != "fallback" || n.Source != k.source {
				t.Fatalf("failure: got %q, %v, %v; want fallback, nil, %v", v, err, n.Source, k.source)
			}
			if brk.State() != breaker.Open {
				t.Fatalf("got breaker %v, want open", brk.State())
			}
			v, n, err := do(p, ctx, s, "k")
			if err != nil || v != "fallback" || n.Source != k.source {
				t.Fatalf("breaker open: got %q, %v, %v; want fallback, nil, %v", v, err, n.Source, k.source)
			}
			if !errors.Is(n.Err, breaker.ErrOpen) || !errors.Is(n.Err, bulwark.ErrRejected) {
				t.Fatalf("got Note.Err %v, want breaker.ErrOpen", n.Err)
			}
			if got := s.hits.Load(); got != 1 {
				t.Fatalf("got %d server hits, want 1: an open breaker must not call", got)
			}
		})
	}
}

func TestFallbackOnBulkheadFull(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			s := newServer(t)
			blk, err := bulkhead.New(bulkhead.Config{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			p := mustPipeline(t, bulwark.PipelineConfig[string]{
				Stack:    mustStack(t, bulwark.Config{Guards: []bulwark.Guard{blk}}),
				Fallback: k.build(t),
			})
			ctx := context.Background()
			s.hold.Store(true)
			first := make(chan string)
			go func() {
				v, _, _ := do(p, ctx, s, "other")
				first <- v
			}()
			<-s.arrived // the first call holds the only slot
			v, n, err := do(p, ctx, s, "k")
			if err != nil || v != "fallback" || !errors.Is(n.Err, bulkhead.ErrFull) {
				t.Fatalf("got %q, %v (note %v); want fallback, nil (note bulkhead.ErrFull)", v, err, n.Err)
			}
			s.unhold()
			if v := <-first; v != "v1" {
				t.Fatalf("first call: got %q, want v1", v)
			}
		})
	}
}

func TestFallbackOnAttemptDeadline(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			s := newServer(t)
			to, err := timeout.New(timeout.Config{Attempt: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			p := mustPipeline(t, bulwark.PipelineConfig[string]{
				Stack:    mustStack(t, bulwark.Config{Timeout: to}),
				Fallback: k.build(t),
			})
			s.hold.Store(true) // never answers before the attempt deadline
			v, n, err := do(p, context.Background(), s, "k")
			if err != nil || v != "fallback" || n.Source != k.source {
				t.Fatalf("got %q, %v, %v; want fallback, nil, %v", v, err, n.Source, k.source)
			}
			var te *timeout.Error
			if !errors.As(n.Err, &te) || te.Scope != timeout.Attempt {
				t.Fatalf("got Note.Err %v, want an attempt *timeout.Error", n.Err)
			}
		})
	}
}

func TestNoFallbackOnIgnoredError(t *testing.T) {
	// A Stack that calls a 4xx other than 429 the caller's fault, and a fallback that
	// agrees with it through DefaultFor.
	classify := func(ctx context.Context, err error) bulwark.Outcome {
		var se *statusError
		if errors.As(err, &se) && ctx.Err() == nil {
			return bulwark.ClassifyHTTPStatus(se.code)
		}
		return bulwark.ClassifyError(ctx, err)
	}
	stack := mustStack(t, bulwark.Config{Classify: classify})
	s := newServer(t)
	c := mustCache(t, fallback.CacheConfig[string]{When: fallback.DefaultFor(stack.Classify)})
	p := mustPipeline(t, bulwark.PipelineConfig[string]{Stack: stack, Fallback: c})
	ctx := context.Background()
	if v, _, err := do(p, ctx, s, "k"); err != nil || v != "v1" {
		t.Fatalf("priming: got %q, %v", v, err)
	}
	for _, tc := range []struct {
		status   int
		fallback bool
	}{{404, false}, {400, false}, {503, true}, {429, true}} {
		s.fail(tc.status)
		v, _, err := do(p, ctx, s, "k")
		if got := err == nil && v == "v1"; got != tc.fallback {
			t.Errorf("status %d: got %q, %v; want fallback %v", tc.status, v, err, tc.fallback)
		}
	}
}

// waitCounter is a caller's context that counts the callers waiting for a
// coalesced call. A coalescing Pipeline asks a caller's Done channel once
// the caller has joined the shared call, to wait for it: when n callers
// have asked, all n share the one call. (Lookup, Recover and the shared
// call itself, detached from the caller, never ask.)
type waitCounter struct {
	context.Context
	waiting *atomic.Int64
	n       int64
	all     chan struct{}
}

func (c waitCounter) Done() <-chan struct{} {
	if c.waiting.Add(1) == c.n {
		close(c.all)
	}
	return c.Context.Done()
}

// coalescingOverStale returns a test server and a coalescing Pipeline with
// a total deadline of a minute and a cache holding "stale" for "k".
func coalescingOverStale(t *testing.T) (*server, *bulwark.Pipeline[string]) {
	t.Helper()
	s := newServer(t)
	to, err := timeout.New(timeout.Config{Total: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	c := mustCache(t, fallback.CacheConfig[string]{})
	c.Store(context.Background(), "k", "stale")
	return s, mustPipeline(t, bulwark.PipelineConfig[string]{Stack: mustStack(t, bulwark.Config{Timeout: to}), Fallback: c, Coalesce: true})
}

func TestCoalescedStampedeSendsOneRequest(t *testing.T) {
	const callers = 100
	for _, tc := range []struct {
		name   string
		status int
	}{{"server-answers", 0}, {"server-fails-stale-served", 503}} {
		t.Run(tc.name, func(t *testing.T) {
			s, p := coalescingOverStale(t)
			s.fail(tc.status)
			s.hold.Store(true)
			ctx := waitCounter{Context: context.Background(), waiting: new(atomic.Int64), n: callers, all: make(chan struct{})}
			var (
				wg      sync.WaitGroup
				results = make([]string, callers)
				errs    = make([]error, callers)
			)
			for i := range callers {
				wg.Go(func() { results[i], errs[i] = p.Do(ctx, "k", s.get) })
			}
			<-ctx.all // every caller waits for the one call
			s.unhold()
			wg.Wait()

			want := "v1"
			if tc.status != 0 {
				want = "stale"
			}
			for i := range callers {
				if errs[i] != nil || results[i] != want {
					t.Fatalf("caller %d: got %q, %v; want %q, nil", i, results[i], errs[i], want)
				}
			}
			if got := s.hits.Load(); got != 1 {
				t.Fatalf("got %d server hits, want 1", got)
			}
		})
	}
}

func TestPanicInPrimaryPropagates(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			fb := k.build(t)
			p := mustPipeline(t, bulwark.PipelineConfig[string]{Stack: mustStack(t, bulwark.Config{}), Fallback: fb})
			got := func() (r any) {
				defer func() { r = recover() }()
				p.Do(context.Background(), "new", func(context.Context) (string, error) { panic("boom") })
				return nil
			}()
			if got != "boom" {
				t.Fatalf("got panic %v, want boom", got)
			}
			if v, ok := fb.Lookup(context.Background(), "new"); ok {
				t.Fatalf("got %q cached after a panic, want nothing", v)
			}
			if c, ok := fb.(*fallback.Cache[string]); ok && c.Len() != 1 {
				t.Fatalf("got %d entries, want 1 (the primed one)", c.Len())
			}
		})
	}
}

// The first caller of a coalesced call leaves while the call is in
// flight: it gets its own cancellation and no fallback, while a caller
// that joined the call still gets the call's answer, or the cache's when
// the call fails; and the one call is all the server sees.
func TestCoalescedLeaderLeavingFailsNoFollower(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		want   string
		source fallback.Source
	}{{"server-answers", 0, "v1", fallback.SourceCall}, {"server-fails-stale-served", 503, "stale", fallback.SourceCacheStale}} {
		t.Run(tc.name, func(t *testing.T) {
			s, p := coalescingOverStale(t)
			s.hold.Store(true)

			leaderCtx, leave := context.WithCancel(context.Background())
			defer leave()
			type answer struct {
				v   string
				n   fallback.Note
				err error
			}
			leader, follower := make(chan answer, 1), make(chan answer, 1)
			go func() { v, n, err := do(p, leaderCtx, s, "k"); leader <- answer{v, n, err} }()
			<-s.arrived // the one call reached the server
			joined := waitCounter{Context: context.Background(), waiting: new(atomic.Int64), n: 1, all: make(chan struct{})}
			go func() { v, n, err := do(p, joined, s, "k"); follower <- answer{v, n, err} }()
			<-joined.all // the follower waits for the call in flight

			leave()
			if got := <-leader; !errors.Is(got.err, context.Canceled) || got.v != "" || got.n != (fallback.Note{}) {
				t.Errorf("leader: got %q, %+v, %v; want \"\", no note, context.Canceled", got.v, got.n, got.err)
			}
			s.fail(tc.status)
			s.unhold()
			if got := <-follower; got.err != nil || got.v != tc.want || got.n.Source != tc.source {
				t.Errorf("follower: got %q from %v, %v; want %q from %v, nil", got.v, got.n.Source, got.err, tc.want, tc.source)
			}
			if got := s.hits.Load(); got != 1 {
				t.Errorf("server hits: got %d, want 1", got)
			}
		})
	}
}
