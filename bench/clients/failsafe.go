package clients

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/bulwarkrpc/bulwark/bench/load"
)

func failsafeSpec() Spec {
	return Spec{
		Name:      "failsafe-go",
		Transport: HTTP,
		Config: "failsafehttp.NewRoundTripper with the composition its docs recommend, outermost first: " +
			"retry (failsafehttp.NewRetryPolicyBuilder().WithBackoff(1s, 30s).WithMaxRetries(3), as its HTTP page shows; Retry-After honoured), " +
			"circuit breaker (its docs' example: opens after 5 consecutive failures, 2 successes to close, handling transport errors, 429 and 5xx but 501; " +
			"delay 5s in place of the 1 min default so that its open period matches the other breakers'), " +
			"bulkhead (256, as bulwark's), timeout (10s per attempt, as bulwark's). One executor, so one breaker for the whole fleet, as its docs advise for a shared dependency.",
		New: func(e Endpoints, attempts *atomic.Int64) (Client, error) {
			c := &failsafeClient{urls: e.HTTP}
			retry := failsafehttp.NewRetryPolicyBuilder().
				WithBackoff(time.Second, 30*time.Second).
				WithMaxRetries(3).
				Build()
			cb := circuitbreaker.NewBuilder[*http.Response]().
				HandleIf(failsafeFailure).
				WithFailureThreshold(5).
				WithSuccessThreshold(2).
				WithDelay(5 * time.Second).
				OnStateChanged(func(ev circuitbreaker.StateChangedEvent) { c.state.Store(int32(ev.NewState)) }).
				Build()
			bh := bulkhead.New[*http.Response](256)
			to := timeout.New[*http.Response](10 * time.Second)
			base := baseTransport(attempts)
			c.base = base
			c.c = &http.Client{Transport: failsafehttp.NewRoundTripper(base, retry, cb, bh, to)}
			return c, nil
		},
	}
}

// failsafeFailure is what the breaker counts as a failure: what its
// HTTP retry policy retries.
func failsafeFailure(resp *http.Response, err error) bool {
	if err != nil {
		return !errors.Is(err, context.Canceled)
	}
	return resp != nil && (resp.StatusCode == http.StatusTooManyRequests ||
		resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented)
}

type failsafeClient struct {
	c     *http.Client
	base  *counting
	urls  []string
	state atomic.Int32 // circuitbreaker.State
}

func (f *failsafeClient) Call(ctx context.Context, endpoint int, key string) load.Outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pick(f.urls, endpoint, key), nil)
	if err != nil {
		return load.Failure
	}
	resp, err := f.c.Do(req)
	if err != nil {
		if resp != nil { // retries exceeded with a response
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		return load.Failure
	}
	return read(resp)
}

func (f *failsafeClient) Breakers() (open, halfOpen int) {
	switch circuitbreaker.State(f.state.Load()) {
	case circuitbreaker.OpenState:
		return 1, 0
	case circuitbreaker.HalfOpenState:
		return 0, 1
	}
	return 0, 0
}

func (f *failsafeClient) Close() error {
	f.base.CloseIdleConnections()
	return nil
}
