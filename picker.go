package bulwark

import "context"

// A Picker chooses the endpoint of each attempt: it is the balancer pick of
// the composition order, inside the Wrapper (so that a retry picks again)
// and outside the per-endpoint guards (which then keep their state per
// endpoint address). A Picker is a Guard whose Enter is a Pick that avoids
// nothing; the Permit it returns reports the attempt's outcome to the
// balancer (latency, ejection). It must be safe for concurrent use.
type Picker interface {
	Guard
	// Pick chooses an endpoint for one attempt of a call to key (the
	// service). avoid is the endpoint the call's previous attempt went to
	// ("" for the first): a Picker picks another when one is available, so
	// that a retry or a hedge goes elsewhere. It returns the endpoint's
	// address and a Permit; with no endpoint to offer, an error matching
	// ErrNoEndpoint, at once.
	Pick(ctx context.Context, key, avoid string) (addr string, p Permit, err error)
}

// ErrNoEndpoint is the refusal of a Picker that has no endpoint to offer
// (none known, or every one is excluded). It matches ErrRejected.
var ErrNoEndpoint = RejectionError("bulwark: no endpoint available")

type endpointKey struct{}

// EndpointOf returns the endpoint address a Picker chose for the attempt
// whose context is ctx, under Do; "" without a Picker.
func EndpointOf(ctx context.Context) string {
	s, _ := ctx.Value(endpointKey{}).(string)
	return s
}
