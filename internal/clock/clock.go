// Package clock reads the time for deadlines at half the cost of
// time.Now on machines where reading the wall clock is slow.
//
// time.Now reads two clocks, the wall clock and the monotonic one; every
// comparison and subtraction between two Times that both carry a
// monotonic reading uses only the monotonic one. A deadline is only ever
// compared (context.WithDeadline, time.Until, net.Conn deadlines, gRPC's
// timeout header all go through time.Until), so Now reads the monotonic
// clock alone and adds what passed to an anchor read with time.Now at
// most a second earlier. The wall reading of the Time it returns is off by
// at most whatever the wall clock was stepped within that second.
package clock

import (
	"sync/atomic"
	"time"
)

// reanchor is how long an anchor serves before Now reads the wall clock
// again.
const reanchor = time.Second

var anchor atomic.Pointer[time.Time]

func init() {
	t := time.Now()
	anchor.Store(&t)
}

// Now returns the current time, with its monotonic reading exact.
func Now() time.Time {
	a := anchor.Load()
	if d := time.Since(*a); d >= 0 && d < reanchor {
		return a.Add(d)
	}
	t := time.Now()
	anchor.Store(&t)
	return t
}
