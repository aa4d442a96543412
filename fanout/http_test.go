package fanout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/fallback"
	"github.com/bulwarkrpc/bulwark/fanout"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// client returns an HTTP client whose idle connections are closed when
// the test ends.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func jsonHandler(v any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}

// getJSON fetches url and decodes its JSON body into a T; a 5xx is an
// error.
func getJSON[T any](ctx context.Context, c *http.Client, url string) (T, error) {
	var v T
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return v, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 {
		return v, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// Three services, three types, over real loopback HTTP: the one that is
// down is answered by its default, or is reported missing when it has
// none.
func TestGatherOverHTTP(t *testing.T) {
	c := client(t)
	users := serve(t, jsonHandler(user{"ada"}))
	orders := serve(t, jsonHandler([]order{{1}, {2}}))
	recsDown := serve(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	closed := serve(t, jsonHandler(nil))
	closedURL := closed.URL
	closed.Close() // connection refused

	to, err := timeout.New(timeout.Config{Total: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stack, err := bulwark.New(bulwark.Config{Timeout: to})
	if err != nil {
		t.Fatal(err)
	}
	def, err := fallback.NewValue(fallback.ValueConfig[[]string]{Value: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := bulwark.NewPipeline(bulwark.PipelineConfig[[]string]{Stack: stack, Key: "recs", Fallback: def})
	if err != nil {
		t.Fatal(err)
	}
	f := mustNew(t, fanout.Config{})
	for _, tc := range []struct {
		name    string
		recsURL string
	}{{"503", recsDown.URL}, {"refused", closedURL}} {
		t.Run(tc.name, func(t *testing.T) {
			g := f.Gather()
			u := fanout.Add(g, "users", stack, func(ctx context.Context) (user, error) { return getJSON[user](ctx, c, users.URL) })
			o := fanout.Add(g, "orders", stack, func(ctx context.Context) ([]order, error) { return getJSON[[]order](ctx, c, orders.URL) })
			r := fanout.AddPipeline(g, "recs", recs, "ada", func(ctx context.Context) ([]string, error) { return getJSON[[]string](ctx, c, tc.recsURL) })
			// No default for this one: it is reported missing.
			x := fanout.Add(g, "extra", stack, func(ctx context.Context) (int, error) { return getJSON[int](ctx, c, tc.recsURL) })
			err := g.Run(context.Background())
			var pe *fanout.PartialError
			if !errors.As(err, &pe) || len(pe.Branches) != 1 || pe.Branches[0].Name != "extra" {
				t.Fatalf("Run: got %v, want a *PartialError naming extra only", err)
			}
			if v, err := u.Get(); err != nil || v.Name != "ada" {
				t.Errorf("users: got %v, %v, want ada", v, err)
			}
			if v, err := o.Get(); err != nil || len(v) != 2 {
				t.Errorf("orders: got %v, %v, want two orders", v, err)
			}
			if v, err := r.Get(); err != nil || len(v) != 1 || v[0] != "default" || r.Status() != fanout.StatusFallback {
				t.Errorf("recs: got %v, %v (%v), want [default] (fallback)", v, err, r.Status())
			}
			if x.Status() != fanout.StatusFailure || x.Err() == nil {
				t.Errorf("extra: got %v, %v, want a failure", x.Status(), x.Err())
			}
		})
	}
}

// A branch whose HTTP call ignores cancellation is not waited for beyond
// the caller's deadline: Run returns while the server still holds the
// request. Once the server answers, the branch's goroutine ends (goleak,
// in TestMain, checks that nothing is left).
func TestGatherHTTPStraggler(t *testing.T) {
	c := client(t)
	release := make(chan struct{})
	var answered atomic.Bool
	slow := serve(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		answered.Store(true)
		_ = json.NewEncoder(w).Encode(7)
	})
	fast := serve(t, jsonHandler(1))
	f := mustNew(t, fanout.Config{})
	branchDone := make(chan struct{})
	g := f.Gather()
	s := fanout.Add(g, "slow", nil, func(ctx context.Context) (int, error) {
		defer close(branchDone)
		return getJSON[int](context.WithoutCancel(ctx), c, slow.URL) // ignores cancellation
	})
	q := fanout.Add(g, "fast", nil, func(ctx context.Context) (int, error) { return getJSON[int](ctx, c, fast.URL) })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := g.Run(ctx)
	if answered.Load() {
		t.Fatal("the slow server answered before Run returned: the test proves nothing")
	}
	if !errors.Is(err, fanout.ErrAbandoned) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run: got %v, want the slow branch abandoned at the deadline", err)
	}
	if v, err := q.Get(); v != 1 || err != nil {
		t.Errorf("fast: got %d, %v, want 1, nil", v, err)
	}
	close(release)
	<-branchDone
	if v, err := s.Get(); v != 0 || !errors.Is(err, fanout.ErrAbandoned) {
		t.Errorf("slow after it returned: got %d, %v, want 0, abandoned (its late answer dropped)", v, err)
	}
}

// cancelSeen returns a handler that holds its one request until the
// client cancels it, and reports the cancellation on seen; arrived is
// closed when the request has arrived.
func cancelSeen() (h http.HandlerFunc, arrived, seen <-chan struct{}) {
	in, out := make(chan struct{}), make(chan struct{}, 1)
	return func(w http.ResponseWriter, r *http.Request) {
		close(in)
		<-r.Context().Done()
		out <- struct{}{}
	}, in, out
}

// afterArrival returns h, answering only once arrived is closed: so that the
// call to the slow server is on the wire before the race is decided.
func afterArrival(arrived <-chan struct{}, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		<-arrived
		h(w, r)
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second): // a generous bound: only a broken cancellation gets here
		t.Errorf("%s: not seen", what)
	}
}

// Quorum over real replicas: two answer, and the request to the third is
// cancelled on the wire.
func TestQuorumOverHTTP(t *testing.T) {
	c := client(t)
	hold, arrived, seen := cancelSeen()
	replicas := []*httptest.Server{serve(t, afterArrival(arrived, jsonHandler(1))), serve(t, hold), serve(t, afterArrival(arrived, jsonHandler(3)))}
	f := mustNew(t, fanout.Config{})
	var bs []fanout.Branch[int]
	for i, r := range replicas {
		bs = append(bs, fanout.Branch[int]{Name: fmt.Sprint("replica", i), Call: func(ctx context.Context) (int, error) { return getJSON[int](ctx, c, r.URL) }})
	}
	answers, err := fanout.Quorum(context.Background(), f, 2, bs...)
	if err != nil || len(answers) != 2 {
		t.Fatalf("Quorum: got %v, %v, want two answers", answers, err)
	}
	sum := answers[0].Value + answers[1].Value
	if sum != 4 {
		t.Errorf("answers: got %v, want replicas 0 and 2 (values 1 and 3)", answers)
	}
	waitFor(t, seen, "cancellation of the slow replica's request")
}

// First over real servers: the slow one's request is cancelled on the
// wire once the second answers.
func TestFirstOverHTTP(t *testing.T) {
	c := client(t)
	hold, arrived, seen := cancelSeen()
	slow, fast := serve(t, hold), serve(t, afterArrival(arrived, jsonHandler("fast")))
	f := mustNew(t, fanout.Config{Hedge: hedge.Config{Delay: 10 * time.Millisecond}})
	ans, err := fanout.First(context.Background(), f,
		fanout.Branch[string]{Name: "slow", Call: func(ctx context.Context) (string, error) { return getJSON[string](ctx, c, slow.URL) }},
		fanout.Branch[string]{Name: "fast", Call: func(ctx context.Context) (string, error) { return getJSON[string](ctx, c, fast.URL) }})
	if err != nil || ans.Index != 1 || ans.Value != "fast" {
		t.Fatalf("First: got %+v, %v, want {1 fast}", ans, err)
	}
	waitFor(t, seen, "cancellation of the slow server's request")
}
