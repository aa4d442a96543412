package fleet

import (
	"context"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// bodySize is the size of a successful answer's body.
const bodySize = 256

// httpEndpoint is one HTTP server that follows its current Behavior.
type httpEndpoint struct {
	index    int
	addr     string // 127.0.0.1:port, kept across restarts
	beh      atomic.Pointer[Behavior]
	arrivals atomic.Int64
	gate     *gate
	quit     chan struct{} // closed by close: every waiting handler returns

	mu   sync.Mutex // guards srv and done: up and down come from Play, close from Close
	srv  *http.Server
	done chan struct{} // closed when srv's Serve has returned
}

func newHTTPEndpoint(index int) (*httpEndpoint, error) {
	addr, err := reserve()
	if err != nil {
		return nil, err
	}
	e := &httpEndpoint{index: index, addr: addr, gate: newGate(), quit: make(chan struct{})}
	e.beh.Store(&Behavior{})
	return e, nil
}

// reserve finds a free loopback port.
func reserve() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func (e *httpEndpoint) apply(b Behavior) error {
	e.beh.Store(&b)
	if b.Down {
		e.down()
		return nil
	}
	return e.up()
}

// up starts serving, unless it already is.
func (e *httpEndpoint) up() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", e.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // resets and refusals are on purpose
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	e.srv, e.done = srv, done
	return nil
}

// down closes the listener and every connection: new connections are
// refused, requests in flight see their connection end.
func (e *httpEndpoint) down() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		return
	}
	_ = e.srv.Close()
	<-e.done
	e.srv, e.done = nil, nil
}

func (e *httpEndpoint) close() {
	close(e.quit)
	e.down()
}

func (e *httpEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.arrivals.Add(1)
	b := e.beh.Load()
	ctx := r.Context()
	w.Header().Set("X-Endpoint", strconv.Itoa(e.index))
	if b.Capacity > 0 {
		if !e.gate.enter(ctx, b, e.quit) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		defer e.gate.leave()
	}
	if b.Hang {
		select {
		case <-ctx.Done():
		case <-e.quit:
		}
		return
	}
	if !wait(ctx, b.Latency.Sample(), e.quit) {
		return
	}
	u := rand.Float64()
	switch {
	case u < b.ErrorRate:
		w.WriteHeader(http.StatusInternalServerError)
	case u < b.ErrorRate+b.ThrottleRate:
		secs := (b.retryAfter() + time.Second - 1) / time.Second
		w.Header().Set("Retry-After", strconv.Itoa(int(secs)))
		w.WriteHeader(http.StatusTooManyRequests)
	case u < b.ErrorRate+b.ThrottleRate+b.ResetRate:
		reset(w)
	default:
		w.Header().Set("Content-Length", strconv.Itoa(bodySize))
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(payload[:])
	}
}

var payload = func() (p [bodySize]byte) {
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}()

// reset promises a full body, sends part of it, then resets the
// connection (RST, not FIN), as a crashing server or a middlebox would.
func reset(w http.ResponseWriter) {
	w.Header().Set("Content-Length", strconv.Itoa(bodySize))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(payload[:bodySize/4])
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection mid-body all the same
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// wait waits d, and reports false when ctx or quit ended the wait first.
func wait(ctx context.Context, d time.Duration, quit <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-quit:
	}
	return false
}
