package clients

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/bulwarkrpc/bulwark/bench/load"
)

func retryablehttpSpec() Spec {
	return Spec{
		Name:      "retryablehttp",
		Transport: HTTP,
		Config: "retryablehttp.NewClient() with its defaults — RetryMax 4, RetryWaitMin 1s, RetryWaitMax 30s, " +
			"DefaultRetryPolicy (connection errors, 429, 5xx but 501), DefaultBackoff (exponential, Retry-After honoured), " +
			"go-cleanhttp's pooled transport — except Logger = nil, which its docs give to silence the line it logs per request.",
		New: func(e Endpoints, attempts *atomic.Int64) (Client, error) {
			c := retryablehttp.NewClient()
			c.Logger = nil
			c.HTTPClient.Transport = &counting{next: c.HTTPClient.Transport, n: attempts}
			return &rhttp{c: c, urls: e.HTTP}, nil
		},
	}
}

type rhttp struct {
	c    *retryablehttp.Client
	urls []string
}

func (r *rhttp) Call(ctx context.Context, endpoint int, key string) load.Outcome {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, pick(r.urls, endpoint, key), nil)
	if err != nil {
		return load.Failure
	}
	resp, err := r.c.Do(req)
	if err != nil {
		return load.Failure
	}
	return read(resp)
}

func (r *rhttp) Close() error {
	r.c.HTTPClient.CloseIdleConnections()
	return nil
}
