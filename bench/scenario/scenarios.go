package scenario

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bulwarkrpc/bulwark/bench/fleet"
)

// Recovery says from where a scenario measures the time to recover.
type Recovery uint8

const (
	// NoRecovery: the scenario has nothing to recover from.
	NoRecovery Recovery = iota
	// FromStart: from the fault's start, for a fault that lasts: how long
	// the client takes to route around it.
	FromStart
	// FromEnd: from the fault's end: how long the client takes to use the
	// fleet again once it is back.
	FromEnd
)

// Scenario is a fleet, a schedule of faults and the load sent at it.
type Scenario struct {
	Name        string
	Title       string
	Description string
	// Endpoints is the size of the fleet.
	Endpoints int
	// HTTPOnly leaves the gRPC clients out.
	HTTPOnly bool
	// Rate is the arrival rate per client, in requests per second.
	Rate float64
	// FixedRate keeps Rate whatever the -rate flag says: the scenario's
	// rate is tied to the fleet's capacity.
	FixedRate bool
	// Alone runs the scenario's clients one after another even when the
	// others run at the same time: its load is too heavy for a small
	// machine to carry for every client at once and keep the schedule.
	Alone bool
	// Duration and Quick are the length of a run, normal and quick.
	Duration, Quick time.Duration
	// Schedule gives the fleet's schedule for a run of length d.
	Schedule func(d time.Duration) fleet.Schedule
	// Fault gives the fault's window in a run of length d; end is zero
	// for a fault that lasts to the end.
	Fault func(d time.Duration) (start, end time.Duration)
	// Recovery is where the time to recover is measured from.
	Recovery Recovery
	// FanOut sends each request to every endpoint at once and counts it a
	// success when all but one answered by FanOutDeadline.
	FanOut         bool
	FanOutDeadline time.Duration
}

// Healthy latency of every endpoint, in every scenario.
var baseLatency = fleet.Normal(10*time.Millisecond, 2*time.Millisecond)

// OutageLength is how long the whole fleet is down in the outage
// scenario, and BreakerOpen the open period of bulwark's Standard breaker:
// recovery is due within BreakerOpen + 1s of the outage's end.
const (
	OutageLength = 10 * time.Second
	BreakerOpen  = 5 * time.Second
)

// FanOutDeadline is the deadline of a fan-out request.
const FanOutDeadline = 200 * time.Millisecond

func healthy() fleet.Behavior { return fleet.Behavior{Latency: baseLatency} }

func whole(time.Duration) (time.Duration, time.Duration) { return 0, 0 }

// oneOfThree is a scenario where endpoint 0 of 3 misbehaves for the whole
// run.
func oneOfThree(name, title, desc string, b fleet.Behavior, r Recovery) Scenario {
	return Scenario{
		Name: name, Title: title, Description: desc,
		Endpoints: 3, Rate: 200,
		Duration: 20 * time.Second, Quick: 5 * time.Second,
		Schedule: func(time.Duration) fleet.Schedule {
			return fleet.Schedule{Base: healthy(), Phases: []fleet.Phase{{Name: name, Endpoints: []int{0}, Behavior: b}}}
		},
		Fault:    whole,
		Recovery: r,
	}
}

// All returns every scenario, in the order they run.
func All() []Scenario {
	slow := healthy()
	slow.Latency = fleet.LongTail(150*time.Millisecond, 800*time.Millisecond)
	errs := healthy()
	errs.ErrorRate = 0.5
	throttle := healthy()
	throttle.ThrottleRate, throttle.RetryAfter = 0.3, time.Second
	resets := healthy()
	resets.ResetRate = 0.2
	return []Scenario{
		{
			Name: "healthy", Title: "every endpoint healthy",
			Description: "Three endpoints answer in normal(10ms, sd 2ms). The baseline of the latency targets.",
			Endpoints:   3, Rate: 200,
			Duration: 20 * time.Second, Quick: 4 * time.Second,
			Schedule: func(time.Duration) fleet.Schedule { return fleet.Schedule{Base: healthy()} },
			Fault:    whole,
		},
		oneOfThree("refusing", "one of three refusing connections",
			"Endpoint 0 of 3 is down for the whole run: its listener is closed, connections are refused.",
			fleet.Behavior{Down: true}, FromStart),
		oneOfThree("slow", "one of three slow (brownout)",
			"Endpoint 0 of 3 answers, slowly: long-tail latency, median 150ms, p99 800ms.",
			slow, NoRecovery),
		oneOfThree("errors50", "one of three returning 50 % 5xx",
			"Endpoint 0 of 3 answers half of its requests with 500.",
			errs, FromStart),
		{
			Name: "outage", Title: "total outage of 10 s, then recovery",
			Description: "Every endpoint is down (connections refused) for 10 s after a healthy start, then comes back.",
			Endpoints:   3, Rate: 200,
			Duration: 30 * time.Second, Quick: 20 * time.Second,
			Schedule: func(d time.Duration) fleet.Schedule {
				start, end := outageWindow(d)
				return fleet.Schedule{Base: healthy(), Phases: []fleet.Phase{{Name: "outage", From: start, Until: end, Behavior: fleet.Behavior{Down: true}}}}
			},
			Fault:    outageWindow,
			Recovery: FromEnd,
		},
		{
			Name: "overload", Title: "overload at 2× capacity",
			Description: "Each of 3 endpoints serves one request at a time (normal(10ms, sd 2ms): about 100/s each, 300/s in all) " +
				"and queues 4 more; beyond, it sheds with 503 (Unavailable). 600 requests per second are offered.",
			Endpoints: 3, Rate: 600, FixedRate: true, Alone: true,
			Duration: 20 * time.Second, Quick: 3 * time.Second,
			Schedule: func(time.Duration) fleet.Schedule {
				b := healthy()
				b.Capacity, b.Queue = 1, 4
				return fleet.Schedule{Base: b}
			},
			Fault: whole,
		},
		{
			Name: "fanout", Title: "fan-out to 5 services, one down",
			Description: "Each request goes to 5 services at once and needs the answers of all that are up within 200ms. " +
				"Service 4 refuses connections for the first half of the run and hangs (accepts, never answers) for the second.",
			Endpoints: 5, HTTPOnly: true, Rate: 100,
			Duration: 20 * time.Second, Quick: 5 * time.Second,
			Schedule: func(d time.Duration) fleet.Schedule {
				return fleet.Schedule{Base: healthy(), Phases: []fleet.Phase{
					{Name: "down", Endpoints: []int{4}, Until: d / 2, Behavior: fleet.Behavior{Down: true}},
					{Name: "hung", Endpoints: []int{4}, From: d / 2, Behavior: fleet.Behavior{Hang: true}},
				}}
			},
			Fault:          whole,
			FanOut:         true,
			FanOutDeadline: FanOutDeadline,
		},
		oneOfThree("ratelimit", "one of three throttling (429, Retry-After: 1)",
			"Endpoint 0 of 3 answers 30 % of its requests with 429 and Retry-After: 1 (gRPC: ResourceExhausted, pushback 1s).",
			throttle, FromStart),
		oneOfThree("resets", "one of three resetting connections mid-body",
			"Endpoint 0 of 3 resets the connection (RST) after a quarter of the body in 20 % of its answers (gRPC: Unavailable).",
			resets, FromStart),
	}
}

// outageWindow places the outage in a run of length d: it starts after a
// fifth of what the outage leaves of the run (at least 1s, for the caches
// to fill), and lasts OutageLength, cut short if the run is.
func outageWindow(d time.Duration) (time.Duration, time.Duration) {
	start := max((d-OutageLength)/5, time.Second)
	start = min(start, d/2)
	return start, min(start+OutageLength, d)
}

// Names returns the name of every scenario.
func Names() []string {
	var names []string
	for _, s := range All() {
		names = append(names, s.Name)
	}
	return names
}

// Lookup returns the scenarios of the given names, in the order of All,
// or an error naming the first unknown one and listing the known ones.
func Lookup(names []string) ([]Scenario, error) {
	all := All()
	for _, n := range names {
		if !slices.ContainsFunc(all, func(s Scenario) bool { return s.Name == n }) {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(Names(), ", "))
		}
	}
	var out []Scenario
	for _, s := range all {
		if slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}
