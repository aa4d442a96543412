package grpcclient_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/grpcclient"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/retry"
)

func hedged(delay time.Duration) grpcclient.Config {
	return grpcclient.Config{
		Breaker:  &breaker.Config{MinimumCalls: 1000},
		Bulkhead: &bulkhead.Config{Limit: 64},
		Methods:  map[string]grpcclient.Method{unaryMethod: {Hedge: &hedge.Config{Delay: delay}}},
	}
}

// The first attempt hangs; the hedge sent after the delay answers. The
// caller gets the hedge's reply, in its own message, with nothing left of
// what it held before; the first attempt is cancelled and counts as
// Ignored, never as a failure.
func TestHedgeWins(t *testing.T) {
	firstGone := make(chan error, 1)
	srv := newServer(t, &service{})
	srv.unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		if srv.calls.Load() == 1 {
			<-ctx.Done()
			firstGone <- ctx.Err()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return &testpb.SimpleResponse{Payload: req.GetPayload(), Username: "hedge"}, nil
	}
	conn, ic := dialConn(t, srv.addr, hedged(10*time.Millisecond))
	reply := &testpb.SimpleResponse{Username: "stale", Payload: &testpb.Payload{Type: testpb.PayloadType_COMPRESSABLE}}
	err := conn.Invoke(wait(t), unaryMethod, request("q", codes.OK), reply)
	if err != nil {
		t.Fatal(err)
	}
	if reply.GetUsername() != "hedge" || string(reply.GetPayload().GetBody()) != "q" || reply.GetPayload().GetType() != 0 {
		t.Fatalf("got %v, want the hedge's reply", reply)
	}
	if err := <-firstGone; err != context.Canceled {
		t.Fatalf("the first attempt ended with %v, want it cancelled", err)
	}
	if got := srv.calls.Load(); got != 2 {
		t.Fatalf("server saw %d calls, want 2", got)
	}
	counts(t, ic, unaryMethod, 1, 0, 1)
	held(t, ic, unaryMethod, 0)
}

// A fast answer sends no hedge.
func TestHedgeNotNeeded(t *testing.T) {
	srv := newServer(t, nil)
	client, ic := dial(t, srv.addr, hedged(time.Hour))
	for i := range 10 {
		body := fmt.Sprint(i)
		resp, err := client.UnaryCall(wait(t), request(body, codes.OK))
		if err != nil || string(resp.GetPayload().GetBody()) != body {
			t.Fatalf("got %v, %v; want %s", resp, err, body)
		}
	}
	if got := srv.calls.Load(); got != 10 {
		t.Fatalf("server saw %d calls, want 10", got)
	}
	counts(t, ic, unaryMethod, 10, 0, 0)
}

// When the first attempt fails, the hedge starts at once and its answer
// is the call's.
func TestHedgeAfterFailure(t *testing.T) {
	srv := newServer(t, &service{})
	srv.unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		if srv.calls.Load() == 1 {
			return nil, status.Error(codes.Unavailable, "first fails")
		}
		return echo(req)
	}
	client, ic := dial(t, srv.addr, hedged(time.Hour))
	resp, err := client.UnaryCall(wait(t), request("second", codes.OK))
	if err != nil || string(resp.GetPayload().GetBody()) != "second" {
		t.Fatalf("got %v, %v; want the hedge's answer", resp, err)
	}
	counts(t, ic, unaryMethod, 1, 1, 0)
}

// Only the configured method is hedged.
func TestHedgeIsPerMethod(t *testing.T) {
	srv := newServer(t, &service{unary: blockUntilDone})
	cfg := hedged(time.Millisecond)
	cfg.Methods = map[string]grpcclient.Method{emptyMethod: cfg.Methods[unaryMethod]}
	cfg.AttemptTimeout = 100 * time.Millisecond
	client, _ := dial(t, srv.addr, cfg)
	_, err := client.UnaryCall(wait(t), request("", codes.OK))
	mustCode(t, err, codes.DeadlineExceeded)
	if got := srv.calls.Load(); got != 1 {
		t.Fatalf("server saw %d calls, want 1: UnaryCall is not hedged", got)
	}
}

// Many concurrent hedged calls, each with slow first attempts now and
// then: every caller gets the answer to its own request, and the race
// detector sees no two attempts writing to one message.
func TestHedgeRaceClean(t *testing.T) {
	var seen sync.Map // request body → struct{}: its first attempt arrived
	var n atomic.Int32
	srv := newServer(t, &service{unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		body := string(req.GetPayload().GetBody())
		if _, again := seen.LoadOrStore(body, struct{}{}); !again && n.Add(1)%3 == 0 {
			// The first attempt of every third call hangs until cancelled.
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return &testpb.SimpleResponse{Payload: req.GetPayload(), Username: body}, nil
	}})
	cfg := hedged(time.Millisecond)
	budget, err := retry.NewBudget(retry.BudgetConfig{Ratio: 1, PerSecond: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Budget = budget // a hedge for every slow call
	cfg.Methods[unaryMethod].Hedge.MaxHedges = 2
	conn, ic := dialConn(t, srv.addr, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				body := fmt.Sprintf("%d-%d", g, i)
				reply := &testpb.SimpleResponse{Username: "stale"}
				if err := conn.Invoke(wait(t), unaryMethod, request(body, codes.OK), reply); err != nil {
					errs <- err
					continue
				}
				if reply.GetUsername() != body || string(reply.GetPayload().GetBody()) != body {
					errs <- fmt.Errorf("got %v, want the answer to %s", reply, body)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c := ic.Breakers().Counts(unaryMethod); c.Failures != 0 {
		t.Fatalf("breaker counts %+v: cancelled hedges counted as failures", c)
	}
}

// A reply that is not a proto.Message cannot be copied, so its call is not
// hedged: it runs once.
func TestHedgeNeedsAProtoReply(t *testing.T) {
	ic, err := grpcclient.New(hedged(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	var calls atomic.Int32
	invoker := func(ctx context.Context, _ string, _, reply any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		calls.Add(1)
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var raw []byte
	err = ic.UnaryClientInterceptor()(ctx, unaryMethod, &testpb.SimpleRequest{}, &raw, nil, invoker)
	mustCode(t, err, codes.DeadlineExceeded)
	if got := calls.Load(); got != 1 {
		t.Fatalf("got %d attempts, want 1", got)
	}
}

// What a hedged call hands back through its call options — the header,
// the trailer, the end (grpc.OnFinish) — is the winner's, as its reply
// is: a loser, cancelled, writes none of it, and the caller's OnFinish
// runs once, as grpc-go promises, with the call's own status.
func TestHedgeCallOptionsAreTheWinners(t *testing.T) {
	srv := newServer(t, &service{})
	srv.unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		if srv.calls.Load() == 1 {
			_ = grpc.SendHeader(ctx, metadata.Pairs("attempt", "first"))
			return blockUntilDone(ctx, req)
		}
		_ = grpc.SetHeader(ctx, metadata.Pairs("attempt", "hedge"))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("attempt", "hedge"))
		return echo(req)
	}
	conn, _ := dialConn(t, srv.addr, hedged(10*time.Millisecond))
	var header, trailer metadata.MD
	var mu sync.Mutex
	var finished []error
	onFinish := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		finished = append(finished, err)
	}
	reply := &testpb.SimpleResponse{}
	err := conn.Invoke(wait(t), unaryMethod, request("q", codes.OK), reply,
		grpc.Header(&header), grpc.Trailer(&trailer), grpc.OnFinish(onFinish))
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.calls.Load(); got != 2 {
		t.Fatalf("server saw %d calls, want 2: the test needs a hedge", got)
	}
	if got := header.Get("attempt"); len(got) != 1 || got[0] != "hedge" {
		t.Errorf("got header %v, want the winning hedge's", header)
	}
	if got := trailer.Get("attempt"); len(got) != 1 || got[0] != "hedge" {
		t.Errorf("got trailer %v, want the winning hedge's", trailer)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(finished) != 1 || finished[0] != nil {
		t.Errorf("OnFinish saw %v, want it called once, with the call's nil error", finished)
	}
}

// A hedged call returns only once every attempt it started has returned:
// a cancelled loser still busy with the call (encoding its request, in an
// interceptor further in) must not outlive it, since the caller may reuse
// its request and its call options the moment the call returns.
func TestHedgedCallReturnsAfterItsAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget, err := retry.NewBudget(retry.BudgetConfig{Ratio: 1, PerSecond: 1e6})
		if err != nil {
			t.Fatal(err)
		}
		ic, err := grpcclient.New(grpcclient.Config{Budget: budget, Methods: map[string]grpcclient.Method{
			unaryMethod: {Hedge: &hedge.Config{Delay: 10 * time.Millisecond}}}})
		if err != nil {
			t.Fatal(err)
		}
		defer ic.Close()
		hedging := make(chan struct{}) // closed when the hedge runs
		release := make(chan struct{}) // lets the cancelled hedge return
		var n atomic.Int32
		var hedgeReturned atomic.Bool
		invoker := func(ctx context.Context, _ string, req, reply any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
			if n.Add(1) == 1 {
				<-hedging // the first attempt answers once the hedge runs: it wins
				reply.(*testpb.SimpleResponse).Username = "first"
				return nil
			}
			close(hedging)
			<-ctx.Done() // cancelled: it lost
			<-release
			_ = proto.Size(req.(proto.Message))
			hedgeReturned.Store(true)
			return status.FromContextError(ctx.Err()).Err()
		}
		reply := &testpb.SimpleResponse{}
		returned := make(chan error, 1)
		go func() {
			returned <- ic.UnaryClientInterceptor()(context.Background(), unaryMethod, request("q", codes.OK), reply, nil, invoker)
		}()
		<-hedging // the delay passes
		synctest.Wait()
		select {
		case err := <-returned:
			close(release)
			t.Fatalf("the call returned (%v) while its cancelled hedge still ran", err)
		default:
		}
		close(release)
		if err := <-returned; err != nil {
			t.Fatal(err)
		}
		if !hedgeReturned.Load() || reply.GetUsername() != "first" {
			t.Fatalf("got %v, hedge returned: %v; want the first attempt's reply, every attempt returned", reply, hedgeReturned.Load())
		}
	})
}
