package fleet

import (
	"context"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcEndpoint is one grpc.testing.TestService server that follows its
// current Behavior. Only UnaryCall is served.
type grpcEndpoint struct {
	testgrpc.UnimplementedTestServiceServer

	index    int
	addr     string
	beh      atomic.Pointer[Behavior]
	arrivals atomic.Int64
	gate     *gate
	quit     chan struct{}

	mu   sync.Mutex // guards srv and done
	srv  *grpc.Server
	done chan struct{}
}

func newGRPCEndpoint(index int) (*grpcEndpoint, error) {
	addr, err := reserve()
	if err != nil {
		return nil, err
	}
	e := &grpcEndpoint{index: index, addr: addr, gate: newGate(), quit: make(chan struct{})}
	e.beh.Store(&Behavior{})
	return e, nil
}

func (e *grpcEndpoint) apply(b Behavior) error {
	e.beh.Store(&b)
	if b.Down {
		e.down()
		return nil
	}
	return e.up()
}

func (e *grpcEndpoint) up() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", e.addr)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, e)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	e.srv, e.done = srv, done
	return nil
}

// down stops the server: the listener and every connection close, calls
// in flight end with Unavailable on the client's side.
func (e *grpcEndpoint) down() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		return
	}
	e.srv.Stop()
	<-e.done
	e.srv, e.done = nil, nil
}

func (e *grpcEndpoint) close() {
	close(e.quit)
	e.down()
}

// UnaryCall answers under the endpoint's current Behavior, with a payload
// of the size asked for (bodySize when none).
func (e *grpcEndpoint) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	e.arrivals.Add(1)
	b := e.beh.Load()
	if b.Capacity > 0 {
		if !e.gate.enter(ctx, b, e.quit) {
			return nil, status.Error(codes.Unavailable, "fleet: over capacity")
		}
		defer e.gate.leave()
	}
	if b.Hang {
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-e.quit:
			return nil, status.Error(codes.Unavailable, "fleet: closed")
		}
	}
	if !wait(ctx, b.Latency.Sample(), e.quit) {
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	u := rand.Float64()
	switch {
	case u < b.ErrorRate:
		return nil, status.Error(codes.Unavailable, "fleet: injected error")
	case u < b.ErrorRate+b.ThrottleRate:
		ms := strconv.FormatInt(b.retryAfter().Milliseconds(), 10)
		_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", ms))
		return nil, status.Error(codes.ResourceExhausted, "fleet: throttled")
	case u < b.ErrorRate+b.ThrottleRate+b.ResetRate:
		return nil, status.Error(codes.Unavailable, "fleet: injected reset")
	}
	size := int(req.GetResponseSize())
	if size <= 0 {
		size = bodySize
	}
	body := make([]byte, size)
	copy(body, payload[:])
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: body}}, nil
}
