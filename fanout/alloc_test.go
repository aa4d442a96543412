package fanout_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/bulwarkrpc/bulwark/fanout"
)

// A Gather allocates the Gather, one Result per branch, the channel Run
// waits on and one goroutine closure per branch: nothing per metric (the
// attribute sets are built in New) and nothing for tracing when the
// caller's span is not recording; beyond four branches, the branch list
// once. The hand-written WaitGroup version
// allocates about as much (a closure and the captured results per
// branch).
func TestGatherAllocations(t *testing.T) {
	m := newMeter() // a real SDK provider: its Add must not allocate either
	f := mustNew(t, fanout.Config{MeterProvider: m})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, n := range []int{1, 3, 6} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			got := testing.AllocsPerRun(200, func() {
				g := f.Gather()
				rs := [6]*fanout.Result[int]{}
				for i := range n {
					rs[i] = fanout.Add(g, "b", nil, fetchCount)
				}
				if err := g.Run(ctx); err != nil {
					t.Fatal(err)
				}
				for i := range n {
					if v, err := rs[i].Get(); v != 7 || err != nil {
						t.Fatalf("got %d, %v, want 7, nil", v, err)
					}
				}
			})
			want := float64(2 + 2*n)
			if n > 4 {
				want++ // the branch list outgrows the Gather's inline array
			}
			if got > want {
				t.Errorf("allocations: got %v, want <= %v (the Gather, the channel, and per branch a Result and a goroutine)", got, want)
			}
		})
	}
}
