package discovery_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/discovery"
)

// fail ends n attempts on addr as Failures.
func fail(t testing.TB, b *discovery.Balancer, addr string, n int) {
	t.Helper()
	for range n {
		pickAt(t, b, addr).Done(bulwark.Failure)
	}
}

func TestConsecutiveFailuresEjectAndTheInstanceComesBack(t *testing.T) {
	for _, policy := range []discovery.Policy{discovery.RoundRobin, discovery.PeakEWMA} {
		t.Run(policy.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, mp := newReader(t)
				b := mustBalancer(t, still(insts("a:1", "b:1", "c:1")), discovery.BalancerConfig{Policy: policy, MeterProvider: mp})
				fail(t, b, "a:1", 4)
				pickAt(t, b, "a:1").Done(bulwark.Success) // breaks the run
				fail(t, b, "a:1", 4)
				if st := status(t, b, "a:1"); st.Ejected {
					t.Fatalf("a:1 after 4 failures in a row: ejected, want not yet")
				}
				fail(t, b, "a:1", 1)
				st := status(t, b, "a:1")
				if !st.Ejected || !st.EjectedUntil.Equal(time.Now().Add(30*time.Second)) || st.Ejections != 1 {
					t.Fatalf("a:1 after 5 failures in a row: %+v, want ejected for 30s", st)
				}
				if got := count(t, b, 100); got["a:1"] != 0 {
					t.Fatalf("picks while a:1 is ejected: %v, want none on it", got)
				}
				m := collect(t, r)
				if m["bulwark.discovery.ejected{bulwark.key=svc}"] != 1 ||
					m["bulwark.discovery.ejections{bulwark.discovery.reason=consecutive_failures,bulwark.key=svc}"] != 1 {
					t.Fatalf("metrics: %v, want 1 ejected, 1 ejection", m)
				}

				time.Sleep(30*time.Second - time.Nanosecond)
				synctest.Wait()
				if !status(t, b, "a:1").Ejected {
					t.Fatal("a:1 just before its ejection time: back, want still ejected")
				}
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				if st := status(t, b, "a:1"); st.Ejected {
					t.Fatalf("a:1 after its ejection time: %+v, want back", st)
				}
				if got := count(t, b, 30); got["a:1"] == 0 {
					t.Fatalf("picks after a:1 came back: %v, want some on it", got)
				}
				if m := collect(t, r); m["bulwark.discovery.ejected{bulwark.key=svc}"] != 0 {
					t.Fatalf("ejected gauge after the return: got %v, want 0", m["bulwark.discovery.ejected{bulwark.key=svc}"])
				}

				// Ejected again soon: twice as long.
				fail(t, b, "a:1", 5)
				if st := status(t, b, "a:1"); !st.Ejected || !st.EjectedUntil.Equal(time.Now().Add(60*time.Second)) {
					t.Fatalf("second ejection: %+v, want 60s", st)
				}
			})
		})
	}
}

func TestEjectionTimeGrowsUpToMaxAndShrinksBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBalancer(t, still(insts("a:1", "b:1")), discovery.BalancerConfig{Policy: discovery.RoundRobin,
			Ejection: discovery.Ejection{ConsecutiveFailures: 1, BaseTime: time.Second, MaxTime: 3 * time.Second}})
		for i, want := range []time.Duration{1, 2, 3, 3, 3} {
			fail(t, b, "a:1", 1)
			st := status(t, b, "a:1")
			if got := st.EjectedUntil.Sub(time.Now()); !st.Ejected || got != want*time.Second {
				t.Fatalf("ejection %d: %+v lasts %v, want %v", i+1, st, got, want*time.Second)
			}
			time.Sleep(want * time.Second)
			synctest.Wait()
		}
		// Healthy for 2 BaseTimes: the count drops by 2, from 4 (capped) to 2,
		// and the next ejection is the third: 3s.
		time.Sleep(2 * time.Second)
		fail(t, b, "a:1", 1)
		if st := status(t, b, "a:1"); st.Ejections != 3 {
			t.Fatalf("after 2s back in service: %d ejections counted, want 3", st.Ejections)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		time.Sleep(time.Hour)
		fail(t, b, "a:1", 1)
		if st := status(t, b, "a:1"); st.Ejections != 1 || st.EjectedUntil.Sub(time.Now()) != time.Second {
			t.Fatalf("after an hour back in service: %+v, want a first ejection again", st)
		}
	})
}

func TestMaxEjectedRatio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Ten percent of three instances is none: one may be ejected all the same.
		b := mustBalancer(t, still(insts("a:1", "b:1", "c:1")), discovery.BalancerConfig{Policy: discovery.RoundRobin})
		fail(t, b, "a:1", 5)
		fail(t, b, "b:1", 5)
		if !status(t, b, "a:1").Ejected || status(t, b, "b:1").Ejected {
			t.Fatalf("status %+v: want a:1 ejected, b:1 spared by the cap", b.Status())
		}
		// The cap frees up when a:1 comes back: b:1, failing on, is ejected
		// when its run of failures reaches the next multiple of 5.
		time.Sleep(30 * time.Second)
		synctest.Wait()
		fail(t, b, "b:1", 4)
		if status(t, b, "b:1").Ejected {
			t.Fatal("b:1 after 9 failures in a row: ejected, want at 10")
		}
		fail(t, b, "b:1", 1)
		if !status(t, b, "b:1").Ejected {
			t.Fatal("b:1 after 10 failures in a row, a:1 back: not ejected, want ejected")
		}
	})
}

func TestPanicThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, mp := newReader(t)
		b := mustBalancer(t, still(insts("a:1", "b:1", "c:1", "d:1")), discovery.BalancerConfig{Policy: discovery.RoundRobin, MeterProvider: mp,
			Ejection: discovery.Ejection{MaxEjectedRatio: 1}})
		fail(t, b, "a:1", 5)
		fail(t, b, "b:1", 5)
		// 2 of 4 healthy: not below half.
		if got := count(t, b, 40); got["a:1"]+got["b:1"] != 0 {
			t.Fatalf("picks with half healthy: %v, want none on a:1 and b:1", got)
		}
		fail(t, b, "c:1", 5)
		// 1 of 4 healthy: panic, every instance is picked.
		got := count(t, b, 40)
		for _, addr := range []string{"a:1", "b:1", "c:1", "d:1"} {
			if got[addr] != 10 {
				t.Fatalf("picks in panic mode: %v, want 10 each", got)
			}
		}
		if m := collect(t, r); m["bulwark.discovery.panic{bulwark.key=svc}"] != 1 || m["bulwark.discovery.ejected{bulwark.key=svc}"] != 3 {
			t.Fatalf("metrics in panic mode: %v, want panic 1, ejected 3", m)
		}
	})
}

func TestEveryInstanceEjectedWithoutPanicMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBalancer(t, still(insts("a:1", "b:1")), discovery.BalancerConfig{Policy: discovery.RoundRobin,
			Ejection: discovery.Ejection{MaxEjectedRatio: 1, PanicThreshold: -1, ConsecutiveFailures: 1}})
		fail(t, b, "a:1", 1)
		fail(t, b, "b:1", 1)
		_, _, err := b.Pick(context.Background(), "svc", "")
		var nie *discovery.NoInstanceError
		if !errors.As(err, &nie) || nie.Ejected != 2 || err.Error() != `discovery: no instance of "svc" (2 known: 2 ejected)` {
			t.Fatalf("Pick with every instance ejected: got %v, want a NoInstanceError counting 2 ejected", err)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if got := count(t, b, 2); got["a:1"] != 1 || got["b:1"] != 1 {
			t.Fatalf("picks once both came back: %v", got)
		}
	})
}

func TestIgnoredOutcomesCountForNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBalancer(t, still(insts("a:1", "b:1")), discovery.BalancerConfig{})
		p := pickAt(t, b, "a:1")
		time.Sleep(10 * time.Millisecond)
		p.Done(bulwark.Success)
		before := status(t, b, "a:1").Latency
		for range 20 {
			p := pickAt(t, b, "a:1")
			time.Sleep(time.Second)
			p.Done(bulwark.Ignored)
		}
		st := status(t, b, "a:1")
		if st.Ejected || st.Outstanding != 0 {
			t.Fatalf("a:1 after 20 Ignored: %+v, want neither ejected nor outstanding", st)
		}
		// Only decay moved the estimate: no slow observation raised it.
		if st.Latency >= before {
			t.Fatalf("latency after 20 slow Ignored attempts: %v, want below %v (decayed, not raised)", st.Latency, before)
		}
	})
}

func TestSuccessRateEjection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, mp := newReader(t)
		b := mustBalancer(t, still(insts("a:1", "b:1", "c:1", "d:1", "e:1")), discovery.BalancerConfig{
			Policy: discovery.RoundRobin, MeterProvider: mp,
			Ejection: discovery.Ejection{MinimumRequests: 20, MaxEjectedRatio: 0.5}})
		// e:1 fails every other attempt, never 5 in a row; d:1 one in ten.
		n := map[string]int{}
		for range 500 {
			addr, p := pick(t, b, "")
			n[addr]++
			switch {
			case addr == "e:1" && n[addr]%2 == 0, addr == "d:1" && n[addr]%10 == 0:
				p.Done(bulwark.Failure)
			default:
				p.Done(bulwark.Success)
			}
		}
		if status(t, b, "e:1").Ejected {
			t.Fatal("e:1 ejected before the interval ended")
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		for _, s := range b.Status() {
			if want := s.Instance.Addr == "e:1"; s.Ejected != want {
				t.Errorf("%s: ejected %v, want %v", s.Instance.Addr, s.Ejected, want)
			}
		}
		if m := collect(t, r); m["bulwark.discovery.ejections{bulwark.discovery.reason=success_rate,bulwark.key=svc}"] != 1 {
			t.Fatalf("ejections: %v, want 1 for success_rate", m)
		}
		// Too few attempts in the next interval: nothing judged.
		count(t, b, 10)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if s := status(t, b, "d:1"); s.Ejected {
			t.Fatal("d:1 ejected on an interval with too few attempts")
		}
	})
}

func TestSuccessRateNeedsMinimumHosts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBalancer(t, still(insts("a:1", "b:1", "c:1")), discovery.BalancerConfig{
			Policy: discovery.RoundRobin, Ejection: discovery.Ejection{MinimumRequests: 10}})
		for i := range 300 {
			addr, p := pick(t, b, "")
			if addr == "c:1" && i%2 == 0 {
				p.Done(bulwark.Failure)
			} else {
				p.Done(bulwark.Success)
			}
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if status(t, b, "c:1").Ejected {
			t.Fatal("c:1 ejected by the standard-deviation rule among 3 instances, want at least 5 judged")
		}
	})
}

func TestFailureRatioEjection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, mp := newReader(t)
		b := mustBalancer(t, still(insts("a:1", "b:1")), discovery.BalancerConfig{
			Policy: discovery.RoundRobin, MeterProvider: mp,
			Ejection: discovery.Ejection{MinimumRequests: 10, FailureRatio: 0.5, StdevFactor: -1, Interval: time.Second}})
		n := 0
		for range 40 {
			addr, p := pick(t, b, "")
			if addr == "b:1" {
				n++
				if n%3 != 0 { // two failures in three
					p.Done(bulwark.Failure)
					continue
				}
			}
			p.Done(bulwark.Success)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !status(t, b, "b:1").Ejected || status(t, b, "a:1").Ejected {
			t.Fatalf("status %+v: want b:1 ejected for its failure ratio", b.Status())
		}
		if m := collect(t, r); m["bulwark.discovery.ejections{bulwark.discovery.reason=failure_ratio,bulwark.key=svc}"] != 1 {
			t.Fatalf("ejections: %v, want 1 for failure_ratio", m)
		}
	})
}

func TestEjectionRulesTurnedOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBalancer(t, still(insts("a:1", "b:1", "c:1", "d:1", "e:1")), discovery.BalancerConfig{
			Policy: discovery.RoundRobin, Ejection: discovery.Ejection{ConsecutiveFailures: -1, StdevFactor: -1, MinimumRequests: 1}})
		for range 500 {
			addr, p := pick(t, b, "")
			if addr == "a:1" {
				p.Done(bulwark.Failure)
			} else {
				p.Done(bulwark.Success)
			}
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if status(t, b, "a:1").Ejected {
			t.Fatal("a:1 ejected with every rule off")
		}
	})
}

func TestRemovedInstanceLeavesTheEjectedCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, mp := newReader(t)
		b := mustBalancer(t, still(insts("a:1", "b:1", "c:1")), discovery.BalancerConfig{Policy: discovery.RoundRobin, MeterProvider: mp})
		p := pickAt(t, b, "a:1") // in flight across the update
		fail(t, b, "a:1", 5)
		discovery.Update(b, insts("b:1", "c:1"))
		p.Done(bulwark.Failure) // reported after a:1 left: no effect
		if m := collect(t, r); m["bulwark.discovery.ejected{bulwark.key=svc}"] != 0 {
			t.Fatalf("ejected after a:1 left: %v, want 0", m["bulwark.discovery.ejected{bulwark.key=svc}"])
		}
		fail(t, b, "b:1", 5) // the cap is free again
		if !status(t, b, "b:1").Ejected {
			t.Fatal("b:1: not ejected, want ejected")
		}
		// a:1 comes back as a new instance, with no history.
		discovery.Update(b, insts("a:1", "b:1", "c:1"))
		if st := status(t, b, "a:1"); st.Ejected || st.Ejections != 0 || st.Failures != 0 {
			t.Fatalf("a:1 back in the set: %+v, want a fresh instance", st)
		}
	})
}
