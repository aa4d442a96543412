package grpcclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark/grpcclient"
)

// Every goroutine grpc-go starts belongs to a ClientConn or a Server, and
// every test closes both: goleak needs no exception, and retries long
// enough for grpc-go's transports to finish closing.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Full method names of the TestService.
const (
	unaryMethod  = "/grpc.testing.TestService/UnaryCall"
	emptyMethod  = "/grpc.testing.TestService/EmptyCall"
	outMethod    = "/grpc.testing.TestService/StreamingOutputCall"
	inMethod     = "/grpc.testing.TestService/StreamingInputCall"
	duplexMethod = "/grpc.testing.TestService/FullDuplexCall"
	testService  = "grpc.testing.TestService"
)

// service implements the TestService. By default UnaryCall echoes the
// request's payload and fails with the request's ResponseStatus when it has
// a non-zero code; unary, when set, replaces that. The streaming methods
// follow the interop test's contract; block, when set, makes
// StreamingOutputCall wait for its context to end before sending anything,
// and hold, after sending its messages.
type service struct {
	testpb.UnimplementedTestServiceServer
	unary func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error)
	block bool
	hold  bool
	calls atomic.Int32 // unary calls received
	opens atomic.Int32 // streams opened
}

func (s *service) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	return &testpb.Empty{}, nil
}

func (s *service) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.calls.Add(1)
	if s.unary != nil {
		return s.unary(ctx, req)
	}
	return echo(req)
}

// switchable returns a server whose UnaryCall echoes, or answers
// Unavailable while the returned flag is set.
func switchable(t testing.TB) (*server, *atomic.Bool) {
	t.Helper()
	down := &atomic.Bool{}
	srv := newServer(t, &service{})
	srv.unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		if down.Load() {
			return nil, status.Error(codes.Unavailable, "down")
		}
		return echo(req)
	}
	return srv, down
}

func echo(req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if st := req.GetResponseStatus(); st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (s *service) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	s.opens.Add(1)
	if s.block {
		<-stream.Context().Done()
		return status.FromContextError(stream.Context().Err()).Err()
	}
	for _, p := range req.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	if st := req.GetResponseStatus(); st.GetCode() != 0 {
		return status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	if s.hold {
		<-stream.Context().Done()
		return status.FromContextError(stream.Context().Err()).Err()
	}
	return nil
}

func (s *service) StreamingInputCall(stream testpb.TestService_StreamingInputCallServer) error {
	s.opens.Add(1)
	total := 0
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(req.GetPayload().GetBody())
	}
}

func (s *service) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	s.opens.Add(1)
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if st := req.GetResponseStatus(); st.GetCode() != 0 {
			return status.Error(codes.Code(st.GetCode()), st.GetMessage())
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// server is a TestService on a loopback port that can be stopped and
// started again on the same address.
type server struct {
	*service
	addr string

	mu  sync.Mutex
	srv *grpc.Server
	wg  sync.WaitGroup
}

func newServer(t testing.TB, svc *service) *server {
	t.Helper()
	if svc == nil {
		svc = &service{}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{service: svc, addr: lis.Addr().String()}
	s.serve(lis)
	t.Cleanup(s.stop)
	return s
}

func (s *server) serve(lis net.Listener) {
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, s.service)
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = srv.Serve(lis)
	}()
}

// stop closes the listener and every connection, and waits for the
// handlers to return.
func (s *server) stop() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	srv.Stop()
	s.wg.Wait()
}

// restart serves again on the same address.
func (s *server) restart(t testing.TB) {
	t.Helper()
	lis, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", s.addr, err)
	}
	s.serve(lis)
}

// fastReconnect makes a ClientConn reconnect within milliseconds of a
// server coming back, instead of grpc-go's default backoff of a second
// and more.
func fastReconnect() grpc.DialOption {
	return grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 5 * time.Millisecond, Multiplier: 1.5, MaxDelay: 50 * time.Millisecond},
		MinConnectTimeout: time.Second,
	})
}

// dial connects to addr through new Interceptors of cfg; both are closed
// at the end of the test.
func dial(t testing.TB, addr string, cfg grpcclient.Config, extra ...grpc.DialOption) (testpb.TestServiceClient, *grpcclient.Interceptors) {
	t.Helper()
	ic, err := grpcclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn := dialWith(t, addr, ic, extra...)
	return testpb.NewTestServiceClient(conn), ic
}

// dialConn is dial returning the ClientConn itself.
func dialConn(t testing.TB, addr string, cfg grpcclient.Config, extra ...grpc.DialOption) (*grpc.ClientConn, *grpcclient.Interceptors) {
	t.Helper()
	ic, err := grpcclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dialWith(t, addr, ic, extra...), ic
}

// dialWith connects to addr through ic; the connection is closed at the
// end of the test, and ic too.
func dialWith(t testing.TB, addr string, ic *grpcclient.Interceptors, extra ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts := append(ic.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()), fastReconnect())
	conn, err := grpc.NewClient("passthrough:///"+addr, append(opts, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		_ = ic.Close()
	})
	return conn
}

// request returns a request whose payload is body and whose answer is the
// status code c (codes.OK: the payload).
func request(body string, c codes.Code) *testpb.SimpleRequest {
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(body)}}
	if c != codes.OK {
		req.ResponseStatus = &testpb.EchoStatus{Code: int32(c), Message: "as asked"}
	}
	return req
}

// mustCode fails the test unless err carries the gRPC code want.
func mustCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %v (%v), want %v", got, err, want)
	}
}

// wait returns a context that ends after a generous bound, for waits that
// must not hang a broken test for ever.
func wait(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var errTest = errors.New("test failure")
