package grpcclient_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

// One of three live instances answers UNAVAILABLE to every call. The
// Balancer of DiscoveryDialOptions learns each attempt's outcome from
// grpc-go and ejects the instance after its fifth failure in a row; while
// it is ejected no call reaches it, and once its ejection time has passed
// it is tried again. Its connection stays ready throughout: only the
// ejection keeps the calls off it.
//
// Round robin, so that the failing instance keeps being picked until it
// is ejected: under peak EWMA its failures make it too costly to draw,
// and the ejection would wait on the decay of its estimate.
func TestDiscoveryEjectsAnInstanceAnsweringUnavailable(t *testing.T) {
	const ejectFor = time.Second // long enough for the calls made while ejected
	unavailable := func(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		return nil, status.Error(codes.Unavailable, "always unavailable")
	}
	servers, st := cluster(t, 3, func(i int) *service {
		if i == 1 {
			return &service{unary: unavailable}
		}
		return nil
	})
	bad := servers[1]
	c, db := discoDial(t, st, grpcclient.DiscoveryConfig{Balancer: discovery.BalancerConfig{
		Policy:   discovery.RoundRobin,
		Ejection: discovery.Ejection{BaseTime: ejectFor},
	}})
	statusOf := func() discovery.InstanceStatus {
		for _, s := range db.Status() {
			if s.Instance.Addr == bad.addr {
				return s
			}
		}
		t.Fatalf("%s is not in the Balancer's set %+v", bad.addr, db.Status())
		return discovery.InstanceStatus{}
	}
	ctx := wait(t)

	// Until the ejection: every call the failing instance receives fails.
	for !statusOf().Ejected {
		if n := bad.calls.Load(); n > 5 || ctx.Err() != nil {
			t.Fatalf("not ejected after %d calls to it: %+v", n, statusOf())
		}
		_, err := c.UnaryCall(ctx, request("x", codes.OK))
		if code := status.Code(err); code != codes.OK && code != codes.Unavailable {
			t.Fatalf("got %v, want success or UNAVAILABLE", err)
		}
	}
	ejected := statusOf()
	if ejected.Failures != 5 || ejected.Successes != 0 || ejected.Ejections != 1 {
		t.Fatalf("at the ejection: %+v, want 5 failures (the default rule), no success, a first ejection", ejected)
	}
	if left := time.Until(ejected.EjectedUntil); left <= 0 || left > ejectFor {
		t.Fatalf("ejected for %v more, want at most %v", left, ejectFor)
	}

	// While ejected: every call goes to the two others and succeeds.
	const n = 30
	before, start := callCounts(servers), time.Now()
	for i := range n {
		if _, err := c.UnaryCall(ctx, request("x", codes.OK)); err != nil {
			t.Fatalf("call %d while %s is ejected: got %v, want success", i, bad.addr, err)
		}
		if !time.Now().Before(ejected.EjectedUntil) {
			t.Fatalf("the ejection ended after only %d of %d calls: raise ejectFor", i+1, n)
		}
	}
	after, took := callCounts(servers), time.Since(start)
	if got := after[1] - before[1]; got != 0 {
		t.Fatalf("the ejected instance got %d of the %d calls made while it was ejected (calls %v → %v), want none", got, n, before, after)
	}
	if got := after[0] - before[0] + after[2] - before[2]; got != n {
		t.Fatalf("the two other instances got %d calls, want %d", got, n)
	}
	if s := statusOf(); !s.Ejected && time.Now().Before(ejected.EjectedUntil) {
		t.Fatalf("before its ejection time: %+v, want still ejected", s)
	}

	// After its ejection time: it is picked again (and fails again).
	back, cancel := context.WithDeadline(ctx, ejected.EjectedUntil.Add(5*time.Second))
	defer cancel()
	for bad.calls.Load() == after[1] {
		if back.Err() != nil {
			t.Fatalf("not tried again %v after its ejection time: %+v", time.Since(ejected.EjectedUntil), statusOf())
		}
		_, _ = c.UnaryCall(ctx, request("x", codes.OK))
	}
	late := time.Since(ejected.EjectedUntil)
	if late < 0 {
		t.Fatalf("tried again %v before its ejection time", -late)
	}
	s := statusOf()
	if s.Failures <= ejected.Failures {
		t.Fatalf("after the return: %+v, want more failures than the %d at the ejection", s, ejected.Failures)
	}
	t.Logf("ejected after %d failures; %d calls elsewhere in %v while ejected for %v; tried again %v after its ejection time",
		ejected.Failures, n, took, ejectFor, late)
}
