package discovery_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/discovery"
)

// serve runs n sequential attempts through b on the fake clock, each
// taking latency(addr) and ending with outcome(addr), and counts them by
// instance.
func serve(t *testing.T, b *discovery.Balancer, n int, latency func(string) time.Duration, outcome func(string) bulwark.Outcome) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		addr, p := pick(t, b, "")
		got[addr]++
		time.Sleep(latency(addr))
		p.Done(outcome(addr))
	}
	return got
}

func succeed(string) bulwark.Outcome { return bulwark.Success }

func TestPeakEWMASendsLessToTheSlowInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		latency := func(addr string) time.Duration {
			if addr == "c:1" {
				return 100 * time.Millisecond
			}
			return 10 * time.Millisecond
		}
		b := mustBalancer(t, still(insts("a:1", "b:1", "c:1")), discovery.BalancerConfig{})
		got := serve(t, b, 1000, latency, succeed)
		if got["c:1"] > 20 || got["a:1"] < 400 || got["b:1"] < 400 {
			t.Fatalf("sequential picks %v: want almost none on the slow c:1", got)
		}

		// Concurrent callers: the outstanding attempts count too, and still
		// the slow instance gets the least.
		var mu sync.Mutex
		conc := map[string]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 200 {
					addr, p := pick(t, b, "")
					time.Sleep(latency(addr))
					p.Done(bulwark.Success)
					mu.Lock()
					conc[addr]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if conc["c:1"]*10 > 1600 || conc["c:1"] >= conc["a:1"] || conc["c:1"] >= conc["b:1"] {
			t.Fatalf("concurrent picks %v: want under 10%% on the slow c:1", conc)
		}
	})
}

func TestPeakEWMAForgivesAnInstanceThatGotFaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := true
		latency := func(addr string) time.Duration {
			if addr == "c:1" && slow {
				return 100 * time.Millisecond
			}
			return 10 * time.Millisecond
		}
		b := mustBalancer(t, still(insts("a:1", "b:1", "c:1")), discovery.BalancerConfig{})
		serve(t, b, 500, latency, succeed)
		slow = false
		// Its estimate decays with the default 10s DecayTime until c:1 is
		// tried again, found fast, and takes its share.
		serve(t, b, 5000, latency, succeed)
		got := serve(t, b, 900, latency, succeed)
		if got["c:1"] < 200 {
			t.Fatalf("picks once c:1 is as fast as the others: %v, want about a third on it", got)
		}
	})
}

func TestPeakEWMAPenalisesFastFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// c:1 answers 503 at once; the others take 10ms to succeed. Ejection
		// is off: the estimate alone must keep c:1 from drawing traffic by
		// its speed.
		latency := func(addr string) time.Duration {
			if addr == "c:1" {
				return 0
			}
			return 10 * time.Millisecond
		}
		outcome := func(addr string) bulwark.Outcome {
			if addr == "c:1" {
				return bulwark.Failure
			}
			return bulwark.Success
		}
		cfg := discovery.BalancerConfig{Ejection: discovery.Ejection{ConsecutiveFailures: -1, StdevFactor: -1}}
		b := mustBalancer(t, still(insts("a:1", "b:1", "c:1")), cfg)
		got := serve(t, b, 1000, latency, outcome)
		if got["c:1"] > 50 {
			t.Fatalf("picks %v: want under 5%% on the failing c:1", got)
		}
		if l := status(t, b, "c:1").Latency; l < 10*time.Millisecond {
			t.Fatalf("c:1's estimate: %v, want above the healthy instances' 10ms", l)
		}
	})
}

func TestPeakEWMAHonoursWeights(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := []discovery.Instance{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 4}}
		b := mustBalancer(t, still(set), discovery.BalancerConfig{})
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					addr, p := pick(t, b, "")
					time.Sleep(10 * time.Millisecond)
					p.Done(bulwark.Success)
					mu.Lock()
					got[addr]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if got["b:1"] < 2*got["a:1"] {
			t.Fatalf("picks %v: want b:1 (weight 4) well above a:1 (weight 1)", got)
		}
	})
}

func TestPeakEWMAProbesANewInstanceOneAttemptAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBalancer(t, still(insts("a:1", "b:1")), discovery.BalancerConfig{})
		serve(t, b, 20, func(string) time.Duration { return 10 * time.Millisecond }, succeed)
		discovery.Update(b, insts("a:1", "b:1", "new:1"))
		// While its first attempt is outstanding, the new instance is
		// picked no more.
		first := pickAt(t, b, "new:1")
		got := map[string]int{}
		var held []bulwark.Permit
		for range 50 {
			addr, p := pick(t, b, "")
			got[addr]++
			held = append(held, p)
		}
		if got["new:1"] != 0 {
			t.Fatalf("picks while new:1's first attempt is outstanding: %v, want none on it", got)
		}
		for _, p := range held {
			p.Done(bulwark.Success)
		}
		first.Done(bulwark.Success)
	})
}
