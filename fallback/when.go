package fallback

import (
	"context"
	"errors"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// Default is the rule every fallback of this package applies when its
// Config.When is nil; adapters reuse it. It reports whether a call that
// ended with err, for a caller whose context is ctx, should be answered by
// a fallback:
//
//   - nil: no, there is nothing to replace;
//   - the caller's context ended (it cancelled, or its deadline passed,
//     even one an outer bulwark Stack set): no, whatever err is — the
//     caller is gone, and a Pipeline's own total deadline lives below the
//     fallback, never on ctx;
//   - a local rejection (errors.Is bulwark.ErrRejected: an open breaker, a
//     full bulkhead): yes;
//   - a deadline of ours (errors.Is timeout.ErrTimeout): yes;
//   - otherwise yes exactly when bulwark.ClassifyError calls err a
//     Failure of the endpoint; an Ignored error (the caller's fault, an
//     attempt the toolkit cancelled itself) gets no fallback.
func Default(ctx context.Context, err error) bool {
	return decide(ctx, err, bulwark.ClassifyError)
}

// DefaultFor returns the rule of Default with classify in place of
// bulwark.ClassifyError, so that a fallback agrees with a Stack whose
// Classifier is not the default: pass the Stack's Classify method. A nil
// classify means bulwark.ClassifyError.
func DefaultFor(classify bulwark.Classifier) func(ctx context.Context, err error) bool {
	if classify == nil {
		return Default
	}
	return func(ctx context.Context, err error) bool { return decide(ctx, err, classify) }
}

func decide(ctx context.Context, err error, classify bulwark.Classifier) bool {
	switch {
	case err == nil:
		return false
	case ctx.Err() != nil:
		return false // the caller is gone
	case errors.Is(err, bulwark.ErrRejected), errors.Is(err, timeout.ErrTimeout):
		return true
	}
	return classify(ctx, err) == bulwark.Failure
}

// callerLeft reports whether the caller's context ended.
func callerLeft(ctx context.Context) bool { return ctx.Err() != nil }

// should applies when (nil: Default) to a failed call, after the rule no
// When may override: a caller who left gets no fallback.
func should(ctx context.Context, err error, when func(context.Context, error) bool) bool {
	if err == nil || callerLeft(ctx) {
		return false
	}
	if when == nil {
		return Default(ctx, err)
	}
	return when(ctx, err)
}
