package grpcclient

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bulwarkrpc/bulwark"
)

// UnaryClientInterceptor returns the interceptor of unary calls. Each call
// passes, in order: the method's fallback (a fresh cached reply answers
// without calling), the total deadline, the method's hedge, the breaker and
// the bulkhead of the call's key, and the attempt deadline, which is the
// deadline of the context given to the next invoker, and so is sent to the
// server. It calls the invoker once per attempt: once, or once per hedged
// attempt; grpc-go's own retries happen inside that invoker.
//
// The error it returns is the invoker's own, or one of its own that carries
// a gRPC status (status.Code works) and matches its cause with errors.Is:
// an open breaker is Unavailable and matches breaker.ErrOpen, a full
// bulkhead is ResourceExhausted and matches bulkhead.ErrFull (both match
// bulwark.ErrRejected), a deadline of ours is DeadlineExceeded and matches
// timeout.ErrTimeout and context.DeadlineExceeded, and a caller's context
// that ended before the call started is Canceled or DeadlineExceeded and
// matches the context's error.
func (ic *Interceptors) UnaryClientInterceptor() grpc.UnaryClientInterceptor { return ic.unaryCall }

func (ic *Interceptors) unaryCall(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	p := ic.policyOf(method)
	msg, isProto := reply.(proto.Message)
	if p == nil || !isProto { // neither hedging nor a fallback can copy a reply that is not a proto.Message
		_, err := ic.attempt(ctx, ic.total(ctx), ic.keyOf(cc, method), method, req, reply, cc, invoker, opts, 0)
		return err
	}
	if p.fallback == nil {
		return ic.call(ctx, p, method, req, msg, cc, invoker, opts)
	}
	return ic.withFallback(ctx, p, method, req, msg, cc, invoker, opts)
}

// call runs a unary call of a method with a policy: hedged or not.
func (ic *Interceptors) call(ctx context.Context, p *policy, method string, req any, reply proto.Message, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	key := ic.keyOf(cc, method)
	if p.hedge == nil {
		_, err := ic.attempt(ctx, ic.total(ctx), key, method, req, reply, cc, invoker, opts, 0)
		return err
	}
	total := ic.unary.Deadline(ctx)
	h := &hedgedCall{ic: ic, key: key, method: method, total: total, req: req, reply: reply,
		typ: reply.ProtoReflect().Type(), cc: cc, invoker: invoker, opts: opts}
	// The Hedge leaves the winner's context alive: the call is over when
	// this returns. Its attempts share one record of where each went, so
	// that over DiscoveryDialOptions a hedge avoids the first attempt's
	// instance whatever the order of the interceptors.
	ctx, cancel := context.WithCancel(withAttempts(ctx))
	defer cancel()
	n, err := p.hedge.Run(ctx, bulwark.Call{Idempotent: true, Attempts: h, Deadline: total})
	if n > 0 && err == nil {
		// Attempt n has returned: its reply is complete and no attempt
		// writes to it any more. Attempt 0 decoded into the caller's reply
		// and has returned too (the Hedge runs it on this goroutine).
		proto.Reset(reply)
		proto.Merge(reply, h.replyOf(n))
	}
	return err
}

// attempt runs one attempt of a unary call through the Stack's guards and
// attempt deadline, and returns its outcome and the error for the caller.
func (ic *Interceptors) attempt(ctx context.Context, total time.Time, key, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption, n int) (bulwark.Outcome, error) {
	var span trace.Span
	if trace.SpanFromContext(ctx).IsRecording() {
		ctx, span = ic.startSpan(ctx, method, n)
	}
	var a bulwark.Attempt
	if err := ic.unary.EnterBy(ctx, key, total, "", &a); err != nil {
		err = ic.rej.refused(err)
		endSpan(span, bulwark.Ignored, err)
		return bulwark.Ignored, err
	}
	// Not recover(): it would miss runtime.Goexit and lose the panic's
	// stack. An invoker that did not return is the endpoint's Failure.
	returned := false
	defer func() {
		if !returned {
			a.Done(bulwark.Failure)
			endSpan(span, bulwark.Failure, errNotReturned)
		}
	}()
	err := invoker(a.Context(), method, req, reply, cc, opts...)
	returned = true
	settle(a.Context(), err)
	o, err := a.Finish(err)
	err = ours(err)
	endSpan(span, o, err)
	return o, err
}

var errNotReturned = errors.New("grpcclient: the invoker panicked or exited its goroutine")

// hedgedCall is one hedged unary call: the bulwark.Attempter the Hedge
// runs. Attempt 0 decodes into the caller's reply; every other attempt
// into a reply of its own, so that no two attempts ever write to the same
// message.
type hedgedCall struct {
	ic      *Interceptors
	key     string
	method  string
	total   time.Time
	req     any
	reply   proto.Message
	typ     protoreflect.MessageType // of reply, read once before any attempt starts
	cc      *grpc.ClientConn
	invoker grpc.UnaryInvoker
	opts    []grpc.CallOption

	mu      sync.Mutex
	replies []proto.Message // attempt n's at replies[n-1]
}

// Attempt runs attempt n.
func (h *hedgedCall) Attempt(ctx context.Context, n int) bulwark.Result {
	reply := h.reply
	if n > 0 {
		reply = h.typ.New().Interface()
		h.mu.Lock()
		for len(h.replies) < n {
			h.replies = append(h.replies, nil)
		}
		h.replies[n-1] = reply
		h.mu.Unlock()
	}
	o, err := h.ic.attempt(ctx, h.total, h.key, h.method, h.req, reply, h.cc, h.invoker, h.opts, n)
	return bulwark.Result{Outcome: o, Err: err}
}

func (h *hedgedCall) replyOf(n int) proto.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.replies[n-1]
}

// withFallback runs a unary call of a method with a fallback.
func (ic *Interceptors) withFallback(ctx context.Context, p *policy, method string, req any, reply proto.Message, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	reqMsg, _ := req.(proto.Message)
	key := method
	if p.cache {
		if key = p.cacheKey(method, reqMsg); key == "" {
			return ic.call(ctx, p, method, req, reply, cc, invoker, opts) // opted out of the cache
		}
		if v, ok := p.fallback.Lookup(ctx, key); ok && copyReply(reply, v) {
			return nil
		}
	}
	err := ic.call(ctx, p, method, req, reply, cc, invoker, opts)
	if err == nil {
		if p.cache {
			p.fallback.Store(ctx, key, proto.Clone(reply)) // the caller owns reply
		}
		return nil
	}
	rctx := ctx
	if p.fn {
		rctx = context.WithValue(ctx, fnCallKey{}, &fnCall{method: method, req: reqMsg, reply: reply})
	}
	v, ferr := p.fallback.Recover(rctx, key, nil, err)
	switch {
	case ferr != nil:
		return ferr
	case v == reply: // a Func filled in the caller's reply
		return nil
	case copyReply(reply, v):
		return nil
	}
	return err // a fallback reply of another type cannot answer
}

// copyReply copies src into dst, which it resets first, when both are
// messages of the same type; the caller's reply never shares memory with a
// default or cached reply.
func copyReply(dst, src proto.Message) bool {
	if src == nil || dst.ProtoReflect().Descriptor().FullName() != src.ProtoReflect().Descriptor().FullName() {
		return false
	}
	proto.Reset(dst)
	proto.Merge(dst, src)
	return true
}
