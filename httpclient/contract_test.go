package httpclient_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/httpclient"
	"github.com/bulwarkrpc/bulwark/retry"
)

// contractConfigs is every middleware of the stack alone, and all of them
// together: each must keep the http.RoundTripper contract.
func contractConfigs() map[string]httpclient.Config {
	everything := httpclient.Standard()
	everything.Retry.Backoff = retry.Constant(time.Millisecond)
	everything.Fallback = &httpclient.FallbackConfig{}
	everything.IdempotencyKey = true
	return map[string]httpclient.Config{
		"zero":       {},
		"standard":   httpclient.Standard(),
		"timeouts":   {TotalTimeout: 5 * time.Second, AttemptTimeout: 2 * time.Second},
		"breaker":    {Breaker: &breaker.Config{}},
		"bulkhead":   {Bulkhead: &bulkhead.Config{Limit: 8}},
		"retry":      {Retry: &retry.Config{Backoff: retry.Constant(time.Millisecond)}},
		"hedge":      {Hedge: &hedge.Config{Delay: 5 * time.Millisecond}},
		"fallback":   {Fallback: &httpclient.FallbackConfig{}},
		"everything": everything,
	}
}

func forEachConfig(t *testing.T, f func(t *testing.T, cfg httpclient.Config)) {
	for name, cfg := range contractConfigs() {
		t.Run(name, func(t *testing.T) { f(t, cfg) })
	}
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Method", r.Method)
	_, _ = w.Write(b)
}

func TestContractRequestIsNotModified(t *testing.T) {
	forEachConfig(t, func(t *testing.T, cfg httpclient.Config) {
		srv := newServer(t, echo)
		c, _ := srv.client(t, cfg)
		ctx := context.WithValue(context.Background(), struct{}{}, "mine")
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req, _ := http.NewRequestWithContext(ctx, method, srv.URL+"/a?b=c", strings.NewReader("payload"))
			req.Header.Set("X-Test", "1")
			wantHeader := req.Header.Clone()
			wantURL, wantBody, wantGetBody := req.URL.String(), req.Body, req.GetBody != nil
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != "payload" {
				t.Errorf("%s: server got body %q, want payload", method, got)
			}
			if req.URL.String() != wantURL || req.Body != wantBody || (req.GetBody != nil) != wantGetBody ||
				req.Context() != ctx || req.Method != method {
				t.Errorf("%s: the request was modified", method)
			}
			if len(req.Header) != len(wantHeader) || req.Header.Get("X-Test") != "1" || req.Header.Get("Idempotency-Key") != "" {
				t.Errorf("%s: headers changed: got %v, want %v", method, req.Header, wantHeader)
			}
		}
	})
}

func TestContractRequestBodyClosedOnEveryPath(t *testing.T) {
	forEachConfig(t, func(t *testing.T, cfg httpclient.Config) {
		srv := newServer(t, echo)
		_, tr := srv.client(t, cfg)

		// Sent and answered.
		b := newTrackedBody("x")
		req, _ := http.NewRequest(http.MethodPost, srv.URL, b)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if b.closes() == 0 {
			t.Errorf("answered: request body not closed")
		}

		// Never sent: the caller had already left.
		b = newTrackedBody("x")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, b)
		if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: got %v, want context.Canceled", err)
		}
		if b.closes() == 0 {
			t.Errorf("cancelled: request body not closed")
		}

		// Never sent: no URL.
		b = newTrackedBody("x")
		if _, err := tr.RoundTrip(&http.Request{Method: http.MethodPost, Body: b, Header: http.Header{}}); err == nil {
			t.Errorf("no URL: got nil error")
		}
		if b.closes() == 0 {
			t.Errorf("no URL: request body not closed")
		}
	})
}

func TestContractFailureStatusIsAResponse(t *testing.T) {
	forEachConfig(t, func(t *testing.T, cfg httpclient.Config) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		})
		c, _ := srv.client(t, cfg)
		code, body, err := get(t, c, srv.URL)
		if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "maintenance") {
			t.Fatalf("got %d %q %v, want the 503 response itself with a nil error", code, body, err)
		}
	})
}

func TestContractConnectionsAreReused(t *testing.T) {
	forEachConfig(t, func(t *testing.T, cfg httpclient.Config) {
		var n atomic.Int32
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1)%2 == 1 {
				http.Error(w, strings.Repeat("x", 1000), http.StatusServiceUnavailable) // discarded when retried
				return
			}
			_, _ = io.WriteString(w, "ok")
		})
		c, _ := srv.client(t, cfg)
		for range 10 {
			if _, _, err := get(t, c, srv.URL); err != nil {
				t.Fatal(err)
			}
		}
		if got := srv.conns.Load(); got > 2 {
			t.Fatalf("the server accepted %d connections for 10 sequential calls, want them reused", got)
		}
	})
}

func TestContractConcurrentUse(t *testing.T) {
	forEachConfig(t, func(t *testing.T, cfg httpclient.Config) {
		srv := newServer(t, echo)
		c, _ := srv.client(t, cfg)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 10 {
					want := strings.Repeat("z", g*10+i)
					resp, err := c.Post(srv.URL, "text/plain", strings.NewReader(want))
					if err != nil {
						t.Error(err)
						return
					}
					got, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if string(got) != want {
						t.Errorf("got %q, want %q", got, want)
					}
				}
			})
		}
		wg.Wait()
	})
}

// nextRecorder is a next RoundTripper that answers 200 and records calls to
// CloseIdleConnections.
type nextRecorder struct{ closedIdle atomic.Int32 }

func (n *nextRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader([]byte("ok"))), Header: http.Header{}, Request: r}, nil
}
func (n *nextRecorder) CloseIdleConnections() { n.closedIdle.Add(1) }

func TestContractCloseIdleConnectionsIsForwarded(t *testing.T) {
	forEachConfig(t, func(t *testing.T, cfg httpclient.Config) {
		next := &nextRecorder{}
		tr, err := httpclient.New(next, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		c := &http.Client{Transport: tr}
		c.CloseIdleConnections()
		if next.closedIdle.Load() != 1 {
			t.Fatalf("CloseIdleConnections reached next %d times, want 1", next.closedIdle.Load())
		}
	})
}

// Guards are released when the body is done, not when RoundTrip returns:
// with a bulkhead of one, a second call is refused while the first body is
// open, and admitted once it is closed (or read to the end).
func TestContractGuardsReleasedWhenTheBodyIsDone(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") })
	for _, end := range []string{"close", "eof"} {
		t.Run(end, func(t *testing.T) {
			c, _ := srv.client(t, httpclient.Config{Bulkhead: &bulkhead.Config{Limit: 1}, AttemptTimeout: time.Minute})
			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get(srv.URL); !errors.Is(err, bulkhead.ErrFull) || !errors.Is(err, bulwark.ErrRejected) {
				t.Fatalf("second call while the first body is open: got %v, want bulkhead.ErrFull", err)
			}
			if end == "close" {
				resp.Body.Close()
			} else {
				if b, _ := io.ReadAll(resp.Body); string(b) != "hello" {
					t.Fatalf("body %q", b)
				}
			}
			code, _, err := get(t, c, srv.URL)
			if err != nil || code != 200 {
				t.Fatalf("after the first body was done: got %d, %v; want 200", code, err)
			}
			resp.Body.Close()
		})
	}
}
