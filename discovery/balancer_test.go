package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/discovery"
)

func TestNewBalancerValidates(t *testing.T) {
	st := mustStatic(t, insts("a:1"))
	for _, tc := range []struct {
		name string
		cfg  discovery.BalancerConfig
		want string
	}{
		{"policy", discovery.BalancerConfig{Policy: 7}, "BalancerConfig.Policy is policy(7)"},
		{"decay", discovery.BalancerConfig{DecayTime: -time.Second}, "BalancerConfig.DecayTime is -1s"},
		{"penalty", discovery.BalancerConfig{FailurePenalty: 0.5}, "BalancerConfig.FailurePenalty is 0.5"},
		{"penalty NaN", discovery.BalancerConfig{FailurePenalty: math.NaN()}, "BalancerConfig.FailurePenalty is NaN"},
		{"version", discovery.BalancerConfig{RequireVersion: "2.x"}, `BalancerConfig.RequireVersion: discovery: version requirement "2.x"`},
		{"interval", discovery.BalancerConfig{Ejection: discovery.Ejection{Interval: -1}}, "Ejection.Interval is -1ns"},
		{"min requests", discovery.BalancerConfig{Ejection: discovery.Ejection{MinimumRequests: -1}}, "Ejection.MinimumRequests is -1"},
		{"min hosts", discovery.BalancerConfig{Ejection: discovery.Ejection{MinimumHosts: -1}}, "Ejection.MinimumHosts is -1"},
		{"stdev", discovery.BalancerConfig{Ejection: discovery.Ejection{StdevFactor: math.Inf(1)}}, "Ejection.StdevFactor is +Inf"},
		{"failure ratio", discovery.BalancerConfig{Ejection: discovery.Ejection{FailureRatio: 1.5}}, "Ejection.FailureRatio is 1.5"},
		{"base", discovery.BalancerConfig{Ejection: discovery.Ejection{BaseTime: -time.Second}}, "Ejection.BaseTime is -1s"},
		{"max", discovery.BalancerConfig{Ejection: discovery.Ejection{MaxTime: -time.Second}}, "Ejection.MaxTime is -1s"},
		{"max below base", discovery.BalancerConfig{Ejection: discovery.Ejection{BaseTime: time.Minute, MaxTime: time.Second}}, "Ejection.MaxTime (1s) is below BaseTime (1m0s)"},
		{"max ejected", discovery.BalancerConfig{Ejection: discovery.Ejection{MaxEjectedRatio: -0.1}}, "Ejection.MaxEjectedRatio is -0.1"},
		{"panic", discovery.BalancerConfig{Ejection: discovery.Ejection{PanicThreshold: 2}}, "Ejection.PanicThreshold is 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := discovery.NewBalancer(context.Background(), st, "svc", tc.cfg)
			if err == nil {
				b.Close()
				t.Fatal("NewBalancer: got nil error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewBalancer: got %q, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := discovery.NewBalancer(context.Background(), nil, "svc", discovery.BalancerConfig{}); err == nil {
		t.Error("NewBalancer(nil Resolver): got nil error")
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("NewBalancer(nil *Static): panicked: %v; want an error", r)
			}
		}()
		var none *discovery.Static // a constructor's result taken without its error
		if _, err := discovery.NewBalancer(context.Background(), none, "svc", discovery.BalancerConfig{}); err == nil {
			t.Error("NewBalancer(nil *Static): got nil error")
		}
	}()
	if _, err := discovery.NewBalancer(context.Background(), st, "", discovery.BalancerConfig{}); err == nil {
		t.Error(`NewBalancer(service ""): got nil error`)
	}
	_, err := discovery.NewBalancer(context.Background(), st, "orders", discovery.BalancerConfig{})
	if !errors.Is(err, discovery.ErrNoInstance) || !strings.Contains(err.Error(), `resolving "orders"`) {
		t.Errorf("NewBalancer(unknown service): got %v, want the Resolver's error, wrapped", err)
	}
}

func TestRoundRobinTakesTurns(t *testing.T) {
	b := mustBalancer(t, mustStatic(t, insts("a:1", "b:1", "c:1")), discovery.BalancerConfig{Policy: discovery.RoundRobin})
	var seq []string
	for range 6 {
		addr, p := pick(t, b, "")
		seq = append(seq, addr)
		p.Done(bulwark.Success)
	}
	for i := 3; i < 6; i++ {
		if seq[i] != seq[i-3] {
			t.Fatalf("picks %v: want a cycle of 3", seq)
		}
	}
	if seq[0] == seq[1] || seq[1] == seq[2] || seq[0] == seq[2] {
		t.Fatalf("picks %v: want each instance once per cycle", seq)
	}
}

func TestRoundRobinHonoursWeights(t *testing.T) {
	set := []discovery.Instance{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 2}, {Addr: "c:1", Weight: 0}, {Addr: "d:1", Weight: 6}}
	b := mustBalancer(t, mustStatic(t, set), discovery.BalancerConfig{Policy: discovery.RoundRobin})
	// Weights 1, 2, 1 (zero means 1) and 6: a cycle of 10 turns.
	got := count(t, b, 1000)
	want := map[string]int{"a:1": 100, "b:1": 200, "c:1": 100, "d:1": 600}
	for addr, n := range want {
		if got[addr] != n {
			t.Fatalf("picks per instance: got %v, want %v", got, want)
		}
	}
	// The turns are interleaved: the heaviest never runs more than its
	// share in a row.
	run, longest := 0, 0
	for range 100 {
		addr, p := pick(t, b, "")
		p.Done(bulwark.Success)
		if addr == "d:1" {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	if longest > 3 {
		t.Fatalf("d:1 picked %d times in a row, want the turns interleaved", longest)
	}
}

func TestRoundRobinScalesHugeWeights(t *testing.T) {
	set := []discovery.Instance{{Addr: "a:1", Weight: math.MaxInt}, {Addr: "b:1", Weight: math.MaxInt / 3}, {Addr: "c:1", Weight: 1}}
	b := mustBalancer(t, mustStatic(t, set), discovery.BalancerConfig{Policy: discovery.RoundRobin})
	got := count(t, b, 4096*4)
	if got["c:1"] == 0 {
		t.Fatalf("picks %v: an instance of weight 1 must keep a turn", got)
	}
	if r := float64(got["a:1"]) / float64(got["b:1"]); r < 2.9 || r > 3.1 {
		t.Fatalf("picks %v: a:1/b:1 = %.2f, want 3", got, r)
	}
}

func TestRoundRobinGivesEachItsTurnForAnySize(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 7, 10, 16, 31, 64, 100, 1000} {
		addrs := make([]string, n)
		for i := range addrs {
			addrs[i] = "h" + strconv.Itoa(i) + ":1"
		}
		b := mustBalancer(t, still(insts(addrs...)), discovery.BalancerConfig{Policy: discovery.RoundRobin})
		got := count(t, b, 3*n)
		for _, addr := range addrs {
			if got[addr] != 3 {
				t.Fatalf("%d instances, %d picks: %s picked %d times, want 3", n, 3*n, addr, got[addr])
			}
		}
	}
}

// Picks in parallel may take their turns in another order, but every
// instance still gets its share, weighted: as the picks come, and striped
// (as contending picks switch to), where each stripe goes round the whole
// cycle and is off by a turn or two at most.
func TestRoundRobinSharesUnderConcurrentPicks(t *testing.T) {
	type tcase struct {
		name    string
		set     []discovery.Instance
		want    map[string]int
		striped bool
	}
	var cases []tcase
	for _, striped := range []bool{false, true} {
		cases = append(cases,
			tcase{"equal", insts("a:1", "b:1", "c:1", "d:1"), map[string]int{"a:1": 10000, "b:1": 10000, "c:1": 10000, "d:1": 10000}, striped},
			tcase{"weighted", []discovery.Instance{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 2}, {Addr: "c:1", Weight: 3}, {Addr: "d:1", Weight: 4}},
				map[string]int{"a:1": 4000, "b:1": 8000, "c:1": 12000, "d:1": 16000}, striped})
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/striped=%v", tc.name, tc.striped), func(t *testing.T) {
			b := mustBalancer(t, still(tc.set), discovery.BalancerConfig{Policy: discovery.RoundRobin})
			slack := 100
			if tc.striped {
				discovery.Stripe(b)
				slack = 40
			}
			const goroutines, picks = 8, 5000
			var mu sync.Mutex
			got := map[string]int{}
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					mine := map[string]int{}
					for range picks {
						addr, p, err := b.Pick(context.Background(), "svc", "")
						if err != nil {
							t.Error(err)
							return
						}
						mine[addr]++
						p.Done(bulwark.Success)
					}
					mu.Lock()
					defer mu.Unlock()
					for addr, n := range mine {
						got[addr] += n
					}
				})
			}
			wg.Wait()
			for addr, want := range tc.want {
				if d := got[addr] - want; d < -slack || d > slack {
					t.Fatalf("picks %v: want %v, give or take %d", got, tc.want, slack)
				}
			}
		})
	}
}

func TestPickAvoidsThePreviousInstance(t *testing.T) {
	for _, policy := range []discovery.Policy{discovery.RoundRobin, discovery.PeakEWMA} {
		t.Run(policy.String(), func(t *testing.T) {
			for _, set := range [][]discovery.Instance{
				insts("a:1", "b:1"),
				insts("a:1", "b:1", "c:1", "d:1", "e:1"),
				{{Addr: "a:1", Weight: 1000}, {Addr: "b:1", Weight: 1}},
			} {
				b := mustBalancer(t, mustStatic(t, set), discovery.BalancerConfig{Policy: policy})
				for range 200 {
					addr, p := pick(t, b, "a:1")
					p.Done(bulwark.Success)
					if addr == "a:1" {
						t.Fatalf("%v: Pick avoiding a:1 returned a:1", set)
					}
				}
			}
			one := mustBalancer(t, mustStatic(t, insts("a:1")), discovery.BalancerConfig{Policy: policy})
			if addr, p := pick(t, one, "a:1"); addr != "a:1" {
				t.Fatalf("the only instance, avoided: got %s, want a:1 all the same", addr)
			} else {
				p.Done(bulwark.Success)
			}
		})
	}
}

func TestNoInstanceIsRefusedAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": nil})
		if err != nil {
			t.Fatal(err)
		}
		b := mustBalancer(t, st, discovery.BalancerConfig{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		start := time.Now()
		_, p, err := b.Pick(ctx, "svc", "")
		var nie *discovery.NoInstanceError
		if !errors.As(err, &nie) || nie.Service != "svc" || nie.Known != 0 {
			t.Fatalf("Pick: got %v, %v, want a *NoInstanceError for svc", p, err)
		}
		for _, target := range []error{discovery.ErrNoInstance, bulwark.ErrNoEndpoint, bulwark.ErrRejected} {
			if !errors.Is(err, target) {
				t.Errorf("Pick: got %v, want it to match %v", err, target)
			}
		}
		if _, err := b.Enter(ctx, "svc"); !errors.Is(err, discovery.ErrNoInstance) {
			t.Errorf("Enter: got %v, want ErrNoInstance", err)
		}

		// Through a Stack, the call is refused, not run.
		s, err := bulwark.New(bulwark.Config{Picker: b})
		if err != nil {
			t.Fatal(err)
		}
		ran := false
		_, err = bulwark.Do(ctx, s, "svc", func(context.Context) (int, error) { ran = true; return 0, nil })
		if ran || !errors.Is(err, bulwark.ErrNoEndpoint) {
			t.Fatalf("Do: ran %v, got %v, want ErrNoEndpoint without running the call", ran, err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Fatalf("refusals took %v of the fake clock, want none: no wait for the deadline", waited)
		}

		// An instance appears: picks work.
		if err := st.Set("svc", insts("a:1")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the watch goroutine has handed the set over
		if addr, p := pick(t, b, ""); addr != "a:1" {
			t.Fatalf("Pick after Set: got %s, want a:1", addr)
		} else {
			p.Done(bulwark.Success)
		}
	})
}

func TestPickWithADoneContext(t *testing.T) {
	b := mustBalancer(t, mustStatic(t, insts("a:1")), discovery.BalancerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := b.Pick(ctx, "svc", ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pick: got %v, want context.Canceled", err)
	}
	if st := status(t, b, "a:1"); st.Successes+st.Failures+st.Ignored != 0 || st.Outstanding != 0 {
		t.Fatalf("after a refused Pick: %+v, want nothing counted", st)
	}
}

func TestVersionFiltering(t *testing.T) {
	set := []discovery.Instance{
		{Addr: "old:1", Version: "2.2.9"},
		{Addr: "ok:1", Version: "v2.3.0"},
		{Addr: "newer:1", Version: "2.7.1-rc.1"},
		{Addr: "next:1", Version: "3.0.0"},
		{Addr: "none:1"},
		{Addr: "garbage:1", Version: "two"},
	}
	r, mp := newReader(t)
	// A Static would refuse "two": a registry may not.
	b := mustBalancer(t, still(set), discovery.BalancerConfig{RequireVersion: "2.3", MeterProvider: mp})

	got := count(t, b, 100)
	if len(got) != 2 || got["ok:1"] == 0 || got["newer:1"] == 0 {
		t.Fatalf("picks %v: want only ok:1 and newer:1", got)
	}
	for _, tc := range []struct {
		addr string
		want error
		text string
	}{
		{"old:1", discovery.ErrIncompatible, `"old:1" is 2.2.9, want 2.x from 2.3`},
		{"next:1", discovery.ErrIncompatible, `"next:1" is 3.0.0, want 2.x from 2.3`},
		{"none:1", discovery.ErrIncompatible, `"none:1" has no version`},
		{"garbage:1", discovery.ErrInvalidInstance, `"garbage:1": discovery: version "two"`},
	} {
		if err := status(t, b, tc.addr).Excluded; !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("Status(%s).Excluded: got %v, want %v containing %q", tc.addr, err, tc.want, tc.text)
		}
	}
	m := collect(t, r)
	for k, want := range map[string]float64{
		"bulwark.discovery.instances{bulwark.discovery.state=eligible,bulwark.key=svc}":     2,
		"bulwark.discovery.instances{bulwark.discovery.state=incompatible,bulwark.key=svc}": 3,
		"bulwark.discovery.instances{bulwark.discovery.state=invalid,bulwark.key=svc}":      1,
		"bulwark.discovery.picks{bulwark.key=svc,bulwark.outcome=success}":                  100,
		"bulwark.discovery.picks{bulwark.key=svc,bulwark.outcome=failure}":                  0,
	} {
		if m[k] != want {
			t.Errorf("%s: got %v, want %v", k, m[k], want)
		}
	}

	// None compatible: a clear refusal.
	discovery.Update(b, set[3:])
	_, _, err := b.Pick(context.Background(), "svc", "")
	if want := `discovery: no instance of "svc" (3 known: 2 incompatible, 1 invalid)`; err == nil || err.Error() != want {
		t.Fatalf("Pick: got %v, want %q", err, want)
	}
	if m := collect(t, r); m["bulwark.discovery.no_instance{bulwark.key=svc}"] != 1 {
		t.Fatalf("no_instance: got %v, want 1", m["bulwark.discovery.no_instance{bulwark.key=svc}"])
	}
}

func TestUpdateKeepsWhatItKnowsOfStayingInstances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := mustStatic(t, insts("a:1", "b:1"))
		b := mustBalancer(t, st, discovery.BalancerConfig{})
		p := pickAt(t, b, "a:1")
		time.Sleep(20 * time.Millisecond)
		p.Done(bulwark.Success)
		before := status(t, b, "a:1")
		if before.Latency == 0 || before.Successes != 1 {
			t.Fatalf("a:1 after one attempt: %+v, want a latency and a pick", before)
		}
		if err := st.Set("svc", []discovery.Instance{{Addr: "a:1", Weight: 3}, {Addr: "c:1"}}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		after := status(t, b, "a:1")
		if after.Latency != before.Latency || after.Successes != before.Successes || after.Instance.Weight != 3 {
			t.Fatalf("a:1 after an update keeping it: %+v, want %+v with weight 3", after, before)
		}
		if s := b.Status(); len(s) != 2 || s[1].Instance.Addr != "c:1" {
			t.Fatalf("Status: got %v, want a:1, c:1", s)
		}
	})
}

func TestDuplicateAndInvalidInstancesAreLeftOut(t *testing.T) {
	set := []discovery.Instance{{Addr: "a:1"}, {Addr: "a:1", Weight: 5}, {Addr: ""}, {Addr: "n:1", Weight: -1}, {Addr: "b:1"}}
	b := mustBalancer(t, still(set), discovery.BalancerConfig{Policy: discovery.RoundRobin})
	got := count(t, b, 10)
	if got["a:1"] != 5 || got["b:1"] != 5 {
		t.Fatalf("picks %v: want a:1 and b:1 alike, the duplicate's weight ignored", got)
	}
	s := b.Status()
	for i, want := range []string{"", "duplicate address", "empty address", "weight -1", ""} {
		err := s[i].Excluded
		if want == "" && err != nil || want != "" && (!errors.Is(err, discovery.ErrInvalidInstance) || !strings.Contains(err.Error(), want)) {
			t.Errorf("Status[%d].Excluded: got %v, want %q", i, err, want)
		}
	}
}

func TestPickAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []discovery.BalancerConfig{
		{Policy: discovery.RoundRobin},
		{Policy: discovery.PeakEWMA},
	} {
		t.Run(cfg.Policy.String(), func(t *testing.T) {
			set := []discovery.Instance{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 2}, {Addr: "c:1"}}
			b := mustBalancer(t, mustStatic(t, set), cfg)
			if n := testing.AllocsPerRun(1000, func() {
				_, p, _ := b.Pick(ctx, "svc", "b:1")
				p.Done(bulwark.Success)
				_, p, _ = b.Pick(ctx, "svc", "")
				p.Done(bulwark.Failure)
			}); n != 0 {
				t.Fatalf("Pick and Done: %v allocations, want 0", n)
			}
		})
	}
}

// failingWatch is a Resolver whose Watch fails at once.
type failingWatch struct{ *discovery.Static }

func (failingWatch) Watch(context.Context, string, func([]discovery.Instance)) error {
	return errors.New("registry gone")
}

func TestWatchErrorKeepsTheLastSet(t *testing.T) {
	b, err := discovery.NewBalancer(context.Background(), failingWatch{mustStatic(t, insts("a:1"))}, "svc", discovery.BalancerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if addr, p := pick(t, b, ""); addr != "a:1" {
			t.Fatalf("Pick: got %s, want a:1", addr)
		} else {
			p.Done(bulwark.Success)
		}
	}
	if err := b.Close(); err == nil || !strings.Contains(err.Error(), `watching "svc": registry gone`) {
		t.Fatalf("Close: got %v, want the Watch error", err)
	}
	if err := b.Close(); err == nil {
		t.Fatal("second Close: got nil, want the same error")
	}
}

func TestConcurrentPicksAndUpdates(t *testing.T) {
	for _, policy := range []discovery.Policy{discovery.RoundRobin, discovery.PeakEWMA} {
		t.Run(policy.String(), func(t *testing.T) {
			st := mustStatic(t, insts("a:1", "b:1", "c:1"))
			b := mustBalancer(t, st, discovery.BalancerConfig{Policy: policy, Ejection: discovery.Ejection{ConsecutiveFailures: 2}})
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := range 2000 {
						addr, p, err := b.Pick(context.Background(), "svc", "b:1")
						if err != nil {
							t.Error(err)
							return
						}
						if addr == "" {
							t.Error("Pick: empty address")
						}
						p.Done(bulwark.Outcome((g + i) % 3))
					}
				})
			}
			for i := range 50 {
				if err := st.Set("svc", insts("a:1", "b:1", []string{"c:1", "d:1"}[i%2])); err != nil {
					t.Fatal(err)
				}
			}
			wg.Wait()
			for _, s := range b.Status() {
				if s.Outstanding != 0 {
					t.Errorf("%s: %d outstanding after every attempt ended, want 0", s.Instance.Addr, s.Outstanding)
				}
			}
		})
	}
}

func TestPickMetrics(t *testing.T) {
	r, mp := newReader(t)
	b := mustBalancer(t, still(insts("a:1", "b:1")), discovery.BalancerConfig{Policy: discovery.RoundRobin, MeterProvider: mp})
	// Round robin over two: five of each.
	for range 10 {
		addr, p := pick(t, b, "")
		if addr == "a:1" {
			p.Done(bulwark.Success)
		} else {
			p.Done(bulwark.Ignored)
		}
	}
	for range 2 {
		addr, p := pick(t, b, "")
		if addr == "a:1" {
			p.Done(bulwark.Failure)
		} else {
			p.Done(bulwark.Success)
		}
	}
	// a:1 leaves: what it counted stays in the totals.
	discovery.Update(b, insts("b:1"))
	count(t, b, 1)
	m := collect(t, r)
	for k, want := range map[string]float64{
		"bulwark.discovery.picks{bulwark.key=svc,bulwark.outcome=success}": 7,
		"bulwark.discovery.picks{bulwark.key=svc,bulwark.outcome=failure}": 1,
		"bulwark.discovery.picks{bulwark.key=svc,bulwark.outcome=ignored}": 5,
	} {
		if got := m[k]; got != want {
			t.Errorf("%s: got %v, want %v", k, got, want)
		}
	}

	r2, mp2 := newReader(t)
	per := mustBalancer(t, still(insts("a:1", "b:1")), discovery.BalancerConfig{Policy: discovery.RoundRobin, MeterProvider: mp2, InstanceMetrics: true})
	count(t, per, 10)
	m = collect(t, r2)
	for _, addr := range []string{"a:1", "b:1"} {
		k := "bulwark.discovery.picks{bulwark.discovery.instance=" + addr + ",bulwark.key=svc,bulwark.outcome=success}"
		if m[k] != 5 {
			t.Errorf("%s: got %v, want 5", k, m[k])
		}
	}
}
