package discovery

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestModulus(t *testing.T) {
	ds := []int{1, 2, 3, 5, 7, 10, 4095, 4096, 4097, 65535, 1 << 20, 1<<31 - 1, 1 << 31, 1<<32 - 1}
	for range 100 {
		ds = append(ds, 1+rand.IntN(1<<32-1))
	}
	as := []uint32{0, 1, 2, 1<<31 - 1, 1 << 31, 1<<32 - 2, 1<<32 - 1}
	for range 1000 {
		as = append(as, rand.Uint32())
	}
	for d := 1; d <= 1000; d++ {
		ds = append(ds, d)
	}
	for _, d := range ds {
		m := newModulus(d)
		for _, a := range as {
			if got, want := m.of(a), uint64(a)%uint64(d); got != want {
				t.Fatalf("%d mod %d: got %d, want %d", a, d, got, want)
			}
		}
	}
}

// Striped picks, which parallel ones switch to, still give every instance
// its weighted share: each stripe goes round the whole cycle.
func TestStripedRoundRobinKeepsShares(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []Instance
		want map[string]int // per 1000 picks
	}{
		{"equal", []Instance{{Addr: "a:1"}, {Addr: "b:1"}, {Addr: "c:1"}, {Addr: "d:1"}},
			map[string]int{"a:1": 250, "b:1": 250, "c:1": 250, "d:1": 250}},
		{"weighted", []Instance{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 2}, {Addr: "c:1", Weight: 3}, {Addr: "d:1", Weight: 4}},
			map[string]int{"a:1": 100, "b:1": 200, "c:1": 300, "d:1": 400}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := NewStatic(map[string][]Instance{"svc": tc.set})
			if err != nil {
				t.Fatal(err)
			}
			b, err := NewBalancer(context.Background(), st, "svc", BalancerConfig{Policy: RoundRobin})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			b.snap.Load().striped.Store(true)
			const goroutines, picks = 4, 10000
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
						p.Done(0)
					}
					mu.Lock()
					defer mu.Unlock()
					for addr, n := range mine {
						got[addr] += n
					}
				})
			}
			wg.Wait()
			// Each stripe in use is off by a turn or two at most.
			for addr, per := range tc.want {
				if d := got[addr] - per*goroutines*picks/1000; d < -40 || d > 40 {
					t.Fatalf("picks %v: want %v per 1000, give or take 40 in all", got, tc.want)
				}
			}
		})
	}
}
