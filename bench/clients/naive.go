package clients

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/bulwarkrpc/bulwark/bench/load"
)

func naiveSpec() Spec {
	return Spec{
		Name:      "naive",
		Transport: HTTP,
		Config:    "&http.Client{} over http.DefaultTransport's settings: no retry, no breaker; the caller's deadline is its only timeout.",
		New: func(e Endpoints, attempts *atomic.Int64) (Client, error) {
			return &naive{c: &http.Client{Transport: baseTransport(attempts)}, urls: e.HTTP}, nil
		},
	}
}

type naive struct {
	c    *http.Client
	urls []string
}

func (n *naive) Call(ctx context.Context, endpoint int, key string) load.Outcome {
	return get(ctx, n.c, pick(n.urls, endpoint, key))
}

func (n *naive) Close() error {
	n.c.CloseIdleConnections()
	return nil
}
