package fleet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Behavior is what an endpoint does with each request while it is in
// force. The zero Behavior answers every request at once with 200.
// Behaviors are comparable.
//
// A request that passes the capacity gate waits its Latency, then is
// answered by one draw: with probability ErrorRate an error, then
// ThrottleRate a throttle, then ResetRate a reset; otherwise a success.
type Behavior struct {
	// Latency is how long the endpoint takes to answer.
	Latency Dist
	// ErrorRate is the share of requests answered 500 (HTTP) or
	// Unavailable (gRPC), within [0, 1].
	ErrorRate float64
	// ThrottleRate is the share of requests answered 429 with a
	// Retry-After header (HTTP) or ResourceExhausted with a
	// grpc-retry-pushback-ms trailer (gRPC), within [0, 1].
	ThrottleRate float64
	// RetryAfter is the wait a throttle asks for. HTTP rounds it up to
	// whole seconds. Zero means 1s.
	RetryAfter time.Duration
	// ResetRate is the share of HTTP requests whose connection is reset
	// (RST) after the headers and part of the body. gRPC endpoints answer
	// these Unavailable: a unary call has no body to cut.
	ResetRate float64
	// Down closes the listener and every connection: connection refused.
	Down bool
	// Hang accepts requests and never answers them, until the client
	// gives up.
	Hang bool
	// Capacity is how many requests are served at once; zero means no
	// limit. Those beyond it wait in a queue of Queue places for at most
	// QueueTimeout (zero: as long as the client waits); a request that
	// finds the queue full, or times out in it, is shed at once: 503 or
	// Unavailable.
	Capacity     int
	Queue        int
	QueueTimeout time.Duration
}

// validate reports the first field out of range; name is how the
// Behavior is called in the message ("Schedule.Base").
func (b Behavior) validate(name string) error {
	rate := func(field string, v float64) error {
		if v < 0 || v > 1 || v != v {
			return fmt.Errorf("fleet: %s.%s is %v, want within [0, 1]", name, field, v)
		}
		return nil
	}
	for _, err := range []error{
		b.Latency.validate(name + ".Latency"),
		rate("ErrorRate", b.ErrorRate),
		rate("ThrottleRate", b.ThrottleRate),
		rate("ResetRate", b.ResetRate),
	} {
		if err != nil {
			return err
		}
	}
	switch {
	case b.ErrorRate+b.ThrottleRate+b.ResetRate > 1:
		return fmt.Errorf("fleet: %s's ErrorRate+ThrottleRate+ResetRate is %v, want <= 1", name, b.ErrorRate+b.ThrottleRate+b.ResetRate)
	case b.RetryAfter < 0:
		return fmt.Errorf("fleet: %s.RetryAfter is %v, want >= 0", name, b.RetryAfter)
	case b.Capacity < 0:
		return fmt.Errorf("fleet: %s.Capacity is %d, want >= 0", name, b.Capacity)
	case b.Queue < 0:
		return fmt.Errorf("fleet: %s.Queue is %d, want >= 0", name, b.Queue)
	case b.QueueTimeout < 0:
		return fmt.Errorf("fleet: %s.QueueTimeout is %v, want >= 0", name, b.QueueTimeout)
	}
	return nil
}

// String describes the Behavior in a few words, for reports.
func (b Behavior) String() string {
	var parts []string
	switch {
	case b.Down:
		return "down (connection refused)"
	case b.Hang:
		return "hangs (never answers)"
	}
	if b.Latency.kind != distNone {
		parts = append(parts, "latency "+b.Latency.String())
	}
	if b.ErrorRate > 0 {
		parts = append(parts, fmt.Sprintf("%g %% errors", b.ErrorRate*100))
	}
	if b.ThrottleRate > 0 {
		parts = append(parts, fmt.Sprintf("%g %% throttled (retry after %v)", b.ThrottleRate*100, b.retryAfter()))
	}
	if b.ResetRate > 0 {
		parts = append(parts, fmt.Sprintf("%g %% reset mid-body", b.ResetRate*100))
	}
	if b.Capacity > 0 {
		s := fmt.Sprintf("capacity %d, queue %d", b.Capacity, b.Queue)
		if b.QueueTimeout > 0 {
			s += fmt.Sprintf(" (max wait %v)", b.QueueTimeout)
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "instant 200"
	}
	return strings.Join(parts, ", ")
}

func (b Behavior) retryAfter() time.Duration {
	if b.RetryAfter == 0 {
		return time.Second
	}
	return b.RetryAfter
}

// Phase puts Endpoints under Behavior from From until Until.
type Phase struct {
	// Name labels the phase in reports ("outage").
	Name string
	// From is when the phase starts, measured from the schedule's start.
	From time.Duration
	// Until is when it ends; zero means never.
	Until time.Duration
	// Endpoints are the indexes of the endpoints it applies to; nil means
	// every endpoint.
	Endpoints []int
	// Behavior is what those endpoints do meanwhile.
	Behavior Behavior
}

func (p Phase) covers(endpoint int, t time.Duration) bool {
	if t < p.From || (p.Until > 0 && t >= p.Until) {
		return false
	}
	return p.Endpoints == nil || slices.Contains(p.Endpoints, endpoint)
}

// Schedule is what every endpoint does over time: Base, except where a
// Phase covers it; where several do, the last one listed wins. The zero
// Schedule answers everything at once with 200.
type Schedule struct {
	Base   Behavior
	Phases []Phase
}

// Validate reports the first problem of s for a fleet of n endpoints: a
// Behavior out of range, a phase that ends before it starts, an endpoint
// index out of [0, n).
func (s Schedule) Validate(n int) error {
	if err := s.Base.validate("Schedule.Base"); err != nil {
		return err
	}
	for i, p := range s.Phases {
		if err := p.Behavior.validate(fmt.Sprintf("Schedule.Phases[%d].Behavior", i)); err != nil {
			return err
		}
		switch {
		case p.From < 0:
			return fmt.Errorf("fleet: Schedule.Phases[%d].From is %v, want >= 0", i, p.From)
		case p.Until != 0 && p.Until <= p.From:
			return fmt.Errorf("fleet: Schedule.Phases[%d].Until (%v) is not after From (%v)", i, p.Until, p.From)
		}
		for _, e := range p.Endpoints {
			if e < 0 || e >= n {
				return fmt.Errorf("fleet: Schedule.Phases[%d].Endpoints holds %d, want within [0, %d)", i, e, n)
			}
		}
	}
	return nil
}

// At returns what endpoint does at time t of the schedule.
func (s Schedule) At(endpoint int, t time.Duration) Behavior {
	b := s.Base
	for _, p := range s.Phases {
		if p.covers(endpoint, t) {
			b = p.Behavior
		}
	}
	return b
}

// Changes returns the times after the start at which some endpoint may
// change its Behavior, in order, without repeats.
func (s Schedule) Changes() []time.Duration {
	var ts []time.Duration
	for _, p := range s.Phases {
		if p.From > 0 {
			ts = append(ts, p.From)
		}
		if p.Until > 0 {
			ts = append(ts, p.Until)
		}
	}
	slices.Sort(ts)
	return slices.Compact(ts)
}

// Play applies s to n endpoints over time, from now: apply(i, b) for
// every endpoint at once, then, at each of s.Changes, for every endpoint
// whose Behavior changed. It returns nil after the last change, or
// ctx.Err() when ctx ends first. apply is called from Play's goroutine
// only.
func Play(ctx context.Context, s Schedule, n int, apply func(endpoint int, b Behavior)) error {
	start := time.Now()
	cur := make([]Behavior, n)
	for i := range n {
		cur[i] = s.At(i, 0)
		apply(i, cur[i])
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for _, at := range s.Changes() {
		timer.Reset(time.Until(start.Add(at)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		for i := range n {
			if b := s.At(i, at); b != cur[i] {
				cur[i] = b
				apply(i, b)
			}
		}
	}
	return nil
}
