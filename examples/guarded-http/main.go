// Command guarded-http wraps an http.Client with bulwark's guards — a
// breaker and a bulkhead per host, and an attempt deadline, through
// httpclient — and drives it against a local server that fails on purpose,
// printing what each guard did. The guards are released when a response
// body is closed or read to the end, not when the call returns.
//
//	go run ./examples/guarded-http
package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/httpclient"
	"github.com/bulwarkrpc/bulwark/timeout"
)

func main() {
	if err := run(os.Stdout, 500*time.Millisecond); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Tally counts how the calls of one phase ended.
type Tally struct {
	OK, ServerErrors, BreakerOpen, BulkheadFull, Deadlines, Other int
}

func (t Tally) String() string {
	return fmt.Sprintf("ok %-3d  5xx %-3d  breaker-open %-3d  bulkhead-full %-3d  attempt-deadline %-3d  other %d",
		t.OK, t.ServerErrors, t.BreakerOpen, t.BulkheadFull, t.Deadlines, t.Other)
}

// Report is what run observed, phase by phase, for the test to check.
type Report struct {
	Healthy, Failing, Recovered, Slow Tally
	Events                            []breaker.Event
}

// server modes.
const (
	healthy = iota
	failing
	slow
)

// run plays four phases against a local server; openFor is how long the
// breaker stays open before it lets trial calls through.
func run(w io.Writer, openFor time.Duration) error {
	_, err := play(w, openFor)
	return err
}

func play(w io.Writer, openFor time.Duration) (Report, error) {
	var rep Report
	var mode atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case failing:
			http.Error(rw, "overloaded", http.StatusServiceUnavailable)
		case slow:
			select { // far slower than the attempt deadline
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		default:
			_, _ = io.WriteString(rw, "hello")
		}
	}))
	defer srv.Close()

	var mu sync.Mutex
	tr, err := httpclient.New(srv.Client().Transport, httpclient.Config{
		AttemptTimeout: 100 * time.Millisecond,
		Breaker: &breaker.Config{
			FailureRatio: 0.5,
			MinimumCalls: 10,
			Window:       10 * time.Second,
			OpenDuration: openFor,
			OnStateChange: func(e breaker.Event) {
				mu.Lock()
				rep.Events = append(rep.Events, e)
				mu.Unlock()
				fmt.Fprintf(w, "    breaker %s: %s -> %s\n", e.Key, e.From, e.To)
			},
		},
		Bulkhead: &bulkhead.Config{Limit: 4},
	})
	if err != nil {
		return rep, err
	}
	defer tr.Close()
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()

	get := func(tally *Tally, tmu *sync.Mutex) {
		resp, err := client.Get(srv.URL)
		tmu.Lock()
		defer tmu.Unlock()
		switch {
		case errors.Is(err, breaker.ErrOpen):
			tally.BreakerOpen++
		case errors.Is(err, bulkhead.ErrFull):
			tally.BulkheadFull++
		case errors.Is(err, timeout.ErrTimeout):
			tally.Deadlines++
		case err != nil:
			tally.Other++
		default:
			_, rerr := io.Copy(io.Discard, resp.Body) // the guards are released here, at EOF
			resp.Body.Close()
			switch {
			case errors.Is(rerr, timeout.ErrTimeout):
				tally.Deadlines++
			case resp.StatusCode >= 500:
				tally.ServerErrors++
			default:
				tally.OK++
			}
		}
	}
	sequential := func(name string, tally *Tally, n int) {
		var tmu sync.Mutex
		for range n {
			get(tally, &tmu)
		}
		fmt.Fprintf(w, "%-34s %v\n", name, *tally)
	}

	fmt.Fprintf(w, "server at %s; breaker: 50%% of >=10 calls trips it, open %v; bulkhead: 4 at once; attempt deadline 100ms\n\n", srv.URL, openFor)

	mode.Store(healthy)
	sequential("1. healthy, 20 calls:", &rep.Healthy, 20)

	mode.Store(failing)
	sequential("2. server answers 503, 30 calls:", &rep.Failing, 30)

	mode.Store(healthy)
	time.Sleep(openFor + openFor/5) // let the open period pass; a real client would just keep calling
	sequential("3. server recovered, 20 calls:", &rep.Recovered, 20)

	mode.Store(slow)
	var tmu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			<-start
			get(&rep.Slow, &tmu)
		})
	}
	close(start)
	wg.Wait()
	fmt.Fprintf(w, "%-34s %v\n", "4. server hangs, 8 calls at once:", rep.Slow)
	return rep, nil
}
