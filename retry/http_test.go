package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/retry"
)

// statusError is how the test's HTTP call reports a response worth a
// retry; its RetryAfter method is how bulwark.PushbackOf finds the wait the
// server asked for.
type statusError struct {
	code       int
	retryAfter time.Duration
}

func (e *statusError) Error() string             { return "status " + strconv.Itoa(e.code) }
func (e *statusError) RetryAfter() time.Duration { return e.retryAfter }

// answer is what the server does on one hit.
type answer func(w http.ResponseWriter)

func status(code int, retryAfter string) answer {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(code)
		io.WriteString(w, http.StatusText(code))
	}
}

func ok(w http.ResponseWriter) { io.WriteString(w, "ok") }

// reset hijacks the connection and closes it with a TCP reset.
func reset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
}

// loopback is a real HTTP server that answers its script, one answer per
// hit (the last one repeats), and records what each request carried.
type loopback struct {
	*httptest.Server
	mu       sync.Mutex
	attempts []string // the X-Attempt header of each hit
	keys     []string // the Idempotency-Key header of each hit
}

func newLoopback(t *testing.T, script ...answer) *loopback {
	l := &loopback{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		n := len(l.attempts)
		l.attempts = append(l.attempts, r.Header.Get("X-Attempt"))
		l.keys = append(l.keys, r.Header.Get("Idempotency-Key"))
		l.mu.Unlock()
		script[min(n, len(script)-1)](w)
	}))
	t.Cleanup(l.Close)
	return l
}

func (l *loopback) hits() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.attempts)
}

// get returns a call doing one GET per attempt, the way an adapter does:
// the attempt number and the logical call's idempotency key on every
// attempt, 429 and 503 reported as errors carrying Retry-After.
func get(client *http.Client, method, url, key string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil {
			return "", err
		}
		req.Header.Set("X-Attempt", strconv.Itoa(bulwark.AttemptNumber(ctx)))
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		if err != nil {
			return "", err
		}
		if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
			wait, _ := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			return "", &statusError{code: resp.StatusCode, retryAfter: wait}
		}
		return string(body), nil
	}
}

// TestLoopbackHTTP drives a Retry through bulwark.Do against a real
// server. The waits are a few real milliseconds; only counts are asserted.
func TestLoopbackHTTP(t *testing.T) {
	inAnHour := func() string { return time.Now().Add(time.Hour).UTC().Format(http.TimeFormat) }
	anHourAgo := func() string { return time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat) }
	tests := []struct {
		name       string
		script     []answer
		method     string
		idempotent bool
		want       string
		wantCode   int // of the *statusError returned, 0 for none
		wantReset  bool
		wantHits   int
	}{
		{"503 with Retry-After in seconds", []answer{status(503, "0"), ok}, "GET", true, "ok", 0, false, 2},
		{"503 with Retry-After as a past date", []answer{status(503, anHourAgo()), ok}, "GET", true, "ok", 0, false, 2},
		{"429", []answer{status(429, ""), status(429, "0"), ok}, "GET", true, "ok", 0, false, 3},
		{"connection reset", []answer{reset, ok}, "GET", true, "ok", 0, false, 2},
		{"resets, then 503, then success", []answer{reset, status(503, "0"), ok}, "GET", true, "ok", 0, false, 3},
		// Unclamped, these waits would not fit the 10s deadline: no retry.
		{"huge Retry-After in seconds is clamped", []answer{status(503, "86400"), ok}, "GET", true, "ok", 0, false, 2},
		{"huge Retry-After as a date is clamped", []answer{status(503, inAnHour()), ok}, "GET", true, "ok", 0, false, 2},
		{"always 503: the last response is returned", []answer{status(503, "0")}, "GET", true, "", 503, false, 3},
		{"always reset", []answer{reset}, "GET", true, "", 0, true, 3},
		{"not idempotent: never retried", []answer{status(503, "0"), ok}, "POST", false, "", 503, false, 1},
		{"not idempotent, reset: never retried", []answer{reset, ok}, "POST", false, "", 0, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newLoopback(t, tt.script...)
			// A new connection per request: net/http retries a request
			// by itself only on a reused connection, and must not hide
			// resets from the Retry.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			t.Cleanup(client.CloseIdleConnections)

			r := mustNew(t, retry.Config{
				Backoff:     retry.Constant(2 * time.Millisecond),
				MaxPushback: 5 * time.Millisecond,
			})
			stack, err := bulwark.New(bulwark.Config{Retry: r, Idempotent: tt.idempotent})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			key := retry.NewIdempotencyKey() // once per logical call
			got, err := bulwark.Do(ctx, stack, "loopback", get(client, tt.method, srv.URL, key))

			if got != tt.want {
				t.Errorf("result: got %q, want %q", got, tt.want)
			}
			var se *statusError
			switch {
			case tt.wantCode != 0 && (!errors.As(err, &se) || se.code != tt.wantCode):
				t.Errorf("error: got %v, want status %d", err, tt.wantCode)
			case tt.wantReset && (err == nil || errors.As(err, &se)):
				t.Errorf("error: got %v, want a transport error", err)
			case tt.wantCode == 0 && !tt.wantReset && err != nil:
				t.Errorf("error: got %v, want nil", err)
			}
			if h := srv.hits(); h != tt.wantHits {
				t.Fatalf("hits on the server: got %d, want %d", h, tt.wantHits)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			for i := range srv.attempts {
				if srv.attempts[i] != strconv.Itoa(i) || srv.keys[i] != key {
					t.Errorf("hit %d: got attempt %q, key %q, want %d, %q", i, srv.attempts[i], srv.keys[i], i, key)
				}
			}
		})
	}
}

// TestLoopbackHTTPBudget sends many calls to a server that always fails:
// the retries it sees stay within the budget.
func TestLoopbackHTTPBudget(t *testing.T) {
	srv := newLoopback(t, status(503, "0"))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	t.Cleanup(client.CloseIdleConnections)
	budget := mustBudget(t, retry.BudgetConfig{Ratio: 0.1, PerSecond: 1e-9, Window: time.Hour})
	r := mustNew(t, retry.Config{Backoff: retry.Constant(0), Budget: budget, MaxAttempts: 5})
	stack, err := bulwark.New(bulwark.Config{Retry: r, Idempotent: true})
	if err != nil {
		t.Fatal(err)
	}
	const calls = 50
	for i := range calls {
		if _, err := bulwark.Do(context.Background(), stack, "", get(client, "GET", srv.URL, fmt.Sprint(i))); err == nil {
			t.Fatal("got nil, want the server's 503")
		}
	}
	if got, want := srv.hits(), calls+calls/10; got != want {
		t.Errorf("hits on the server: got %d, want %d (each call once, plus 10 %%)", got, want)
	}
}
