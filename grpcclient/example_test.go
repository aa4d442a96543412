package grpcclient_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/grpcclient"
	"github.com/bulwarkrpc/bulwark/hedge"
)

// serve starts a TestService on a loopback port and returns its address
// and a function that stops it.
func serve(svc testpb.TestServiceServer) (string, func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, svc)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	return lis.Addr().String(), func() { srv.Stop(); <-done }
}

// flaky answers Unavailable to every other unary call.
type flaky struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int32
}

func (f *flaky) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if f.calls.Add(1)%2 == 1 {
		return nil, status.Error(codes.Unavailable, "try again")
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func ExampleDialOptions() {
	svc := &flaky{}
	addr, stop := serve(svc)
	defer stop()

	// The Standard policies, and grpc-go's own retries of UnaryCall,
	// which is safe to repeat.
	cfg := grpcclient.Standard()
	cfg.ServiceConfig.MethodConfig = []grpcclient.MethodConfig{{
		Name:        []grpcclient.Name{{Service: "grpc.testing.TestService", Method: "UnaryCall"}},
		RetryPolicy: &grpcclient.RetryPolicy{MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond},
	}}
	opts, err := grpcclient.DialOptions(cfg)
	if err != nil {
		panic(err)
	}
	conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	client := testpb.NewTestServiceClient(conn)
	resp, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hello")}})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s after %d attempts\n", resp.GetPayload().GetBody(), svc.calls.Load())
	// Output:
	// hello after 2 attempts
}

// counter streams the numbers it is asked for.
type counter struct {
	testpb.UnimplementedTestServiceServer
}

func (counter) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	for i, p := range req.GetResponseParameters() {
		msg := &testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: fmt.Appendf(nil, "#%d (%d bytes asked)", i+1, p.GetSize())}}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

func ExampleInterceptors_StreamClientInterceptor() {
	addr, stop := serve(counter{})
	defer stop()

	// At most 16 streams at once per method; a stream holds its slot
	// until it ends.
	ic, err := grpcclient.New(grpcclient.Config{Bulkhead: &bulkhead.Config{Limit: 16}})
	if err != nil {
		panic(err)
	}
	defer ic.Close()
	conn, err := grpc.NewClient(addr, append(ic.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ending the context ends the stream and frees its slot, even if it is not read to the end
	stream, err := testpb.NewTestServiceClient(conn).StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 3}}})
	if err != nil {
		panic(err)
	}
	const method = "/grpc.testing.TestService/StreamingOutputCall"
	fmt.Println("open streams:", ic.Bulkheads().InFlight(method))
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Println(string(msg.GetPayload().GetBody()))
	}
	fmt.Println("open streams:", ic.Bulkheads().InFlight(method))
	// Output:
	// open streams: 1
	// #1 (1 bytes asked)
	// #2 (2 bytes asked)
	// #3 (3 bytes asked)
	// open streams: 0
}

// slowFirst lets the first call hang until it is cancelled, and answers
// the others at once.
type slowFirst struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int32
}

func (s *slowFirst) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if s.calls.Add(1) == 1 {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &testpb.SimpleResponse{Username: "the hedge"}, nil
}

func ExampleNew_hedging() {
	addr, stop := serve(&slowFirst{})
	defer stop()

	// UnaryCall is safe to repeat: when it has not answered after 20ms,
	// send it again, and take the first answer.
	ic, err := grpcclient.New(grpcclient.Config{
		AttemptTimeout: 5 * time.Second,
		Methods: map[string]grpcclient.Method{
			"/grpc.testing.TestService/UnaryCall": {Hedge: &hedge.Config{Delay: 20 * time.Millisecond}},
		},
	})
	if err != nil {
		panic(err)
	}
	defer ic.Close()
	conn, err := grpc.NewClient(addr, append(ic.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	resp, err := testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	fmt.Println(resp.GetUsername(), err)
	// Output:
	// the hedge <nil>
}

// prices fails once told to.
type prices struct {
	testpb.UnimplementedTestServiceServer
	down atomic.Bool
}

func (p *prices) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if p.down.Load() {
		return nil, status.Error(codes.Unavailable, "down")
	}
	return &testpb.SimpleResponse{Username: "42 for " + string(req.GetPayload().GetBody())}, nil
}

func ExampleNew_fallback() {
	svc := &prices{}
	addr, stop := serve(svc)
	defer stop()

	// When UnaryCall fails, answer with the last good reply to the same
	// request; EmptyCall gets a default reply.
	ic, err := grpcclient.New(grpcclient.Config{
		Methods: map[string]grpcclient.Method{
			"/grpc.testing.TestService/UnaryCall": {Fallback: &grpcclient.FallbackConfig{Cache: &grpcclient.CacheConfig{MaxStale: time.Hour}}},
			"/grpc.testing.TestService/EmptyCall": {Fallback: &grpcclient.FallbackConfig{Reply: &testpb.Empty{}}},
		},
	})
	if err != nil {
		panic(err)
	}
	defer ic.Close()
	conn, err := grpc.NewClient(addr, append(ic.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)

	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("item 7")}}
	for _, down := range []bool{false, true} {
		svc.down.Store(down)
		resp, err := client.UnaryCall(context.Background(), proto.Clone(req).(*testpb.SimpleRequest))
		fmt.Printf("down=%v: %s %v\n", down, resp.GetUsername(), err)
	}
	// Output:
	// down=false: 42 for item 7 <nil>
	// down=true: 42 for item 7 <nil>
}

func ExampleStandard() {
	cfg := grpcclient.Standard()
	cfg.Bulkhead.Limit = 64 // sections are the caller's to change
	ic, err := grpcclient.New(cfg)
	if err != nil {
		panic(err)
	}
	defer ic.Close()
	fmt.Println(cfg.AttemptTimeout, cfg.TotalTimeout, ic.Bulkheads().Limit())
	fmt.Printf("%q\n", ic.ServiceConfig()) // no retry policy yet: the throttle would do nothing
	// Output:
	// 10s 30s 64
	// ""
}

func ExampleServiceConfig_JSON() {
	sc := grpcclient.ServiceConfig{
		MethodConfig: []grpcclient.MethodConfig{{
			Name:        []grpcclient.Name{{Service: "grpc.testing.TestService", Method: "UnaryCall"}},
			Timeout:     2 * time.Second,
			RetryPolicy: &grpcclient.RetryPolicy{MaxAttempts: 4, RetryableStatusCodes: []codes.Code{codes.Unavailable, codes.ResourceExhausted}},
		}},
		RetryThrottling: &grpcclient.RetryThrottling{MaxTokens: 20},
	}
	js, err := sc.JSON()
	fmt.Println(js, err)

	_, err = grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{
		Name: []grpcclient.Name{{}}, RetryPolicy: &grpcclient.RetryPolicy{MaxAttempts: 1}}}}.JSON()
	fmt.Println(err)
	// Output:
	// {"methodConfig":[{"name":[{"service":"grpc.testing.TestService","method":"UnaryCall"}],"timeout":"2s","retryPolicy":{"maxAttempts":4,"initialBackoff":"0.1s","maxBackoff":"1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE","RESOURCE_EXHAUSTED"]}}],"retryThrottling":{"maxTokens":20,"tokenRatio":0.1}} <nil>
	// grpcclient: ServiceConfig.MethodConfig[0].RetryPolicy.MaxAttempts is 1, want >= 2 (or 0 for 3); a policy of one attempt retries nothing
}

func ExampleClassifyCodes() {
	// NotFound from this service means a broken deployment, not a missing
	// record: count it against the method.
	classify := grpcclient.ClassifyCodes(func(c codes.Code) bulwark.Outcome {
		if c == codes.NotFound {
			return bulwark.Failure
		}
		return bulwark.ClassifyGRPCCode(uint32(c))
	})
	ctx := context.Background()
	fmt.Println(classify(ctx, status.Error(codes.NotFound, "")))
	fmt.Println(classify(ctx, status.Error(codes.InvalidArgument, "")))
	gone, cancel := context.WithCancel(ctx)
	cancel()
	fmt.Println(classify(gone, status.Error(codes.NotFound, ""))) // the caller left: never a failure
	// Output:
	// failure
	// ignored
	// ignored
}
