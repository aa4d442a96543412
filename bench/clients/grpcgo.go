package clients

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/stats"

	"github.com/bulwarkrpc/bulwark/bench/load"
)

// grpcGoServiceConfig is grpc-go's retry example (examples/features/retry)
// with the round_robin balancer.
const grpcGoServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{"service": "grpc.testing.TestService"}],
    "waitForReady": true,
    "retryPolicy": {
      "MaxAttempts": 4,
      "InitialBackoff": ".01s",
      "MaxBackoff": ".01s",
      "BackoffMultiplier": 1.0,
      "RetryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

func grpcGoSpec() Spec {
	return Spec{
		Name:      "grpc-go",
		Transport: GRPC,
		Balances:  true,
		Config: "grpc.NewClient over every endpoint (a manual resolver) with round_robin and the retry policy of grpc-go's retry example: " +
			"MaxAttempts 4, backoff 10ms, retry on UNAVAILABLE, waitForReady; transparent retry and pushback are built in. No breaker, no bulkhead.",
		New: func(e Endpoints, attempts *atomic.Int64) (Client, error) {
			return newGRPCConn(e.GRPC, attempts, grpcGoServiceConfig)
		},
	}
}

// newGRPCConn connects to every address, balanced by the service config
// ("" when opts carry one).
func newGRPCConn(addrs []string, attempts *atomic.Int64, serviceConfig string, opts ...grpc.DialOption) (*grpcClient, error) {
	r := manual.NewBuilderWithScheme("bench")
	var st resolver.State
	for _, a := range addrs {
		st.Addresses = append(st.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(st)
	base := []grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(attemptCounter{attempts}),
	}
	if serviceConfig != "" {
		base = append(base, grpc.WithDefaultServiceConfig(serviceConfig))
	}
	opts = append(base, opts...)
	conn, err := grpc.NewClient(r.Scheme()+":///fleet", opts...)
	if err != nil {
		return nil, err
	}
	return &grpcClient{conn: conn, c: testgrpc.NewTestServiceClient(conn)}, nil
}

type grpcClient struct {
	conn *grpc.ClientConn
	c    testgrpc.TestServiceClient
}

func (g *grpcClient) Call(ctx context.Context, _ int, _ string) load.Outcome {
	if _, err := g.c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 256}); err != nil {
		return load.Failure
	}
	return load.Success
}

func (g *grpcClient) Close() error { return g.conn.Close() }

// attemptCounter counts every attempt of every call that reached a
// connection: grpc-go reports each attempt's headers (retries and
// transparent retries included) once the attempt has a stream, and not an
// attempt its picker refused (a per-instance limit) or that found no ready
// connection, which sent nothing.
type attemptCounter struct{ n *atomic.Int64 }

func (a attemptCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (a attemptCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.OutHeader); ok && h.IsClient() {
		a.n.Add(1)
	}
}
func (a attemptCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (a attemptCounter) HandleConn(context.Context, stats.ConnStats) {}
