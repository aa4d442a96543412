package httpclient

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/retry"
)

// Config configures a Transport. The zero Config is valid and adds nothing
// but the bookkeeping: every policy is off until set. Standard returns the
// recommended one.
type Config struct {
	// TotalTimeout bounds a whole call: every attempt, every wait between
	// them, and reading the response body. Zero means none of ours (the
	// request's context still applies).
	TotalTimeout time.Duration
	// AttemptTimeout bounds one attempt, its body included. Zero means
	// none. It must not exceed TotalTimeout when both are set.
	AttemptTimeout time.Duration
	// Retry retries failed idempotent requests. Nil means no retries.
	// Its Budget, when nil, is Config.Budget.
	Retry *retry.Config
	// Hedge sends a second attempt of an idempotent request that has not
	// answered after a delay. Nil means no hedging. A client hedges or
	// retries, not both: set one of Retry and Hedge. Its Budget, when nil,
	// is Config.Budget.
	Hedge *hedge.Config
	// Budget bounds retries and hedges together. Share one between clients
	// that call the same dependency, HTTP and gRPC alike. Nil means a
	// Budget of this client's own, with retry.BudgetConfig's defaults.
	Budget *retry.Budget
	// Breaker is the configuration of one circuit breaker per key (per
	// host by default). Nil means no breaker.
	Breaker *breaker.Config
	// Bulkhead is the configuration of one concurrency limit per key. Nil
	// means no bulkhead.
	Bulkhead *bulkhead.Config
	// Picker, when set, chooses the instance each attempt goes to (a
	// discovery.Balancer): the request is sent to the picked address with
	// its Host header kept, the breaker and bulkhead keep their state per
	// instance, and a retry or hedge goes to another instance than the one
	// that just failed. The service is named by Key (the request's host by
	// default). The Picker is the caller's: Close does not close it. Nil
	// means the request goes where its URL says.
	Picker bulwark.Picker
	// Key names the endpoint a request goes to, for the breaker and the
	// bulkhead (a route template, a service name). It must be safe for
	// concurrent use and return few distinct keys: the sets are bounded
	// (their MaxKeys). Nil means scheme://host:port.
	Key func(*http.Request) string
	// ClassifyStatus maps a response's status code to its outcome. Nil
	// means bulwark.ClassifyHTTPStatus: 5xx but 501, and 429, are
	// Failures; other 4xx are Ignored.
	ClassifyStatus func(code int) bulwark.Outcome
	// CheckRetry, when set, decides after each attempt whether another is
	// worth making — a go-retryablehttp policy such as
	// retryablehttp.DefaultRetryPolicy, or the caller's. It overrides the
	// status classification for that decision only (breakers still judge
	// by ClassifyStatus), and it never makes a request repeatable that is
	// not: idempotency, GetBody, the budget and the deadline still rule.
	// An error it returns ends the call: no other attempt is made, and
	// the call returns the attempt's response if it has one (with a nil
	// error: a RoundTripper returns a response or an error, never both),
	// otherwise that error. Nil means retry Failures.
	CheckRetry retryablehttp.CheckRetry
	// IdempotencyKey adds an Idempotency-Key header, generated once per
	// call, to POST and PATCH requests that have none, which makes them
	// retryable. False means POST and PATCH are repeated only when they
	// carry the header already or their context is marked with
	// bulwark.Idempotent.
	IdempotencyKey bool
	// Fallback answers a failed GET from the last good response to the
	// same request. Nil means no fallback.
	Fallback *FallbackConfig
	// MaxDrain is how many bytes of a discarded response (a failed attempt
	// that is retried, a hedge that lost) are read so that its connection
	// can be reused; a longer body has its connection closed. Zero means
	// 4 KiB; it must be >= 0.
	MaxDrain int64
	// MeterProvider receives the policies' metrics, where their own Config
	// names none. Nil means the global provider.
	MeterProvider metric.MeterProvider
	// TracerProvider makes the per-attempt spans. Nil means the global
	// provider.
	TracerProvider trace.TracerProvider
}

// FallbackConfig configures the cached fallback for GET requests. The zero
// FallbackConfig is valid.
type FallbackConfig struct {
	// MaxStale is how old a cached response may be and still be served
	// in place of a failure. Zero means 5m.
	MaxStale time.Duration
	// MaxBodyBytes bounds the body of a response that is cached; a longer
	// one is not. Zero means 1 MiB.
	MaxBodyBytes int64
	// MaxEntries bounds the number of cached responses. Zero means 1000.
	MaxEntries int
	// MaxBytes bounds the bytes of all cached responses (bodies and
	// headers). Zero means 64 MiB.
	MaxBytes int64
	// Key identifies the request a response answers. Nil means its URL,
	// and a request that carries an Authorization or Cookie header is
	// neither cached nor answered from the cache: its answer may belong to
	// one user. A Key returning "" likewise opts a request out.
	Key func(*http.Request) string
}

// Standard returns the recommended Config, every default in one place:
//
//   - TotalTimeout 30s, AttemptTimeout 10s;
//   - Retry: up to 3 attempts of idempotent requests that fail (5xx but
//     501, 429, transport errors), exponential backoff with full jitter
//     from 50ms to 5s, Retry-After honoured up to 30s, within a budget of
//     20 % of requests plus 10 retries per second;
//   - Breaker per host: opens when at least half of 20 or more calls in 30s
//     fail, stays open 5s, then lets 3 trial calls through;
//   - Bulkhead per host: 256 attempts at once, the rest refused at once
//     (bulkhead.ErrFull, never counted against the host).
//
// For a dependency that sheds load when it is overloaded (fast 503s, or a
// queue that grows), add an adaptive limit that learns how many attempts
// each host (each instance, with a Picker) serves without queueing, and
// let the breaker wait for more calls, so that the limit has learned
// before the breaker judges the 503s of the excess:
//
//	cfg.Bulkhead.Adaptive = &bulkhead.AdaptiveConfig{InitialLimit: 4}
//	cfg.Breaker.MinimumCalls = 100
//
// The excess is then refused at once, locally (bulkhead.ErrFull), instead
// of waiting in the dependency's queue or tripping its breaker.
//
// Each call returns a new Config, whose sections the caller may change.
func Standard() Config {
	return Config{
		TotalTimeout:   30 * time.Second,
		AttemptTimeout: 10 * time.Second,
		Retry:          &retry.Config{MaxAttempts: 3},
		Breaker:        &breaker.Config{},
		Bulkhead:       &bulkhead.Config{Limit: 256},
	}
}

const (
	defaultMaxDrain     = 4 << 10
	defaultMaxStale     = 5 * time.Minute
	defaultMaxBodyBytes = 1 << 20
	defaultMaxEntries   = 1000
	defaultMaxBytes     = 64 << 20
)

func (c Config) validate() error {
	switch {
	case c.TotalTimeout < 0:
		return fmt.Errorf("httpclient: Config.TotalTimeout is %v, want >= 0", c.TotalTimeout)
	case c.AttemptTimeout < 0:
		return fmt.Errorf("httpclient: Config.AttemptTimeout is %v, want >= 0", c.AttemptTimeout)
	case c.TotalTimeout > 0 && c.AttemptTimeout > c.TotalTimeout:
		return fmt.Errorf("httpclient: Config.AttemptTimeout (%v) exceeds Config.TotalTimeout (%v)", c.AttemptTimeout, c.TotalTimeout)
	case c.Retry != nil && c.Hedge != nil:
		return fmt.Errorf("httpclient: Config.Retry and Config.Hedge are both set; a client retries or hedges: set one")
	case c.MaxDrain < 0:
		return fmt.Errorf("httpclient: Config.MaxDrain is %d, want >= 0", c.MaxDrain)
	}
	if f := c.Fallback; f != nil {
		switch {
		case f.MaxStale < 0:
			return fmt.Errorf("httpclient: Config.Fallback.MaxStale is %v, want >= 0", f.MaxStale)
		case f.MaxBodyBytes < 0:
			return fmt.Errorf("httpclient: Config.Fallback.MaxBodyBytes is %d, want >= 0", f.MaxBodyBytes)
		case f.MaxEntries < 0:
			return fmt.Errorf("httpclient: Config.Fallback.MaxEntries is %d, want >= 0", f.MaxEntries)
		case f.MaxBytes < 0:
			return fmt.Errorf("httpclient: Config.Fallback.MaxBytes is %d, want >= 0", f.MaxBytes)
		}
	}
	return nil
}
