package fleet_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark/bench/fleet"
)

const s = time.Second

var (
	ok   = fleet.Behavior{Latency: fleet.Fixed(10 * time.Millisecond)}
	down = fleet.Behavior{Down: true}
	slow = fleet.Behavior{Latency: fleet.Fixed(time.Second)}
)

func TestScheduleAt(t *testing.T) {
	sched := fleet.Schedule{Base: ok, Phases: []fleet.Phase{
		{Name: "outage", From: 2 * s, Until: 5 * s, Behavior: down},
		{Name: "brownout", From: 4 * s, Endpoints: []int{1}, Behavior: slow},
	}}
	tests := []struct {
		endpoint int
		at       time.Duration
		want     fleet.Behavior
	}{
		{0, 0, ok},
		{0, 2*s - 1, ok},
		{0, 2 * s, down},
		{1, 3 * s, down},
		{1, 4 * s, slow}, // listed later: wins over the outage
		{0, 4 * s, down},
		{0, 5 * s, ok}, // Until is exclusive
		{1, 5 * s, slow},
		{1, time.Hour, slow}, // no Until: to the end
		{2, time.Hour, ok},
	}
	for _, tt := range tests {
		if got := sched.At(tt.endpoint, tt.at); got != tt.want {
			t.Errorf("At(%d, %v): got %v, want %v", tt.endpoint, tt.at, got, tt.want)
		}
	}
	if got, want := sched.Changes(), []time.Duration{2 * s, 4 * s, 5 * s}; !equal(got, want) {
		t.Errorf("Changes: got %v, want %v", got, want)
	}
}

func equal(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestScheduleValidate(t *testing.T) {
	tests := []struct {
		name  string
		sched fleet.Schedule
		want  string
	}{
		{"rate above 1", fleet.Schedule{Base: fleet.Behavior{ErrorRate: 1.5}}, "Schedule.Base.ErrorRate is 1.5"},
		{"rates add above 1", fleet.Schedule{Base: fleet.Behavior{ErrorRate: 0.6, ThrottleRate: 0.6}}, "want <= 1"},
		{"negative capacity", fleet.Schedule{Phases: []fleet.Phase{{Behavior: fleet.Behavior{Capacity: -1}}}}, "Schedule.Phases[0].Behavior.Capacity is -1"},
		{"bad long tail", fleet.Schedule{Base: fleet.Behavior{Latency: fleet.LongTail(time.Second, time.Millisecond)}}, "want 0 < median <= p99"},
		{"negative latency", fleet.Schedule{Base: fleet.Behavior{Latency: fleet.Fixed(-1)}}, "Schedule.Base.Latency"},
		{"ends before it starts", fleet.Schedule{Phases: []fleet.Phase{{From: 2 * s, Until: s}}}, "Until (1s) is not after From (2s)"},
		{"negative start", fleet.Schedule{Phases: []fleet.Phase{{From: -s}}}, "From is -1s"},
		{"no such endpoint", fleet.Schedule{Phases: []fleet.Phase{{Endpoints: []int{3}}}}, "holds 3, want within [0, 3)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sched.Validate(3)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if err := (fleet.Schedule{Base: ok, Phases: []fleet.Phase{{From: s, Until: 2 * s, Endpoints: []int{2}, Behavior: down}}}).Validate(3); err != nil {
		t.Errorf("got %v for a valid schedule, want nil", err)
	}
}

type applied struct {
	at       time.Duration
	endpoint int
	b        fleet.Behavior
}

// Play applies each change at its time, on the fake clock, and only to
// the endpoints it changes.
func TestPlay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sched := fleet.Schedule{Base: ok, Phases: []fleet.Phase{
			{From: 2 * s, Until: 5 * s, Behavior: down},
			{From: 3 * s, Endpoints: []int{1}, Behavior: slow},
		}}
		start := time.Now()
		var mu sync.Mutex
		var got []applied
		err := fleet.Play(t.Context(), sched, 2, func(i int, b fleet.Behavior) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, applied{time.Since(start), i, b})
		})
		if err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		want := []applied{
			{0, 0, ok}, {0, 1, ok},
			{2 * s, 0, down}, {2 * s, 1, down},
			{3 * s, 1, slow},
			{5 * s, 0, ok},
		}
		if len(got) != len(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("change %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
	})
}

func TestPlayStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(s, cancel)
		n := 0
		err := fleet.Play(ctx, fleet.Schedule{Phases: []fleet.Phase{{From: 10 * s, Behavior: down}}}, 1, func(int, fleet.Behavior) { n++ })
		if err != context.Canceled || n != 1 {
			t.Errorf("got %v after %d changes, want context.Canceled after 1", err, n)
		}
	})
}

func TestDistSample(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		d        fleet.Dist
		min, max time.Duration // bounds of the median of many samples
	}{
		{fleet.Dist{}, 0, 0},
		{fleet.Fixed(7 * ms), 7 * ms, 7 * ms},
		{fleet.Normal(10*ms, 2*ms), 9 * ms, 11 * ms},
		{fleet.LongTail(100*ms, 800*ms), 85 * ms, 115 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			var below, p99 int
			const n = 4000
			for range n {
				v := tt.d.Sample()
				if v < 0 {
					t.Fatalf("got negative sample %v", v)
				}
				if v <= (tt.min+tt.max)/2 {
					below++
				}
				if v > 800*ms {
					p99++
				}
			}
			if tt.min != tt.max && (below < n*4/10 || below > n*6/10) {
				t.Errorf("got %d of %d samples below the median, want about half", below, n)
			}
			if tt.d == fleet.LongTail(100*ms, 800*ms) && (p99 < n/200 || p99 > n/40) {
				t.Errorf("got %d of %d samples above p99, want about 1 %%", p99, n)
			}
		})
	}
}

func TestBehaviorString(t *testing.T) {
	tests := []struct {
		b    fleet.Behavior
		want string
	}{
		{fleet.Behavior{}, "instant 200"},
		{down, "down (connection refused)"},
		{fleet.Behavior{Hang: true}, "hangs (never answers)"},
		{fleet.Behavior{Latency: fleet.Normal(10*time.Millisecond, 2*time.Millisecond), ErrorRate: 0.5}, "latency normal(10ms, sd 2ms), 50 % errors"},
		{fleet.Behavior{ThrottleRate: 0.3}, "30 % throttled (retry after 1s)"},
		{fleet.Behavior{Capacity: 1, Queue: 4, QueueTimeout: time.Second}, "capacity 1, queue 4 (max wait 1s)"},
	}
	for _, tt := range tests {
		if got := tt.b.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}
