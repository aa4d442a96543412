package httpclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/internal/guards"
	"github.com/bulwarkrpc/bulwark/retry"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// Transport is an http.RoundTripper that runs every request through
// bulwark's policies before handing it to the next RoundTripper. It is safe
// for concurrent use. Build it with New, or let Wrap build it.
type Transport struct {
	next      http.RoundTripper
	stack     *bulwark.Stack
	wrapper   bulwark.Wrapper
	key       func(*http.Request) string
	status    func(int) bulwark.Outcome
	check     retryablehttp.CheckRetry
	injectID  bool
	maxDrain  int64
	tracer    trace.Tracer
	cache     *responseCache // nil without Config.Fallback
	closers   []interface{ Close() error }
	breakers  *breaker.Set  // nil without Config.Breaker
	bulkheads *bulkhead.Set // nil without Config.Bulkhead

	lastKey atomic.Pointer[hostKey] // the default key of the last host, reused without allocating
}

var _ http.RoundTripper = (*Transport)(nil)

// New validates cfg and returns a Transport that sends requests through
// next (nil means http.DefaultTransport). An invalid field — here or in a
// policy's section — is an error naming it.
func New(next http.RoundTripper, cfg Config) (*Transport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if next == nil {
		next = http.DefaultTransport
	}
	t := &Transport{
		next:     next,
		key:      cfg.Key,
		status:   cfg.ClassifyStatus,
		check:    cfg.CheckRetry,
		injectID: cfg.IdempotencyKey,
		maxDrain: cfg.MaxDrain,
	}
	if t.status == nil {
		t.status = bulwark.ClassifyHTTPStatus
	}
	if t.maxDrain == 0 {
		t.maxDrain = defaultMaxDrain
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	t.tracer = tp.Tracer("github.com/bulwarkrpc/bulwark/httpclient")
	mp := cfg.MeterProvider

	to, err := timeout.New(timeout.Config{Total: cfg.TotalTimeout, Attempt: cfg.AttemptTimeout, MeterProvider: mp})
	if err != nil {
		return nil, fmt.Errorf("httpclient: %w", err)
	}
	gs, err := guards.Build("httpclient", cfg.Breaker, cfg.Bulkhead, mp)
	if err != nil {
		return nil, err
	}
	t.closers = append(t.closers, gs.Closers...)
	t.breakers, t.bulkheads = gs.Breakers, gs.Bulkheads
	built := false
	defer func() {
		if !built { // a later section was refused: unregister what was made
			_ = t.Close()
		}
	}()
	budget := cfg.Budget
	if budget == nil && (cfg.Retry != nil && cfg.Retry.Budget == nil || cfg.Hedge != nil && cfg.Hedge.Budget == nil) {
		if budget, err = retry.NewBudget(retry.BudgetConfig{MeterProvider: mp}); err != nil {
			return nil, fmt.Errorf("httpclient: %w", err)
		}
	}
	switch {
	case cfg.Retry != nil:
		rc := *cfg.Retry
		if rc.Budget == nil {
			rc.Budget = budget
		}
		if rc.MeterProvider == nil {
			rc.MeterProvider = mp
		}
		r, err := retry.New(rc)
		if err != nil {
			return nil, fmt.Errorf("httpclient: Config.Retry: %w", err)
		}
		t.wrapper = r
	case cfg.Hedge != nil:
		hc := *cfg.Hedge
		if hc.Budget == nil {
			hc.Budget = budget
		}
		if hc.MeterProvider == nil {
			hc.MeterProvider = mp
		}
		h, err := hedge.New(hc)
		if err != nil {
			return nil, fmt.Errorf("httpclient: Config.Hedge: %w", err)
		}
		t.wrapper = h
	}
	if t.stack, err = bulwark.New(bulwark.Config{Timeout: to, Retry: t.wrapper, Picker: cfg.Picker, Guards: gs.Guards}); err != nil {
		return nil, fmt.Errorf("httpclient: %w", err)
	}
	if cfg.Fallback != nil {
		if t.cache, err = newResponseCache(*cfg.Fallback, mp); err != nil {
			return nil, err
		}
		t.closers = append(t.closers, t.cache.c)
	}
	built = true
	return t, nil
}

// Wrap returns a copy of c (nil means http.DefaultClient) whose Transport
// runs through the policies of cfg; c itself is left as it was. The copy
// keeps c's Timeout, Jar and CheckRedirect.
func Wrap(c *http.Client, cfg Config) (*http.Client, error) {
	if c == nil {
		c = http.DefaultClient
	}
	t, err := New(c.Transport, cfg)
	if err != nil {
		return nil, err
	}
	w := *c
	w.Transport = t
	return &w, nil
}

// Breakers returns the breakers, one per key (host, or instance with a
// Picker), for their state and counts; nil without Config.Breaker.
func (t *Transport) Breakers() *breaker.Set { return t.breakers }

// Bulkheads returns the bulkheads, one per key, for the attempts in
// flight and, when adaptive, the limit each has learned; nil without
// Config.Bulkhead.
func (t *Transport) Bulkheads() *bulkhead.Set { return t.bulkheads }

// CloseIdleConnections closes the idle connections of the next
// RoundTripper, when it has such a method.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Close unregisters the policies' gauges from the MeterProvider, which
// otherwise keeps the Transport reachable. The Transport still works.
func (t *Transport) Close() error {
	var errs []error
	for _, c := range t.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

type hostKey struct{ scheme, host, key string }

// keyOf returns the request's endpoint key.
func (t *Transport) keyOf(req *http.Request) string {
	if t.key != nil {
		return t.key(req)
	}
	u := req.URL
	if k := t.lastKey.Load(); k != nil && k.scheme == u.Scheme && k.host == u.Host {
		return k.key
	}
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	k := &hostKey{scheme: u.Scheme, host: u.Host, key: u.Scheme + "://" + u.Hostname() + ":" + port}
	t.lastKey.Store(k)
	return k.key
}

// idempotentMethod reports the methods RFC 9110 defines as idempotent.
func idempotentMethod(m string) bool {
	switch m {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// idempotencyHeader is the header that makes an unsafe method repeatable.
const idempotencyHeader = "Idempotency-Key"

// RoundTrip sends req through the policies. It returns every response it
// obtained with a nil error, whatever its status; an error means no
// response: a transport error, a refusal (breaker.ErrOpen, bulkhead.ErrFull:
// both match bulwark.ErrRejected), or a deadline of ours (a
// *timeout.Error). It closes req.Body on every path and never modifies req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("httpclient: request has no URL")
	}
	caller := req.Context()
	c := &call{t: t, req: req, caller: caller}
	// A user callback (Key, GetBody, the next RoundTripper, ClassifyStatus,
	// CheckRetry, the fallback's Key) that panics loses nothing on its
	// way out: no guard, no response body, no request body.
	var resp *http.Response
	returned := false
	defer func() {
		if !returned {
			c.abandon(resp)
		}
	}()
	c.key = t.keyOf(req)
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	idem := replayable && (idempotentMethod(req.Method) || req.Header.Get(idempotencyHeader) != "" || bulwark.IsIdempotent(caller))
	if t.injectID && replayable && !idem && (req.Method == http.MethodPost || req.Method == http.MethodPatch) {
		c.req = req.Clone(caller) // never modify the caller's request
		c.req.Header.Set(idempotencyHeader, retry.NewIdempotencyKey())
		idem = true
	}
	// The total deadline is a time every attempt's context is bounded by,
	// not a context of its own: one timer per attempt, none per call.
	c.ctx, c.total = caller, t.stack.Deadline(caller)
	if t.stack.Concurrent() {
		// A hedge leaves the winner's context alive for its body: the
		// call's own context ends it when the body is done.
		c.ctx, c.cancel = context.WithCancel(caller)
	}

	var n int
	var err error
	if t.wrapper == nil {
		res := c.Attempt(c.ctx, 0)
		err = res.Err
	} else {
		n, err = t.wrapper.Run(c.ctx, bulwark.Call{Idempotent: idem, Attempts: c, Deadline: c.total})
	}
	resp = c.decide(n)
	if !c.sent.Load() {
		closeBody(req)     // no attempt took the caller's body to the transport
		c.sent.Store(true) // closed: abandon must not close it again
	}
	if resp != nil {
		if t.cache != nil && t.status(resp.StatusCode) == bulwark.Failure {
			if stale := t.cache.recover(caller, c.req, errStatus); stale != nil {
				returned = true
				drainClose(resp, t.maxDrain)
				return stale, nil
			}
		}
		returned = true
		return resp, nil
	}
	if err == nil { // the chosen attempt's response was already discarded: only when the caller left
		err = caller.Err()
		if err == nil {
			err = errors.New("httpclient: no response") // not expected: the chosen attempt's answer was discarded
		}
	}
	c.end()
	if t.cache != nil {
		if stale := t.cache.recover(caller, c.req, err); stale != nil {
			returned = true
			return stale, nil
		}
	}
	returned = true
	return nil, err
}

// abandon ends a call that a user callback's panic is leaving: every
// response obtained (won, the one RoundTrip was about to return, included)
// is drained and closed, which ends its attempt, the caller's body is
// closed unless the transport took it, and the call's context ends.
func (c *call) abandon(won *http.Response) {
	c.decide(-1)
	if won != nil {
		drainClose(won, c.t.maxDrain)
	}
	if !c.sent.Load() {
		closeBody(c.req) // the caller's body, shared by its clone
	}
	c.end()
}

// errStatus stands for a response whose status is a Failure when the cache
// decides whether to answer in its place.
var errStatus = errors.New("httpclient: failure status")

// errNotReturned names, on an attempt's span, a user callback that
// panicked or exited its goroutine.
var errNotReturned = errors.New("httpclient: a callback panicked or exited its goroutine")

// call is one request's state across its attempts.
type call struct {
	t      *Transport
	req    *http.Request // the request sent: the caller's, or its clone with an Idempotency-Key
	key    string
	caller context.Context
	ctx    context.Context    // the call's: the caller's, made cancellable for a Concurrent Wrapper
	total  time.Time          // the total deadline, zero for none
	cancel context.CancelFunc // ends ctx; nil when ctx is the caller's
	sent   atomic.Bool        // the caller's own req.Body went to the transport
	first  body               // attempt 0's body wrapper, allocated with the call

	mu      sync.Mutex
	resps   []*http.Response  // by attempt number; nil once discarded
	resp0   [1]*http.Response // resps' first backing array: one attempt allocates none
	decided bool
	last    string // the endpoint of the latest attempt, for the next to avoid
}

// Attempt runs attempt n: a call is the bulwark.Attempter of its attempts.
func (c *call) Attempt(ctx context.Context, n int) bulwark.Result {
	t := c.t
	if n > 0 && !t.stack.Concurrent() {
		// One attempt after another: every earlier answer failed and will
		// never be chosen. (A hedge's earlier attempts may still win.)
		c.discardBefore(n)
	}
	b := &c.first
	if n > 0 {
		b = new(body)
	}
	var span trace.Span
	if trace.SpanFromContext(ctx).IsRecording() {
		ctx, span = t.startSpan(ctx, c.req, n)
	}
	avoid := ""
	if n > 0 {
		c.mu.Lock()
		avoid = c.last
		c.mu.Unlock()
	}
	if err := t.stack.EnterBy(ctx, c.key, c.total, avoid, &b.a); err != nil {
		endSpan(span, 0, bulwark.Ignored, err)
		return bulwark.Result{Outcome: bulwark.Ignored, Err: err}
	}
	// Until the attempt is ended or its response handed on, a panic in a
	// user callback (GetBody, the next RoundTripper, ClassifyStatus) ends
	// it here: with the response's body closed, as Ignored (its outcome
	// unknown), or as a Failure when the next RoundTripper did not return.
	var resp *http.Response
	held, sending := true, false
	defer func() {
		if !held {
			return
		}
		o := bulwark.Ignored
		if sending {
			o = bulwark.Failure
			if n == 0 {
				c.sent.Store(false) // the transport did not finish with the caller's body
			}
		}
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		b.a.Done(o)
		endSpan(span, 0, o, errNotReturned)
	}()
	r := c.req.WithContext(b.a.Context())
	if addr := b.a.Endpoint(); addr != "" {
		// The picked instance: a copy of the URL (the caller's is never
		// touched) with its address, and the Host header kept.
		c.mu.Lock()
		c.last = addr
		c.mu.Unlock()
		u := *r.URL
		u.Host = addr
		r.URL = &u
		if r.Host == "" {
			r.Host = c.req.URL.Host
		}
	}
	if n > 0 && r.Body != nil && r.Body != http.NoBody {
		rb, err := r.GetBody()
		if err != nil {
			held = false
			b.a.Done(bulwark.Ignored)
			err = fmt.Errorf("httpclient: replaying the request body: %w", err)
			endSpan(span, 0, bulwark.Ignored, err)
			return bulwark.Result{Outcome: bulwark.Ignored, Err: err, Final: true}
		}
		r.Body = rb
	} else if n == 0 {
		c.sent.Store(true)
	}
	sending = true
	resp, err := t.next.RoundTrip(r)
	sending = false
	if err != nil {
		held = false
		o, err := b.a.Finish(err)
		endSpan(span, 0, o, err)
		return t.checked(ctx, nil, bulwark.Result{Outcome: o, Err: err})
	}
	o := t.status(resp.StatusCode)
	var push time.Duration
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if v := resp.Header.Get("Retry-After"); v != "" {
			if d, ok := retry.ParseRetryAfter(v, time.Now()); ok {
				push = d
			}
		}
	}
	held = false // b ends the attempt from here on
	b.c, b.o, b.status, b.span, b.rc = c, o, resp.StatusCode, span, resp.Body
	resp.Request = c.req
	if resp.Body == nil || resp.Body == http.NoBody {
		b.finish(o) // nothing to read: the attempt is over
	} else {
		resp.Body = b
		if o == bulwark.Failure && t.wrapper != nil {
			c.settle(resp, b)
		}
	}
	c.mu.Lock()
	late := c.decided
	if !late {
		if c.resps == nil {
			c.resps = c.resp0[:0]
		}
		for len(c.resps) <= n {
			c.resps = append(c.resps, nil)
		}
		c.resps[n] = resp
	}
	c.mu.Unlock()
	if late { // a hedge that lost after the call was decided
		drainClose(resp, t.maxDrain)
	}
	return t.checked(ctx, resp, bulwark.Result{Outcome: o, Pushback: push})
}

// checked applies Config.CheckRetry, if any, to an attempt's result.
func (t *Transport) checked(ctx context.Context, resp *http.Response, res bulwark.Result) bulwark.Result {
	if t.check == nil {
		return res
	}
	again, err := t.check(ctx, resp, res.Err)
	switch {
	case err != nil:
		res.Final = true
		if resp == nil {
			res.Err = err
		}
	case again:
		res.Outcome = bulwark.Failure
	default:
		res.Final = true
	}
	return res
}

// settle ends a failed attempt that a retry or a hedge may follow, so that
// it holds no guard (bulkhead slot, breaker trial, balancer load) and no
// connection through the backoff or the next attempt: a body of at most MaxDrain bytes is read into
// memory, the connection released and the attempt ended; the response
// keeps the bytes, in case it is the answer after all. A longer body stays
// as it was, held until the next attempt starts or the caller reads it.
func (c *call) settle(resp *http.Response, b *body) {
	data, err := io.ReadAll(io.LimitReader(b.rc, c.t.maxDrain+1))
	if err == nil && int64(len(data)) <= c.t.maxDrain {
		_ = b.rc.Close()
		b.finish(b.o)
		resp.Body = io.NopCloser(bytes.NewReader(data))
		return
	}
	resp.Body = &prefixed{Reader: io.MultiReader(bytes.NewReader(data), b), body: b}
}

// prefixed is a body whose first bytes were read ahead.
type prefixed struct {
	io.Reader
	body *body
}

func (p *prefixed) Close() error { return p.body.Close() }

// discardBefore drains and closes the responses of attempts before n.
func (c *call) discardBefore(n int) {
	c.mu.Lock()
	var drop []*http.Response
	for i := 0; i < n && i < len(c.resps); i++ {
		if c.resps[i] != nil {
			drop = append(drop, c.resps[i])
			c.resps[i] = nil
		}
	}
	c.mu.Unlock()
	for _, r := range drop {
		drainClose(r, c.t.maxDrain)
	}
}

// decide ends the attempts: it returns attempt n's response, if it has
// one, marked to end the call when its body is done, and discards every
// other. Later responses (hedges still running) are discarded as they come.
func (c *call) decide(n int) *http.Response {
	c.mu.Lock()
	c.decided = true
	var won *http.Response
	var drop []*http.Response
	for i, r := range c.resps {
		switch {
		case r == nil:
		case i == n:
			won = r
		default:
			drop = append(drop, r)
		}
	}
	c.resps, c.resp0[0] = nil, nil
	c.mu.Unlock()
	for _, r := range drop {
		drainClose(r, c.t.maxDrain)
	}
	if won == nil {
		return nil
	}
	kept := false
	defer func() {
		if !kept { // the fallback's Key or ClassifyStatus panicked
			drainClose(won, c.t.maxDrain)
		}
	}()
	b, ok := won.Body.(*body)
	if p, read := won.Body.(*prefixed); read {
		b, ok = p.body, true // a failure's body, read ahead in part: the rest is to come
	}
	if ok {
		b.winner = true // before the caller has the body: nothing reads it yet
		if c.t.cache != nil && b.o == bulwark.Success {
			b.capture = c.t.cache.capture(c.req, won)
		}
		kept = true
		return won
	}
	// No body to wait for: the call is over now.
	if c.t.cache != nil && c.t.status(won.StatusCode) == bulwark.Success {
		if cp := c.t.cache.capture(c.req, won); cp != nil {
			cp.done()
		}
	}
	c.end()
	kept = true
	return won
}

// end closes the call: it ends the call's context, when it has one.
func (c *call) end() {
	if c.cancel != nil {
		c.cancel()
	}
}

func (t *Transport) startSpan(ctx context.Context, req *http.Request, n int) (context.Context, trace.Span) {
	attrs := make([]attribute.KeyValue, 0, 4)
	if m := req.Method; idempotentMethod(m) || m == http.MethodPost || m == http.MethodPatch || m == http.MethodConnect {
		if m == "" {
			m = http.MethodGet
		}
		attrs = append(attrs, attribute.String("http.request.method", m))
	}
	attrs = append(attrs, attribute.String("server.address", req.URL.Hostname()))
	if p := req.URL.Port(); p != "" {
		attrs = append(attrs, attribute.String("server.port", p))
	}
	if n > 0 {
		attrs = append(attrs, attribute.Int("http.request.resend_count", n))
	}
	return t.tracer.Start(ctx, "bulwark.http.attempt", trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
}

func endSpan(span trace.Span, status int, o bulwark.Outcome, err error) {
	if span == nil {
		return
	}
	if status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	span.SetAttributes(attribute.String("bulwark.outcome", o.String()))
	if err != nil {
		span.SetAttributes(attribute.String("error.type", errorType(err)))
		span.SetStatus(codes.Error, "")
	} else if o == bulwark.Failure {
		span.SetAttributes(attribute.String("error.type", fmt.Sprint(status)))
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// errorType names an error's kind without its text, which may hold a URL.
func errorType(err error) string {
	if t := guards.ErrorType(err); t != "" {
		return t
	}
	return fmt.Sprintf("%T", err)
}

// body releases the attempt's guards when the caller is done with the
// response: at EOF, on a read error, or on Close, whichever comes first.
type body struct {
	rc      io.ReadCloser
	a       bulwark.Attempt
	o       bulwark.Outcome
	status  int
	c       *call
	span    trace.Span
	winner  bool     // the response the caller got: its end ends the call
	capture *capture // the bytes read, for the cache; nil when not cached
	ended   atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if b.capture != nil && n > 0 {
		b.capture.write(p[:n])
	}
	switch {
	case err == io.EOF:
		if b.capture != nil {
			b.capture.done()
			b.capture = nil // a Read after EOF stores nothing twice
		}
		b.finish(b.o)
	case err != nil:
		var o bulwark.Outcome
		o, err = b.a.Finish(err)
		b.finish(o)
	}
	return n, err
}

func (b *body) Close() error {
	err := b.rc.Close()
	b.finish(b.o)
	return err
}

// finish ends the attempt once; for the response the caller got, it ends
// the call too.
func (b *body) finish(o bulwark.Outcome) {
	if !b.ended.CompareAndSwap(false, true) {
		return
	}
	b.a.Done(o)
	endSpan(b.span, b.status, o, nil)
	if b.winner {
		b.c.end()
	}
}

// drainClose reads at most max bytes of a response that is discarded, so
// that its connection can be reused, and closes it.
func drainClose(resp *http.Response, max int64) {
	if resp.Body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, resp.Body, max)
	_ = resp.Body.Close()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
