package grpcclient_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

const discoService = "users"

// cluster starts n TestService servers and a Static resolver listing them
// under discoService.
func cluster(t *testing.T, n int, svc func(i int) *service) ([]*server, *discovery.Static) {
	t.Helper()
	servers := make([]*server, n)
	for i := range servers {
		var s *service
		if svc != nil {
			s = svc(i)
		}
		servers[i] = newServer(t, s)
	}
	return servers, staticOf(t, servers)
}

// staticOf returns a Static resolver listing servers under discoService.
func staticOf(t testing.TB, servers []*server) *discovery.Static {
	t.Helper()
	insts := make([]discovery.Instance, len(servers))
	for i, s := range servers {
		insts[i] = discovery.Instance{Addr: s.addr, Meta: map[string]string{"i": string(rune('a' + i))}}
	}
	st, err := discovery.NewStatic(map[string][]discovery.Instance{discoService: insts})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// discoDial dials discoService through r with DiscoveryDialOptions; the
// connection and the Balancer are closed at the end of the test.
func discoDial(t *testing.T, r discovery.Resolver, cfg grpcclient.DiscoveryConfig, extra ...grpc.DialOption) (testpb.TestServiceClient, *discovery.Balancer) {
	t.Helper()
	return discoDialAround(t, r, cfg, nil, extra)
}

// discoDialAround is discoDial with options given before DiscoveryDialOptions'
// own, and after.
func discoDialAround(t *testing.T, r discovery.Resolver, cfg grpcclient.DiscoveryConfig, before, after []grpc.DialOption) (testpb.TestServiceClient, *discovery.Balancer) {
	t.Helper()
	opts, db, err := grpcclient.DiscoveryDialOptions(t.Context(), r, discoService, cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts = append(slices.Concat(before, opts), grpc.WithTransportCredentials(insecure.NewCredentials()), fastReconnect())
	conn, err := grpc.NewClient(grpcclient.DiscoveryTarget(discoService), append(opts, after...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		if err := db.Close(); err != nil {
			t.Errorf("closing the Balancer: %v", err)
		}
	})
	return testpb.NewTestServiceClient(conn), db
}

// callCounts returns how many unary calls each server received.
func callCounts(servers []*server) []int32 {
	out := make([]int32, len(servers))
	for i, s := range servers {
		out[i] = s.calls.Load()
	}
	return out
}

// retryUnavailable is a service config that retries UNAVAILABLE quickly,
// as grpcclient's would.
const retryUnavailable = `{"methodConfig":[{"name":[{"service":"grpc.testing.TestService"}],` +
	`"retryPolicy":{"maxAttempts":4,"initialBackoff":"0.001s","maxBackoff":"0.01s","backoffMultiplier":2,` +
	`"retryableStatusCodes":["UNAVAILABLE"]}}],"loadBalancingConfig":[{"round_robin":{}}]}`

func TestDiscoverySpreads(t *testing.T) {
	for _, policy := range []discovery.Policy{discovery.PeakEWMA, discovery.RoundRobin} {
		t.Run(policy.String(), func(t *testing.T) {
			servers, st := cluster(t, 3, nil)
			c, db := discoDial(t, st, grpcclient.DiscoveryConfig{Balancer: discovery.BalancerConfig{Policy: policy}})
			const n = 300
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for w := range 4 {
				wg.Go(func() {
					for i := w; i < n; i += 4 {
						if _, err := c.UnaryCall(wait(t), request("x", codes.OK)); err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("got %v, want no error", err)
			}
			got := callCounts(servers)
			t.Logf("calls: %v", got)
			// Peak-EWMA follows latency: on a loaded machine one server may
			// look slower for a while and draw less (29 of 300 once), but
			// none is starved.
			least := int32(n / 10)
			if policy == discovery.PeakEWMA {
				least = n / 20
			}
			for i, k := range got {
				if k < least {
					t.Errorf("server %d got %d of %d calls (%v), want at least %d", i, k, n, got, least)
				}
			}
			var reported uint64
			for _, s := range db.Status() {
				reported += s.Successes
			}
			if reported != n {
				t.Errorf("got %d successes reported to the Balancer, want %d", reported, n)
			}
		})
	}
}

func TestDiscoveryStoppedInstance(t *testing.T) {
	servers, st := cluster(t, 3, nil)
	c, db := discoDial(t, st, grpcclient.DiscoveryConfig{ServiceConfig: retryUnavailable})
	for range 30 { // every connection made
		if _, err := c.UnaryCall(wait(t), request("x", codes.OK)); err != nil {
			t.Fatalf("got %v, want no error", err)
		}
	}
	picked := func() uint64 { // attempts the Balancer saw end on the instance to stop, but Ignored ones
		for _, st := range db.Status() {
			if st.Instance.Addr == servers[1].addr {
				return st.Successes + st.Failures
			}
		}
		return 0
	}
	pickedBefore := picked()
	servers[1].stop()
	before := callCounts(servers)
	const n = 200
	for i := range n {
		if _, err := c.UnaryCall(wait(t), request("x", codes.OK)); err != nil {
			t.Fatalf("call %d after stopping %s: got %v, want no error", i, servers[1].addr, err)
		}
	}
	after := callCounts(servers)
	t.Logf("calls before the stop %v, after %v; balancer %+v", before, after, db.Status())
	if after[1] != before[1] {
		t.Errorf("the stopped server got %d calls, want 0", after[1]-before[1])
	}
	if got := after[0] - before[0] + after[2] - before[2]; got != n {
		t.Errorf("got %d calls on the live servers, want %d", got, n)
	}
	// When attempts still ended on the stopped instance (P2C may simply
	// never draw it again; a pick while it reconnects ends Ignored), they
	// must be failures or lead to an ejection, never a success.
	for _, s := range db.Status() {
		if s.Instance.Addr == servers[1].addr && picked() != pickedBefore && s.Failures == 0 && !s.Ejected {
			t.Errorf("the stopped instance was picked again: %d failures, ejected %v; want failures or an ejection", s.Failures, s.Ejected)
		}
	}
}

func TestDiscoverySlowInstance(t *testing.T) {
	slow := func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		// Latency to measure, not a wait for anything.
		select {
		case <-time.After(30 * time.Millisecond):
		case <-ctx.Done():
		}
		return echo(req)
	}
	servers, st := cluster(t, 3, func(i int) *service {
		if i == 0 {
			return &service{unary: slow}
		}
		return nil
	})
	c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{})
	const n = 300
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				if _, err := c.UnaryCall(wait(t), request("x", codes.OK)); err != nil {
					t.Errorf("got %v, want no error", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := callCounts(servers)
	t.Logf("calls: %v (server 0 slow)", got)
	if got[0]*2 > min(got[1], got[2]) {
		t.Errorf("got calls %v, want the slow server 0 at less than half of each fast one", got)
	}
}

func TestDiscoverySetChanges(t *testing.T) {
	servers, st := cluster(t, 3, nil)
	if err := st.Set(discoService, []discovery.Instance{{Addr: servers[0].addr}, {Addr: servers[1].addr}}); err != nil {
		t.Fatal(err)
	}
	c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{})
	for range 40 {
		if _, err := c.UnaryCall(wait(t), request("x", codes.OK)); err != nil {
			t.Fatalf("got %v, want no error", err)
		}
	}
	if got := callCounts(servers); got[2] != 0 {
		t.Fatalf("got calls %v, want none on server 2, not listed", got)
	}

	if err := st.Set(discoService, []discovery.Instance{{Addr: servers[2].addr}}); err != nil {
		t.Fatal(err)
	}
	// The change reaches the ClientConn and the Balancer asynchronously:
	// call until a call lands on server 2 (bounded by wait's deadline).
	ctx := wait(t)
	for servers[2].calls.Load() == 0 {
		if _, err := c.UnaryCall(ctx, request("x", codes.OK)); err != nil && ctx.Err() != nil {
			t.Fatalf("no call reached server 2 after the change: %v", err)
		}
	}
	before := callCounts(servers)
	for range 30 {
		if _, err := c.UnaryCall(wait(t), request("x", codes.OK)); err != nil {
			t.Fatalf("got %v, want no error", err)
		}
	}
	after := callCounts(servers)
	if after[2]-before[2] != 30 {
		t.Errorf("got calls %v then %v, want all 30 on server 2", before, after)
	}

	if err := st.Set(discoService, nil); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := c.UnaryCall(ctx, request("x", codes.OK))
		if err == nil {
			continue // the empty set is on its way
		}
		if ctx.Err() != nil {
			t.Fatalf("got %v, want the calls to fail fast once the set is empty", err)
		}
		mustCode(t, err, codes.Unavailable)
		if !strings.Contains(err.Error(), "no instance") {
			t.Errorf("got %q, want it to say there is no instance", err)
		}
		break
	}
}

func TestDiscoveryEmptyFailsFast(t *testing.T) {
	st, err := discovery.NewStatic(map[string][]discovery.Instance{discoService: nil})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{})
	ctx := wait(t)
	_, err = c.UnaryCall(ctx, request("x", codes.OK))
	if ctx.Err() != nil {
		t.Fatalf("got %v after the call's deadline, want a refusal before", err)
	}
	mustCode(t, err, codes.Unavailable)
	if want := `no instance of "users"`; !strings.Contains(err.Error(), want) {
		t.Errorf("got %q, want it to contain %q", err, want)
	}
}

func TestDiscoveryDialOptionsErrors(t *testing.T) {
	st, err := discovery.NewStatic(map[string][]discovery.Instance{discoService: nil})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		r       discovery.Resolver
		service string
		cfg     grpcclient.DiscoveryConfig
		want    string
	}{
		{"bad service config", st, discoService, grpcclient.DiscoveryConfig{ServiceConfig: "{"}, "DiscoveryConfig.ServiceConfig"},
		{"service config not an object", st, discoService, grpcclient.DiscoveryConfig{ServiceConfig: "[]"}, "DiscoveryConfig.ServiceConfig"},
		// JSON, but not a service config: grpc-go would refuse it only
		// when the ClientConn first resolves, failing every call.
		{"service config grpc-go refuses", st, discoService, grpcclient.DiscoveryConfig{ServiceConfig: `{"methodConfig": 5}`}, "DiscoveryConfig.ServiceConfig"},
		{"nil resolver", nil, discoService, grpcclient.DiscoveryConfig{}, "nil Resolver"},
		{"unknown service", st, "nobody", grpcclient.DiscoveryConfig{}, "unknown service"},
		{"bad balancer config", st, discoService, grpcclient.DiscoveryConfig{Balancer: discovery.BalancerConfig{FailurePenalty: 0.5}}, "FailurePenalty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, db, err := grpcclient.DiscoveryDialOptions(t.Context(), tt.r, tt.service, tt.cfg)
			if err == nil {
				_ = db.Close()
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// A service config of JSON null is none, as grpc-go reads it: the
// balancer's alone.
func TestDiscoveryNullServiceConfig(t *testing.T) {
	servers, st := cluster(t, 1, nil)
	c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{ServiceConfig: "null"})
	if _, err := c.UnaryCall(wait(t), request("x", codes.OK)); err != nil {
		t.Fatal(err)
	}
	if got := servers[0].calls.Load(); got != 1 {
		t.Fatalf("server got %d calls, want 1", got)
	}
}

func TestDiscoveryWrongTarget(t *testing.T) {
	st, err := discovery.NewStatic(map[string][]discovery.Instance{discoService: nil})
	if err != nil {
		t.Fatal(err)
	}
	opts, db, err := grpcclient.DiscoveryDialOptions(t.Context(), st, discoService, grpcclient.DiscoveryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient(grpcclient.DiscoveryTarget("orders"), opts...)
	if err == nil {
		// grpc-go builds the resolver when the channel leaves idle.
		_, err = testpb.NewTestServiceClient(conn).UnaryCall(wait(t), request("x", codes.OK))
		_ = conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), `want "users"`) {
		t.Errorf("got %v, want an error naming the resolver's service", err)
	}
}

// fakeCC is the resolver's side of a ClientConn: it hands each state on.
type fakeCC struct {
	resolver.ClientConn
	states chan resolver.State
}

func (f *fakeCC) UpdateState(s resolver.State) error { f.states <- s; return nil }
func (f *fakeCC) ReportError(error)                  {}
func (f *fakeCC) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{}
}

func TestResolverAddresses(t *testing.T) {
	insts := []discovery.Instance{
		{Addr: "10.0.0.1:50051", Version: "1.2.0", Weight: 2, Meta: map[string]string{"zone": "a"}},
		{Addr: "10.0.0.2:50051", Meta: map[string]string{"zone": "b"}},
	}
	st, err := discovery.NewStatic(map[string][]discovery.Instance{discoService: insts})
	if err != nil {
		t.Fatal(err)
	}
	b := grpcclient.Resolver(st, discoService)
	if got := b.Scheme(); got != grpcclient.DiscoveryScheme {
		t.Errorf("got scheme %q, want %q", got, grpcclient.DiscoveryScheme)
	}
	cc := &fakeCC{states: make(chan resolver.State, 8)}
	r, err := b.Build(resolver.Target{URL: *mustURL(t, grpcclient.DiscoveryTarget(discoService))}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := <-cc.states
	if len(s.Addresses) != len(insts) {
		t.Fatalf("got %d addresses, want %d", len(s.Addresses), len(insts))
	}
	for i, a := range s.Addresses {
		got, ok := grpcclient.InstanceOf(a)
		switch {
		case !ok:
			t.Errorf("[%d]: got no instance in %v", i, a)
		case a.Addr != insts[i].Addr || got.Addr != insts[i].Addr || got.Version != insts[i].Version ||
			got.Weight != insts[i].Weight || got.Meta["zone"] != insts[i].Meta["zone"]:
			t.Errorf("[%d]: got %q with %+v, want %+v", i, a.Addr, got, insts[i])
		}
	}
	if s.ServiceConfig != nil {
		t.Errorf("got service config %v, want none from Resolver", s.ServiceConfig)
	}

	if err := st.Set(discoService, insts[1:]); err != nil {
		t.Fatal(err)
	}
	if s := <-cc.states; len(s.Addresses) != 1 || s.Addresses[0].Addr != insts[1].Addr {
		t.Errorf("got %v after Set, want only %s", s.Addresses, insts[1].Addr)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
