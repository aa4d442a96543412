package httpclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/httpclient"
	"github.com/bulwarkrpc/bulwark/retry"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// fastRetry retries at once (1ms), so tests run on real loopback servers
// without waiting.
func fastRetry(attempts int) *retry.Config {
	return &retry.Config{MaxAttempts: attempts, Backoff: retry.Constant(time.Millisecond)}
}

func TestRetriesA5xxBurst(t *testing.T) {
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, "recovered")
	})
	c, _ := srv.client(t, httpclient.Config{Retry: fastRetry(3)})
	code, body, err := get(t, c, srv.URL)
	if err != nil || code != 200 || body != "recovered" {
		t.Fatalf("got %d %q %v, want the third attempt's 200", code, body, err)
	}
	if got := srv.requests.Load(); got != 3 {
		t.Fatalf("server saw %d requests, want 3", got)
	}
}

func TestRetriesConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connections are refused
	brk := &breaker.Config{ConsecutiveFailures: 10}
	tr, err := httpclient.New(nil, httpclient.Config{Retry: fastRetry(3), Breaker: brk})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	defer tr.CloseIdleConnections()
	var ne *net.OpError
	_, err = (&http.Client{Transport: tr}).Get("http://" + addr)
	if !errors.As(err, &ne) {
		t.Fatalf("got %v, want the dial error", err)
	}
}

func TestPushbackIsHonouredAndCapped(t *testing.T) {
	var n atomic.Int32
	var first, second time.Time
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "3600") // an hour: the cap must win
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		second = time.Now()
		_, _ = io.WriteString(w, "ok")
	})
	c, _ := srv.client(t, httpclient.Config{Retry: &retry.Config{
		Backoff: retry.Constant(time.Millisecond), MaxPushback: 50 * time.Millisecond}})
	start := time.Now()
	code, _, err := get(t, c, srv.URL)
	if err != nil || code != 200 {
		t.Fatalf("got %d, %v; want 200 after one retry", code, err)
	}
	if gap := second.Sub(first); gap < 50*time.Millisecond {
		t.Fatalf("the retry came %v after the 429, want the capped pushback of 50ms", gap)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %v: the hour-long Retry-After was trusted", took)
	}
}

func TestPOSTWithoutKeyIsNeverRetried(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	c, _ := srv.client(t, httpclient.Config{Retry: fastRetry(5)})
	resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("order #1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := srv.requests.Load(); got != 1 {
		t.Fatalf("server saw %d POSTs, want 1: a POST without an Idempotency-Key is never repeated", got)
	}
}

func TestIdempotencyKeyMakesPOSTRetryable(t *testing.T) {
	var mu sync.Mutex
	var keys, bodies []string
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		bodies = append(bodies, string(b))
		n := len(keys)
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	c, _ := srv.client(t, httpclient.Config{Retry: fastRetry(3), IdempotencyKey: true})
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("order #1"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || len(keys) != 3 {
		t.Fatalf("got %d after %d attempts, want 201 after 3", resp.StatusCode, len(keys))
	}
	for i := range keys {
		if keys[i] == "" || keys[i] != keys[0] || bodies[i] != "order #1" {
			t.Fatalf("attempt %d: key %q body %q; want the same key and the whole body on every attempt", i, keys[i], bodies[i])
		}
	}
	if req.Header.Get("Idempotency-Key") != "" {
		t.Fatalf("the caller's request got the header: it must be left alone")
	}
}

func TestBodyWithoutGetBodyIsNotRetried(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	c, _ := srv.client(t, httpclient.Config{Retry: fastRetry(3)})
	req, _ := http.NewRequest(http.MethodPut, srv.URL, io.NopCloser(strings.NewReader("once"))) // no GetBody
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := srv.requests.Load(); got != 1 {
		t.Fatalf("server saw %d PUTs, want 1: a body that cannot be replayed is sent once", got)
	}
}

// hijack serves raw bytes on the connection and then resets it.
func hijack(t *testing.T, raw string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = buf.WriteString(raw)
		_ = buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
		conn.Close()
	}
}

func TestResetMidBodyIsOneClearError(t *testing.T) {
	srv := newServer(t, hijack(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"))
	var events []breaker.Event
	c, _ := srv.client(t, httpclient.Config{Breaker: &breaker.Config{ConsecutiveFailures: 1,
		OnStateChange: func(e breaker.Event) { events = append(events, e) }}})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || string(b) != "partial" {
		t.Fatalf("read %q, %v; want the partial body and an error", b, err)
	}
	if len(events) != 1 || events[0].To != breaker.Open {
		t.Fatalf("breaker events %v: want the reset counted as the host's failure", events)
	}
}

func TestGarbageIsOneClearError(t *testing.T) {
	srv := newServer(t, hijack(t, "HELLO THERE\r\n\r\n"))
	c, _ := srv.client(t, httpclient.Config{Retry: fastRetry(2)})
	if _, err := c.Get(srv.URL); err == nil {
		t.Fatal("got a response from garbage")
	}
	if got := srv.requests.Load(); got != 2 {
		t.Fatalf("server saw %d requests, want 2 (retried once)", got)
	}
}

func TestSlowHeadersHitTheAttemptDeadline(t *testing.T) {
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done() // the first attempt never answers
			return
		}
		_, _ = io.WriteString(w, "second")
	})
	c, _ := srv.client(t, httpclient.Config{AttemptTimeout: 50 * time.Millisecond, Retry: fastRetry(2)})
	code, body, err := get(t, c, srv.URL)
	if err != nil || code != 200 || body != "second" {
		t.Fatalf("got %d %q %v, want the retry's answer", code, body, err)
	}
}

func TestSlowBodyHitsTheAttemptDeadline(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		_, _ = io.WriteString(w, "12345")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the rest never comes
	})
	c, _ := srv.client(t, httpclient.Config{AttemptTimeout: 50 * time.Millisecond, Bulkhead: &bulkhead.Config{Limit: 1}})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	var te *timeout.Error
	if !errors.As(err, &te) || te.Scope != timeout.Attempt {
		t.Fatalf("read error %v, want our attempt deadline", err)
	}
	// The slot is back: the next call is admitted.
	if _, err := c.Get(srv.URL); errors.Is(err, bulkhead.ErrFull) {
		t.Fatalf("the bulkhead slot was not released after the body failed")
	}
}

func TestCallerCancelIsNotAFailure(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	var events []breaker.Event
	c, _ := srv.client(t, httpclient.Config{Retry: fastRetry(3), Breaker: &breaker.Config{ConsecutiveFailures: 1,
		OnStateChange: func(e breaker.Event) { events = append(events, e) }}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if _, err := c.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the caller's deadline", err)
	}
	if len(events) != 0 || srv.requests.Load() != 1 {
		t.Fatalf("breaker events %v after %d requests: the caller's own deadline must be neither a failure nor retried",
			events, srv.requests.Load())
	}
}

func TestServerStoppedAndRestarted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	serve := func(l net.Listener) *http.Server {
		s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "up") })}
		go func() { _ = s.Serve(l) }()
		return s
	}
	s := serve(l)
	opened := make(chan struct{}, 1)
	c, tr := (&server{}).clientFor(t, httpclient.Config{Breaker: &breaker.Config{ConsecutiveFailures: 2, OpenDuration: 20 * time.Millisecond,
		HalfOpenTrials: 1, OnStateChange: func(e breaker.Event) {
			if e.To == breaker.Open {
				select {
				case opened <- struct{}{}:
				default:
				}
			}
		}}})
	if code, _, err := get(t, c, "http://"+addr); err != nil || code != 200 {
		t.Fatalf("before the stop: %d, %v", code, err)
	}
	_ = s.Close()
	tr.CloseIdleConnections()
	for range 2 {
		if _, err := c.Get("http://" + addr); err == nil {
			t.Fatal("a stopped server answered")
		}
	}
	<-opened
	if _, err := c.Get("http://" + addr); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("got %v, want breaker.ErrOpen while the server is down", err)
	}
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("could not listen on %s again: %v", addr, err)
	}
	s = serve(l)
	defer s.Close()
	// The breaker admits a trial once its open period is over: poll (each
	// refusal is immediate) until it does, within a bound.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, err := get(t, c, "http://"+addr)
		if err == nil && code == 200 {
			break
		}
		if !errors.Is(err, breaker.ErrOpen) || time.Now().After(deadline) {
			t.Fatalf("after the restart: %d, %v", code, err)
		}
		var oe *breaker.OpenError
		errors.As(err, &oe)
		<-time.After(time.Until(oe.RetryAt)) // the breaker says when; waiting less would be refused again
	}
}

// clientFor wraps http.DefaultTransport's clone (for servers the test runs
// itself).
func (*server) clientFor(t *testing.T, cfg httpclient.Config) (*http.Client, *httpclient.Transport) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	tr, err := httpclient.New(base, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.CloseIdleConnections(); _ = tr.Close() })
	return &http.Client{Transport: tr}, tr
}

func TestHedgeLoserIsCancelledAndClosed(t *testing.T) {
	var n atomic.Int32
	loserDone := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done() // cancelled when the hedge wins
			close(loserDone)
			return
		}
		_, _ = io.WriteString(w, "hedge")
	})
	var events []breaker.Event
	c, _ := srv.client(t, httpclient.Config{Hedge: &hedge.Config{Delay: 20 * time.Millisecond},
		Breaker: &breaker.Config{ConsecutiveFailures: 1, OnStateChange: func(e breaker.Event) { events = append(events, e) }}})
	code, body, err := get(t, c, srv.URL)
	if err != nil || code != 200 || body != "hedge" {
		t.Fatalf("got %d %q %v, want the hedge's answer", code, body, err)
	}
	<-loserDone // the server saw the loser cancelled
	if len(events) != 0 {
		t.Fatalf("breaker events %v: a cancelled hedge is never a failure", events)
	}
}

func TestCachedFallbackForGET(t *testing.T) {
	var down atomic.Bool
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "fresh "+r.URL.Path)
	})
	c, _ := srv.client(t, httpclient.Config{Fallback: &httpclient.FallbackConfig{}})
	if _, body, err := get(t, c, srv.URL+"/a"); err != nil || body != "fresh /a" {
		t.Fatalf("healthy: %q, %v", body, err)
	}
	down.Store(true)
	resp, err := c.Get(srv.URL + "/a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "fresh /a" || resp.Header.Get(httpclient.FallbackHeader) != "stale" ||
		resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("down: got %d %q %v, want the cached answer marked stale", resp.StatusCode, b, resp.Header)
	}
	if code, _, _ := get(t, c, srv.URL+"/never-cached"); code != http.StatusServiceUnavailable {
		t.Fatalf("uncached path: got %d, want the 503 itself", code)
	}
	// An answer that may belong to one user is never shared.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/a", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with Authorization: got %d, want the 503, not someone's cached answer", resp.StatusCode)
	}
}

func TestBreakerOpenFallsBackToCache(t *testing.T) {
	var down atomic.Bool
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "good")
	})
	c, _ := srv.client(t, httpclient.Config{Fallback: &httpclient.FallbackConfig{},
		Breaker: &breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Hour}})
	get(t, c, srv.URL)
	down.Store(true)
	get(t, c, srv.URL) // trips the breaker (answered from the cache)
	before := srv.requests.Load()
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("got %v, want the cached answer instead of breaker.ErrOpen", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "good" || srv.requests.Load() != before {
		t.Fatalf("got %q after %d more requests; want the cache and no request", b, srv.requests.Load()-before)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tt := range []struct {
		cfg   httpclient.Config
		field string
	}{
		{httpclient.Config{TotalTimeout: -1}, "Config.TotalTimeout"},
		{httpclient.Config{AttemptTimeout: 2 * time.Second, TotalTimeout: time.Second}, "Config.AttemptTimeout"},
		{httpclient.Config{Retry: &retry.Config{}, Hedge: &hedge.Config{}}, "Config.Hedge"},
		{httpclient.Config{MaxDrain: -1}, "Config.MaxDrain"},
		{httpclient.Config{Retry: &retry.Config{MaxAttempts: -1}}, "Config.Retry: retry: Config.MaxAttempts"},
		{httpclient.Config{Breaker: &breaker.Config{FailureRatio: 2}}, "Config.Breaker: breaker: Config.FailureRatio"},
		{httpclient.Config{Bulkhead: &bulkhead.Config{Limit: -1}}, "Config.Bulkhead: bulkhead: Config.Limit"},
		{httpclient.Config{Fallback: &httpclient.FallbackConfig{MaxStale: -1}}, "Config.Fallback.MaxStale"},
	} {
		if _, err := httpclient.New(nil, tt.cfg); err == nil || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("got %v, want an error naming %s", err, tt.field)
		}
	}
	if _, err := httpclient.Wrap(nil, httpclient.Standard()); err != nil {
		t.Errorf("Standard: %v", err)
	}
}

func TestRetryablehttpPolicyAndBackoffPlugIn(t *testing.T) {
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.WriteHeader(http.StatusNotFound) // Ignored by us, but this CheckRetry retries it
		default:
			_, _ = io.WriteString(w, "found")
		}
	})
	retryNotFound := func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return true, nil
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	c, _ := srv.client(t, httpclient.Config{
		Retry:      &retry.Config{Backoff: httpclient.Backoff(retryablehttp.LinearJitterBackoff, time.Millisecond, 2*time.Millisecond)},
		CheckRetry: retryNotFound,
	})
	code, body, err := get(t, c, srv.URL)
	if err != nil || code != 200 || body != "found" {
		t.Fatalf("got %d %q %v, want the retried 200", code, body, err)
	}

	// DefaultRetryPolicy does not retry a 501 either: one request.
	n.Store(0)
	srv2 := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotImplemented) })
	c2, _ := srv2.client(t, httpclient.Config{Retry: fastRetry(3), CheckRetry: retryablehttp.DefaultRetryPolicy})
	if code, _, _ := get(t, c2, srv2.URL); code != http.StatusNotImplemented || srv2.requests.Load() != 1 {
		t.Fatalf("got %d after %d requests, want one 501", code, srv2.requests.Load())
	}
}

// A failed attempt that a retry follows releases its guards and its
// connection before the backoff: with a bulkhead of one, another call is
// admitted while the first waits to retry.
func TestRetryReleasesGuardsDuringBackoff(t *testing.T) {
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" && n.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	waiting, resume := make(chan struct{}), make(chan struct{})
	backoff := retry.BackoffFunc(func(int, time.Duration) time.Duration {
		close(waiting) // the first attempt is over: the retry's backoff begins
		<-resume
		return time.Millisecond
	})
	c, _ := srv.client(t, httpclient.Config{Retry: &retry.Config{Backoff: backoff}, Bulkhead: &bulkhead.Config{Limit: 1}})
	first := make(chan error, 1)
	go func() {
		code, _, err := get(t, c, srv.URL+"/a")
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d", code)
		}
		first <- err
	}()
	<-waiting
	code, _, err := get(t, c, srv.URL+"/b")
	close(resume)
	if err != nil || code != 200 {
		t.Fatalf("a call during the other's backoff: %d, %v; want it admitted (the failed attempt holds no slot)", code, err)
	}
	if err := <-first; err != nil {
		t.Fatalf("the retried call: %v", err)
	}
}
