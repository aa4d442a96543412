package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/fallback"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// A Pipeline with a last-known-good cache in front of an HTTP endpoint
// that goes down: the stampede of callers is coalesced, the breaker opens,
// and every caller still gets the last good answer, marked stale.
func Example() {
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"name":"Ada"}`)
	}))
	defer srv.Close()

	brk, _ := breaker.New(breaker.Config{ConsecutiveFailures: 1})
	defer brk.Close()
	to, _ := timeout.New(timeout.Config{Total: 2 * time.Second, Attempt: 500 * time.Millisecond})
	stack, _ := bulwark.New(bulwark.Config{Timeout: to, Guards: []bulwark.Guard{brk}})
	cache, err := fallback.NewCache(fallback.CacheConfig[string]{MaxStale: time.Hour})
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	users, err := bulwark.NewPipeline(bulwark.PipelineConfig[string]{
		Stack: stack, Key: "users", Fallback: cache, Coalesce: true,
	})
	if err != nil {
		panic(err)
	}

	getUser := func(ctx context.Context, id string) (string, fallback.Note, error) {
		var note fallback.Note
		user, err := users.Do(fallback.WithNote(ctx, &note), "users/"+id, func(ctx context.Context) (string, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/users/"+id, nil)
			if err != nil {
				return "", err
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("users: %s", resp.Status)
			}
			return string(body), err
		})
		return user, note, err
	}

	ctx := context.Background()
	for _, isDown := range []bool{false, true, true} {
		down.Store(isDown)
		user, note, err := getUser(ctx, "42")
		fmt.Printf("%s %v from %v, replacing: %v\n", user, err, note.Source, cause(note.Err))
	}
	_, _, err = getUser(ctx, "7") // never seen: nothing to fall back on
	fmt.Println(errors.Is(err, breaker.ErrOpen))
	// Output:
	// {"name":"Ada"} <nil> from call, replacing: nothing
	// {"name":"Ada"} <nil> from cache_stale, replacing: users: 503 Service Unavailable
	// {"name":"Ada"} <nil> from cache_stale, replacing: breaker open
	// true
}

// cause names a replaced failure briefly.
func cause(err error) string {
	switch {
	case err == nil:
		return "nothing"
	case errors.Is(err, breaker.ErrOpen):
		return "breaker open"
	}
	return err.Error()
}

func ExampleNewValue() {
	stack, _ := bulwark.New(bulwark.Config{})
	price, err := fallback.NewValue(fallback.ValueConfig[float64]{Value: 9.99, Name: "price"})
	if err != nil {
		panic(err)
	}
	prices, _ := bulwark.NewPipeline(bulwark.PipelineConfig[float64]{Stack: stack, Fallback: price})

	v, err := prices.Do(context.Background(), "sku-1", func(context.Context) (float64, error) {
		return 0, errors.New("pricing: connection refused")
	})
	fmt.Println(v, err)
	// Output: 9.99 <nil>
}

func ExampleNewFunc() {
	stack, _ := bulwark.New(bulwark.Config{})
	recs, err := fallback.NewFunc(fallback.FuncConfig[[]string]{
		Func: func(ctx context.Context, key string, err error) ([]string, error) {
			if errors.Is(err, breaker.ErrOpen) {
				return []string{"bestsellers"}, nil // the service is known down
			}
			return nil, err // decline: the caller sees the failure
		},
	})
	if err != nil {
		panic(err)
	}
	p, _ := bulwark.NewPipeline(bulwark.PipelineConfig[[]string]{Stack: stack, Fallback: recs})

	for _, cause := range []error{breaker.ErrOpen, errors.New("recs: 503")} {
		v, err := p.Do(context.Background(), "user-1", func(context.Context) ([]string, error) { return nil, cause })
		fmt.Println(v, err)
	}
	// Output:
	// [bestsellers] <nil>
	// [] recs: 503
}

func ExampleNewCache() {
	cache, err := fallback.NewCache(fallback.CacheConfig[string]{
		FreshFor:   time.Minute,      // answer without calling for a minute
		MaxStale:   10 * time.Minute, // serve on error for ten
		MaxEntries: 1000,
		MaxBytes:   1 << 20,
		Size:       func(s string) int { return len(s) },
	})
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	ctx := context.Background()

	cache.Store(ctx, "greeting", "hello")
	var note fallback.Note
	v, ok := cache.Lookup(fallback.WithNote(ctx, &note), "greeting")
	fmt.Println(v, ok, note.Source)
	v, err = cache.Recover(fallback.WithNote(ctx, &note), "greeting", "", errors.New("greeter: down"))
	fmt.Println(v, err, note.Source, note.Err)
	fmt.Println(cache.Len(), cache.Bytes())

	_, err = fallback.NewCache(fallback.CacheConfig[string]{MaxBytes: 1 << 20})
	fmt.Println(err)
	// Output:
	// hello true cache_fresh
	// hello <nil> cache_stale greeter: down
	// 1 5
	// fallback: CacheConfig.MaxBytes is 1048576 but CacheConfig.Size is nil: values cannot be measured
}

func ExampleDefault() {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	fmt.Println(fallback.Default(ctx, errors.New("connection reset"))) // the endpoint failed
	fmt.Println(fallback.Default(ctx, breaker.ErrOpen))                // rejected locally
	fmt.Println(fallback.Default(cancelled, errors.New("connection reset")))
	fmt.Println(fallback.Default(ctx, context.Canceled)) // cancelled by the toolkit: not a failure
	// Output:
	// true
	// true
	// false
	// false
}

func ExampleDefaultFor() {
	errNotFound := errors.New("not found")
	stack, _ := bulwark.New(bulwark.Config{Classify: func(ctx context.Context, err error) bulwark.Outcome {
		if errors.Is(err, errNotFound) {
			return bulwark.Ignored // the caller's question, not the endpoint's health
		}
		return bulwark.ClassifyError(ctx, err)
	}})
	cache, _ := fallback.NewCache(fallback.CacheConfig[string]{When: fallback.DefaultFor(stack.Classify)})
	defer cache.Close()
	ctx := context.Background()
	cache.Store(ctx, "k", "old")
	_, err := cache.Recover(ctx, "k", "", errNotFound)
	fmt.Println(err)
	v, _ := cache.Recover(ctx, "k", "", errors.New("connection reset"))
	fmt.Println(v)
	// Output:
	// not found
	// old
}

func ExampleWithNote() {
	stack, _ := bulwark.New(bulwark.Config{})
	def, _ := fallback.NewValue(fallback.ValueConfig[int]{Value: -1})
	p, _ := bulwark.NewPipeline(bulwark.PipelineConfig[int]{Stack: stack, Fallback: def})

	var note fallback.Note
	v, err := p.Do(fallback.WithNote(context.Background(), &note), "k", func(context.Context) (int, error) {
		return 0, errors.New("down")
	})
	fmt.Println(v, err, note.Source, note.Source.Fallback(), note.Err)
	// Output: -1 <nil> value true down
}
