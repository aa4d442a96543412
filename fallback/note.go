package fallback

import (
	"context"
	"strconv"
	"time"
)

// Source says where a caller's answer came from. The zero Source is
// SourceCall.
type Source uint8

const (
	// SourceCall: the call itself answered, or failed with nothing to
	// replace it.
	SourceCall Source = iota
	// SourceValue: a Value's default replaced a failure.
	SourceValue
	// SourceFunc: a Func's result replaced a failure.
	SourceFunc
	// SourceCacheFresh: a Cache answered with a fresh value and the call
	// did not run.
	SourceCacheFresh
	// SourceCacheStale: a Cache's last good value replaced a failure. It
	// may be older than the Cache's FreshFor, up to its MaxStale.
	SourceCacheStale
)

// String returns "call", "value", "func", "cache_fresh" or "cache_stale";
// the last three are the values of the bulwark.fallback.source metric
// attribute.
func (s Source) String() string {
	switch s {
	case SourceCall:
		return "call"
	case SourceValue:
		return "value"
	case SourceFunc:
		return "func"
	case SourceCacheFresh:
		return "cache_fresh"
	case SourceCacheStale:
		return "cache_stale"
	}
	return "source(" + strconv.Itoa(int(s)) + ")"
}

// Fallback reports whether an answer from s replaced a failed call: true
// for SourceValue, SourceFunc and SourceCacheStale.
func (s Source) Fallback() bool {
	return s == SourceValue || s == SourceFunc || s == SourceCacheStale
}

// Note tells a caller where its answer came from. A caller that wants to
// know gives one to WithNote; the fallbacks of this package fill it in
// when they answer (Lookup with a fresh value, Recover with anything) and
// leave it alone otherwise, so a zero Note after the call means the call
// itself answered. An HTTP adapter turns it into response headers.
type Note struct {
	// Source is where the answer came from.
	Source Source
	// Err is the failure that the fallback replaced; nil unless
	// Source.Fallback().
	Err error
	// Age is how long ago a cached answer was stored; zero unless Source
	// is SourceCacheFresh or SourceCacheStale.
	Age time.Duration
}

type noteKey struct{}

// WithNote returns ctx carrying n, for one call: pass the result to
// Pipeline.Do (or to a fallback's Lookup and Recover) and read n when it
// returns. n belongs to that one call: sharing it between concurrent calls
// is a data race. It costs one context and keeps n on the heap; a caller
// that does not ask pays nothing.
func WithNote(ctx context.Context, n *Note) context.Context {
	return context.WithValue(ctx, noteKey{}, n)
}

// record fills in the Note carried by ctx, if any.
func record(ctx context.Context, n Note) {
	if p, _ := ctx.Value(noteKey{}).(*Note); p != nil {
		*p = n
	}
}
