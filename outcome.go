package bulwark

import (
	"context"
	"errors"
	"strconv"
)

// Outcome is how one attempt ended, as every policy sees it. The zero value
// is Success.
type Outcome uint8

const (
	// Success: the endpoint answered and the answer is good.
	Success Outcome = iota
	// Failure of the endpoint: counts for breakers, ejection and adaptive
	// limits.
	Failure
	// Ignored: the caller cancelled, the caller was at fault (most 4xx), or
	// a local guard rejected the attempt before it reached the endpoint. It
	// says nothing about the endpoint's health.
	Ignored
)

// String returns "success", "failure" or "ignored".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Ignored:
		return "ignored"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// ErrRejected matches (with errors.Is) every error by which a local guard
// refused an attempt before it started: a full bulkhead, an open breaker.
// Such errors classify as Ignored: they are facts about this process, not
// about the endpoint.
var ErrRejected = errors.New("bulwark: rejected locally")

// RejectionError returns an error with the given text that matches
// ErrRejected. Guards use it to declare their sentinels, for example
// bulkhead.ErrFull.
func RejectionError(text string) error { return &rejection{text} }

type rejection struct{ text string }

func (r *rejection) Error() string        { return r.text }
func (r *rejection) Is(target error) bool { return target == ErrRejected }

// A Classifier maps the error of one attempt to its Outcome. caller is the
// caller's context (not the attempt's): when it is done, the attempt's end
// is the caller's doing and the outcome is Ignored. A Classifier must be safe
// for concurrent use.
type Classifier func(caller context.Context, err error) Outcome

// ClassifyError is the default Classifier:
//
//   - nil is Success;
//   - anything while the caller's context is done is Ignored: the caller
//     cancelled or its own deadline passed (Stack.Classify hides the end of
//     the Stack's own total deadline, which is no doing of the caller's);
//   - a local rejection (errors.Is ErrRejected) is Ignored;
//   - context.Canceled while the caller's context is live is Ignored: the
//     toolkit cancelled the attempt itself, as it does to a losing hedge;
//   - context.DeadlineExceeded while the caller's context is live is a
//     Failure: our own attempt or total deadline fired;
//   - any other error (refused, reset, DNS) is a Failure.
//
// ClassifyError knows no transport. The adapters add theirs on top: the gRPC
// adapter maps status codes through ClassifyGRPCCode, the HTTP adapter maps
// response codes through ClassifyHTTPStatus.
func ClassifyError(caller context.Context, err error) Outcome {
	if err == nil {
		return Success
	}
	if caller.Err() != nil || errors.Is(err, ErrRejected) || errors.Is(err, context.Canceled) {
		return Ignored
	}
	return Failure
}

// ClassifyHTTPStatus classifies an HTTP response status code: 5xx except 501
// (Not Implemented is a fact about the request, not the server's health) and
// 429 are Failures; other 4xx are Ignored (the caller's fault); everything
// else is Success.
func ClassifyHTTPStatus(code int) Outcome {
	switch {
	case code == 501: // Not Implemented
		return Ignored
	case code >= 500, code == 429: // 429 Too Many Requests
		return Failure
	case code >= 400:
		return Ignored
	}
	return Success
}

// ClassifyGRPCCode classifies a gRPC status code (the numbers of the gRPC
// specification, the values of google.golang.org/grpc/codes) returned while
// the caller's context is live: Unavailable, DeadlineExceeded,
// ResourceExhausted, Internal and Unknown are Failures; OK is Success; every
// other code (Canceled, InvalidArgument, NotFound, PermissionDenied, ...) is
// Ignored. The caller's own cancellation or deadline must be checked first
// (ClassifyError does): then every code is Ignored.
//
// It takes a uint32 so that this package, which every policy imports, does
// not import grpc: call it as ClassifyGRPCCode(uint32(status.Code(err))).
func ClassifyGRPCCode(code uint32) Outcome {
	const (
		ok                = 0
		unknown           = 2
		deadlineExceeded  = 4
		resourceExhausted = 8
		internal          = 13
		unavailable       = 14
	)
	switch code {
	case ok:
		return Success
	case unavailable, deadlineExceeded, resourceExhausted, internal, unknown:
		return Failure
	}
	return Ignored
}
