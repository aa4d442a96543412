package clients

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/afex/hystrix-go/hystrix"

	"github.com/bulwarkrpc/bulwark/bench/load"
)

func hystrixSpec() Spec {
	return Spec{
		Name:      "hystrix-go",
		Transport: HTTP,
		Config: "hystrix.DoC around a plain http.Client, one command (so one circuit) per endpoint, configured as its README shows: " +
			"Timeout 1000ms, MaxConcurrentRequests 100, ErrorPercentThreshold 25; RequestVolumeThreshold 20 and SleepWindow 5s by default. " +
			"No retry (it has none), no fallback. hystrix-go keeps its circuits in a process-wide registry and starts goroutines per circuit that never stop.",
		New: newHystrix,
	}
}

type hystrixClient struct {
	c     *http.Client
	urls  []string
	names []string // the command of each endpoint
}

func newHystrix(e Endpoints, attempts *atomic.Int64) (Client, error) {
	h := &hystrixClient{c: &http.Client{Transport: baseTransport(attempts)}, urls: e.HTTP}
	for i := range e.HTTP {
		// The registry is global: names unique to this client.
		name := fmt.Sprintf("bench-%p-%d", h, i)
		hystrix.ConfigureCommand(name, hystrix.CommandConfig{
			Timeout:               1000,
			MaxConcurrentRequests: 100,
			ErrorPercentThreshold: 25,
		})
		h.names = append(h.names, name)
	}
	return h, nil
}

var errStatus = fmt.Errorf("clients: status not 200")

func (h *hystrixClient) Call(ctx context.Context, endpoint int, key string) load.Outcome {
	i := endpoint % len(h.urls)
	url := itemURL(h.urls[i], key)
	var out atomic.Int32 // set by run, which may outlive DoC after a timeout
	err := hystrix.DoC(ctx, h.names[i], func(ctx context.Context) error {
		o := get(ctx, h.c, url)
		out.Store(int32(o))
		if o != load.Success {
			return errStatus
		}
		return nil
	}, nil)
	if err != nil {
		return load.Failure
	}
	return load.Outcome(out.Load())
}

// Breakers asks each circuit whether it is open. Asking may open it: its
// health is judged when asked, as on the next call.
func (h *hystrixClient) Breakers() (open, halfOpen int) {
	for _, n := range h.names {
		if cb, _, err := hystrix.GetCircuit(n); err == nil && cb.IsOpen() {
			open++
		}
	}
	return open, 0
}

func (h *hystrixClient) Close() error {
	h.c.CloseIdleConnections()
	return nil
}
