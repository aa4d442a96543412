package grpcclient

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// StreamClientInterceptor returns the interceptor of streams (server-,
// client- and bidirectional streaming). A stream passes the breaker and the
// bulkhead of its key when it is created. The breaker judges the stream by
// its start: it learns the stream's outcome when the stream first answers
// — RecvMsg returns a message, or Header returns the server's header — or
// ends, whichever comes first, so that a healthy stream that lives for
// hours is a success (and a half-open trial ends) as soon as it answers.
// The bulkhead slot is held until the stream ends. A stream that neither
// answers nor ends is still running for the breaker: a half-open trial
// that does so past the breaker's TrialTimeout is given up as failed. A
// stream ends when RecvMsg returns an error (io.EOF is a success), when
// a client-streaming call's reply is received, when SendMsg or Header
// returns an error other than io.EOF, when its context ends — the caller
// cancelled it, or its deadline or StreamTimeout passed — or when the
// ClientConn closes; grpc-go reports each of these once, through
// grpc.OnFinish, on whichever goroutine ended the stream. A stream the
// caller abandons is therefore released when its context ends, as grpc-go
// itself requires: a stream whose context never ends, and which is never
// read to its end, holds its slot (and grpc-go's goroutine) for ever.
//
// Errors are those of the unary interceptor, for the creation of the
// stream and for its RecvMsg, SendMsg and Header: a stream that outlived
// StreamTimeout fails with DeadlineExceeded matching timeout.ErrTimeout.
// Streams are neither hedged nor given a fallback.
func (ic *Interceptors) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return ic.streamCall
}

func (ic *Interceptors) streamCall(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	key := ic.keyOf(cc, method) // user code: before the span, which a panic would leave open
	s := &clientStream{}
	if trace.SpanFromContext(ctx).IsRecording() {
		ctx, s.span = ic.startSpan(ctx, method, 0)
	}
	if ic.streamJudge != nil {
		if err := ic.streamJudge.EnterBy(ctx, key, time.Time{}, "", &s.judge); err != nil {
			err = ic.rej.refused(err)
			endSpan(s.span, bulwark.Ignored, err)
			return nil, err
		}
	}
	held := false
	defer func() {
		if !held { // the bulkhead refused the stream, or panicked
			s.judge.Done(bulwark.Ignored) // a zero Attempt's Done does nothing
		}
	}()
	if err := ic.streams.EnterBy(ctx, key, time.Time{}, "", &s.a); err != nil {
		err = ic.rej.refused(err)
		endSpan(s.span, bulwark.Ignored, err)
		return nil, err
	}
	held = true
	s.judge.Restart() // a wait in the bulkhead's queue is not the endpoint's time
	// A copy of opts with room for one more: the caller's slice is never
	// written to.
	opts = append(opts[:len(opts):len(opts)], grpc.OnFinish(s.finish))
	returned := false
	defer func() {
		if !returned {
			s.abort()
		}
	}()
	cs, err := streamer(s.a.Context(), desc, cc, method, opts...)
	returned = true
	if err != nil {
		// grpc-go has called OnFinish already, unless the stream failed
		// before reaching it (in an interceptor further in): finish is
		// idempotent.
		s.finish(err)
		return nil, s.conv(err)
	}
	s.ClientStream = cs
	return s, nil
}

// clientStream is a stream admitted by the guards. It converts the errors
// of a deadline of ours; grpc-go tells it when the stream ends.
type clientStream struct {
	grpc.ClientStream
	a     bulwark.Attempt // the stream's life: the bulkhead and StreamTimeout
	judge bulwark.Attempt // the stream's start: the breaker
	span  trace.Span
	ended atomic.Bool
}

// answer tells the breaker the stream answered; only the judge's first
// Done counts (Attempt.Done is exactly-once, safe from any goroutine).
func (s *clientStream) answer() { s.judge.Done(bulwark.Success) }

// finish ends the stream's attempt with the stream's status, err (nil for
// success), once. grpc-go calls it through grpc.OnFinish.
func (s *clientStream) finish(err error) {
	if !s.ended.CompareAndSwap(false, true) {
		return
	}
	// Finish ends the life's attempt even when the Classifier panics; the
	// judge's permit (a breaker's half-open trial, maybe) must not be lost
	// with it: its outcome is unknown, Ignored, and the panic goes on.
	classified := false
	defer func() {
		if !classified {
			s.judge.Done(bulwark.Ignored)
			endSpan(s.span, bulwark.Ignored, err)
		}
	}()
	settle(s.a.Context(), err)
	o, err := s.a.Finish(err)
	classified = true
	s.judge.Done(o) // no effect if the stream answered before
	endSpan(s.span, o, ours(err))
}

// abort ends the attempt of a streamer that did not return.
func (s *clientStream) abort() {
	if !s.ended.CompareAndSwap(false, true) {
		return
	}
	s.a.Done(bulwark.Failure)
	s.judge.Done(bulwark.Failure)
	endSpan(s.span, bulwark.Failure, errNotReturned)
}

// conv converts an error of the stream: a deadline of ours becomes a
// DeadlineExceeded error matching timeout.ErrTimeout.
func (s *clientStream) conv(err error) error {
	settle(s.a.Context(), err)
	return ours(timeout.Wrap(s.a.Context(), err))
}

// RecvMsg receives a message; see grpc.ClientStream.
func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err == nil:
		s.answer()
	case err != io.EOF:
		return s.conv(err)
	}
	return err
}

// SendMsg sends a message; see grpc.ClientStream.
func (s *clientStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err != nil && err != io.EOF {
		return s.conv(err)
	}
	return err
}

// Header returns the header metadata; see grpc.ClientStream.
func (s *clientStream) Header() (metadata.MD, error) {
	md, err := s.ClientStream.Header()
	if err != nil {
		return md, s.conv(err)
	}
	if md != nil { // nil: the stream ended with no header (see finish)
		s.answer()
	}
	return md, nil
}
