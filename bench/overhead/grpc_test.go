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
// loopback server: bare (twice: the difference is the measurement's
// noise), under a bare context.WithTimeout (the deadline is sent to the
// server), through bulwark's Standard interceptors, and through
// failsafe-go's interceptor with retry, breaker, bulkhead and timeout;
// both stacks alone and under a caller's context.WithTimeout.
// All share one connection, whose interceptor hands each call to the
// interceptor its variant's CallOption names: given connections of their
// own, two bare variants differed by up to ~0.9 µs with the order in which
// the connections were made.
func grpcVariants(tb testing.TB) []variant {
	tb.Helper()
	f, err := fleet.Start(fleet.Config{GRPC: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	conn, err := grpc.NewClient("passthrough:///"+f.GRPCAddrs()[0],
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUnaryInterceptor(dispatch))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	c := testgrpc.NewTestServiceClient(conn)
	req := &testgrpc.SimpleRequest{ResponseSize: 256}
	call := func(through grpc.UnaryClientInterceptor) func(context.Context) error {
		opt := &via{interceptor: through}
		return func(ctx context.Context) error {
			_, err := c.UnaryCall(ctx, req, opt)
			return err
		}
	}
	ic, err := grpcclient.New(grpcclient.Standard())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ic.Close() })
	if sc := ic.ServiceConfig(); sc != "" {
		tb.Fatalf("Standard needs the service config %s, which a shared connection cannot carry", sc)
	}
	fs := failsafegrpc.NewUnaryClientInterceptor[any](
		retrypolicy.NewBuilder[any]().WithBackoff(time.Second, 30*time.Second).WithMaxRetries(3).Build(),
		circuitbreaker.NewBuilder[any]().WithFailureThreshold(5).WithSuccessThreshold(2).WithDelay(5*time.Second).Build(),
		bulkhead.New[any](256),
		timeout.New[any](10*time.Second),
	)
	bare, viaBulwark, viaFailsafe := call(nil), call(ic.UnaryClientInterceptor()), call(fs)
	underDeadline := func(call func(context.Context) error) func(context.Context) error {
		return func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return call(ctx)
		}
	}
	return []variant{
		{"bare", bare},
		{"bare-again", call(nil)},
		{"timeout", underDeadline(bare)},
		{"bulwark", viaBulwark},
		{"failsafe", viaFailsafe},
		// Both stacks under a caller's deadline, as in a server handling
		// a request. failsafe-go's timeout cancels the call's context from
		// a timer: no deadline of its own reaches the server, the caller's
		// is how the server learns one. bulwark's attempt deadline, no
		// earlier than the caller's here, sets no timer of its own.
		{"bulwark+deadline", underDeadline(viaBulwark)},
		{"failsafe+deadline", underDeadline(viaFailsafe)},
	}
}

// via is the CallOption that names the interceptor a call goes through.
type via struct {
	grpc.EmptyCallOption
	interceptor grpc.UnaryClientInterceptor // nil: none
}

// dispatch hands a call to the interceptor its via option names, or to
// none.
func dispatch(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	for _, o := range opts {
		if v, ok := o.(*via); ok && v.interceptor != nil {
			return v.interceptor(ctx, method, req, reply, cc, invoker, opts...)
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
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
