package grpcclient

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
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
// attempt; grpc-go's own retries happen inside that invoker. A hedged call
// returns once every attempt it started has returned (the losers are
// cancelled), and its call options see one call, the winner's: grpc.Header,
// grpc.Trailer and grpc.Peer get the winning attempt's, and grpc.OnFinish
// callbacks run once, with the call's error.
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
	h.outputs()
	// The Hedge leaves the winner's context alive: the call is over when
	// this returns. Its attempts share one record of where each went, so
	// that over DiscoveryDialOptions a hedge avoids the first attempt's
	// instance whatever the order of the interceptors.
	ctx, cancel := context.WithCancel(withAttempts(ctx))
	defer cancel()
	n, err := p.hedge.Run(ctx, bulwark.Call{Idempotent: true, Attempts: h, Deadline: total})
	// The Hedge returns once the result is decided, while cancelled losers
	// may still be running: wait for them, so that none reads the caller's
	// request or writes to its call options once the caller has them back.
	cancel()
	h.wait()
	if n > 0 && err == nil {
		// Attempt n has returned: its reply is complete and no attempt
		// writes to it any more. Attempt 0 decoded into the caller's reply
		// and has returned too (the Hedge runs it on this goroutine).
		proto.Reset(reply)
		proto.Merge(reply, h.replyOf(n))
	}
	h.copyOut(n, err)
	return err
}

// attempt runs one attempt of a unary call through the Stack's guards and
// attempt deadline, and returns its outcome and the error for the caller.
func (ic *Interceptors) attempt(ctx context.Context, total time.Time, key, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption, n int) (bulwark.Outcome, error) {
	var span trace.Span
	if trace.SpanFromContext(ctx).IsRecording() {
		ctx, span = ic.startSpan(ctx, method, n)
	}
	// Not recover(): it would miss runtime.Goexit and lose the panic's
	// stack. A guard that panicked (a breaker's OnStateChange) leaves the
	// attempt unadmitted; an invoker that did not return is the endpoint's
	// Failure; a Classifier that panicked leaves the outcome unknown
	// (Finish ends the attempt Ignored). The span is ended all the same.
	var a bulwark.Attempt
	var err error
	const entering, running, finishing, over = 0, 1, 2, 3
	stage := entering
	defer func() {
		switch stage {
		case entering:
			endSpan(span, bulwark.Ignored, errNotReturned)
		case running:
			a.Done(bulwark.Failure)
			endSpan(span, bulwark.Failure, errNotReturned)
		case finishing:
			endSpan(span, bulwark.Ignored, err)
		}
	}()
	if err = ic.unary.EnterBy(ctx, key, total, "", &a); err != nil {
		stage = over
		err = ic.rej.refused(err)
		endSpan(span, bulwark.Ignored, err)
		return bulwark.Ignored, err
	}
	stage = running
	err = invoker(a.Context(), method, req, reply, cc, opts...)
	stage = finishing
	settle(a.Context(), err)
	o, err := a.Finish(err)
	stage = over
	err = ours(err)
	endSpan(span, o, err)
	return o, err
}

var errNotReturned = errors.New("grpcclient: a guard, the invoker or the Classifier panicked or exited its goroutine")

// hedgedCall is one hedged unary call: the bulwark.Attempter the Hedge
// runs. Attempt 0 decodes into the caller's reply; every other attempt
// into a reply of its own, so that no two attempts ever write to the same
// message. The same goes for what the caller's call options write (the
// header, the trailer, the peer): attempt 0 writes the caller's, every
// other attempt its own, and the winner's are copied out. The caller's
// OnFinish callbacks are taken out of every attempt's options and called
// once, with the call's error.
type hedgedCall struct {
	ic       *Interceptors
	key      string
	method   string
	total    time.Time
	req      any
	reply    proto.Message
	typ      protoreflect.MessageType // of reply, read once before any attempt starts
	cc       *grpc.ClientConn
	invoker  grpc.UnaryInvoker
	opts     []grpc.CallOption // attempt 0's
	caller   []grpc.CallOption // the caller's own, when opts is not: it writes or calls back
	onFinish bool              // caller has OnFinish callbacks

	mu      sync.Mutex
	replies []proto.Message // attempt n's at replies[n-1]
	outs    []*callOutputs  // attempt n's at outs[n-1]; nil without caller
	running int             // attempts started and not returned
	over    bool            // the call is over: no attempt starts any more
	idle    chan struct{}   // closed when running drops to 0 once over
}

// callOutputs is what the output call options of one hedged attempt write.
type callOutputs struct {
	header, trailer metadata.MD
	peer            peer.Peer
}

// outputs finds the caller's call options that write or call back, and
// gives attempt 0 the caller's options less the OnFinish callbacks. Most
// calls have none: they cost a look at each option.
func (h *hedgedCall) outputs() {
	found := false
	for _, o := range h.opts {
		switch o.(type) {
		case grpc.OnFinishCallOption:
			h.onFinish = true
			found = true
		case grpc.HeaderCallOption, grpc.TrailerCallOption, grpc.PeerCallOption:
			found = true
		}
	}
	if !found {
		return
	}
	h.caller = h.opts
	if h.onFinish {
		h.opts = h.optsFor(nil)
	}
}

// optsFor returns the caller's options for an attempt that writes to out:
// its OnFinish callbacks left out, and its header, trailer and peer
// written to out (nil: to the caller's own, for attempt 0).
func (h *hedgedCall) optsFor(out *callOutputs) []grpc.CallOption {
	opts := make([]grpc.CallOption, 0, len(h.caller))
	for _, o := range h.caller {
		switch o.(type) {
		case grpc.OnFinishCallOption:
			continue
		case grpc.HeaderCallOption:
			if out != nil {
				o = grpc.Header(&out.header)
			}
		case grpc.TrailerCallOption:
			if out != nil {
				o = grpc.Trailer(&out.trailer)
			}
		case grpc.PeerCallOption:
			if out != nil {
				o = grpc.Peer(&out.peer)
			}
		}
		opts = append(opts, o)
	}
	return opts
}

// Attempt runs attempt n, unless the call is over.
func (h *hedgedCall) Attempt(ctx context.Context, n int) bulwark.Result {
	reply, opts := h.reply, h.opts
	var out *callOutputs
	if n > 0 {
		reply = h.typ.New().Interface()
		if h.caller != nil {
			out = &callOutputs{}
			opts = h.optsFor(out)
		}
	}
	h.mu.Lock()
	if h.over {
		// A hedge launched just before the call was decided, whose
		// goroutine got here once the call was over: it must not touch
		// the caller's request.
		h.mu.Unlock()
		return bulwark.Result{Outcome: bulwark.Ignored, Err: errCallOver}
	}
	h.running++
	if n > 0 {
		for len(h.replies) < n {
			h.replies = append(h.replies, nil)
		}
		h.replies[n-1] = reply
		if out != nil {
			for len(h.outs) < n {
				h.outs = append(h.outs, nil)
			}
			h.outs[n-1] = out
		}
	}
	h.mu.Unlock()
	defer h.returned()
	o, err := h.ic.attempt(ctx, h.total, h.key, h.method, h.req, reply, h.cc, h.invoker, opts, n)
	return bulwark.Result{Outcome: o, Err: err}
}

var errCallOver = status.Error(codes.Canceled, "grpcclient: the hedged call was over before this attempt started")

// returned counts an attempt out.
func (h *hedgedCall) returned() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running--
	if h.running == 0 && h.idle != nil {
		close(h.idle)
		h.idle = nil
	}
}

// wait ends the call: no attempt starts any more, and it returns once
// every attempt started has returned. Every attempt's context is
// cancelled by then, so it does not wait long.
func (h *hedgedCall) wait() {
	h.mu.Lock()
	h.over = true
	if h.running == 0 {
		h.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	h.idle = idle
	h.mu.Unlock()
	<-idle
}

func (h *hedgedCall) replyOf(n int) proto.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.replies[n-1]
}

// copyOut hands the caller what its call options ask for: the header,
// trailer and peer of attempt n, the winner, when it is not attempt 0
// (which wrote the caller's own), and err to its OnFinish callbacks. Every
// attempt has returned.
func (h *hedgedCall) copyOut(n int, err error) {
	if h.caller == nil {
		return
	}
	var out *callOutputs
	if n > 0 && n <= len(h.outs) {
		out = h.outs[n-1]
	}
	if out == nil && n > 0 {
		out = &callOutputs{} // it never started: nothing of a loser's stays
	}
	for _, o := range h.caller {
		switch o := o.(type) {
		case grpc.OnFinishCallOption:
			o.OnFinish(err)
		case grpc.HeaderCallOption:
			if out != nil {
				*o.HeaderAddr = out.header
			}
		case grpc.TrailerCallOption:
			if out != nil {
				*o.TrailerAddr = out.trailer
			}
		case grpc.PeerCallOption:
			if out != nil {
				*o.PeerAddr = out.peer
			}
		}
	}
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
