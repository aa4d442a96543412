// Package httpclient gives any *http.Client bulwark's resilience, as
// http.RoundTripper middleware built from the one composition of the root
// package, in its order:
//
//	cached fallback (GET) → total deadline → retry or hedge (budgeted)
//	  → breaker (per host) → bulkhead (per host) → attempt deadline → transport
//
// Start from the Standard preset, which is validated and documented in one
// place:
//
//	client, err := httpclient.Wrap(http.DefaultClient, httpclient.Standard())
//
// The Transport keeps the http.RoundTripper contract: it never modifies the
// caller's request (it clones one before adding an Idempotency-Key), closes
// the request body on every path, returns every response it obtained with a
// nil error (status codes feed the policies, not errors), drains (at most
// MaxDrain bytes) and closes the bodies of responses it discards so that
// their connections are reused, releases its guards when the caller closes
// the response body or reads it to the end — not when RoundTrip returns —
// and forwards CloseIdleConnections.
//
// Only idempotent requests are retried or hedged: GET, HEAD, OPTIONS, TRACE,
// PUT and DELETE, a request carrying an Idempotency-Key header, or one whose
// context is marked with bulwark.Idempotent. Config.IdempotencyKey adds the
// header to POST and PATCH requests that lack it, generated once per call and
// the same on every attempt. A body is replayed only through GetBody; a
// request whose body cannot be replayed is never repeated.
//
// OpenTelemetry: each policy reports its metrics (bulwark.breaker.*,
// bulwark.bulkhead.*, bulwark.retry.*, bulwark.hedge.*, bulwark.timeout.*,
// bulwark.fallback.*). When the request's context carries a recording span,
// every attempt gets a child span, bulwark.http.attempt, with
// http.request.method, server.address, server.port,
// http.request.resend_count, http.response.status_code, error.type and
// bulwark.outcome; never the URL's path or query, credentials or header
// values. With otelhttp, put otelhttp's transport outside for one span per
// logical request, or inside (as next) for one client span per attempt:
//
//	otelhttp.NewTransport(httpclient.New(base, cfg))  // a span per request
//	httpclient.New(otelhttp.NewTransport(base), cfg)  // a span per attempt, under bulwark's
package httpclient
