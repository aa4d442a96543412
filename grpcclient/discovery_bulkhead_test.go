package grpcclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

// limitService is a TestService that answers with its name. A unary call
// whose payload starts with "hold" is announced on arrived, as the
// service's name and the payload, then held until the call's context ends
// or release is closed; a StreamingOutputCall sends one message, then is
// held the same way if its payload says so, then ends as its request's
// ResponseStatus says.
type limitService struct {
	testpb.UnimplementedTestServiceServer
	name    string
	arrived chan<- arrival
	release chan struct{} // closed to let the held calls answer
	calls   atomic.Int32  // unary calls and streams received
}

// arrival is a held call arrived at an instance.
type arrival struct{ name, body string }

// limitServices returns services named after names, announcing the calls
// they hold on one channel.
func limitServices(names ...string) ([]*limitService, <-chan arrival) {
	ch := make(chan arrival, 64)
	out := make([]*limitService, len(names))
	for i, n := range names {
		out[i] = &limitService{name: n, arrived: ch, release: make(chan struct{})}
	}
	return out, ch
}

func (s *limitService) hold(ctx context.Context, body string) error {
	if !strings.HasPrefix(body, "hold") {
		return nil
	}
	s.arrived <- arrival{s.name, body}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (s *limitService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.calls.Add(1)
	if err := s.hold(ctx, string(req.GetPayload().GetBody())); err != nil {
		return nil, err
	}
	if st := req.GetResponseStatus(); st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return &testpb.SimpleResponse{Username: s.name}, nil
}

func (s *limitService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	s.calls.Add(1)
	if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte(s.name)}}); err != nil {
		return err
	}
	if err := s.hold(stream.Context(), string(req.GetPayload().GetBody())); err != nil {
		return err
	}
	if st := req.GetResponseStatus(); st.GetCode() != 0 {
		return status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return nil
}

// holds numbers the held calls of the tests.
var holds atomic.Int64

// holdRequest returns a request that the instance receiving it holds, and
// its payload, by which its arrival is known.
func holdRequest() (*testpb.SimpleRequest, string) {
	body := fmt.Sprint("hold-", holds.Add(1))
	return &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(body)}}, body
}

// arrivalOf waits for the arrival of the held call whose payload is body,
// skipping those of calls that ended before they arrived, and returns the
// name of the instance holding it.
func arrivalOf(t *testing.T, arrived <-chan arrival, body string) string {
	t.Helper()
	ctx := wait(t)
	for {
		select {
		case a := <-arrived:
			if a.body == body {
				return a.name
			}
		case <-ctx.Done():
			t.Fatalf("the held call %s arrived nowhere", body)
		}
	}
}

// holdCall starts a unary call that the instance receiving it holds, and
// returns once it has arrived there, with the instance's name and a
// function that waits for the call to return and gives its error.
func holdCall(t *testing.T, ctx context.Context, c testpb.TestServiceClient, arrived <-chan arrival) (string, func() error) {
	t.Helper()
	req, body := holdRequest()
	done := make(chan error, 1)
	go func() {
		_, err := c.UnaryCall(ctx, req)
		done <- err
	}()
	bound := wait(t)
	for {
		select {
		case a := <-arrived:
			if a.body == body {
				return a.name, func() error { return <-done }
			}
		case err := <-done:
			t.Fatalf("the call to hold returned %v before it arrived anywhere", err)
		case <-bound.Done():
			t.Fatalf("the held call %s arrived nowhere", body)
		}
	}
}

// warmUp calls until every server has received a call, and so every
// connection is ready: until then, a pick of an instance whose
// connection is still being made is passed over, and a call that finds
// the ready ones at their limit is refused.
func warmUp(t *testing.T, c testpb.TestServiceClient, reached ...func() bool) {
	t.Helper()
	ctx := wait(t)
	for slices.ContainsFunc(reached, func(f func() bool) bool { return !f() }) {
		if _, err := c.UnaryCall(ctx, request("x", codes.OK)); err != nil && ctx.Err() != nil {
			t.Fatalf("some server received no call: %v", err)
		}
	}
}

// limitCluster serves each service on a loopback port until the end of
// the test and returns a Static resolver listing them under discoService,
// with the given weights (nil: 1 each), and their addresses.
func limitCluster[S testpb.TestServiceServer](t *testing.T, weights []int, svcs ...S) (*discovery.Static, []string) {
	t.Helper()
	insts := make([]discovery.Instance, len(svcs))
	addrs := make([]string, len(svcs))
	for i, svc := range svcs {
		addrs[i] = startAvoid(t, svc)
		insts[i] = discovery.Instance{Addr: addrs[i]}
		if weights != nil {
			insts[i].Weight = weights[i]
		}
	}
	st, err := discovery.NewStatic(map[string][]discovery.Instance{discoService: insts})
	if err != nil {
		t.Fatal(err)
	}
	return st, addrs
}

// limits reads the per-instance limits of DiscoveryConfig.Bulkhead where
// they are published: the bulkhead metrics, keyed by instance address.
type limits struct{ reader *sdkmetric.ManualReader }

// newLimits returns a MeterProvider to give DiscoveryConfig.Bulkhead, and
// the reader of its metrics.
func newLimits(t testing.TB) (*sdkmetric.MeterProvider, limits) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, limits{reader}
}

// read returns the values of the int64 metric name per bulwark.key.
func (l limits) read(t testing.TB, name string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := l.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is a %T, want a Sum[int64]", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				key, _ := dp.Attributes.Value(attribute.Key("bulwark.key"))
				out[key.AsString()] += dp.Value
			}
		}
	}
	return out
}

// inFlight returns how many attempts hold a slot of each instance.
func (l limits) inFlight(t testing.TB) map[string]int64 {
	return l.read(t, "bulwark.bulkhead.in_flight")
}

// limit returns the limit in force of instance addr.
func (l limits) limit(t testing.TB, addr string) int64 {
	t.Helper()
	v, ok := l.read(t, "bulwark.bulkhead.limit")[addr]
	if !ok {
		t.Fatalf("no limit reported for instance %s", addr)
	}
	return v
}

// released waits (see settled) until no attempt holds a slot of any
// instance: grpc-go reports an attempt's end a moment after the call
// returns, in some cases.
func (l limits) released(t *testing.T) {
	t.Helper()
	settled(t, func() bool {
		for _, n := range l.inFlight(t) {
			if n != 0 {
				return false
			}
		}
		return true
	})
}

// An instance at its limit gets no attempt while another has room: round
// robin alternates between the two, and without the limit half of these
// calls would go to the instance holding a call.
func TestDiscoveryBulkheadPassesOverFull(t *testing.T) {
	svcs, arrived := limitServices("a", "b")
	a, b := svcs[0], svcs[1]
	st, _ := limitCluster(t, nil, a, b)
	mp, lim := newLimits(t)
	c, db := discoDial(t, st, grpcclient.DiscoveryConfig{
		Balancer: discovery.BalancerConfig{Policy: discovery.RoundRobin},
		Bulkhead: &bulkhead.Config{Limit: 1, MeterProvider: mp},
	})
	warmUp(t, c, func() bool { return a.calls.Load() > 0 }, func() bool { return b.calls.Load() > 0 })
	ctx, cancel := context.WithCancel(wait(t))
	defer cancel()
	heldBy, held := holdCall(t, ctx, c, arrived)
	free := map[string]string{"a": "b", "b": "a"}[heldBy]
	for i := range 20 {
		resp, err := c.UnaryCall(wait(t), request("x", codes.OK))
		if err != nil {
			t.Fatalf("call %d: got %v, want %s's answer", i, err, free)
		}
		if got := resp.GetUsername(); got != free {
			t.Fatalf("call %d: answered by %s, at its limit of 1, want %s", i, got, free)
		}
	}
	close(a.release)
	close(b.release)
	if err := held(); err != nil {
		t.Fatalf("the held call: got %v, want success", err)
	}
	lim.released(t)
	var ignored uint64
	for _, s := range db.Status() {
		ignored += s.Ignored
	}
	if ignored < 10 {
		t.Errorf("got %d picks ended Ignored, want at least one for each turn of the full instance passed over", ignored)
	}
}

// When every instance is at its limit, an attempt fails at once with
// ResourceExhausted, matching bulkhead.ErrFull; the Interceptors' breaker
// counts it as Ignored, so that a refusal storm does not open it; and no
// call reaches a server. Waiting for ready changes nothing.
func TestDiscoveryBulkheadAllFull(t *testing.T) {
	svcs, arrived := limitServices("a", "b")
	a, b := svcs[0], svcs[1]
	st, addrs := limitCluster(t, nil, a, b)
	mp, lim := newLimits(t)
	cfg := grpcclient.Standard()
	cfg.Breaker = &breaker.Config{MinimumCalls: 10} // 30 failures would open it
	ic, err := grpcclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ic.Close() })
	c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{
		Bulkhead:      &bulkhead.Config{Limit: 1, MeterProvider: mp},
		ServiceConfig: ic.ServiceConfig(),
	}, ic.DialOptions()...)
	warmUp(t, c, func() bool { return a.calls.Load() > 0 }, func() bool { return b.calls.Load() > 0 })
	warm := a.calls.Load() + b.calls.Load()
	ctx, cancel := context.WithCancel(wait(t))
	defer cancel()
	first, heldFirst := holdCall(t, ctx, c, arrived)
	second, heldSecond := holdCall(t, ctx, c, arrived)
	if first == second {
		t.Fatalf("both held calls went to %s, at its limit of 1", first)
	}
	before := a.calls.Load() + b.calls.Load()

	const n = 30
	for i := range n {
		var opts []grpc.CallOption
		if i%2 == 1 {
			opts = append(opts, grpc.WaitForReady(true))
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		_, err := c.UnaryCall(cctx, request("x", codes.OK), opts...)
		late := cctx.Err() != nil
		ccancel()
		if late {
			t.Fatalf("call %d: got %v after %v, at its deadline: want a refusal at once", i, err, time.Since(start))
		}
		mustCode(t, err, codes.ResourceExhausted)
		if !errors.Is(err, bulkhead.ErrFull) || !errors.Is(err, bulwark.ErrRejected) {
			t.Fatalf("call %d: got %v, want it to match bulkhead.ErrFull and bulwark.ErrRejected", i, err)
		}
	}
	s, err := c.StreamingOutputCall(wait(t), &testpb.StreamingOutputCallRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	mustCode(t, err, codes.ResourceExhausted)

	if got := a.calls.Load() + b.calls.Load() - before; got != 0 {
		t.Errorf("%d refused calls reached a server, want none", got)
	}
	counts(t, ic, unaryMethod, uint32(warm), 0, n)
	counts(t, ic, outMethod, 0, 0, 1)
	if got := ic.Breakers().State(unaryMethod); got != breaker.Closed {
		t.Errorf("the method's breaker is %v after %d refusals, want closed", got, n)
	}
	rejected := lim.read(t, "bulwark.bulkhead.rejected")
	if got := rejected[addrs[0]] + rejected[addrs[1]]; got < n+1 {
		t.Errorf("the instances' limits rejected %d attempts, want at least %d", got, n+1)
	}

	close(a.release)
	close(b.release)
	for _, held := range []func() error{heldFirst, heldSecond} {
		if err := held(); err != nil {
			t.Fatalf("a held call: got %v, want success", err)
		}
	}
	lim.released(t)
	if _, err := c.UnaryCall(wait(t), request("x", codes.OK)); err != nil {
		t.Fatalf("after the held calls: got %v, want success", err)
	}
	counts(t, ic, unaryMethod, uint32(warm)+3, 0, n)
}

// Every way an attempt ends gives its slot back: one instance with a limit
// of 1 admits the next call after each. The held calls are held until
// their context ends.
func TestDiscoveryBulkheadReleases(t *testing.T) {
	svcs, arrived := limitServices("only")
	st, addrs := limitCluster(t, nil, svcs...)
	mp, lim := newLimits(t)
	ic, err := grpcclient.New(grpcclient.Config{AttemptTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ic.Close() })
	c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{Bulkhead: &bulkhead.Config{Limit: 1, MeterProvider: mp}}, ic.DialOptions()...)
	if _, err := c.UnaryCall(wait(t), request("x", codes.OK)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func(t *testing.T) error
		want codes.Code
	}{
		{"success", func(t *testing.T) error {
			_, err := c.UnaryCall(wait(t), request("x", codes.OK))
			return err
		}, codes.OK},
		{"server error", func(t *testing.T) error {
			_, err := c.UnaryCall(wait(t), request("x", codes.Internal))
			return err
		}, codes.Internal},
		{"caller cancels", func(t *testing.T) error {
			ctx, cancel := context.WithCancel(wait(t))
			defer cancel()
			_, held := holdCall(t, ctx, c, arrived)
			cancel()
			return held()
		}, codes.Canceled},
		{"caller's deadline", func(t *testing.T) error {
			ctx, cancel := context.WithTimeout(wait(t), 20*time.Millisecond)
			defer cancel()
			req, _ := holdRequest()
			_, err := c.UnaryCall(ctx, req)
			return err
		}, codes.DeadlineExceeded},
		{"attempt deadline of ours", func(t *testing.T) error {
			req, _ := holdRequest()
			_, err := c.UnaryCall(wait(t), req)
			return err
		}, codes.DeadlineExceeded},
		{"stream read to its end", func(t *testing.T) error {
			s, err := c.StreamingOutputCall(wait(t), &testpb.StreamingOutputCallRequest{})
			for err == nil {
				_, err = s.Recv()
			}
			if err == io.EOF {
				return nil
			}
			return err
		}, codes.OK},
		{"stream ends with an error", func(t *testing.T) error {
			s, err := c.StreamingOutputCall(wait(t), &testpb.StreamingOutputCallRequest{
				ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Unavailable), Message: "as asked"}})
			for err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.Unavailable},
		{"stream abandoned by its caller", func(t *testing.T) error {
			ctx, cancel := context.WithCancel(wait(t))
			defer cancel()
			_, body := holdRequest()
			s, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(body)}})
			if err != nil {
				return err
			}
			if _, err := s.Recv(); err != nil {
				return err
			}
			arrivalOf(t, arrived, body)
			cancel() // and never read again
			return status.FromContextError(ctx.Err()).Err()
		}, codes.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustCode(t, tt.run(t), tt.want)
			lim.released(t)
			if got, ok := lim.inFlight(t)[addrs[0]]; !ok || got != 0 {
				t.Fatalf("the instance holds %d slots (reported: %v), want 0", got, ok)
			}
			// The one slot is free: the next call is admitted.
			if _, err := c.UnaryCall(wait(t), request("x", codes.OK)); err != nil {
				t.Fatalf("the next call: got %v, want success", err)
			}
		})
	}
}

// queueing is a TestService that serves one call at a time and queues the
// rest, each taking svc: the latency of a call grows with the calls in
// flight, which an adaptive limit reads as queueing.
type queueing struct {
	testpb.UnimplementedTestServiceServer
	name  string
	svc   time.Duration
	one   bool       // serve one call at a time
	mu    sync.Mutex // held while serving, when one
	calls atomic.Int32
}

func (q *queueing) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	q.calls.Add(1)
	if q.one {
		q.mu.Lock()
		defer q.mu.Unlock()
	}
	// Service time to measure, not a wait for anything.
	t := time.NewTimer(q.svc)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &testpb.SimpleResponse{Username: q.name}, nil
}

// The adaptive limit of each instance learns from that instance's attempts
// alone: it shrinks on an instance that queues its calls and holds on a
// healthy one beside it, at every reading. The queueing one is weighted to
// take 9 round-robin turns in 10, so that its limit is put to the test; the
// healthy one takes what it refuses, and with 7 callers for its 8 slots it
// is never at its limit, so it neither grows nor probes: only a cut would
// change it.
func TestDiscoveryBulkheadAdaptive(t *testing.T) {
	slow := &queueing{name: "slow", svc: 20 * time.Millisecond, one: true}
	// Slower, but never queueing: a loaded machine stalls calls now and
	// then, and only a stall of half its latency, on average over a
	// window, would look like queueing (Tolerance 1.5).
	healthy := &queueing{name: "healthy", svc: 40 * time.Millisecond}
	st, addrs := limitCluster(t, []int{9, 1}, slow, healthy)
	mp, lim := newLimits(t)
	const initial = 8
	c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{
		Balancer: discovery.BalancerConfig{Policy: discovery.RoundRobin, Ejection: noEjection},
		Bulkhead: &bulkhead.Config{Limit: initial, MeterProvider: mp, Adaptive: &bulkhead.AdaptiveConfig{
			InitialLimit: initial, Window: 20 * time.Millisecond, MinSamples: 4,
			// A no-load latency measured under a queue holds a limit
			// too high until the next probe: probe often.
			ProbeInterval: 200 * time.Millisecond,
		}},
	})
	warmUp(t, c, func() bool { return slow.calls.Load() > 0 }, func() bool { return healthy.calls.Load() > 0 })

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range initial - 1 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, err := c.UnaryCall(ctx, request("x", codes.OK))
				if err != nil && ctx.Err() == nil && failed.Add(1) == 1 {
					t.Logf("first failure: %v", err)
				}
			}
		})
	}
	// Read the limits every 10ms until the queueing instance's is down to
	// what it serves (between 1 and 2 for one call at a time), with a few
	// hundred calls served, for 10s at most. The limits change in windows
	// of 40ms and more: a reading is no wait for an event that a channel
	// could signal.
	bound := time.NewTimer(10 * time.Second)
	defer bound.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	slowLimit, healthyLimit := int64(initial), int64(initial)
	for slowLimit > 2 || slow.calls.Load()+healthy.calls.Load() < 300 {
		select {
		case <-tick.C:
		case <-bound.C:
			t.Errorf("the queueing instance's limit is %d after 10s, want it cut from %d to 2 or less", slowLimit, initial)
		}
		if t.Failed() {
			break
		}
		slowLimit, healthyLimit = lim.limit(t, addrs[0]), lim.limit(t, addrs[1])
		if healthyLimit != initial {
			t.Errorf("the healthy instance's limit is %d, want %d: it learned from the other's latency", healthyLimit, initial)
		}
	}
	stop()
	wg.Wait()
	t.Logf("calls: slow %d, healthy %d; limits: slow %d, healthy %d", slow.calls.Load(), healthy.calls.Load(), slowLimit, healthyLimit)
	if n := failed.Load(); n > 0 {
		t.Errorf("%d calls failed, want none", n)
	}
	if n := healthy.calls.Load(); n < 50 {
		t.Errorf("the healthy instance served %d calls, want at least 50 for its limit to have been put to the test", n)
	}
	lim.released(t)
}

// Every refusal when every instance is at its limit is the same error,
// which the balancer made once, and which grpc-go hands back as it is:
// what a refused call allocates is grpc-go's and the interceptors' (logged
// for reference), nothing of the picker's own.
func TestDiscoveryBulkheadRefusalAllocs(t *testing.T) {
	svcs, arrived := limitServices("only")
	st, _ := limitCluster(t, nil, svcs...)
	c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{Bulkhead: &bulkhead.Config{Limit: 1}})
	ctx, cancel := context.WithCancel(wait(t))
	defer cancel()
	_, held := holdCall(t, ctx, c, arrived)
	req := request("x", codes.OK)
	var errs []error
	refuse := func() {
		_, err := c.UnaryCall(context.Background(), req)
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("got %v, want ResourceExhausted", err)
		}
		errs = append(errs[:min(len(errs), 1)], err)
	}
	allocs := testing.AllocsPerRun(100, refuse)
	cancel()
	if err := held(); status.Code(err) != codes.Canceled {
		t.Fatalf("the held call: got %v, want Canceled", err)
	}
	t.Logf("a refused call allocates %v", allocs)
	if errs[0] != errs[1] {
		t.Errorf("got a new error for each refusal (%p, then %p), want the picker's one", errs[0], errs[1])
	}
}

// Bulkhead settings that would make a pick wait, or that the bulkhead
// rejects, are errors naming the field.
func TestDiscoveryBulkheadConfigErrors(t *testing.T) {
	st, err := discovery.NewStatic(map[string][]discovery.Instance{discoService: nil})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  bulkhead.Config
		want string
	}{
		{"queue", bulkhead.Config{MaxQueue: 4}, "DiscoveryConfig.Bulkhead.MaxQueue is 4, want 0"},
		{"wait", bulkhead.Config{MaxQueue: 4, MaxWait: time.Second}, "DiscoveryConfig.Bulkhead.MaxQueue"},
		{"wait without queue", bulkhead.Config{MaxWait: time.Second}, "DiscoveryConfig.Bulkhead.MaxWait is 1s, want 0"},
		{"negative limit", bulkhead.Config{Limit: -1}, "DiscoveryConfig.Bulkhead: bulkhead: Config.Limit is -1"},
		{"bad adaptive", bulkhead.Config{Adaptive: &bulkhead.AdaptiveConfig{Tolerance: 0.5}}, "DiscoveryConfig.Bulkhead: bulkhead: Config.Adaptive.Tolerance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			_, db, err := grpcclient.DiscoveryDialOptions(t.Context(), st, discoService, grpcclient.DiscoveryConfig{Bulkhead: &cfg})
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
