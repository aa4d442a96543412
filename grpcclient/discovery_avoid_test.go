package grpcclient_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/grpcclient"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/retry"
)

// attemptLog records, across the servers of a test, where each attempt of
// each call went: the call is named by the "call-id" metadata the client
// sends, the attempt by grpc-go's grpc-previous-rpc-attempts (absent on a
// call's first grpc-go attempt; a hedge is a first attempt too).
type attemptLog struct {
	mu    sync.Mutex
	calls map[string][]attemptSeen
}

type attemptSeen struct {
	server string
	retry  int // grpc-previous-rpc-attempts
}

func newAttemptLog() *attemptLog { return &attemptLog{calls: map[string][]attemptSeen{}} }

// add records an attempt on server and returns how many attempts of the
// same call this server had received before.
func (l *attemptLog) add(ctx context.Context, server string) (a attemptSeen, before int) {
	md, _ := metadata.FromIncomingContext(ctx)
	id := ""
	if v := md.Get("call-id"); len(v) > 0 {
		id = v[0]
	}
	a.server = server
	if v := md.Get("grpc-previous-rpc-attempts"); len(v) > 0 {
		a.retry, _ = strconv.Atoi(v[0])
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.calls[id] {
		if s.server == server {
			before++
		}
	}
	l.calls[id] = append(l.calls[id], a)
	return a, before
}

// reached reports whether server received an attempt.
func (l *attemptLog) reached(server string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, as := range l.calls {
		for _, a := range as {
			if a.server == server {
				return true
			}
		}
	}
	return false
}

// warm calls until every server has received an attempt, which it does
// once the ClientConn has its connection: until then, picks of it are
// passed over, and an attempt avoiding another instance may have to go
// back to that one.
func warm(t *testing.T, log *attemptLog, call func(context.Context) error, servers ...string) {
	t.Helper()
	ctx := wait(t)
	for i := 0; slices.ContainsFunc(servers, func(s string) bool { return !log.reached(s) }); i++ {
		if ctx.Err() != nil {
			t.Fatalf("some of %v received no attempt", servers)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = call(metadata.AppendToOutgoingContext(cctx, "call-id", fmt.Sprint("warm-", i))) // refused while connecting
		cancel()
	}
}

// of returns the attempts of call id, in the order they arrived.
func (l *attemptLog) of(id string) []attemptSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls[id])
}

// avoidService is a TestService whose UnaryCall and StreamingOutputCall
// log each attempt, then answer as answer says: nil means success.
type avoidService struct {
	testpb.UnimplementedTestServiceServer
	name   string
	log    *attemptLog
	answer func(ctx context.Context, a attemptSeen, before int) error
}

func (s *avoidService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	a, before := s.log.add(ctx, s.name)
	if err := s.answer(ctx, a, before); err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload(), Username: s.name}, nil
}

func (s *avoidService) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	a, before := s.log.add(stream.Context(), s.name)
	if err := s.answer(stream.Context(), a, before); err != nil {
		return err
	}
	return stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte(s.name)}})
}

var (
	failAll = func(context.Context, attemptSeen, int) error {
		return status.Error(codes.Unavailable, "always failing")
	}
	succeed    = func(context.Context, attemptSeen, int) error { return nil }
	blockUntil = func(ctx context.Context, _ attemptSeen, _ int) error {
		<-ctx.Done() // the caller cancels the losing attempt
		return status.FromContextError(ctx.Err()).Err()
	}
)

// startAvoid serves svc on a loopback port until the end of the test and
// returns its address.
func startAvoid(t testing.TB, svc testpb.TestServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, svc)
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(lis) })
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
	})
	return lis.Addr().String()
}

// weighted starts one server per service and returns a Static resolver
// listing them under discoService with the given weights.
func weighted(t *testing.T, svcs []*avoidService, weights []int) *discovery.Static {
	t.Helper()
	insts := make([]discovery.Instance, len(svcs))
	for i, s := range svcs {
		insts[i] = discovery.Instance{Addr: startAvoid(t, s), Weight: weights[i]}
	}
	st, err := discovery.NewStatic(map[string][]discovery.Instance{discoService: insts})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// noEjection keeps the failing instance in the set, so that avoiding it is
// the only thing keeping a retry off it.
var noEjection = discovery.Ejection{ConsecutiveFailures: -1, StdevFactor: -1}

// retryOnce retries UNAVAILABLE once: a retry that lands on the instance
// that just failed fails the call.
const retryOnce = `{"methodConfig":[{"name":[{"service":"grpc.testing.TestService"}],` +
	`"retryPolicy":{"maxAttempts":2,"initialBackoff":"0.001s","maxBackoff":"0.001s","backoffMultiplier":1,` +
	`"retryableStatusCodes":["UNAVAILABLE"]}}]}`

// callCtx returns the context of call id: its id in the metadata, and a
// bound on how long it may take.
func callCtx(t *testing.T, id string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "call-id", id)
}

func where(as []attemptSeen) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.server
		if a.retry > 0 {
			out[i] += fmt.Sprintf("(retry %d)", a.retry)
		}
	}
	return out
}

// Two instances, one failing every attempt, the bad one weighted to take
// 100 picks in 101, no ejection, one retry: every call succeeds because
// every retry of an attempt that failed on the bad instance goes to the
// good one. Picking each attempt on its own, most retries would land on
// the bad instance again and fail the call.
func TestDiscoveryRetryAvoidsFailedInstance(t *testing.T) {
	for _, policy := range []discovery.Policy{discovery.RoundRobin, discovery.PeakEWMA} {
		for _, stream := range []bool{false, true} {
			name := policy.String() + "/unary"
			if stream {
				name = policy.String() + "/stream"
			}
			t.Run(name, func(t *testing.T) {
				log := newAttemptLog()
				st := weighted(t, []*avoidService{
					{name: "bad", log: log, answer: failAll},
					{name: "good", log: log, answer: succeed},
				}, []int{100, 1})
				c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{
					// A failure counting no more than a typical latency,
					// the bad instance keeps its share under Peak EWMA.
					Balancer:      discovery.BalancerConfig{Policy: policy, Ejection: noEjection, FailurePenalty: 1},
					ServiceConfig: retryOnce,
				})
				call := func(ctx context.Context) error {
					if !stream {
						_, err := c.UnaryCall(ctx, request("x", codes.OK))
						return err
					}
					s, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
					if err != nil {
						return err
					}
					m, err := s.Recv()
					if err == nil && string(m.GetPayload().GetBody()) != "good" {
						err = fmt.Errorf("answered by %q", m.GetPayload().GetBody())
					}
					return err
				}
				warm(t, log, call, "bad", "good")
				const n = 50
				retried := 0
				for i := range n {
					id := fmt.Sprint(i)
					err := call(callCtx(t, id))
					got := where(log.of(id))
					if err != nil {
						t.Fatalf("call %d: got %v after attempts on %v, want success: a retry went back to the instance that failed", i, err, got)
					}
					switch {
					case slices.Equal(got, []string{"good"}):
					case slices.Equal(got, []string{"bad", "good(retry 1)"}):
						retried++
					default:
						t.Fatalf("call %d: got attempts on %v, want [good] or [bad good(retry 1)]", i, got)
					}
				}
				t.Logf("%d of %d calls retried on the good instance after failing on the bad one", retried, n)
				if retried < n/2 {
					t.Errorf("got %d calls whose first attempt failed on the bad instance, want at least %d (it takes 100 picks in 101)", retried, n/2)
				}
			})
		}
	}
}

// A slow instance, weighted to take 100 picks in 101, and a fast one; the
// hedge of a call goes to the instance its first attempt is not waiting
// on. Picking it on its own, the hedge would mostly join the first attempt
// on the slow instance and the call would run out of time.
func TestDiscoveryHedgeAvoidsFirstInstance(t *testing.T) {
	budget, err := retry.NewBudget(retry.BudgetConfig{PerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, policy := range []discovery.Policy{discovery.RoundRobin, discovery.PeakEWMA} {
		for _, interceptorsFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/interceptors-first=%v", policy, interceptorsFirst), func(t *testing.T) {
				testHedgeAvoids(t, budget, policy, interceptorsFirst)
			})
		}
	}
}

// testHedgeAvoids is TestDiscoveryHedgeAvoidsFirstInstance for one policy
// and one order of the dial options.
func testHedgeAvoids(t *testing.T, budget *retry.Budget, policy discovery.Policy, interceptorsFirst bool) {
	log := newAttemptLog()
	st := weighted(t, []*avoidService{
		{name: "slow", log: log, answer: blockUntil},
		{name: "fast", log: log, answer: succeed},
	}, []int{100, 1})
	ic, err := grpcclient.New(grpcclient.Config{Methods: map[string]grpcclient.Method{
		unaryMethod: {Hedge: &hedge.Config{Delay: 5 * time.Millisecond, Budget: budget}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ic.Close() })
	cfg := grpcclient.DiscoveryConfig{Balancer: discovery.BalancerConfig{Policy: policy}}
	var c testpb.TestServiceClient
	if interceptorsFirst {
		c, _ = discoDialAround(t, st, cfg, ic.DialOptions(), nil)
	} else {
		c, _ = discoDial(t, st, cfg, ic.DialOptions()...)
	}
	warm(t, log, func(ctx context.Context) error {
		_, err := c.UnaryCall(ctx, request("x", codes.OK))
		return err
	}, "slow", "fast")
	const n = 30
	hedged := 0
	for i := range n {
		id := fmt.Sprint(i)
		resp, err := c.UnaryCall(callCtx(t, id), request("x", codes.OK))
		got := where(log.of(id))
		if err != nil {
			t.Fatalf("call %d: got %v after attempts on %v, want the fast instance's answer", i, err, got)
		}
		if resp.GetUsername() != "fast" {
			t.Fatalf("call %d: answered by %q, want fast", i, resp.GetUsername())
		}
		switch {
		case slices.Equal(got, []string{"fast"}):
		case slices.Equal(got, []string{"slow", "fast"}):
			hedged++
		case slices.Equal(got, []string{"fast", "slow"}):
			// The fast instance was late under load: the hedge
			// went to the other one all the same.
		default:
			t.Fatalf("call %d: got attempts on %v, want each instance once at most", i, got)
		}
	}
	t.Logf("%d of %d calls hedged from the slow instance to the fast one", hedged, n)
	// Peak EWMA passes over an instance while an attempt is
	// outstanding on it; when the loser of the last call has not
	// reported its end yet, the next call starts on the fast
	// instance and is not hedged: only round robin is sure to
	// hedge, and to fail without avoidance.
	if policy == discovery.RoundRobin && hedged < n/2 {
		t.Errorf("got %d calls hedged from the slow instance, want at least %d (it takes 100 picks in 101)", hedged, n/2)
	}
}

// With a single instance, avoiding it would leave nothing: retries and
// hedges go back to it, and the calls succeed.
func TestDiscoveryAvoidSingleInstance(t *testing.T) {
	t.Run("retry", func(t *testing.T) {
		log := newAttemptLog()
		firstFails := func(_ context.Context, a attemptSeen, _ int) error {
			if a.retry == 0 {
				return status.Error(codes.Unavailable, "first attempt fails")
			}
			return nil
		}
		st := weighted(t, []*avoidService{{name: "only", log: log, answer: firstFails}}, []int{1})
		c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{ServiceConfig: retryOnce})
		for i := range 20 {
			id := fmt.Sprint(i)
			_, err := c.UnaryCall(callCtx(t, id), request("x", codes.OK))
			got := where(log.of(id))
			if err != nil {
				t.Fatalf("call %d: got %v after attempts on %v, want success", i, err, got)
			}
			if want := []string{"only", "only(retry 1)"}; !slices.Equal(got, want) {
				t.Fatalf("call %d: got attempts on %v, want %v", i, got, want)
			}
		}
	})
	t.Run("hedge", func(t *testing.T) {
		log := newAttemptLog()
		firstBlocks := func(ctx context.Context, a attemptSeen, before int) error {
			if before == 0 {
				return blockUntil(ctx, a, before)
			}
			return nil
		}
		st := weighted(t, []*avoidService{{name: "only", log: log, answer: firstBlocks}}, []int{1})
		ic, err := grpcclient.New(grpcclient.Config{Methods: map[string]grpcclient.Method{
			unaryMethod: {Hedge: &hedge.Config{Delay: time.Millisecond}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ic.Close() })
		c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{}, ic.DialOptions()...)
		for i := range 5 {
			id := fmt.Sprint(i)
			_, err := c.UnaryCall(callCtx(t, id), request("x", codes.OK))
			if got := where(log.of(id)); err != nil || !slices.Equal(got, []string{"only", "only"}) {
				t.Fatalf("call %d: got %v after attempts on %v, want the hedge's answer from the same instance", i, err, got)
			}
		}
	})
}

// The record of attempts is the call's, not the ClientConn's: concurrent
// calls, each retried once, all succeed and none retries on the bad
// instance (run with -race, it also checks the record's synchronization).
func TestDiscoveryRetryAvoidsConcurrent(t *testing.T) {
	log := newAttemptLog()
	st := weighted(t, []*avoidService{
		{name: "bad", log: log, answer: failAll},
		{name: "good", log: log, answer: succeed},
		{name: "good2", log: log, answer: succeed},
	}, []int{8, 1, 1})
	c, _ := discoDial(t, st, grpcclient.DiscoveryConfig{
		Balancer:      discovery.BalancerConfig{Policy: discovery.RoundRobin, Ejection: noEjection},
		ServiceConfig: retryOnce,
	})
	warm(t, log, func(ctx context.Context) error {
		_, err := c.UnaryCall(ctx, request("x", codes.OK))
		return err
	}, "bad", "good", "good2")
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				id := fmt.Sprint(i)
				if _, err := c.UnaryCall(callCtx(t, id), request("x", codes.OK)); err != nil {
					errs <- fmt.Errorf("call %d: %w after attempts on %v", i, err, where(log.of(id)))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("got %v, want success", err)
	}
	for i := range n {
		got := where(log.of(fmt.Sprint(i)))
		if last := got[len(got)-1]; !strings.HasPrefix(last, "good") || len(got) > 1 && got[0] != "bad" {
			t.Fatalf("call %d: got attempts on %v, want a good instance last, after the bad one only", i, got)
		}
	}
}

// shortCircuit ends every call without sending it: what remains of a call
// is the interceptors before it.
func shortCircuit(context.Context, string, any, any, *grpc.ClientConn, grpc.UnaryInvoker, ...grpc.CallOption) error {
	return nil
}

// passOn is an interceptor that only calls on.
func passOn(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(ctx, method, req, reply, cc, opts...)
}

// avoidConns returns two ClientConns that never send a call: one with the
// options of DiscoveryDialOptions, whose interceptor comes first, and a
// bare one with an interceptor that passes the call on in its place.
func avoidConns(tb testing.TB) (disco, bare *grpc.ClientConn) {
	tb.Helper()
	st, err := discovery.NewStatic(map[string][]discovery.Instance{discoService: {{Addr: "127.0.0.1:1"}}})
	if err != nil {
		tb.Fatal(err)
	}
	opts, db, err := grpcclient.DiscoveryDialOptions(context.Background(), st, discoService, grpcclient.DiscoveryConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	disco, err = grpc.NewClient(grpcclient.DiscoveryTarget(discoService),
		append(opts, creds, grpc.WithChainUnaryInterceptor(shortCircuit))...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = disco.Close() })
	bare, err = grpc.NewClient("passthrough:///127.0.0.1:1", creds, grpc.WithChainUnaryInterceptor(passOn, shortCircuit))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = bare.Close() })
	return disco, bare
}

// The record of a call's attempts costs one allocation per call.
func TestDiscoveryAvoidAllocs(t *testing.T) {
	disco, bare := avoidConns(t)
	ctx := context.Background()
	req, reply := &testpb.Empty{}, &testpb.Empty{}
	allocs := func(cc *grpc.ClientConn) float64 {
		return testing.AllocsPerRun(200, func() {
			if err := cc.Invoke(ctx, emptyMethod, req, reply); err != nil {
				t.Fatal(err)
			}
		})
	}
	d, b := allocs(disco), allocs(bare)
	if d-b > 1 {
		t.Errorf("got %v allocations per call with the discovery interceptor, %v without: want at most 1 more", d, b)
	}
}

// BenchmarkDiscoveryAvoid measures what the record of a call's attempts
// costs, beside a ClientConn whose interceptor only passes the call on:
// the call stops at the next interceptor, so only the interceptors count.
func BenchmarkDiscoveryAvoid(b *testing.B) {
	disco, bare := avoidConns(b)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		cc   *grpc.ClientConn
	}{{"bare", bare}, {"discovery", disco}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			req, reply := &testpb.Empty{}, &testpb.Empty{}
			for b.Loop() {
				if err := c.cc.Invoke(ctx, emptyMethod, req, reply); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, reply := &testpb.Empty{}, &testpb.Empty{}
				for pb.Next() {
					if err := c.cc.Invoke(ctx, emptyMethod, req, reply); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
