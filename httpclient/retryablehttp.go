package httpclient

import (
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/bulwarkrpc/bulwark/retry"
)

// Backoff adapts a go-retryablehttp Backoff (retryablehttp.DefaultBackoff,
// LinearJitterBackoff, or one of the caller's) to a retry.Backoff with the
// given bounds, for Config.Retry.Backoff. It is given no response: a
// server's Retry-After reaches the Retry as pushback, capped by
// retry.Config.MaxPushback, so it is honoured whatever the Backoff.
func Backoff(b retryablehttp.Backoff, min, max time.Duration) retry.Backoff {
	return retry.BackoffFunc(func(n int, _ time.Duration) time.Duration {
		return b(min, max, n, nil)
	})
}
