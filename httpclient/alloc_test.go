package httpclient_test

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/bulwarkrpc/bulwark/httpclient"
)

// answerAtOnce answers every request at once, and watches the request's
// context as a transport does.
func answerAtOnce(req *http.Request) (*http.Response, error) {
	select {
	case <-req.Context().Done():
		return nil, req.Context().Err()
	default:
	}
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("ok")), Request: req}, nil
}

// The Standard stack (two deadlines, retry, breaker, bulkhead) costs a
// GET a bounded number of allocations over the bare RoundTripper, and no
// more than the hand-written floor (a gobreaker breaker, a semaphore and
// a context.WithTimeout, see floor) plus one. Measured when written: bare
// 3, floor 11, Standard 11; two allocations more in Standard fail.
func TestMiddlewareAllocations(t *testing.T) {
	next := roundTripFunc(answerAtOnce)
	std, err := httpclient.New(next, httpclient.Standard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = std.Close() })
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://api.example/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	allocs := func(rt http.RoundTripper) float64 {
		do := func() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		do() // the host's breaker and bulkhead are made on first use
		return testing.AllocsPerRun(1000, do)
	}
	bare, floor, got := allocs(next), allocs(newFloor(next)), allocs(std)
	t.Logf("allocations per GET: bare %v, floor %v, Standard %v", bare, floor, got)
	if got > bare+10 {
		t.Errorf("got %v allocations per GET through Standard, want at most %v (the bare RoundTripper's %v plus 10)", got, bare+10, bare)
	}
	if got > floor+1 {
		t.Errorf("got %v allocations per GET through Standard, want at most %v (the hand-written floor's %v plus 1)", got, floor+1, floor)
	}
}

// A request through Standard starts no goroutine of its own and leaves
// none behind. The goroutines are counted while requests are held at a
// loopback server, alternately through a bare client and through
// Standard over the same transport and the same warm connections, so that
// the transport's and the server's goroutines are the same on both sides;
// the fewest seen on each side are compared, which leaves out goroutines
// of earlier tests still on their way out.
func TestNoGoroutinePerRequest(t *testing.T) {
	const n = 8
	arrived := make(chan struct{}, n)
	release := make(chan struct{}, n)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "ok")
	})
	base := srv.Client().Transport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 2 * n // keep every connection for the next round
	t.Cleanup(base.CloseIdleConnections)
	std, err := httpclient.New(base, httpclient.Standard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = std.Close() })
	clients := []*http.Client{{Transport: base}, {Transport: std}} // bare, then Standard

	// held sends k requests through c at once and returns the number of
	// goroutines while all k are held at the server.
	held := func(t *testing.T, c *http.Client, k int) int {
		var wg sync.WaitGroup
		errs := make(chan error, k)
		for range k {
			wg.Go(func() {
				resp, err := c.Get(srv.URL)
				if err != nil {
					errs <- err
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if err != nil {
					errs <- err
				}
			})
		}
		for range k {
			<-arrived
		}
		during := runtime.NumGoroutine()
		for range k {
			release <- struct{}{}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("got %v, want the server's answer", err)
		}
		return during
	}

	for _, tt := range []struct {
		name      string
		k, rounds int // requests at once, rounds of them per client
	}{
		{"sequential", 1, n},
		{"concurrent", n, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			held(t, clients[0], tt.k) // the connections made
			conns := srv.conns.Load()
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // none left behind
			fewest := make([]int, len(clients))
			for r := range tt.rounds {
				for i, c := range clients {
					if g := held(t, c, tt.k); r == 0 || g < fewest[i] {
						fewest[i] = g
					}
				}
			}
			if got := srv.conns.Load(); got != conns {
				t.Fatalf("the server accepted %d connections, want the %d warm ones only: the counts compare unlike", got, conns)
			}
			t.Logf("goroutines while requests are held at the server, %d at once: bare %d, Standard %d", tt.k, fewest[0], fewest[1])
			if fewest[1] > fewest[0] {
				t.Errorf("got %d goroutines while %d requests through Standard are held at the server, want at most the bare client's %d: a request started %d",
					fewest[1], tt.k, fewest[0], fewest[1]-fewest[0])
			}
		})
	}
}
