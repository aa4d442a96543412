package bulwark_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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
	"github.com/bulwarkrpc/bulwark/timeout"
)

// lockedBuffer is a bytes.Buffer safe for concurrent writers: a library
// that logged would do so from any goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// take returns what was written and empties the buffer.
func (b *lockedBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// logCapture holds what the standard log package and slog's default
// logger wrote while it was installed.
type logCapture struct{ log, slog lockedBuffer }

// captureLogs sends the output of the log package and of slog's default
// logger (every level) to buffers until the end of the test, checks that
// it does, and at the end checks that nothing more was written.
func captureLogs(t *testing.T) *logCapture {
	t.Helper()
	c := &logCapture{}
	prevSlog := slog.Default()
	prevOut, prevFlags, prevPrefix := log.Writer(), log.Flags(), log.Prefix()
	// SetDefault also points the log package at the new handler: send the
	// log package to its own buffer after it, and put both back in the
	// same order, since restoring slog's own default leaves log alone.
	slog.SetDefault(slog.New(slog.NewTextHandler(&c.slog, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log.SetOutput(&c.log)
	t.Cleanup(func() {
		slog.SetDefault(prevSlog)
		log.SetOutput(prevOut)
		log.SetFlags(prevFlags)
		log.SetPrefix(prevPrefix)
	})
	log.Print("probe")
	slog.Debug("probe")
	if got, sgot := c.log.take(), c.slog.take(); !strings.Contains(got, "probe") || !strings.Contains(sgot, "probe") {
		t.Fatalf("the capture missed a probe line: log %q, slog %q", got, sgot)
	}
	t.Cleanup(func() { c.none(t) }) // what came late, before the restore
	return c
}

// none fails the test if anything was logged since the last call.
func (c *logCapture) none(t *testing.T) {
	t.Helper()
	if s := c.log.take(); s != "" {
		t.Errorf("got log output %q, want none", s)
	}
	if s := c.slog.take(); s != "" {
		t.Errorf("got slog output %q, want none", s)
	}
}

// quietServer is a loopback HTTP server whose own error log is discarded,
// so that only the client side can write to the captured logs.
func quietServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// quietClient wraps the server's transport (the default transport when srv
// is nil) with cfg.
func quietClient(t *testing.T, srv *httptest.Server, cfg httpclient.Config) *http.Client {
	t.Helper()
	var next http.RoundTripper
	if srv != nil {
		next = srv.Client().Transport
	}
	tr, err := httpclient.New(next, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = tr.Close()
	})
	return &http.Client{Transport: tr}
}

// getBody sends a GET and returns the status and body.
func getBody(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// The library never logs: failures, retries, hedges, an opening breaker,
// a full bulkhead, a fired deadline and a stale fallback are told through
// errors, responses and telemetry, never through the log package or slog.
func TestNothingIsLoggedOverHTTP(t *testing.T) {
	logs := captureLogs(t)
	budget, err := retry.NewBudget(retry.BudgetConfig{PerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	fastRetry := &retry.Config{MaxAttempts: 3, Backoff: retry.Constant(time.Millisecond), Budget: budget}
	unavailable := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }
	holdUntilCancelled := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"503 retried until the attempts run out", func(t *testing.T) {
			var n atomic.Int32
			srv := quietServer(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1); unavailable(w, r) })
			c := quietClient(t, srv, httpclient.Config{Retry: fastRetry})
			if code, _, err := getBody(c, srv.URL); code != http.StatusServiceUnavailable || err != nil || n.Load() != 3 {
				t.Fatalf("got %d, %v after %d attempts, want the third attempt's 503", code, err, n.Load())
			}
		}},
		{"refused connection retried", func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			_ = l.Close() // nothing listens there now
			c := quietClient(t, nil, httpclient.Config{Retry: fastRetry})
			if _, _, err := getBody(c, "http://"+addr); err == nil {
				t.Fatal("got no error, want the refused connection's")
			}
		}},
		{"hedged, the loser cancelled", func(t *testing.T) {
			var n atomic.Int32
			srv := quietServer(t, func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					holdUntilCancelled(w, r)
					return
				}
				_, _ = io.WriteString(w, "hedge")
			})
			c := quietClient(t, srv, httpclient.Config{Hedge: &hedge.Config{Delay: 5 * time.Millisecond, Budget: budget}})
			if code, body, err := getBody(c, srv.URL); code != http.StatusOK || body != "hedge" || err != nil {
				t.Fatalf("got %d %q %v, want the hedge's answer", code, body, err)
			}
		}},
		{"breaker opens", func(t *testing.T) {
			srv := quietServer(t, unavailable)
			c := quietClient(t, srv, httpclient.Config{Breaker: &breaker.Config{ConsecutiveFailures: 2}})
			for range 2 {
				if code, _, err := getBody(c, srv.URL); code != http.StatusServiceUnavailable || err != nil {
					t.Fatalf("got %d, %v, want the 503", code, err)
				}
			}
			if _, _, err := getBody(c, srv.URL); !errors.Is(err, breaker.ErrOpen) {
				t.Fatalf("got %v, want an open breaker", err)
			}
		}},
		{"bulkhead full", func(t *testing.T) {
			arrived, release := make(chan struct{}), make(chan struct{})
			srv := quietServer(t, func(w http.ResponseWriter, r *http.Request) {
				close(arrived)
				<-release
			})
			c := quietClient(t, srv, httpclient.Config{Bulkhead: &bulkhead.Config{Limit: 1}})
			held := make(chan error, 1)
			go func() { _, _, err := getBody(c, srv.URL); held <- err }()
			<-arrived
			_, _, err := getBody(c, srv.URL)
			close(release)
			if !errors.Is(err, bulkhead.ErrFull) {
				t.Fatalf("got %v, want a full bulkhead", err)
			}
			if err := <-held; err != nil {
				t.Fatalf("the request holding the slot: got %v, want its answer", err)
			}
		}},
		{"attempt deadline fires", func(t *testing.T) {
			srv := quietServer(t, holdUntilCancelled)
			c := quietClient(t, srv, httpclient.Config{AttemptTimeout: 10 * time.Millisecond})
			if _, _, err := getBody(c, srv.URL); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want the attempt deadline", err)
			}
		}},
		{"stale fallback served", func(t *testing.T) {
			var down atomic.Bool
			srv := quietServer(t, func(w http.ResponseWriter, r *http.Request) {
				if down.Load() {
					unavailable(w, r)
					return
				}
				_, _ = io.WriteString(w, "fresh")
			})
			c := quietClient(t, srv, httpclient.Config{Fallback: &httpclient.FallbackConfig{}})
			if _, body, err := getBody(c, srv.URL); body != "fresh" || err != nil {
				t.Fatalf("got %q %v, want the fresh answer", body, err)
			}
			down.Store(true)
			if code, body, err := getBody(c, srv.URL); code != http.StatusOK || body != "fresh" || err != nil {
				t.Fatalf("got %d %q %v, want the cached answer", code, body, err)
			}
		}},
		{"Standard over a failing server", func(t *testing.T) {
			srv := quietServer(t, unavailable)
			cfg := httpclient.Standard()
			cfg.Retry = fastRetry
			c := quietClient(t, srv, cfg)
			for range 30 { // opens the per-host breaker (half of 20 calls or more)
				_, _, _ = getBody(c, srv.URL)
			}
			if _, _, err := getBody(c, srv.URL); !errors.Is(err, breaker.ErrOpen) {
				t.Fatalf("got %v, want an open breaker", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t)
			logs.none(t)
		})
	}
}

func TestNothingIsLoggedByDo(t *testing.T) {
	logs := captureLogs(t)
	boom := errors.New("boom")
	failing := func(context.Context) (int, error) { return 0, boom }
	budget, err := retry.NewBudget(retry.BudgetConfig{PerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"failure retried until the attempts run out", func(t *testing.T) {
			r, err := retry.New(retry.Config{MaxAttempts: 3, Backoff: retry.Constant(0), Budget: budget})
			if err != nil {
				t.Fatal(err)
			}
			s := newStack(t, bulwark.Config{Retry: r, Idempotent: true})
			attempts := 0
			if _, err := bulwark.Do(context.Background(), s, "k", func(ctx context.Context) (int, error) {
				attempts++
				return failing(ctx)
			}); !errors.Is(err, boom) || attempts != 3 {
				t.Fatalf("got %v after %d attempts, want boom after 3", err, attempts)
			}
		}},
		{"hedged, the loser cancelled", func(t *testing.T) {
			h, err := hedge.New(hedge.Config{Delay: time.Millisecond, Budget: budget})
			if err != nil {
				t.Fatal(err)
			}
			s := newStack(t, bulwark.Config{Retry: h, Idempotent: true})
			v, err := bulwark.Do(context.Background(), s, "k", func(ctx context.Context) (int, error) {
				if bulwark.AttemptNumber(ctx) == 0 {
					<-ctx.Done()
					return 0, ctx.Err()
				}
				return 2, nil
			})
			if v != 2 || err != nil {
				t.Fatalf("got %d, %v, want the hedge's 2", v, err)
			}
		}},
		{"breaker opens", func(t *testing.T) {
			brk, err := breaker.NewSet(breaker.Config{ConsecutiveFailures: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = brk.Close() })
			s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{brk}})
			for range 2 {
				if _, err := bulwark.Do(context.Background(), s, "k", failing); !errors.Is(err, boom) {
					t.Fatalf("got %v, want boom", err)
				}
			}
			if _, err := bulwark.Do(context.Background(), s, "k", failing); !errors.Is(err, breaker.ErrOpen) {
				t.Fatalf("got %v, want an open breaker", err)
			}
		}},
		{"bulkhead full", func(t *testing.T) {
			blk, err := bulkhead.NewSet(bulkhead.Config{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = blk.Close() })
			s := newStack(t, bulwark.Config{Guards: []bulwark.Guard{blk}})
			entered, release := make(chan struct{}), make(chan struct{})
			held := make(chan error, 1)
			go func() {
				_, err := bulwark.Do(context.Background(), s, "k", func(context.Context) (int, error) {
					close(entered)
					<-release
					return 1, nil
				})
				held <- err
			}()
			<-entered
			_, err = bulwark.Do(context.Background(), s, "k", failing)
			close(release)
			if !errors.Is(err, bulkhead.ErrFull) {
				t.Fatalf("got %v, want a full bulkhead", err)
			}
			if err := <-held; err != nil {
				t.Fatalf("the call holding the slot: got %v, want success", err)
			}
		}},
		{"attempt deadline fires", func(t *testing.T) {
			to, err := timeout.New(timeout.Config{Attempt: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			s := newStack(t, bulwark.Config{Timeout: to})
			if _, err := bulwark.Do(context.Background(), s, "k", func(ctx context.Context) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			}); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want the attempt deadline", err)
			}
		}},
		{"panic recorded and passed on", func(t *testing.T) {
			s := newStack(t, bulwark.Config{})
			defer func() {
				if r := recover(); r != "call panicked" {
					t.Fatalf("recovered %v, want the call's panic", r)
				}
			}()
			_, _ = bulwark.Do(context.Background(), s, "k", func(context.Context) (int, error) { panic("call panicked") })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t)
			logs.none(t)
		})
	}
}
