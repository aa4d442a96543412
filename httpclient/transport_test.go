package httpclient_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/httpclient"
)

// bodies is a RoundTripper that counts the response bodies it hands out
// and those closed since.
type bodies struct {
	next http.RoundTripper

	mu           sync.Mutex
	open, closed int
}

func (b *bodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(req)
	if err == nil {
		b.mu.Lock()
		b.open++
		b.mu.Unlock()
		resp.Body = &countedBody{ReadCloser: resp.Body, b: b}
	}
	return resp, err
}

func (b *bodies) counts() (open, closed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open, b.closed
}

type countedBody struct {
	io.ReadCloser
	b    *bodies
	once sync.Once
}

func (c *countedBody) Close() error {
	c.once.Do(func() {
		c.b.mu.Lock()
		c.b.closed++
		c.b.mu.Unlock()
	})
	return c.ReadCloser.Close()
}

type panickingTransport struct{}

func (panickingTransport) RoundTrip(*http.Request) (*http.Response, error) { panic("transport") }

// A panic in a user callback — the next RoundTripper, ClassifyStatus,
// CheckRetry, the request's GetBody, Key — goes on to the caller, but
// loses nothing on its way: the attempt's bulkhead slot is given back,
// every response obtained is closed, and the request body too.
func TestPanickingCallbackLosesNothing(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, strings.Repeat("x", 64))
	})
	boom := func() { panic("callback") }
	for _, tt := range []struct {
		name    string
		cfg     httpclient.Config
		next    http.RoundTripper // nil: the server's
		getBody bool              // a request body whose GetBody panics
	}{
		{name: "next RoundTripper", next: panickingTransport{}},
		{name: "ClassifyStatus", cfg: httpclient.Config{ClassifyStatus: func(int) bulwark.Outcome { boom(); return 0 }}},
		{name: "ClassifyStatus, retrying", cfg: httpclient.Config{Retry: fastRetry(3),
			ClassifyStatus: func(int) bulwark.Outcome { boom(); return 0 }}},
		{name: "CheckRetry", cfg: httpclient.Config{Retry: fastRetry(3),
			CheckRetry: func(context.Context, *http.Response, error) (bool, error) { boom(); return false, nil }}},
		{name: "CheckRetry, no retry", cfg: httpclient.Config{
			CheckRetry: func(context.Context, *http.Response, error) (bool, error) { boom(); return false, nil }}},
		{name: "GetBody", cfg: httpclient.Config{Retry: fastRetry(3)}, getBody: true},
		{name: "Key", cfg: httpclient.Config{Key: func(*http.Request) string { boom(); return "" }}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			next := tt.next
			if next == nil {
				next = srv.Client().Transport
			}
			counted := &bodies{next: next}
			cfg := tt.cfg
			cfg.Bulkhead = &bulkhead.Config{Limit: 1}
			tr, err := httpclient.New(counted, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				tr.CloseIdleConnections()
				_ = tr.Close()
			})
			reqBody := newTrackedBody("payload")
			req, _ := http.NewRequest(http.MethodPut, srv.URL, reqBody)
			req.GetBody = func() (io.ReadCloser, error) {
				if tt.getBody {
					boom()
				}
				return io.NopCloser(strings.NewReader("payload")), nil
			}
			func() {
				defer func() {
					if r := recover(); r == nil {
						t.Fatal("the callback's panic was swallowed")
					}
				}()
				resp, err := tr.RoundTrip(req)
				if err == nil {
					resp.Body.Close()
				}
			}()
			if got := tr.Bulkheads().InFlight(srv.URL); got != 0 {
				t.Errorf("bulkhead slots held after the panic: %d, want 0", got)
			}
			if open, closed := counted.counts(); open != closed {
				t.Errorf("%d response bodies obtained, %d closed, want all closed", open, closed)
			}
			if reqBody.closes() == 0 {
				t.Error("the request body was not closed")
			}
		})
	}
}

// A hedged call whose answer is a failure with a body longer than MaxDrain
// (read ahead in part while the hedge could still win) hands the caller a
// body it can read to the end: the call's context ends when the body does,
// not when RoundTrip returns.
func TestHedgedFailureWithALongBodyReadsToTheEnd(t *testing.T) {
	head, tail := strings.Repeat("h", 16<<10), strings.Repeat("t", 16<<10)
	answered := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, head)
		w.(http.Flusher).Flush()
		select { // the rest once the caller has the response
		case <-answered:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, tail)
	})
	c, _ := srv.client(t, httpclient.Config{Hedge: &hedge.Config{Delay: time.Hour}})
	resp, err := c.Get(srv.URL)
	close(answered)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || string(body) != head+tail {
		t.Fatalf("got %d, %d bytes, %v; want the 503 and its %d bytes", resp.StatusCode, len(body), err, len(head+tail))
	}
}
