package grpcclient

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/internal/guards"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// statusError is an error of this package: a refusal by a guard, a deadline
// of ours, or the caller's context ending before the call started. It
// carries a gRPC status, so that status.Code and status.FromError work on
// it, and unwraps to its cause, so that errors.Is still matches
// breaker.ErrOpen, bulkhead.ErrFull, timeout.ErrTimeout, bulwark.ErrRejected
// or the context's error.
type statusError struct {
	st  *status.Status
	err error
}

func (e *statusError) Error() string { return e.err.Error() }

func (e *statusError) Unwrap() error { return e.err }

// GRPCStatus returns the error's status; status.FromError and status.Code
// find it.
func (e *statusError) GRPCStatus() *status.Status { return e.st }

func newStatusError(c codes.Code, err error) *statusError {
	return &statusError{st: status.New(c, err.Error()), err: err}
}

// refusalCode is the gRPC code of a guard's refusal: a full bulkhead is a
// local shortage of resources (ResourceExhausted); an open breaker, a
// balancer with no endpoint or any other refusal says that the service
// cannot be reached now (Unavailable).
func refusalCode(err error) codes.Code {
	if errors.Is(err, bulkhead.ErrFull) {
		return codes.ResourceExhausted
	}
	return codes.Unavailable
}

// errInstancesFull returns the refusal of a pick of the discovery balancer
// when every instance of service it picked was at its limit
// (DiscoveryConfig.Bulkhead): ResourceExhausted, like a full bulkhead of
// the Interceptors, and matching bulkhead.ErrFull and bulwark.ErrRejected,
// so that Classify calls it Ignored. grpc-go hands it to the interceptors
// as the invoker's error, as it is. Each balancer makes it once, so that
// refusing allocates nothing.
func errInstancesFull(service string) error {
	return newStatusError(codes.ResourceExhausted,
		fmt.Errorf("grpcclient: every instance of %q picked is at its limit: %w", service, bulkhead.ErrFull))
}

// rejections remembers the status error made for the latest refusal, so
// that the refusals of one open breaker (which hands every attempt the same
// *breaker.OpenError) or one full bulkhead allocate nothing after the first.
type rejections struct{ last atomic.Pointer[statusError] }

// refused converts the error by which Stack.EnterBy refused an attempt: a
// guard's refusal or the caller's context ending (while queued in a
// bulkhead, or before the call started) becomes a *statusError.
func (r *rejections) refused(err error) error {
	// last.err is always a pointer (see cacheable): comparing it with an
	// error of another dynamic type cannot panic.
	if last := r.last.Load(); last != nil && last.err == err {
		return last
	}
	switch {
	case errors.Is(err, bulwark.ErrRejected):
		e := newStatusError(refusalCode(err), err)
		if cacheable(err) {
			r.last.Store(e)
		}
		return e
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &statusError{st: status.FromContextError(err), err: err}
	}
	return err
}

// cacheable reports the refusals that guards hand out again and again as
// the same pointer.
func cacheable(err error) bool {
	switch err.(type) {
	case *breaker.OpenError, *bulkhead.FullError:
		return true
	}
	return err == bulwark.ErrNoEndpoint
}

// ours converts the error of a finished attempt: a deadline of ours (a
// *timeout.Error, as Attempt.Finish annotates it) becomes a *statusError
// with code DeadlineExceeded; any other error, the invoker's own status
// error included, is returned as it is.
func ours(err error) error {
	if e, ok := err.(*timeout.Error); ok {
		return newStatusError(codes.DeadlineExceeded, e)
	}
	return err
}

// settle waits, when err is a DeadlineExceeded status and ctx's deadline
// has passed, for ctx to end. gRPC may report the deadline a moment before
// the context's own timer fires — the server's timer fired first, or the
// transport read the clock — and only the ended context's cause tells whose
// deadline it was: ours (a Failure of the endpoint) or the caller's
// (Ignored). The wait is short: the deadline has passed, so the timer is
// due.
func settle(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil {
		return
	}
	dl, ok := ctx.Deadline()
	if !ok || time.Now().Before(dl) {
		return
	}
	if c, _ := codeOf(err); c != codes.DeadlineExceeded {
		return
	}
	<-ctx.Done()
}

// grpcStatus is what status.FromError looks for.
type grpcStatus interface{ GRPCStatus() *status.Status }

// codeOf returns the gRPC code err carries, itself or through any error it
// wraps, and whether it carries one.
func codeOf(err error) (codes.Code, bool) {
	if gs, ok := err.(grpcStatus); ok {
		if st := gs.GRPCStatus(); st != nil {
			return st.Code(), true
		}
		return codes.Unknown, true
	}
	var gs grpcStatus
	if errors.As(err, &gs) {
		if st := gs.GRPCStatus(); st != nil {
			return st.Code(), true
		}
		return codes.Unknown, true
	}
	return codes.OK, false
}

// Classify is the default bulwark.Classifier of gRPC calls:
//
//   - nil is Success;
//   - anything while the caller's context is done is Ignored: the caller
//     cancelled, or its own deadline passed (a Stack hides the end of its
//     own total deadline from this test, see bulwark.Stack.Classify);
//   - a local refusal (errors.Is bulwark.ErrRejected: an open breaker, a
//     full bulkhead, every instance at its limit in the discovery
//     balancer's picks) is Ignored, whatever its code;
//   - an error carrying a gRPC status, itself or through an error it wraps,
//     is classified by its code with bulwark.ClassifyGRPCCode: Unavailable,
//     DeadlineExceeded, ResourceExhausted, Internal and Unknown are
//     Failures, every other code (Canceled, InvalidArgument, NotFound, ...)
//     is Ignored. A deadline of ours wraps the invoker's DeadlineExceeded:
//     a Failure. A hedge cancelled because another attempt won ends with
//     Canceled: Ignored;
//   - any other error is classified by bulwark.ClassifyError.
//
// It is safe for concurrent use and allocates nothing for an error that is
// itself a status error (every error the gRPC invoker returns).
func Classify(caller context.Context, err error) bulwark.Outcome {
	return classifyBy(caller, err, bulwark.ClassifyGRPCCode)
}

// ClassifyCodes returns a bulwark.Classifier that applies the rules of
// Classify with code in place of bulwark.ClassifyGRPCCode for errors that
// carry a gRPC status: the caller's own cancellation and deadline, and local
// refusals, stay Ignored whatever code says. A nil code means
// bulwark.ClassifyGRPCCode.
func ClassifyCodes(code func(codes.Code) bulwark.Outcome) bulwark.Classifier {
	if code == nil {
		return Classify
	}
	return func(caller context.Context, err error) bulwark.Outcome {
		return classifyBy(caller, err, func(c uint32) bulwark.Outcome { return code(codes.Code(c)) })
	}
}

func classifyBy(caller context.Context, err error, code func(uint32) bulwark.Outcome) bulwark.Outcome {
	if err == nil {
		return bulwark.Success
	}
	if caller.Err() != nil || errors.Is(err, bulwark.ErrRejected) {
		return bulwark.Ignored
	}
	if c, ok := codeOf(err); ok {
		return code(uint32(c))
	}
	return bulwark.ClassifyError(caller, err)
}

// errorType names an error's kind for the error.type span attribute,
// without its text.
func errorType(err error) string {
	if c, ok := codeOf(err); ok && !errors.Is(err, bulwark.ErrRejected) && !errors.Is(err, timeout.ErrTimeout) {
		return c.String() // a status from the server or grpc-go
	}
	if t := guards.ErrorType(err); t != "" {
		return t
	}
	if c, ok := codeOf(err); ok {
		return c.String()
	}
	return "_OTHER"
}
