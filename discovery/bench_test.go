package discovery_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/discovery"
)

// bench runs f sequentially and under RunParallel, reporting allocations.
func bench(b *testing.B, name string, f func()) {
	b.Run(name+"/seq", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f()
		}
	})
	b.Run(name+"/par", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				f()
			}
		})
	})
}

// fleetOf returns n instances, weighted when weighted is set.
func fleetOf(n int, weighted bool) []discovery.Instance {
	set := make([]discovery.Instance, n)
	for i := range set {
		set[i] = discovery.Instance{Addr: "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256) + ":8080"}
		if weighted {
			set[i].Weight = 1 + i%5
		}
	}
	return set
}

// BenchmarkPick is one attempt's balancer pick and its report: Pick, then
// Done with a Success. The bare alternatives are what a user writes by
// hand: an atomic counter over a slice, and a random index.
func BenchmarkPick(b *testing.B) {
	ctx := context.Background()
	set := fleetOf(10, false)
	for _, tc := range []struct {
		name string
		set  []discovery.Instance
		cfg  discovery.BalancerConfig
	}{
		{"RoundRobin", set, discovery.BalancerConfig{Policy: discovery.RoundRobin}},
		{"RoundRobin+weights", fleetOf(10, true), discovery.BalancerConfig{Policy: discovery.RoundRobin}},
		{"PeakEWMA", set, discovery.BalancerConfig{}},
		{"PeakEWMA+weights", fleetOf(10, true), discovery.BalancerConfig{}},
	} {
		bal := mustBalancer(b, still(tc.set), tc.cfg)
		bench(b, tc.name, func() {
			_, p, _ := bal.Pick(ctx, "svc", "")
			p.Done(bulwark.Success)
		})
	}
	// The pick alone, near enough: an Ignored report reads no clock and
	// feeds no estimate, it only ends the attempt.
	ewma := mustBalancer(b, still(set), discovery.BalancerConfig{})
	bench(b, "PeakEWMA-pick-only", func() {
		_, p, _ := ewma.Pick(ctx, "svc", "")
		p.Done(bulwark.Ignored)
	})
	addrs := make([]string, len(set))
	for i, inst := range set {
		addrs[i] = inst.Addr
	}
	var next atomic.Uint64
	var sink atomic.Pointer[string]
	bench(b, "bare-atomic-counter", func() {
		sink.Store(&addrs[next.Add(1)%uint64(len(addrs))])
	})
	bench(b, "bare-random", func() {
		sink.Store(&addrs[rand.IntN(len(addrs))])
	})
	// The floor of any latency-aware pick: the clock read at the pick and
	// at the report, which measure the attempt.
	epoch := time.Now()
	var elapsed atomic.Int64
	bench(b, "bare-two-clock-reads", func() {
		start := time.Since(epoch)
		elapsed.Store(int64(time.Since(epoch) - start))
	})
}

// BenchmarkDo is a call through a bulwark.Stack with the Balancer as its
// Picker, beside the same Stack without one.
func BenchmarkDo(b *testing.B) {
	ctx := context.Background()
	call := func(context.Context) (int, error) { return 1, nil }
	plain, err := bulwark.New(bulwark.Config{})
	if err != nil {
		b.Fatal(err)
	}
	bench(b, "Stack", func() { bulwark.Do(ctx, plain, "svc", call) })
	for _, policy := range []discovery.Policy{discovery.RoundRobin, discovery.PeakEWMA} {
		s, err := bulwark.New(bulwark.Config{Picker: mustBalancer(b, still(fleetOf(10, false)), discovery.BalancerConfig{Policy: policy})})
		if err != nil {
			b.Fatal(err)
		}
		bench(b, "Stack+"+policy.String(), func() { bulwark.Do(ctx, s, "svc", call) })
	}
}

// BenchmarkUpdate is the cost of a new set of 1,000 instances, half of them
// new (a rolling deploy), which rebuilds the snapshot.
func BenchmarkUpdate(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  discovery.BalancerConfig
	}{
		{"RoundRobin", discovery.BalancerConfig{Policy: discovery.RoundRobin}},
		{"PeakEWMA", discovery.BalancerConfig{}},
	} {
		for _, weighted := range []bool{false, true} {
			name := tc.name + "/1000"
			if weighted {
				name += "+weights"
			}
			b.Run(name, func(b *testing.B) {
				all := fleetOf(1500, weighted)
				sets := [2][]discovery.Instance{all[:1000], all[500:]}
				bal := mustBalancer(b, still(sets[1]), tc.cfg)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					discovery.Update(bal, sets[i%2])
					i++
				}
			})
		}
	}
}
