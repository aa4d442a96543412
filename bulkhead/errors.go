package bulkhead

import (
	"strconv"
	"time"

	"github.com/bulwarkrpc/bulwark"
)

// ErrFull matches (with errors.Is) every rejection by a full bulkhead. It
// matches bulwark.ErrRejected too, so bulwark.ClassifyError calls it
// Ignored: a full bulkhead is a local condition, never a failure of the
// endpoint.
var ErrFull = bulwark.RejectionError("bulkhead: full")

// Reason says why a full bulkhead rejected an attempt.
type Reason uint8

const (
	// ReasonNoQueue: every slot was busy and no queue is configured.
	ReasonNoQueue Reason = iota + 1
	// ReasonQueueFull: every slot was busy and the queue was full.
	ReasonQueueFull
	// ReasonMaxWait: the attempt waited in the queue for Config.MaxWait
	// without getting a slot.
	ReasonMaxWait
)

// String returns "no_queue", "queue_full" or "max_wait", the values of the
// bulwark.bulkhead.reason metric attribute.
func (r Reason) String() string {
	switch r {
	case ReasonNoQueue:
		return "no_queue"
	case ReasonQueueFull:
		return "queue_full"
	case ReasonMaxWait:
		return "max_wait"
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// FullError reports a rejection by a full bulkhead. It matches ErrFull and
// bulwark.ErrRejected with errors.Is; errors.As finds it.
//
// A FullError has no cause to unwrap. In particular a rejection after
// MaxWait does not match context.DeadlineExceeded: that wait is this
// process's own queueing policy, and code that reads DeadlineExceeded as
// "the deadline passed" or "the endpoint was too slow" (a classifier, a
// retry policy, a gRPC status mapping) must not mistake it for either. A
// caller whose own context ends while its attempt is queued gets ctx.Err(),
// not a FullError.
//
// Each limit builds its three FullErrors once (an adaptive limit, again
// after each change of its limit) and returns them on every rejection, so
// that rejecting allocates nothing: treat a FullError as read only.
type FullError struct {
	// Key is the key of the limit that was full: the Set key, or a
	// Bulkhead's Config.Name.
	Key string
	// Limit is that limit: how many attempts were running (for an adaptive
	// limit, the limit in force at the rejection).
	Limit int
	// Reason says why the attempt was not admitted.
	Reason Reason

	maxWait time.Duration // for the message
}

// Waited reports whether the attempt waited in the queue before it was
// refused (Reason is ReasonMaxWait): see bulwark.Waiter. An attempt over
// a Picker is then not sent to another instance to wait again.
func (e *FullError) Waited() bool { return e.Reason == ReasonMaxWait }

var _ bulwark.Waiter = (*FullError)(nil)

// Error returns, for example, `bulkhead: full: key "api", limit 8, queue full`.
func (e *FullError) Error() string {
	msg := "bulkhead: full: "
	if e.Key != "" {
		msg += "key " + strconv.Quote(e.Key) + ", "
	}
	msg += "limit " + strconv.Itoa(e.Limit) + ", "
	switch e.Reason {
	case ReasonNoQueue:
		msg += "no queue"
	case ReasonQueueFull:
		msg += "queue full"
	case ReasonMaxWait:
		msg += "waited " + e.maxWait.String() + " in queue"
	default:
		msg += e.Reason.String()
	}
	return msg
}

// Is reports whether target is ErrFull or bulwark.ErrRejected.
func (e *FullError) Is(target error) bool {
	return target == ErrFull || target == bulwark.ErrRejected
}
