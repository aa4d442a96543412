package grpcclient_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

// A refused call asks each instance's limit once: an instance found full
// is not asked again in the same pick, even when a ready instance that the
// Balancer never picks (left out by RequireVersion) keeps the pick going,
// so that one refusal counts once in bulwark.bulkhead.rejected.
func TestDiscoveryBulkheadRefusalStopsWithUnpickableInstance(t *testing.T) {
	svcs, arrived := limitServices("a", "b", "old")
	a, b, old := svcs[0], svcs[1], svcs[2]
	addrs := make([]string, 3)
	insts := make([]discovery.Instance, 3)
	for i, svc := range svcs {
		addrs[i] = startAvoid(t, svc)
		insts[i] = discovery.Instance{Addr: addrs[i], Version: "2.0.0"}
	}
	insts[2].Version = "1.0.0" // never picked: RequireVersion "2"
	st, err := discovery.NewStatic(map[string][]discovery.Instance{discoService: insts})
	if err != nil {
		t.Fatal(err)
	}
	mp, lim := newLimits(t)
	c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{
		Balancer: discovery.BalancerConfig{Policy: discovery.RoundRobin, RequireVersion: "2"},
		Bulkhead: &bulkhead.Config{Limit: 1, MeterProvider: mp},
	})
	warmUp(t, c, func() bool { return a.calls.Load() > 0 }, func() bool { return b.calls.Load() > 0 })
	_ = old
	ctx, cancel := context.WithCancel(wait(t))
	defer cancel()
	first, heldFirst := holdCall(t, ctx, c, arrived)
	second, heldSecond := holdCall(t, ctx, c, arrived)
	if first == second {
		t.Fatalf("both held calls went to %s", first)
	}
	before := lim.read(t, "bulwark.bulkhead.rejected")

	const n = 10
	for range n {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.UnaryCall(cctx, request("x", codes.OK))
		ccancel()
		mustCode(t, err, codes.ResourceExhausted)
	}
	after := lim.read(t, "bulwark.bulkhead.rejected")
	got := after[addrs[0]] + after[addrs[1]] - before[addrs[0]] - before[addrs[1]]
	// Round robin alternates a and b: two picks find both full.
	if got > 2*n {
		t.Errorf("%d refused calls counted %d rejections, want at most %d (one per pickable instance and call)", n, got, 2*n)
	}
	close(a.release)
	close(b.release)
	close(old.release)
	_ = heldFirst()
	_ = heldSecond()
	lim.released(t)
}
