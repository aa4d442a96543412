package scenario_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark/bench/clients"
	"github.com/bulwarkrpc/bulwark/bench/load"
	"github.com/bulwarkrpc/bulwark/bench/report"
	"github.com/bulwarkrpc/bulwark/bench/scenario"
)

func TestScenariosAreValid(t *testing.T) {
	for _, s := range scenario.All() {
		t.Run(s.Name, func(t *testing.T) {
			for _, d := range []time.Duration{s.Duration, s.Quick, time.Second} {
				if err := s.Schedule(d).Validate(s.Endpoints); err != nil {
					t.Errorf("length %v: %v", d, err)
				}
				start, end := s.Fault(d)
				if start < 0 || end < 0 || (end != 0 && end <= start) || start > d || end > d {
					t.Errorf("length %v: got fault window [%v, %v), want one inside the run", d, start, end)
				}
			}
			if s.Quick <= 0 || s.Quick > s.Duration || s.Rate <= 0 {
				t.Errorf("got quick %v, duration %v, rate %v", s.Quick, s.Duration, s.Rate)
			}
		})
	}
}

// The quick mode's budget: every scenario in under 2 minutes, with the
// clients of a scenario running at the same time (but those of a scenario
// run Alone).
func TestQuickFitsInTwoMinutes(t *testing.T) {
	var total time.Duration
	for _, s := range scenario.All() {
		if s.Alone {
			total += s.Quick * time.Duration(len(clients.Specs()))
			continue
		}
		total += s.Quick
	}
	if total > 90*time.Second {
		t.Errorf("got %v of quick runs, want <= 90s to finish under 2 minutes with setup", total)
	}
}

func TestOutageWindow(t *testing.T) {
	var outage scenario.Scenario
	for _, s := range scenario.All() {
		if s.Name == "outage" {
			outage = s
		}
	}
	for _, d := range []time.Duration{outage.Quick, outage.Duration} {
		start, end := outage.Fault(d)
		if end-start != scenario.OutageLength {
			t.Errorf("length %v: got an outage of %v, want %v", d, end-start, scenario.OutageLength)
		}
		if d-end < scenario.BreakerOpen+2*time.Second {
			t.Errorf("length %v: got %v after the outage, want room for recovery", d, d-end)
		}
		sched := outage.Schedule(d)
		if !sched.At(0, start).Down || sched.At(2, end).Down || sched.At(1, start-1).Down {
			t.Errorf("length %v: schedule does not match the window [%v, %v)", d, start, end)
		}
	}
}

func TestLookup(t *testing.T) {
	got, err := scenario.Lookup([]string{"outage", "healthy"})
	if err != nil || len(got) != 2 || got[0].Name != "healthy" || got[1].Name != "outage" {
		t.Errorf("got %v, %v, want healthy then outage", got, err)
	}
	if _, err := scenario.Lookup([]string{"healthy", "nope"}); err == nil || !strings.Contains(err.Error(), `unknown scenario "nope" (known: healthy,`) {
		t.Errorf("got %v, want an error naming nope and listing the known ones", err)
	}
}

func TestTimeToRecover(t *testing.T) {
	ms := time.Millisecond
	// 30 buckets of 100ms: failing until bucket 12, then healthy, with
	// one bad bucket at 15.
	series := make([]load.Bucket, 30)
	for i := range series {
		series[i] = load.Bucket{Start: time.Duration(i) * 100 * ms, Offered: 20, Success: 20}
		if i < 12 {
			series[i].Success = 0
		}
	}
	series[15].Success = 19 // 199 of 200 over a second still passes 99 %
	tests := []struct {
		name   string
		ref    time.Duration
		want   time.Duration
		wantOK bool
	}{
		{"from the start", 0, 1200 * ms, true},
		{"from inside the fault", 500 * ms, 700 * ms, true},
		{"after recovery", 2000 * ms, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := scenario.TimeToRecover(series, 100*ms, 3*time.Second, tt.ref)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("got %v, %v, want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	series[15].Success = 10
	for i := 16; i < 30; i++ {
		series[i].Success = 0
	}
	if got, ok := scenario.TimeToRecover(series, 100*ms, 3*time.Second, 0); ok {
		t.Errorf("got %v, true, want no full good second", got)
	}
}

func ms(v float64) report.Millis { return report.Millis(v) }

func TestCheck(t *testing.T) {
	specs := []clients.Spec{{Name: "bulwark", Bulwark: true, Transport: clients.HTTP}, {Name: "naive", Transport: clients.HTTP}}
	rec := ms(2000)
	rep := &report.Report{Scenarios: []report.Scenario{
		{Name: "healthy", Runs: []report.Run{{Client: "bulwark", P99: 20}, {Client: "naive", P99: 20}}},
		{Name: "refusing", Runs: []report.Run{
			{Client: "bulwark", Offered: 10000, Success: 9999, SuccessPct: 99.99, P99: 31},
			{Client: "naive", SuccessPct: 66},
		}},
		{Name: "errors50", Runs: []report.Run{{Client: "bulwark", Offered: 1000, Success: 990, SuccessPct: 99, Amplification: 1.1, Late: 11}}},
		{Name: "outage", FaultStart: 2000, Runs: []report.Run{{Client: "bulwark", Transport: "http", Recover: &rec, Extra: []report.Metric{
			{Name: scenario.MetricFirstOpen, Value: 2500},
			{Name: scenario.MetricFailFastP99, Value: 7},
			{Name: scenario.MetricAmplification, Value: 0.01},
			{Name: scenario.MetricAnsweredOpen, Value: 100},
		}}}},
	}}
	checks, notes := scenario.Check(rep, specs)
	type key struct{ scenario, target string }
	got := map[key]report.Check{}
	for _, c := range checks {
		if c.Client != "bulwark" {
			t.Errorf("got a check of %s, want only bulwark's", c.Client)
		}
		got[key{c.Scenario, c.Target}] = c
	}
	tests := []struct {
		scenario, target string
		pass             bool
		miss             string
	}{
		{"refusing", "success", true, ""},
		{"refusing", "p99", false, "over by 1.00ms, 1.03× the limit"},
		{"errors50", "success", false, "short by 0.900 points: 10 failed of 1000"},
		{"errors50", "amplification", true, ""},
		{"errors50", "load on time", false, "the machine was too busy to keep the schedule: this run's numbers are in doubt"},
		{"outage", "breaker", true, ""},
		{"outage", "failures while open, p99", false, "over by 2.00ms, 1.40× the limit"},
		{"outage", "amplification while open", true, ""},
		{"outage", "cached GETs served while open", true, ""},
		{"outage", "recovery", true, ""},
	}
	for _, tt := range tests {
		c, ok := got[key{tt.scenario, tt.target}]
		if !ok {
			t.Errorf("%s/%s: not checked", tt.scenario, tt.target)
			continue
		}
		if c.Pass != tt.pass || c.Miss != tt.miss {
			t.Errorf("%s/%s: got pass %v, miss %q, want %v, %q", tt.scenario, tt.target, c.Pass, c.Miss, tt.pass, tt.miss)
		}
	}
	if len(checks) != len(tests) {
		t.Errorf("got %d checks, want %d", len(checks), len(tests))
	}
	if len(notes) != 0 {
		t.Errorf("got notes %v, want none", notes)
	}

	// An interrupted run is not checked, and a note says so.
	rep.Scenarios[3].Runs[0].Interrupted = true
	checks, notes = scenario.Check(rep, specs)
	for _, c := range checks {
		if c.Scenario == "outage" {
			t.Errorf("got check %+v of an interrupted run, want none", c)
		}
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "outage/bulwark was interrupted") {
		t.Errorf("got notes %v, want one on the interrupted run", notes)
	}

	// Without the healthy run, relative targets are left out, and said so.
	rep.Scenarios = rep.Scenarios[1:2]
	checks, notes = scenario.Check(rep, specs)
	if len(checks) != 1 || len(notes) != 1 || !strings.Contains(notes[0], "healthy run is missing") {
		t.Errorf("got %v, %v, want the success check and a note on the missing healthy run", checks, notes)
	}
}

func TestOptions(t *testing.T) {
	s := scenario.Scenario{Rate: 200, Duration: 20 * time.Second, Quick: 5 * time.Second}
	fixed := s
	fixed.FixedRate = true
	tests := []struct {
		o      scenario.Options
		s      scenario.Scenario
		length time.Duration
		rate   float64
	}{
		{scenario.Options{}, s, 20 * time.Second, 200},
		{scenario.Options{Quick: true}, s, 5 * time.Second, 200},
		{scenario.Options{Quick: true, Duration: 3 * time.Second, Rate: 50}, s, 3 * time.Second, 50},
		{scenario.Options{Rate: 50}, fixed, 20 * time.Second, 200},
	}
	for _, tt := range tests {
		if l, r := tt.o.Length(tt.s), tt.o.RateOf(tt.s); l != tt.length || r != tt.rate {
			t.Errorf("%+v: got %v at %v/s, want %v at %v/s", tt.o, l, r, tt.length, tt.rate)
		}
	}
}

// A client that admits nothing under overload has no admitted latency: its
// empty histogram's p99 reads 0ms, which must not pass for a fast one.
func TestCheckOverloadNothingAdmitted(t *testing.T) {
	specs := []clients.Spec{{Name: "bulwark", Bulwark: true, Transport: clients.HTTP}}
	rep := &report.Report{Scenarios: []report.Scenario{
		{Name: "healthy", Runs: []report.Run{{Client: "bulwark", Offered: 800, Success: 800, SuccessPct: 100, P99: 16}}},
		{Name: "overload", Runs: []report.Run{{Client: "bulwark", Offered: 1800, Fallback: 1800, AnsweredPct: 100, P99: 1.2, FailureP99: 1.2}}},
	}}
	checks, _ := scenario.Check(rep, specs)
	got := map[string]report.Check{}
	for _, c := range checks {
		got[c.Target] = c
	}
	if c, ok := got["admitted p99"]; !ok || c.Pass {
		t.Errorf("got %+v, want a miss: no request was admitted", c)
	}
	if c, ok := got["rejections p99"]; !ok || !c.Pass {
		t.Errorf("got %+v, want the rejections' p99 checked all the same, and met", c)
	}
}
