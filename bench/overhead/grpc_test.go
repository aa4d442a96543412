package overhead_test

import (
	"context"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafegrpc"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bulwarkrpc/bulwark/bench/fleet"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

// grpcVariants returns the ways to make the same unary call on one
// loopback server: bare, under a bare context.WithTimeout (the deadline
// is sent to the server), through bulwark's Standard interceptors, and
// through failsafe-go's interceptor with retry, breaker, bulkhead and
// timeout. Each has a connection of its own.
func grpcVariants(tb testing.TB) []variant {
	tb.Helper()
	f, err := fleet.Start(fleet.Config{GRPC: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	dial := func(opts ...grpc.DialOption) testgrpc.TestServiceClient {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
		conn, err := grpc.NewClient("passthrough:///"+f.GRPCAddrs()[0], opts...)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { conn.Close() })
		return testgrpc.NewTestServiceClient(conn)
	}
	req := &testgrpc.SimpleRequest{ResponseSize: 256}
	call := func(c testgrpc.TestServiceClient) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := c.UnaryCall(ctx, req)
			return err
		}
	}
	ic, err := grpcclient.New(grpcclient.Standard())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ic.Close() })
	fs := failsafegrpc.NewUnaryClientInterceptor[any](
		retrypolicy.NewBuilder[any]().WithBackoff(time.Second, 30*time.Second).WithMaxRetries(3).Build(),
		circuitbreaker.NewBuilder[any]().WithFailureThreshold(5).WithSuccessThreshold(2).WithDelay(5*time.Second).Build(),
		bulkhead.New[any](256),
		timeout.New[any](10*time.Second),
	)
	timed := dial()
	return []variant{
		{"bare", call(dial())},
		{"timeout", func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return call(timed)(ctx)
		}},
		{"bulwark", call(dial(ic.DialOptions()...))},
		{"failsafe", call(dial(grpc.WithUnaryInterceptor(fs)))},
	}
}

// BenchmarkGRPC is one loopback unary call per iteration through each
// variant, sequential and parallel, with allocations.
func BenchmarkGRPC(b *testing.B) {
	for _, v := range grpcVariants(b) {
		runVariant(b, v)
	}
}

// BenchmarkGRPCPaired makes one call of each variant per iteration and
// reports the medians, as BenchmarkHTTPPaired does.
func BenchmarkGRPCPaired(b *testing.B) {
	paired(b, grpcVariants(b))
}
